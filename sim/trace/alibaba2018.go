package trace

// Alibaba cluster-trace-v2018 readers: machine_meta, container_meta and
// batch_task (schema: github.com/alibaba/clusterdata, trace_2018.md).
//
// Units are kept as the trace gives them and named in the field comments:
// CPU in cores (the trace's cpu_request/cpu_limit/plan_cpu are 1/100 core and
// are divided by 100 here), memory normalized so that 100 is the largest
// machine (mem_size, plan_mem). The 2018 excerpts carry no per-window usage
// (container_usage and batch_instance are not part of them), so a simulator
// replaying them can only assume usage equal to the request; sim says so.

import (
	"fmt"
	"io"
	"time"
)

// AlibabaMachine is one machine_meta row: a machine's capacity and status at
// a time.
type AlibabaMachine struct {
	ID             string        // machine_id, e.g. "m_1"
	Time           time.Duration // time_stamp, seconds from the trace start
	FailureDomain1 string        // failure_domain_1 (rack-like)
	FailureDomain2 string        // failure_domain_2
	CPU            float64       // cpu_num, cores
	Memory         float64       // mem_size, normalized: 100 = the largest machine
	Status         string        // USING, IMPORT_INSTALLING, ...
}

// AlibabaContainer is one container_meta row: a long-running container's
// placement and sizes at a time.
type AlibabaContainer struct {
	ID       string        // container_id, e.g. "c_1"
	Machine  string        // machine_id
	Time     time.Duration // time_stamp, seconds from the trace start
	App      string        // app_du: the application (deployment unit)
	Status   string        // allocated, started, stopped, ...
	CPUReq   float64       // cpu_request, cores (trace: 1/100 core)
	CPULimit float64       // cpu_limit, cores (trace: 1/100 core)
	Memory   float64       // mem_size, normalized 0-100
}

// AlibabaBatchTask is one batch_task row: a task of a batch job with its
// instance count, run time and planned per-instance size.
type AlibabaBatchTask struct {
	Task      string        // task_name
	Instances int           // instance_num
	Job       string        // job_name
	Type      string        // task_type
	Status    string        // Terminated, Running, Waiting, Failed, ...
	Start     time.Duration // start_time, seconds from the trace start
	End       time.Duration // end_time; 0 when the task had not ended
	PlanCPU   float64       // plan_cpu per instance, cores (trace: 1/100 core); 0 when absent
	PlanMem   float64       // plan_mem per instance, normalized 0-100; 0 when absent
}

// AlibabaStats counts rows read and dropped by an Alibaba reader.
type AlibabaStats struct {
	Rows     int // data rows read
	Kept     int // rows yielded
	NoSize   int // batch_task rows without plan_cpu or plan_mem (kept, sizes 0)
	NotEnded int // batch_task rows with end_time 0 or before start_time (kept)
}

// ReadAlibabaMachines reads machine_meta (no header; a header starting
// "machine_id," is skipped).
func ReadAlibabaMachines(r io.Reader) ([]AlibabaMachine, AlibabaStats, error) {
	var st AlibabaStats
	lines, errf, err := lineReader(r, isHeader("machine_id,"))
	if err != nil {
		return nil, st, err
	}
	var out []AlibabaMachine
	var f []string
	for n, line := range lines {
		st.Rows++
		f, err = csvFields(line, 7, f)
		if err != nil {
			return nil, st, fmt.Errorf("%w: machine_meta line %d: %v (machine_id,time_stamp,failure_domain_1,failure_domain_2,cpu_num,mem_size,status)", ErrFormat, n, err)
		}
		var m AlibabaMachine
		m.ID, m.FailureDomain1, m.FailureDomain2, m.Status = f[0], f[2], f[3], f[6]
		ts, e1 := parseNum(f[1], "time_stamp")
		cpu, e2 := parseNum(f[4], "cpu_num")
		mem, e3 := parseNum(f[5], "mem_size")
		if e := firstErr(e1, e2, e3); e != nil {
			return nil, st, fmt.Errorf("%w: machine_meta line %d: %v", ErrFormat, n, e)
		}
		if m.ID == "" {
			return nil, st, fmt.Errorf("%w: machine_meta line %d: empty machine_id", ErrFormat, n)
		}
		m.Time, m.CPU, m.Memory = seconds(ts), cpu, mem
		st.Kept++
		out = append(out, m)
	}
	return out, st, errf()
}

