package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/internal/cli"
	"github.com/fathom-scheduler/fathom/server"
)

// Deployments: fathom job history, revert, plan, scale, promote
// (docs/deployments.md).

// deployCommands are the deployment subcommands of `fathom job`.
func deployCommands(g *cli.Globals) []*cobra.Command {
	return []*cobra.Command{newJobHistoryCmd(g), newJobRevertCmd(g), newJobPlanCmd(g), newJobScaleCmd(g), newJobPromoteCmd(g)}
}

// resolveJob finds a job by id, or by name in the namespace: the job that
// holds the name (unfinished), else the newest of that name.
func resolveJob(ctx context.Context, c *apiClient, arg, namespace string) (*fathomv1.Job, error) {
	job := &fathomv1.Job{}
	err := c.call(ctx, "GET", "/v1/jobs/"+url.PathEscape(arg), nil, "", nil, job)
	if err == nil {
		return job, nil
	}
	if !isNotFound(err) {
		return nil, err
	}
	q := url.Values{"name": {arg}}
	if namespace != "" {
		q.Set("namespace", namespace)
	}
	list := &fathomv1.ListJobsResponse{}
	if err := c.call(ctx, "GET", "/v1/jobs", q, "", nil, list); err != nil {
		return nil, err
	}
	var pick *fathomv1.Job
	for _, j := range list.GetJobs() {
		if namespace == "" && j.GetNamespace() != "default" && len(list.GetJobs()) > 1 {
			continue
		}
		active := j.GetState() == fathomv1.JobState_JOB_STATE_RUNNING || j.GetState() == fathomv1.JobState_JOB_STATE_PENDING
		if pick == nil || active || !j.GetCreatedAt().AsTime().Before(pick.GetCreatedAt().AsTime()) {
			pick = j
			if active {
				break
			}
		}
	}
	if pick == nil {
		where := "namespace " + namespace
		if namespace == "" {
			where = "any namespace"
		}
		return nil, cli.UsageErrorf("no job with id or name %q in %s; list jobs with 'fathom job list'", arg, where)
	}
	return pick, nil
}

func readSpec(arg string) ([]byte, string, error) {
	var data []byte
	var err error
	if arg == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(arg)
	}
	if err != nil {
		return nil, "", cli.UsageErrorf("cannot read the job spec: %v", err)
	}
	ct := "application/yaml"
	if strings.HasSuffix(arg, ".json") {
		ct = "application/json"
	}
	return data, ct, nil
}

