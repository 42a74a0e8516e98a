package cmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/ociruntime"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// RuntimeName is the name ops answers to as an OCI runtime: engines take
// one path and no arguments, so main dispatches on the name it was run
// by (a link that `ops runtime install` makes).
const RuntimeName = ociruntime.LinkName

// runtimeGlobals are runc's global flags, as engines pass them.
type runtimeGlobals struct {
	root, log, logFormat string
	debug, systemdCgroup bool
	criu, rootless       string
	// args is the command line as the engine passed it (after argv[0]),
	// handed verbatim to runc for a pod's sandbox; link is the runtime's
	// path as invoked.
	args []string
	link string
	// exec replaces the process with a program (syscall.Exec; tests
	// record the call instead).
	exec func(path string, argv, env []string) error
}

// runtimeLog writes the runtime's lines to --log (when given) in
// --log-format, as runc does: text (logrus's) or JSON lines, which
// containerd's shim reads for the last error.
type runtimeLog struct {
	mu     sync.Mutex
	w      io.Writer // nil: no --log
	json   bool
	debug  bool
	closer io.Closer
}

func (l *runtimeLog) line(level, msg string) {
	if l == nil || l.w == nil || (level == "debug" && !l.debug && !strings.HasPrefix(msg, "a unikernel ignores")) {
		return
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	var b []byte
	if l.json {
		b, _ = json.Marshal(struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Time  string `json:"time"`
		}{level, msg, now})
	} else {
		b = []byte(fmt.Sprintf("time=%q level=%s msg=%q", now, level, msg))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w.Write(append(b, '\n'))
}

func (l *runtimeLog) close() {
	if l != nil && l.closer != nil {
		l.closer.Close()
	}
}

// defaultRuntimeRoot is the state folder when --root is not given:
// under XDG_RUNTIME_DIR when set (podman leaves it empty for root), else
// /run/ops-runtime.
func defaultRuntimeRoot(getenv func(string) string) string {
	if d := getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, RuntimeName)
	}
	return "/run/" + RuntimeName
}

// linkPath is the runtime's path as it was invoked: argv0, found on PATH
// when it is a bare name.
func linkPath(argv0 string) string {
	if !strings.Contains(argv0, "/") {
		if p, err := exec.LookPath(argv0); err == nil {
			argv0 = p
		}
	}
	if p, err := filepath.Abs(argv0); err == nil {
		return p
	}
	return argv0
}

// RuntimeMain runs ops as an OCI runtime, invoked as argv0 with args,
// and returns the exit code. An error is one line on standard error,
// and a line at level error in --log.
func RuntimeMain(argv0 string, args []string) int {
	app := &App{Stdout: os.Stdout, Stderr: os.Stderr}
	defer func() {
		if app.release != nil {
			app.release()
		}
	}()
	link := linkPath(argv0)
	g := &runtimeGlobals{args: args, link: link, exec: syscall.Exec}
	lg := &runtimeLog{}
	defer lg.close()
	conf, confErr := ociruntime.LoadConfig(ociruntime.ConfigPath(link))
	root := newRuntimeRoot(app, g, lg, conf, confErr)
	root.SetArgs(args)
	_, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	lg.line("error", err.Error())
	var se *goerrors.Error
	if g.debug && errors.As(err, &se) {
		lg.line("debug", string(se.Stack()))
	}
	fmt.Fprintf(app.Stderr, "%s: %v\n", RuntimeName, err)
	return 1
}