// ReadAlibabaContainers reads container_meta (no header; a header starting
// "container_id," is skipped).
func ReadAlibabaContainers(r io.Reader) ([]AlibabaContainer, AlibabaStats, error) {
	var st AlibabaStats
	lines, errf, err := lineReader(r, isHeader("container_id,"))
	if err != nil {
		return nil, st, err
	}
	var out []AlibabaContainer
	var f []string
	for n, line := range lines {
		st.Rows++
		f, err = csvFields(line, 8, f)
		if err != nil {
			return nil, st, fmt.Errorf("%w: container_meta line %d: %v (container_id,machine_id,time_stamp,app_du,status,cpu_request,cpu_limit,mem_size)", ErrFormat, n, err)
		}
		var c AlibabaContainer
		c.ID, c.Machine, c.App, c.Status = f[0], f[1], f[3], f[4]
		ts, e1 := parseNum(f[2], "time_stamp")
		req, e2 := parseNum(f[5], "cpu_request")
		lim, e3 := parseNum(f[6], "cpu_limit")
		mem, e4 := parseNum(f[7], "mem_size")
		if e := firstErr(e1, e2, e3, e4); e != nil {
			return nil, st, fmt.Errorf("%w: container_meta line %d: %v", ErrFormat, n, e)
		}
		if c.ID == "" {
			return nil, st, fmt.Errorf("%w: container_meta line %d: empty container_id", ErrFormat, n)
		}
		c.Time, c.CPUReq, c.CPULimit, c.Memory = seconds(ts), req/100, lim/100, mem
		st.Kept++
		out = append(out, c)
	}
	return out, st, errf()
}

// ReadAlibabaBatchTasks reads batch_task (with or without its header line
// "task_name,instance_num,...").
func ReadAlibabaBatchTasks(r io.Reader) ([]AlibabaBatchTask, AlibabaStats, error) {
	var st AlibabaStats
	lines, errf, err := lineReader(r, isHeader("task_name,"))
	if err != nil {
		return nil, st, err
	}
	var out []AlibabaBatchTask
	var f []string
	for n, line := range lines {
		st.Rows++
		f, err = csvFields(line, 9, f)
		if err != nil {
			return nil, st, fmt.Errorf("%w: batch_task line %d: %v (task_name,instance_num,job_name,task_type,status,start_time,end_time,plan_cpu,plan_mem)", ErrFormat, n, err)
		}
		var t AlibabaBatchTask
		t.Task, t.Job, t.Type, t.Status = f[0], f[2], f[3], f[4]
		inst, e1 := parseNum(f[1], "instance_num")
		start, e2 := parseNum(f[5], "start_time")
		end, e3 := parseNum(f[6], "end_time")
		cpu, e4 := parseNum(f[7], "plan_cpu")
		mem, e5 := parseNum(f[8], "plan_mem")
		if e := firstErr(e1, e2, e3, e4, e5); e != nil {
			return nil, st, fmt.Errorf("%w: batch_task line %d: %v", ErrFormat, n, e)
		}
		t.Instances = int(inst)
		t.Start, t.End = seconds(start), seconds(end)
		t.PlanCPU, t.PlanMem = cpu/100, mem
		if f[7] == "" || f[8] == "" {
			st.NoSize++
		}
		if t.End == 0 || t.End < t.Start {
			st.NotEnded++
		}
		st.Kept++
		out = append(out, t)
	}
	return out, st, errf()
}
