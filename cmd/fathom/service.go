package main

import (
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/internal/cli"
)

func init() { register(newServiceCmd) }

func newServiceCmd(g *cli.Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "service",
		Aliases: []string{"svc"},
		Short:   "Service discovery: service jobs, their endpoints and DNS names",
	}
	cmd.AddCommand(newServiceListCmd(g), newServiceGetCmd(g))
	return cmd
}

func newServiceListCmd(g *cli.Globals) *cobra.Command {
	var ns string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List service jobs with their endpoint counts, ports and DNS names",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp := &fathomv1.ListServicesResponse{}
			var q url.Values
			if ns != "" {
				q = url.Values{"namespace": {ns}}
			}
			if err := newAPIClient(g).call(cmd.Context(), "GET", "/v1/services", q, "", nil, resp); err != nil {
				return err
			}
			v, err := marshalOut(resp)
			if err != nil {
				return err
			}
			return g.Print(v, func(w io.Writer) {
				fmt.Fprintln(w, "NAMESPACE\tJOB\tHEALTHY/ENDPOINTS\tPORTS\tDNS")
				for _, s := range resp.GetServices() {
					fmt.Fprintf(w, "%s\t%s\t%d/%d\t%s\t%s\n", s.GetNamespace(), s.GetJob(), s.GetHealthy(), s.GetEndpoints(),
						strings.Join(s.GetPorts(), ","), s.GetDnsName())
				}
			})
		},
	}
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", "only this namespace (default: all)")
	return cmd
}

func newServiceGetCmd(g *cli.Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAMESPACE/JOB | JOB",
		Short: "List a service job's endpoints: task, node, address, ports and health",
		Long: `List a service job's endpoints: its running tasks with their node, the address
their ports listen on, the ports by name and whether they are healthy (running
and passing the job's health check). DNS answers only the healthy ones. JOB
alone means the namespace "default".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, job, ok := strings.Cut(args[0], "/")
			if !ok {
				ns, job = "default", args[0]
			}
			resp := &fathomv1.GetServiceResponse{}
			if err := newAPIClient(g).call(cmd.Context(), "GET", "/v1/services/"+url.PathEscape(ns)+"/"+url.PathEscape(job), nil, "", nil, resp); err != nil {
				return err
			}
			v, err := marshalOut(resp)
			if err != nil {
				return err
			}
			return g.Print(v, func(w io.Writer) {
				fmt.Fprintln(w, "TASK\tNODE\tADDRESS\tPORTS\tHEALTHY")
				for _, e := range resp.GetEndpoints() {
					var ps []string
					for n, p := range e.GetPorts() {
						ps = append(ps, n+"="+strconv.Itoa(int(p)))
					}
					slices.Sort(ps)
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\n", e.GetTask(), e.GetNode(), e.GetAddress(), strings.Join(ps, ","), e.GetHealthy())
				}
			})
		},
	}
}
