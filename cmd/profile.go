package cmd

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/opsdev/ops/arch"
	"github.com/opsdev/ops/internal/fileutil"
	"github.com/spf13/cobra"
)

// nanosVersion is the installed Nanos release latest.txt names, or a
// word saying there is none.
func nanosVersion(app *App) string {
	home, err := app.Home()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	v, err := home.Releases(arch.Host()).Latest()
	if err != nil {
		return "none installed (ops update)"
	}
	if _, err := home.Releases(arch.Host()).Find(v); err != nil {
		return v + " (named in latest.txt, not installed)"
	}
	return v
}

func newVersionCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print ops's version and the installed Nanos release",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(app.Stdout, "ops %s\nNanos version: %s\n", Version, nanosVersion(app))
			return nil
		},
	}
}

func newProfileCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "profile",
		Short: "Print this machine's ops, Nanos and QEMU versions, OS, architecture and virtualization (saved to <ops home>/profile)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cpuinfo, _ := os.ReadFile("/proc/cpuinfo")
			lines := []string{
				"Ops version: " + Version,
				"Nanos version: " + nanosVersion(app),
				"Qemu version: " + qemuVersion(),
				"OS: " + runtime.GOOS,
				"Arch: " + runtime.GOARCH,
				fmt.Sprintf("Virtualized: %t", strings.Contains(string(cpuinfo), " hypervisor")),
			}
			out := strings.Join(lines, "\n") + "\n"
			fmt.Fprint(app.Stdout, out)
			home, err := app.Home()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(home.ProfileFile()), 0o755); err != nil {
				return err
			}
			return fileutil.WriteAtomic(home.ProfileFile(), []byte(out), 0o644)
		},
	}
}

// qemuVersion is the version qemu-system-x86_64 reports.
func qemuVersion() string {
	out, err := exec.Command("qemu-system-x86_64", "--version").Output()
	if err != nil {
		return "not found (" + err.Error() + ")"
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(strings.TrimPrefix(first, "QEMU emulator version "))
}

// newEnvCmd is nanovms/ops's cross-build environment: a VM image it
// downloads. It cannot work offline, and says what to do instead.
func newEnvCmd() *cobra.Command {
	env := &cobra.Command{Use: "env", Short: "nanovms/ops's cross-build environment (not available here: build on this host)"}
	for _, sub := range []string{"install", "build", "copy", "uninstall"} {
		env.AddCommand(&cobra.Command{
			Use:                sub,
			Short:              "not available here: build the program on this host, then ops build or ops run it",
			DisableFlagParsing: true,
			RunE: func(cmd *cobra.Command, args []string) error {
				return errors.New("ops env " + cmd.Name() + ": nanovms/ops's cross-build environment is a VM image downloaded from its servers, which this ops does not use; build the program on this host (or in a container) and run 'ops build' or 'ops run' on it")
			},
		})
	}
	return env
}
