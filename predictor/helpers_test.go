package predictor_test

import (
	"strconv"
	"strings"
)

// fmtSscan reads the VM number out of a "vm-NNN" job name.
func fmtSscan(job string, vm *int) (int, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(job, "vm-"))
	*vm = n
	return 1, err
}
