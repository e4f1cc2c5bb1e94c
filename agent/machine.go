package agent

import "runtime"

func numCPU() int { return runtime.NumCPU() }

// MachineCapacity is what this machine has: logical CPUs and MemTotal.
func MachineCapacity() (cpu float64, mem int64) {
	total, _ := readMeminfo()
	return float64(runtime.NumCPU()), total
}