// newRuntimeRoot is the command tree of the ops-runtime link: runc's
// commands that engines call; conf is the configuration file beside the
// link (confErr why it could not be read).
func newRuntimeRoot(app *App, g *runtimeGlobals, lg *runtimeLog, conf ociruntime.Config, confErr error) *cobra.Command {
	root := &cobra.Command{
		Use:   RuntimeName,
		Short: "ops as an OCI runtime: container images start as unikernel VMs",
		Long: `ops-runtime is ops serving container engines (Podman, Docker, containerd) as
an OCI runtime, with runc's command line: create builds a unikernel image from
the bundle's root filesystem and process, start boots it, and the container's
pid is a supervisor that exits with the program's exit code.

Make the link and see each engine's configuration with: ops runtime install`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// cobra prints "NAME version VERSION": the spec's line rides along.
		// (A version template would link text/template, whose reflection
		// keeps every exported method in the binary.)
		Version: Version + "\nspec: " + ociruntime.SpecVersion,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := g.openLog(lg); err != nil {
				return err
			}
			if confErr != nil {
				return confErr
			}
			return g.handOff(cmd, args, lg)
		},
	}
	root.SetOut(app.Stdout)
	root.SetErr(app.Stderr)
	root.Flags().BoolP("version", "v", false, "print the version")
	pf := root.PersistentFlags()
	defRoot := conf.Root
	if defRoot == "" {
		defRoot = defaultRuntimeRoot(os.Getenv)
	}
	pf.StringVar(&g.root, "root", defRoot, "the folder holding the containers' state")
	pf.StringVar(&g.log, "log", "", "append the runtime's log to this file")
	pf.StringVar(&g.logFormat, "log-format", "text", "the log's format: text or json")
	pf.BoolVar(&g.debug, "debug", false, "log at debug level too")
	pf.BoolVar(&g.systemdCgroup, "systemd-cgroup", false, "accepted (runc's); cgroups are not applied yet")
	pf.StringVar(&g.criu, "criu", "", "accepted (runc's); checkpoints are not supported")
	pf.StringVar(&g.rootless, "rootless", "auto", "accepted (runc's)")
	rt := func() *ociruntime.Runtime {
		if abs, err := filepath.Abs(g.root); err == nil {
			g.root = abs // the supervisor and the state's paths do not depend on the folder create ran in
		}
		return &ociruntime.Runtime{Store: ociruntime.Store{Root: g.root}, Log: lg.line, Self: "/proc/self/exe", SuperviseArgs: g.superviseArgs()}
	}
	root.AddCommand(runtimeCreateCmd(app, g, lg, rt, conf), runtimeStartCmd(rt), runtimeStateCmd(app, rt), runtimeKillCmd(rt),
		runtimeDeleteCmd(rt), runtimePsCmd(app, rt), runtimeFeaturesCmd(app), runtimeSuperviseCmd(app, rt))
	for _, name := range []string{"exec", "pause", "resume", "update", "checkpoint", "restore", "run", "events"} {
		root.AddCommand(unsupportedCmd(name))
	}
	return root
}

// openLog opens --log for appending and checks --log-format.
func (g *runtimeGlobals) openLog(lg *runtimeLog) error {
	switch g.logFormat {
	case "text", "":
	case "json":
		lg.json = true
	default:
		return fmt.Errorf("--log-format %q: use text or json", g.logFormat)
	}
	lg.debug = g.debug
	if g.log == "" || lg.w != nil {
		return nil
	}
	f, err := os.OpenFile(g.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("--log %s: %w", g.log, err)
	}
	lg.w, lg.closer = f, f
	return nil
}

// superviseArgs are the supervisor's arguments before its ID: the same
// root and log.
func (g *runtimeGlobals) superviseArgs() []string {
	a := []string{"--root", g.root, "--log-format", g.logFormat}
	if g.log != "" {
		a = append(a, "--log", g.log)
	}
	if g.debug {
		a = append(a, "--debug")
	}
	return append(a, "supervise")
}

func oneID(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s takes one container ID (got %d arguments)", cmd.Name(), len(args))
	}
	return nil
}

func runtimeCreateCmd(app *App, g *runtimeGlobals, lg *runtimeLog, rt func() *ociruntime.Runtime, conf ociruntime.Config) *cobra.Command {
	var bundle, pidFile, consoleSocket string
	var noPivot, noNewKeyring bool
	var preserveFDs int
	c := &cobra.Command{
		Use:   "create [flags] ID",
		Short: "Build the container's image and start its supervisor, waiting for start",
		Args:  oneID,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.handOffCreate(args[0], bundle, lg); err != nil {
				return err
			}
			home, where, err := ociruntime.FindHome(os.Getenv, conf)
			if err != nil {
				return err
			}
			r := rt()
			r.Log("debug", fmt.Sprintf("ops home %s (from %s)", home.Dir, where))
			if pidFile != "" {
				if pidFile, err = filepath.Abs(pidFile); err != nil {
					return err
				}
			}
			return r.Create(ociruntime.CreateOptions{ID: args[0], Bundle: bundle, PidFile: pidFile, ConsoleSocket: consoleSocket,
				Home: home, Guest: conf.Guest, Stdio: [3]*os.File{os.Stdin, os.Stdout, os.Stderr}, Env: os.Environ(),
				Build: ociruntime.LeptonBuild(app.builder.Build), OpsVersion: Version})
		},
	}
	f := c.Flags()
	f.StringVarP(&bundle, "bundle", "b", ".", "the bundle's folder (config.json and the root filesystem)")
	f.StringVar(&pidFile, "pid-file", "", "write the container's pid (its supervisor's) here")
	f.StringVar(&consoleSocket, "console-socket", "", "send the pty's master to this socket (process.terminal)")
	f.BoolVar(&noPivot, "no-pivot", false, "accepted (runc's)")
	f.BoolVar(&noNewKeyring, "no-new-keyring", false, "accepted (runc's)")
	f.IntVar(&preserveFDs, "preserve-fds", 0, "accepted (runc's); a unikernel cannot take host descriptors")
	return c
}

