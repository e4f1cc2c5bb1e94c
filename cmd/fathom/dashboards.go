package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/fathom-scheduler/fathom/internal/cli"
	"github.com/fathom-scheduler/fathom/metrics/dashboards"
)

func init() { register(newDashboardsCmd) }

func newDashboardsCmd(g *cli.Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dashboards",
		Short: "Grafana dashboards for Fathom (Cluster, Job right-sizing, Scheduler, Nodes)",
		Long: `Fathom's Grafana dashboards are written in Go and exported as JSON. Point a
Grafana Prometheus data source at the Fathom server (http://SERVER:7070) or at
your Prometheus, then import the files, or provision them with
deploy/grafana/.`,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "export DIR",
		Short: "Write the dashboards as Grafana JSON files into DIR",
		Example: `  fathom dashboards export /var/lib/grafana/dashboards/fathom
  fathom dashboards export . -o json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cli.UsageErrorf("export takes one argument, the directory to write to (got %d)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			paths, err := dashboards.Export(args[0])
			if err != nil {
				return err
			}
			return g.Print(map[string]any{"files": paths}, func(w io.Writer) {
				for _, p := range paths {
					fmt.Fprintln(w, p)
				}
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the dashboards with their UIDs and panel counts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ds, err := dashboards.All()
			if err != nil {
				return err
			}
			type row struct {
				File   string `json:"file"`
				UID    string `json:"uid"`
				Title  string `json:"title"`
				Panels int    `json:"panels"`
			}
			var rows []row
			for _, d := range ds {
				b, err := d.JSON()
				if err != nil {
					return err
				}
				title, qs, _, err := dashboards.Parse(b)
				if err != nil {
					return err
				}
				seen := map[string]bool{}
				for _, q := range qs {
					seen[q.Panel] = true
				}
				uid := ""
				if d.Model.Uid != nil {
					uid = *d.Model.Uid
				}
				rows = append(rows, row{d.File, uid, title, len(seen)})
			}
			return g.Print(rows, func(w io.Writer) {
				fmt.Fprintln(w, "FILE\tUID\tTITLE\tPANELS")
				for _, r := range rows {
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\n", r.File, r.UID, r.Title, r.Panels)
				}
			})
		},
	})
	return cmd
}
