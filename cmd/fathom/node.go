package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/encoding/protojson"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/internal/cli"
	"github.com/fathom-scheduler/fathom/server"
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
		Short:   "List nodes with capacity, requested sums, usage and state, and the autoscaling report",
		Long: `List nodes with capacity, the sums of the requests placed there, measured usage
and state. CPU USED and MEM USED are what Fathom's tasks on the node use (the
sums over their cgroups at the latest heartbeat), not the whole machine; -o
json carries both (task_cpu_used_cores, task_memory_used_bytes and the
machine-wide cpu_used_cores, memory_used_bytes). The REMOVABLE column and the summary below the table are the
scheduler's autoscaling report: how many machines the current work needs (and
the lower bound), which empty nodes could go, how many machines to add for the
tasks waiting for room, and what the node provider hook (--node-provider-cmd
on the server) last did. -o json and -o yaml carry the same under "autoscale".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp := &fathomv1.ListNodesResponse{}
			if err := newAPIClient(g).call(cmd.Context(), "GET", "/v1/nodes", nil, "", nil, resp); err != nil {
				return err
			}
			v, err := nodeListOut(resp)
			if err != nil {
				return err
			}
			return g.Print(v, func(w io.Writer) { writeNodeTable(w, resp, time.Now()) })
		},
	}
}

// nodeListOut is `node list -o json|yaml`: the response with every field of
// the autoscaling report and every node's removable flag present, zero or
// not, so that scripts need no defaults.
func nodeListOut(resp *fathomv1.ListNodesResponse) (any, error) {
	v, err := marshalOut(resp)
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	if m == nil {
		return v, nil
	}
	nodes, _ := m["nodes"].([]any)
	for i, n := range nodes {
		if nm, ok := n.(map[string]any); ok && i < len(resp.GetNodes()) {
			nm["removable"] = resp.GetNodes()[i].GetRemovable()
		}
	}
	if m["nodes"] == nil {
		m["nodes"] = []any{}
	}
	if a := resp.GetAutoscale(); a != nil {
		b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(a)
		if err != nil {
			return nil, err
		}
		var am any
		if err := json.Unmarshal(b, &am); err != nil {
			return nil, err
		}
		m["autoscale"] = am
	}
	return m, nil
}

// writeNodeTable is `node list` as a table, with the autoscaling summary
// below it.
func writeNodeTable(w io.Writer, resp *fathomv1.ListNodesResponse, now time.Time) {
	a := resp.GetAutoscale()
	fmt.Fprintln(w, "NAME\tSTATE\tCPU REQ/CAP\tCPU USED\tMEM REQ/CAP\tMEM USED\tTASKS\tENFORCEMENT\tLAST HEARTBEAT\tREMOVABLE")
	for _, n := range resp.GetNodes() {
		hb := "-"
		if n.GetLastHeartbeat() != nil {
			hb = age(now, n.GetLastHeartbeat().AsTime()) + " ago"
		}
		rm := "-"
		switch {
		case n.GetRemoval() != "":
			rm = "yes: " + n.GetRemoval()
		case n.GetRemovable():
			rm = "yes"
		case a != nil:
			rm = "no"
		}
		fmt.Fprintf(w, "%s\t%s\t%.2f/%.2f\t%.2f\t%s/%s\t%s\t%d\t%s\t%s\t%s\n", n.GetName(), nodeState(n),
			n.GetCpuRequestedCores(), n.GetCpuCores(), n.GetTaskCpuUsedCores(),
			bytesStr(n.GetMemoryRequestedBytes()), bytesStr(n.GetMemoryBytes()), bytesStr(n.GetTaskMemoryUsedBytes()),
			n.GetTaskCount(), orDash(n.GetEnforcement()), hb, rm)
	}
	fmt.Fprintln(w)
	for _, line := range autoscaleSummary(a, now) {
		fmt.Fprintln(w, line)
	}
}

// autoscaleSummary is the report in a few lines of prose.
func autoscaleSummary(a *fathomv1.AutoscaleReport, now time.Time) []string {
	if a == nil {
		return []string{"autoscaling: no report yet (the scheduler has not finished a reconcile round)"}
	}
	removable := "none"
	if len(a.GetCouldRemove()) > 0 {
		removable = strings.Join(a.GetCouldRemove(), ", ")
	}
	line := fmt.Sprintf("work needs %d machines (lower bound %d); %d in use of %d up; %d could be removed: %s; add %d",
		a.GetMachinesNeeded(), a.GetLowerBound(), a.GetMachinesUsed(), a.GetNodesUp(), len(a.GetCouldRemove()), removable, a.GetAdd())
	if a.GetNodeCpuCores() > 0 {
		line += fmt.Sprintf(" (machines of %s cores, %s)", strconv.FormatFloat(a.GetNodeCpuCores(), 'f', -1, 64), bytesStr(a.GetNodeMemoryBytes()))
	}
	if a.GetComputedAt() != nil {
		line += "; report " + age(now, a.GetComputedAt().AsTime()) + " old"
	}
	out := []string{line}
	if a.GetUnfittable() > 0 {
		out = append(out, fmt.Sprintf("%d waiting task(s) fit no machine of that shape: adding such machines will not help them (see fathom job status)", a.GetUnfittable()))
	}
	p := a.GetNodeProvider()
	if !p.GetConfigured() {
		return append(out, "node provider: none (the server runs without --node-provider-cmd): the report is advice only")
	}
	var parts []string
	if c := p.GetLastCall(); c != nil {
		call := strings.TrimSpace(c.GetAction() + " " + strings.Join(c.GetArgs(), " "))
		st := c.GetOutcome()
		if c.GetOutcome() == "failed" {
			st += fmt.Sprintf(" (exit %d)", c.GetExitCode())
		}
		took := time.Duration(c.GetDurationSeconds() * float64(time.Second))
		if took < time.Second {
			took = took.Round(time.Millisecond)
		} else {
			took = took.Round(100 * time.Millisecond)
		}
		s := fmt.Sprintf("last call %q %s after %s, %s ago", call, st, took, age(now, c.GetStartedAt().AsTime()))
		if c.GetOutcome() != "ok" && c.GetStderr() != "" {
			s += ": " + lastLine(c.GetStderr())
		}
		parts = append(parts, s)
	} else {
		parts = append(parts, "not called yet")
	}
	if p.GetCalling() {
		parts = append(parts, "a call is running")
	}
	if len(p.GetRemoving()) > 0 {
		parts = append(parts, "cordoned for removal: "+strings.Join(p.GetRemoving(), ", "))
	}
	if len(p.GetHanded()) > 0 {
		parts = append(parts, "handed for removal: "+strings.Join(p.GetHanded(), ", "))
	}
	if t := p.GetNextAddAt(); t != nil {
		parts = append(parts, "next add not before "+t.AsTime().Local().Format("15:04:05"))
	}
	return append(out, "node provider: "+strings.Join(parts, "; "))
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// bindNodeProvider binds the node provider hook's flags (fathom server and
// fathom dev).
func bindNodeProvider(f *pflag.FlagSet, o *server.NodeProviderOptions) {
	f.StringVar(&o.Command, "node-provider-cmd", "", "command that adds and removes machines, run through /bin/sh as 'CMD add N' or 'CMD remove NODE...' (see docs/operator-guide.md); empty = report only")
	f.DurationVar(&o.Timeout, "node-provider-timeout", 2*time.Minute, "kill a node provider call (and every process it started) after this long")
	f.DurationVar(&o.Cooldown, "node-provider-cooldown", 5*time.Minute, "least time between two add calls, and before a failed removal is asked again")
	f.DurationVar(&o.RemovalDelay, "node-removal-delay", 10*time.Minute, "a node must be removable (empty, beyond the spare) this long before it is cordoned and handed to the node provider")
}

// validateNodeProvider checks the hook's flags and that its program exists.
func validateNodeProvider(o *server.NodeProviderOptions) error {
	switch {
	case o.Timeout <= 0:
		return cli.UsageErrorf("--node-provider-timeout %s must be positive, e.g. 2m", o.Timeout)
	case o.Cooldown <= 0:
		return cli.UsageErrorf("--node-provider-cooldown %s must be positive, e.g. 5m", o.Cooldown)
	case o.RemovalDelay <= 0:
		return cli.UsageErrorf("--node-removal-delay %s must be positive, e.g. 10m", o.RemovalDelay)
	}
	fields := strings.Fields(o.Command)
	if len(fields) == 0 {
		return nil
	}
	if _, err := exec.LookPath(fields[0]); err != nil {
		return cli.UsageErrorf("--node-provider-cmd %q: %s is not an executable file or a program on PATH (%v); give the path of a script, e.g. /usr/local/bin/fathom-nodes", o.Command, fields[0], err)
	}
	return nil
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
