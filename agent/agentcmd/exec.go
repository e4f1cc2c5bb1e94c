package agentcmd

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// SlimName is the file name of the agent-only binary.
const SlimName = "fathom-agent"

// ParentVersionEnv carries the version of the `fathom` binary that exec'd
// fathom-agent, so that a stale fathom-agent can say it does not match.
const ParentVersionEnv = "FATHOM_AGENT_PARENT_VERSION"

// FindSlim returns the fathom-agent binary to run: the one beside the
// running executable, else the first on PATH.
func FindSlim() (string, error) {
	exe, err := os.Executable()
	if err == nil {
		p := filepath.Join(filepath.Dir(exe), SlimName)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(SlimName); err == nil {
		return filepath.Abs(p)
	}
	where := "this binary"
	if exe != "" {
		where = filepath.Dir(exe)
	}
	return "", fmt.Errorf("no %s binary beside %s or on PATH (make build puts it in bin/)", SlimName, where)
}

// Args rebuilds the command line of cmd from the flags given on it
// (including inherited ones such as --server), in the --name=value form, so
// another binary with the same flags parses exactly the same values.
func Args(cmd *cobra.Command) []string {
	var out []string
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if f.Name == "help" {
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				out = append(out, "--"+f.Name+"="+v)
			}
			return
		}
		out = append(out, "--"+f.Name+"="+f.Value.String())
	})
	return out
}

// ExecSlim replaces this process with fathom-agent and the same flags (the
// pid stays, so supervisors and tests that watch it see no difference). It
// returns only when it could not: no binary found, or exec failed.
func ExecSlim(cmd *cobra.Command, version string) error {
	bin, err := FindSlim()
	if err != nil {
		return err
	}
	argv := append([]string{SlimName}, Args(cmd)...)
	env := append(os.Environ(), ParentVersionEnv+"="+version)
	err = syscall.Exec(bin, argv, env)
	return fmt.Errorf("exec %s: %w", bin, err)
}
