package cmd

import (
	"fmt"
	"strconv"

	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/qemu"
	"github.com/spf13/cobra"
)

// configNotices prints what ops says about a merged config before it
// builds: keys it does not act on, in one line.
func configNotices(app *App, c *lepton.Config) {
	if w := c.IgnoredWarning(); w != "" {
		fmt.Fprintln(app.Stderr, w)
	}
}

// runNotices prepares and announces what a run sets up beyond the VM:
// how HOST-GUEST ports were read, the QMP monitor's port (a free one
// unless RunConfig.Mgmt names it) and a debugger's wait.
func runNotices(app *App, c *lepton.Config, program string) error {
	rc := &c.RunConfig
	rc.Reboot = c.RebootOnExit
	notes := append(qemu.PortNotes(rc.Ports, "-p"), qemu.PortNotes(rc.UDPPorts, "--udp")...)
	for _, n := range append(notes, rc.NetNotes()...) {
		fmt.Fprintln(app.Stderr, n)
	}
	if rc.QMP {
		if rc.Mgmt == "" {
			port, err := qemu.FreePort()
			if err != nil {
				return err
			}
			rc.Mgmt = strconv.Itoa(port)
		} else if _, err := strconv.Atoi(rc.Mgmt); err != nil {
			return fmt.Errorf("RunConfig.Mgmt %q: write the QMP monitor's TCP port, e.g. \"4444\"", rc.Mgmt)
		}
		fmt.Fprintf(app.Stderr, "ops: QMP monitor on 127.0.0.1:%s\n", rc.Mgmt)
	}
	if rc.Debug {
		port := rc.GdbPort
		if port == 0 {
			port = lepton.DefaultGdbPort
		}
		fmt.Fprintf(app.Stderr, "ops: waiting for a debugger, software emulation: gdb %s -ex 'target remote localhost:%d'\n", program, port)
	}
	return nil
}

// outputFlags are nanovms/ops's output flags, on every command.
func outputFlags(root *cobra.Command) {
	pf := root.PersistentFlags()
	pf.Bool("show-debug", false, "show ops's detail lines (as -v), the guest kernel's messages and, for an unexpected error, where it started")
	pf.Bool("show-warnings", false, "show warnings ops otherwise keeps for -v (libraries found nowhere, on run)")
	pf.Bool("show-errors", false, "errors always show; with this flag an unexpected error also shows where it started")
}

// flagSet reports a boolean flag of the command or its parents.
func flagSet(cmd *cobra.Command, name string) bool {
	if cmd == nil {
		return false
	}
	v, err := cmd.Flags().GetBool(name)
	return err == nil && v
}