func runtimeStartCmd(rt func() *ociruntime.Runtime) *cobra.Command {
	return &cobra.Command{
		Use:   "start ID",
		Short: "Boot the created container's image",
		Args:  oneID,
		RunE:  func(cmd *cobra.Command, args []string) error { return rt().Start(args[0]) },
	}
}

func runtimeStateCmd(app *App, rt func() *ociruntime.Runtime) *cobra.Command {
	return &cobra.Command{
		Use:   "state ID",
		Short: "Print the container's state (the runtime-spec's JSON)",
		Args:  oneID,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := rt().State(args[0])
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(st, "", "  ")
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(app.Stdout, "%s\n", b)
			return err
		},
	}
}

// parseSignal reads a signal as runc takes it: a name with or without
// SIG, or a number.
func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("signal %q: not a signal number", s)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	if sig == 0 {
		return 0, fmt.Errorf("signal %q: not a signal name", s)
	}
	return sig, nil
}

func runtimeKillCmd(rt func() *ociruntime.Runtime) *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:   "kill [--all] ID [SIGNAL]",
		Short: "SIGTERM presses the VM's power button, SIGKILL stops QEMU; other signals are ignored",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			sig := syscall.SIGTERM
			if len(args) == 2 {
				var err error
				if sig, err = parseSignal(args[1]); err != nil {
					return err
				}
			}
			return rt().Kill(args[0], sig, all)
		},
	}
	c.Flags().BoolVarP(&all, "all", "a", false, "every process of the container (a unikernel is one)")
	return c
}

func runtimeDeleteCmd(rt func() *ociruntime.Runtime) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "delete [--force] ID",
		Short: "Remove the container (with --force a running one, and no error for an unknown ID)",
		Args:  oneID,
		RunE:  func(cmd *cobra.Command, args []string) error { return rt().Delete(args[0], force) },
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "stop a running container; an unknown ID is no error")
	return c
}

func runtimePsCmd(app *App, rt func() *ociruntime.Runtime) *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "ps [--format table|json] ID",
		Short: "The container's processes: its supervisor and QEMU",
		Args:  cobra.MinimumNArgs(1), // runc passes ps arguments after the ID
		RunE: func(cmd *cobra.Command, args []string) error {
			pids, err := rt().Ps(args[0])
			if err != nil {
				return err
			}
			switch format {
			case "json":
				b, _ := json.Marshal(pids)
				_, err = fmt.Fprintf(app.Stdout, "%s\n", b)
			case "table", "":
				fmt.Fprintln(app.Stdout, "PID")
				for _, p := range pids {
					fmt.Fprintln(app.Stdout, p)
				}
			default:
				return fmt.Errorf("--format %q: use table or json", format)
			}
			return err
		},
	}
	c.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	return c
}

// runtimeFeatures is what `features` prints: the runtime-spec's features
// document, for what ops does.
const runtimeFeatures = `{
  "ociVersionMin": "1.0.0",
  "ociVersionMax": "` + ociruntime.SpecVersion + `",
  "hooks": ["prestart", "createRuntime", "poststart", "poststop"],
  "mountOptions": ["bind", "rbind", "ro", "rprivate"],
  "linux": {"namespaces": ["network"]},
  "annotations": {"org.opsdev.ops.runtime": "unikernel"}
}
`

func runtimeFeaturesCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "features",
		Short: "Print what this runtime supports (JSON)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := io.WriteString(app.Stdout, runtimeFeatures)
			return err
		},
	}
}

