package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/internal/cli"
	"github.com/fathom-scheduler/fathom/server"
)

func init() { register(newJobCmd) }

func newJobCmd(g *cli.Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Submit, list, inspect and stop jobs",
		Long: `Jobs are described in YAML or JSON (see examples/web.yaml). Sizes are optional:
leave out task.resources and Fathom sizes the task from what it learns.`,
	}
	cmd.AddCommand(newJobRunCmd(g), newJobListCmd(g), newJobStatusCmd(g), newJobStopCmd(g), newJobLogsCmd(g))
	cmd.AddCommand(deployCommands(g)...)
	return cmd
}

func newJobRunCmd(g *cli.Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "run FILE|-",
		Short: "Submit a job from a YAML or JSON file (- reads standard input); an unfinished job of that name is updated to a new version",
		Example: `  fathom job run examples/web.yaml
  echo '{"name":"sleepy","task":{"command":["sleep","600"]}}' | fathom job run -`,
		Args: cobra.ExactArgs(1),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return []string{"yaml", "yml", "json"}, cobra.ShellCompDirectiveFilterFileExt
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			data, ct, err := readSpec(args[0])
			if err != nil {
				return err
			}
			resp := &fathomv1.CreateJobResponse{}
			if err := newAPIClient(g).call(cmd.Context(), "POST", "/v1/jobs", nil, ct, data, resp); err != nil {
				return err
			}
			v, err := marshalOut(resp)
			if err != nil {
				return err
			}
			return g.Print(v, func(w io.Writer) {
				j := resp.GetJob()
				switch resp.GetResult() {
				case "updated", "unchanged":
					printChange(w, &fathomv1.UpdateJobResponse{Id: resp.GetId(), Job: j, Version: resp.GetVersion(), Result: resp.GetResult()})
				default:
					fmt.Fprintf(w, "job %s submitted (namespace %s, %d task(s))\n", resp.GetId(), j.GetNamespace(), j.GetSpec().GetReplicas())
				}
			})
		},
	}
}