func newJobHistoryCmd(g *cli.Globals) *cobra.Command {
	var ns string
	cmd := &cobra.Command{
		Use:   "history NAME|ID",
		Short: "List the kept versions of a job's spec, newest first",
		Example: `  fathom job history web
  fathom job history web -n team-a -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := newAPIClient(g)
			job, err := resolveJob(cmd.Context(), c, args[0], ns)
			if err != nil {
				return err
			}
			resp := &fathomv1.ListJobVersionsResponse{}
			if err := c.call(cmd.Context(), "GET", "/v1/jobs/"+url.PathEscape(job.GetId())+"/versions", nil, "", nil, resp); err != nil {
				return err
			}
			v, err := marshalOut(resp)
			if err != nil {
				return err
			}
			return g.Print(v, func(w io.Writer) {
				fmt.Fprintf(w, "Job %s (%s/%s), version %d, stable %d\n\n", job.GetId(), job.GetNamespace(), job.GetName(), job.GetVersion(), job.GetStableVersion())
				fmt.Fprintln(w, "VERSION\tSUBMITTED\tREPLICAS\tROLLOUT\tCOMMAND\tREASON")
				for _, jv := range resp.GetVersions() {
					fmt.Fprintf(w, "%d\t%s\t%d\t%s\t%s\t%s\n", jv.GetVersion(), jv.GetSubmittedAt().AsTime().Local().Format(time.RFC3339),
						jv.GetSpec().GetReplicas(), orDash(jv.GetStatus()), strings.Join(jv.GetSpec().GetTask().GetCommand(), " "), jv.GetReason())
				}
			})
		},
	}
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", "the job's namespace (default: default)")
	return cmd
}

func printChange(w io.Writer, resp *fathomv1.UpdateJobResponse) {
	j := resp.GetJob()
	switch resp.GetResult() {
	case "unchanged":
		fmt.Fprintf(w, "job %s unchanged (version %d)\n", resp.GetId(), resp.GetVersion())
	default:
		fmt.Fprintf(w, "job %s: version %d (%s)\n", resp.GetId(), resp.GetVersion(), j.GetVersionReason())
		if d := j.GetDeployment(); d != nil && d.GetVersion() == resp.GetVersion() {
			fmt.Fprintf(w, "rollout %s: %s\n", d.GetStatus(), d.GetMessage())
		}
	}
}

func newJobRevertCmd(g *cli.Globals) *cobra.Command {
	var ns string
	cmd := &cobra.Command{
		Use:     "revert NAME|ID VERSION",
		Short:   "Submit a kept version's spec again, as a new version (a rolling update for services)",
		Example: `  fathom job revert web 2`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := strconv.ParseInt(args[1], 10, 64)
			if err != nil || v <= 0 {
				return cli.UsageErrorf("VERSION %q is not a version number (fathom job history %s lists them)", args[1], args[0])
			}
			return changeJob(cmd, g, args[0], ns, "revert", fmt.Appendf(nil, `{"version": %d}`, v))
		},
	}
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", "the job's namespace (default: default)")
	return cmd
}

// jobAction POSTs body to the job's custom method (/v1/jobs/{id}:action)
// after resolving NAME|ID in the namespace, decoding the answer into out.
func jobAction(cmd *cobra.Command, g *cli.Globals, nameOrID, ns, action string, body []byte, out proto.Message) error {
	c := newAPIClient(g)
	job, err := resolveJob(cmd.Context(), c, nameOrID, ns)
	if err != nil {
		return err
	}
	return c.call(cmd.Context(), "POST", "/v1/jobs/"+url.PathEscape(job.GetId())+":"+action, nil, "application/json", body, out)
}

// changeJob is a jobAction that makes a new version (revert, scale) and
// prints the change.
func changeJob(cmd *cobra.Command, g *cli.Globals, nameOrID, ns, action string, body []byte) error {
	resp := &fathomv1.UpdateJobResponse{}
	if err := jobAction(cmd, g, nameOrID, ns, action, body, resp); err != nil {
		return err
	}
	out, err := marshalOut(resp)
	if err != nil {
		return err
	}
	return g.Print(out, func(w io.Writer) { printChange(w, resp) })
}

func newJobScaleCmd(g *cli.Globals) *cobra.Command {
	var ns string
	cmd := &cobra.Command{
		Use:     "scale NAME|ID N",
		Short:   "Set a job's number of tasks (a new version; nothing is replaced)",
		Example: `  fathom job scale web 6`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 0 {
				return cli.UsageErrorf("N %q is not a number of tasks (0 or more)", args[1])
			}
			return changeJob(cmd, g, args[0], ns, "scale", fmt.Appendf(nil, `{"replicas": %d}`, n))
		},
	}
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", "the job's namespace (default: default)")
	return cmd
}

func newJobPromoteCmd(g *cli.Globals) *cobra.Command {
	var ns string
	cmd := &cobra.Command{
		Use:   "promote NAME|ID",
		Short: "Let a rollout paused on its canaries replace the remaining tasks",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := &fathomv1.Job{}
			if err := jobAction(cmd, g, args[0], ns, "promote", []byte("{}"), out); err != nil {
				return err
			}
			v, err := marshalOut(out)
			if err != nil {
				return err
			}
			return g.Print(v, func(w io.Writer) {
				d := out.GetDeployment()
				fmt.Fprintf(w, "job %s: rollout of version %d %s: %s\n", out.GetId(), d.GetVersion(), d.GetStatus(), d.GetMessage())
			})
		},
	}
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", "the job's namespace (default: default)")
	return cmd
}

func newJobPlanCmd(g *cli.Globals) *cobra.Command {
	return &cobra.Command{
		Use:     "plan FILE|-",
		Short:   "Say what 'fathom job run FILE' would change, changing nothing",
		Example: `  fathom job plan web.yaml`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, ct, err := readSpec(args[0])
			if err != nil {
				return err
			}
			resp := &fathomv1.PlanJobResponse{}
			if err := newAPIClient(g).call(cmd.Context(), "POST", "/v1/jobs:plan", nil, ct, data, resp); err != nil {
				return err
			}
			v, err := marshalOut(resp)
			if err != nil {
				return err
			}
			return g.Print(v, func(w io.Writer) {
				switch resp.GetAction() {
				case "create":
					fmt.Fprintf(w, "+ create: %s\n", resp.GetMessage())
					return
				case "none":
					fmt.Fprintf(w, "= job %s: %s\n", resp.GetJobId(), resp.GetMessage())
					return
				}
				fmt.Fprintf(w, "~ job %s: version %d -> %d (%s)\n", resp.GetJobId(), resp.GetVersion(), resp.GetNextVersion(), resp.GetAction())
				for _, ch := range resp.GetChanges() {
					fmt.Fprintf(w, "  %s:\t%s\t=> %s\n", ch.GetField(), orDash(ch.GetOld()), orDash(ch.GetNew()))
				}
				fmt.Fprintln(w, resp.GetMessage())
			})
		},
	}
}

// deploymentLines are the version and rollout lines of `fathom job status`.
func deploymentLines(w io.Writer, job *fathomv1.Job) {
	fmt.Fprintf(w, "Version:\t%d (stable %d)\n", job.GetVersion(), job.GetStableVersion())
	if d := job.GetDeployment(); d != nil {
		fmt.Fprintf(w, "Rollout:\tversion %d %s: %s\n", d.GetVersion(), d.GetStatus(), d.GetMessage())
	}
}

// healthText is a task's health for the table ("-": no check).
func healthText(t *fathomv1.Task) string {
	h := server.HealthName(t.GetHealth())
	if h == "" {
		return "-"
	}
	if t.GetHealthMessage() != "" && h != "healthy" {
		return h + " (" + t.GetHealthMessage() + ")"
	}
	return h
}