// unsupportedCmd answers what a unikernel cannot do with one line,
// whatever flags come with it.
func unsupportedCmd(name string) *cobra.Command {
	return &cobra.Command{
		Use:   name,
		Short: "Not supported: a unikernel runs one program",
		// runc's flags of the command are not known here, but the global
		// ones are parsed: --log gets the error line the shim shows.
		FParseErrWhitelist: cobra.FParseErrWhitelist{UnknownFlags: true},
		RunE: func(cmd *cobra.Command, args []string) error {
			return fmt.Errorf("a unikernel runs one program: %s is not supported", name)
		},
	}
}

// runtimeSuperviseCmd is the container's supervisor (hidden): create
// starts it with the sync pipe as descriptor 3.
func runtimeSuperviseCmd(app *App, rt func() *ociruntime.Runtime) *cobra.Command {
	return &cobra.Command{
		Use:    "supervise ID",
		Hidden: true,
		Args:   oneID,
		RunE: func(cmd *cobra.Command, args []string) error {
			signal.Ignore(syscall.SIGHUP)
			accel, err := forcedAccel()
			if err != nil {
				return err
			}
			code := rt().Supervise(app.Context(), ociruntime.SuperviseOptions{ID: args[0], Sync: os.NewFile(3, "sync"),
				Stdout: os.Stdout, Stderr: os.Stderr, Accel: accel, StopTimeout: 60 * time.Second, NoSnapshot: noSnapshotEnv()})
			return &ExitError{Code: code}
		},
	}
}

// handOff runs the command with runc when its container (the first
// argument that is not a flag) was handed to runc at create: a pod's
// sandbox. delete runs runc as a child and then removes the record; any
// other command becomes runc (exec), with the engine's command line as
// it came. create decides for itself (handOffCreate), and ops's own
// commands are never handed off.
func (g *runtimeGlobals) handOff(cmd *cobra.Command, args []string, lg *runtimeLog) error {
	switch cmd.Name() {
	case "create", "supervise", "features", RuntimeName:
		return nil
	}
	id := ""
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			id = a
			break
		}
	}
	store := ociruntime.Store{Root: g.absRoot()}
	runc, ok, err := store.Delegated(id)
	if err != nil || !ok {
		return err
	}
	lg.line("debug", fmt.Sprintf("%s %s: handed to %s (a pod's sandbox)", cmd.Name(), id, runc))
	if cmd.Name() == "delete" {
		code, err := ociruntime.RunDelegated(runc, g.args, [3]*os.File{os.Stdin, os.Stdout, os.Stderr}, os.Environ())
		if err != nil {
			return err
		}
		if code == 0 {
			if err := store.Undelegate(id); err != nil {
				return err
			}
		}
		return &ExitError{Code: code}
	}
	return g.execRunc(runc)
}

// handOffCreate hands create to runc when the bundle is a pod's sandbox
// (recording it first, so that every later command for the ID goes to
// runc too); for any other container it clears a record left by an
// earlier container of the same ID. A bundle it cannot read is left to
// create to report.
func (g *runtimeGlobals) handOffCreate(id, bundle string, lg *runtimeLog) error {
	store := ociruntime.Store{Root: g.absRoot()}
	spec, err := ociruntime.ReadSpec(bundle)
	if err != nil || !spec.IsPodSandbox() {
		return store.Undelegate(id)
	}
	self, _ := os.Executable()
	runc, err := ociruntime.FindRunc(g.link, self, exec.LookPath)
	if err != nil {
		return err
	}
	if err := store.Delegate(id, runc); err != nil {
		return err
	}
	lg.line("info", fmt.Sprintf("container %s is a pod's sandbox: handed to %s", id, runc))
	err = g.execRunc(runc)
	var done *ExitError
	if !errors.As(err, &done) {
		store.Undelegate(id)
	}
	return err
}

// execRunc replaces this process with runc, given the engine's command
// line as it came; it returns only when runc could not be run (or, in
// tests, an ExitError of 0 once the stand-in for exec ran).
func (g *runtimeGlobals) execRunc(runc string) error {
	// --log is close-on-exec: runc appends to it itself.
	err := g.exec(runc, append([]string{ociruntime.RuncName}, g.args...), os.Environ())
	if err == nil {
		return &ExitError{Code: 0} // a test's stand-in ran: the command is done
	}
	return goerrors.Errorf("running %s: %w", runc, err)
}

// absRoot is --root made absolute.
func (g *runtimeGlobals) absRoot() string {
	if abs, err := filepath.Abs(g.root); err == nil {
		return abs
	}
	return g.root
}