func newJobListCmd(g *cli.Globals) *cobra.Command {
	var ns, state, name string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List jobs (oldest first)",
		Example: `  fathom job list
  fathom job list -n team-a --state running -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"namespace": ns, "state": state, "name": name} {
				if v != "" {
					q.Set(k, v)
				}
			}
			resp := &fathomv1.ListJobsResponse{}
			if err := newAPIClient(g).call(cmd.Context(), "GET", "/v1/jobs", q, "", nil, resp); err != nil {
				return err
			}
			v, err := marshalOut(resp)
			if err != nil {
				return err
			}
			return g.Print(v, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tNAMESPACE\tNAME\tTYPE\tSTATE\tTASKS\tAGE")
				now := time.Now()
				for _, j := range resp.GetJobs() {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.GetId(), j.GetNamespace(), j.GetName(), j.GetSpec().GetType(),
						server.JobStateName(j.GetState()), taskSummary(j), age(now, j.GetCreatedAt().AsTime()))
				}
			})
		},
	}
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", "only this namespace")
	cmd.Flags().StringVar(&state, "state", "", "only this state: pending, running, succeeded, failed, stopped, active")
	cmd.Flags().StringVar(&name, "name", "", "only jobs with this name")
	cmd.RegisterFlagCompletionFunc("state", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"pending", "running", "succeeded", "failed", "stopped", "active"}, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// taskSummary is "2 running, 1 pending".
func taskSummary(j *fathomv1.Job) string {
	var keys []string
	for k := range j.GetTaskCounts() {
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return "0"
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", j.GetTaskCounts()[k], k))
	}
	return strings.Join(parts, ", ")
}

func age(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func newJobStatusCmd(g *cli.Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status ID|NAME",
		Short: "Show a job and its tasks: where each runs, its state, and why",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := newAPIClient(g)
			job, err := resolveJob(cmd.Context(), c, args[0], "")
			if err != nil {
				return err
			}
			tasks := &fathomv1.ListTasksResponse{}
			if err := c.call(cmd.Context(), "GET", "/v1/jobs/"+url.PathEscape(job.GetId())+"/tasks", nil, "", nil, tasks); err != nil {
				return err
			}
			jv, err := marshalOut(job)
			if err != nil {
				return err
			}
			tv, err := marshalOut(tasks)
			if err != nil {
				return err
			}
			out := map[string]any{"job": jv, "tasks": tv.(map[string]any)["tasks"]}
			recs := jobRecommendations(cmd.Context(), c, job.GetId(), out) // sizing.go
			return g.Print(out, func(w io.Writer) {
				s := job.GetSpec()
				fmt.Fprintf(w, "Job:\t%s\n", job.GetId())
				fmt.Fprintf(w, "Name:\t%s/%s\n", job.GetNamespace(), job.GetName())
				fmt.Fprintf(w, "Type:\t%s (priority %s)\n", s.GetType(), s.GetPriority())
				fmt.Fprintf(w, "State:\t%s\n", server.JobStateName(job.GetState()))
				fmt.Fprintf(w, "Command:\t%s\n", strings.Join(s.GetTask().GetCommand(), " "))
				hint := "none (Fathom sizes it)"
				if r := s.GetTask().GetResources(); r != nil {
					hint = fmt.Sprintf("cpu %s, memory %s", orDash(r.GetCpu()), orDash(r.GetMemory()))
				}
				fmt.Fprintf(w, "Hints:\t%s\n", hint)
				if r := s.GetRestart(); r != nil {
					fmt.Fprintf(w, "Restart:\t%d attempts in %s, delay %s, mode %s\n", r.GetAttempts(), r.GetInterval(), r.GetDelay(), r.GetMode())
				}
				if rules := placementRules(s); rules != "" {
					fmt.Fprintf(w, "Placement:\t%s\n", rules)
				}
				fmt.Fprintf(w, "Created:\t%s\n", job.GetCreatedAt().AsTime().Local().Format(time.RFC3339))
				deploymentLines(w, job)
				fmt.Fprintln(w)
				fmt.Fprintln(w, "TASK\tNODE\tSTATE\tVER\tHEALTH\tGEN\tCPU REQ/LIM\tMEM REQ/LIM\tRESTARTS\tREASON")
				var outputs []string
				for _, t := range tasks.GetTasks() {
					// A reason with the task's last output: its first line in
					// the table, the output below it.
					reason, output, _ := strings.Cut(t.GetReason(), "\n")
					if output != "" {
						outputs = append(outputs, fmt.Sprintf("Last output of %s:\n  %s\n", t.GetId(), strings.ReplaceAll(output, "\n", "\n  ")))
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%d\t%s/%s\t%s/%s\t%d\t%s\n", t.GetId(), orDash(t.GetNode()), server.StateName(t.GetState()),
						t.GetVersion(), healthText(t), t.GetGeneration(), cores(t.GetCpuRequestCores()), cores(t.GetCpuLimitCores()),
						bytesStr(t.GetMemoryRequestBytes()), bytesStr(t.GetMemoryLimitBytes()), t.GetRestarts(), reason)
				}
				for _, o := range outputs {
					fmt.Fprint(w, "\n"+o)
				}
				printRecommendations(w, recs)
			})
		},
	}
}

// placementRules is a spec's constraints and spread, e.g.
// "zone=b, disk in (ssd,nvme); spread over zone".
func placementRules(s *fathomv1.JobSpec) string {
	var parts []string
	for _, c := range s.GetConstraints() {
		switch c.GetOp() {
		case "in":
			parts = append(parts, c.GetLabel()+" in ("+strings.Join(c.GetValues(), ",")+")")
		case "exists":
			parts = append(parts, c.GetLabel()+" exists")
		default:
			parts = append(parts, c.GetLabel()+c.GetOp()+c.GetValue())
		}
	}
	out := strings.Join(parts, ", ")
	if l := s.GetSpread().GetLabel(); l != "" {
		if out != "" {
			out += "; "
		}
		out += "spread over " + l
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cores(c float64) string {
	if c == 0 {
		return "-"
	}
	return strconv.FormatFloat(c, 'f', -1, 64)
}

// bytesStr is b for a table: exact Gi or Mi where it divides, else Mi with
// one decimal below 10 GiB and Gi with one decimal above; Ki or B below
// 1 MiB (never a bare number beside Mi in the same column).
func bytesStr(b int64) string {
	switch {
	case b == 0:
		return "-"
	case b%(1<<30) == 0:
		return fmt.Sprintf("%dGi", b>>30)
	case b%(1<<20) == 0 && b < 10<<30:
		return fmt.Sprintf("%dMi", b>>20)
	case b >= 10<<30:
		return fmt.Sprintf("%.1fGi", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1fMi", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1fKi", float64(b)/(1<<10))
	}
	return strconv.FormatInt(b, 10) + "B"
}

func newJobStopCmd(g *cli.Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "stop ID",
		Short: "Stop every task of a job (idempotent)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			job := &fathomv1.Job{}
			if err := newAPIClient(g).call(cmd.Context(), "DELETE", "/v1/jobs/"+url.PathEscape(args[0]), nil, "", nil, job); err != nil {
				return err
			}
			v, err := marshalOut(job)
			if err != nil {
				return err
			}
			return g.Print(v, func(w io.Writer) {
				fmt.Fprintf(w, "job %s: %s (%s)\n", job.GetId(), server.JobStateName(job.GetState()), taskSummary(job))
			})
		},
	}
}

func newJobLogsCmd(g *cli.Globals) *cobra.Command {
	var follow bool
	var task, tail int
	cmd := &cobra.Command{
		Use:   "logs ID",
		Short: "Print a task's output (fetched from its node's agent)",
		Long: `Print the output of task --task (default 0) of job ID, or of the task ID
given directly (<job_id>-<index>). With -f, keep printing as it grows.`,
		Example: `  fathom job logs web-3k2j9x0a -f
  fathom job logs web-3k2j9x0a --task 2 --tail 100`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := newAPIClient(g)
			taskID := args[0]
			err := c.call(cmd.Context(), "GET", "/v1/jobs/"+url.PathEscape(args[0]), nil, "", nil, &fathomv1.Job{})
			switch {
			case err == nil:
				taskID = server.TaskID(args[0], int32(task))
			case !isNotFound(err):
				return err
			}
			q := url.Values{}
			if follow {
				q.Set("follow", "true")
			}
			if tail > 0 {
				q.Set("tail", strconv.Itoa(tail))
			}
			return streamLogs(cmd.Context(), c, taskID, q, g.Stdout)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output")
	cmd.Flags().IntVar(&task, "task", 0, "task index within the job")
	cmd.Flags().IntVar(&tail, "tail", 0, "only the last N lines (0 = all)")
	return cmd
}

func streamLogs(ctx context.Context, c *apiClient, taskID string, q url.Values, out io.Writer) error {
	u := c.base + "/v1/tasks/" + url.PathEscape(taskID) + "/logs"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	// No client timeout: -f streams until interrupted.
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reachError(c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(resp.Body)
		return apiError(resp.StatusCode, data)
	}
	_, err = io.Copy(out, resp.Body)
	if ctx.Err() != nil {
		return nil
	}
	return err
}
