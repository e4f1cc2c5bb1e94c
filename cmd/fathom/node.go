package main

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/internal/cli"
)

func init() { register(newNodeCmd) }

func newNodeCmd(g *cli.Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "List machines and take them out of service",
	}
	cmd.AddCommand(newNodeListCmd(g), newNodeCordonCmd(g), newNodeDrainCmd(g))
	return cmd
}

func nodeState(n *fathomv1.Node) string {
	s := strings.ToLower(strings.TrimPrefix(n.GetState().String(), "NODE_STATE_"))
	switch {
	case n.GetDraining():
		s += ",draining"
	case !n.GetSchedulable():
		s += ",cordoned"
	}
	return s
}

func newNodeListCmd(g *cli.Globals) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List nodes with capacity, requested sums, usage and state",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp := &fathomv1.ListNodesResponse{}
			if err := newAPIClient(g).call(cmd.Context(), "GET", "/v1/nodes", nil, "", nil, resp); err != nil {
				return err
			}
			v, err := marshalOut(resp)
			if err != nil {
				return err
			}
			return g.Print(v, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tSTATE\tCPU REQ/CAP\tCPU USED\tMEM REQ/CAP\tMEM USED\tTASKS\tENFORCEMENT\tLAST HEARTBEAT")
				now := time.Now()
				for _, n := range resp.GetNodes() {
					hb := "-"
					if n.GetLastHeartbeat() != nil {
						hb = age(now, n.GetLastHeartbeat().AsTime()) + " ago"
					}
					fmt.Fprintf(w, "%s\t%s\t%.2f/%.2f\t%.2f\t%s/%s\t%s\t%d\t%s\t%s\n", n.GetName(), nodeState(n),
						n.GetCpuRequestedCores(), n.GetCpuCores(), n.GetCpuUsedCores(),
						bytesStr(n.GetMemoryRequestedBytes()), bytesStr(n.GetMemoryBytes()), bytesStr(n.GetMemoryUsedBytes()),
						n.GetTaskCount(), orDash(n.GetEnforcement()), hb)
				}
			})
		},
	}
}

func newNodeCordonCmd(g *cli.Globals) *cobra.Command {
	var undo bool
	cmd := &cobra.Command{
		Use:   "cordon NAME",
		Short: "Stop placing new tasks on a node (--undo makes it schedulable again)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := &fathomv1.Node{}
			body := fmt.Sprintf(`{"uncordon": %v}`, undo)
			if err := newAPIClient(g).call(cmd.Context(), "POST", "/v1/nodes/"+url.PathEscape(args[0])+":cordon", nil, "application/json", []byte(body), n); err != nil {
				return err
			}
			return printNode(g, n)
		},
	}
	cmd.Flags().BoolVar(&undo, "undo", false, "uncordon: allow placements again")
	return cmd
}

func newNodeDrainCmd(g *cli.Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "drain NAME",
		Short: "Cordon a node and move its tasks to other nodes",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := &fathomv1.Node{}
			if err := newAPIClient(g).call(cmd.Context(), "POST", "/v1/nodes/"+url.PathEscape(args[0])+":drain", nil, "application/json", []byte("{}"), n); err != nil {
				return err
			}
			return printNode(g, n)
		},
	}
}

func printNode(g *cli.Globals, n *fathomv1.Node) error {
	v, err := marshalOut(n)
	if err != nil {
		return err
	}
	return g.Print(v, func(w io.Writer) { fmt.Fprintf(w, "node %s: %s\n", n.GetName(), nodeState(n)) })
}
