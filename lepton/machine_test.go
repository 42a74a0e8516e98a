package lepton

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opsdev/ops/arch"
	"github.com/opsdev/ops/qemu"
)

// fakeGuest boots nothing itself: its VM is a bare microvm whose QEMU is
// the test's script.
type fakeGuest struct{ Guest }

func (fakeGuest) Name() string { return "fake" }

func (fakeGuest) Arch() arch.Arch { return arch.Host() }

func (fakeGuest) prepare(qemu.VM) error { return nil }

func (fakeGuest) exitCode(_ qemu.VM, res *qemu.Result) (int, error) { return res.GuestExitCode() }

func (fakeGuest) VM(b Boot) (qemu.VM, error) {
	return qemu.VM{Machine: qemu.MicroVM, Accel: b.Accel, Kernel: "/dev/null", Net: qemu.Net{Mode: "none"}}, nil
}

// fakeQEMU writes a script that stands in for QEMU: it fails as QEMU does
// when KVM cannot be used (failKVM), and otherwise prints the accelerator
// it was given and exits as isa-debug-exit does for guest code 3.
func fakeQEMU(t *testing.T, failKVM, failTCG bool) string {
	t.Helper()
	script := "#!/bin/sh\ncase \"$*\" in\n"
	if failKVM {
		script += "*'-accel kvm'*) echo 'qemu-system-x86_64: -accel kvm: failed to initialize kvm: Operation not permitted' >&2; exit 1;;\n"
	}
	if failTCG {
		script += "*'-accel tcg'*) echo 'qemu-system-x86_64: -accel tcg: could not allocate memory' >&2; exit 1;;\n"
	}
	script += "esac\nfor a in \"$@\"; do case \"$a\" in kvm|tcg*) echo \"guest under $a\";; esac; done\nexit 7\n"
	p := filepath.Join(t.TempDir(), "qemu-system-x86_64")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func kvmProbe(allow bool) qemu.AccelProbe {
	return qemu.AccelProbe{CPUInfo: "flags\t: fpu vmx sse", OpenKVM: func() error { return nil }, Allow: allow}
}

func tcgProbe(allow bool) qemu.AccelProbe {
	return qemu.AccelProbe{CPUInfo: "flags\t: fpu sse", Allow: allow}
}

// TestMachineAccelFallback: a machine whose QEMU fails under KVM boots
// again under emulation, saying so, whether KVM was probed or forced
// (OPS_ACCEL), and each QEMU it starts is handed to Started. Every
// caller (ops run, the instance supervisor, compose) boots through it.
func TestMachineAccelFallback(t *testing.T) {
	off := false
	for _, tc := range []struct {
		name             string
		probe            func(bool) qemu.AccelProbe
		force            qemu.Accel
		run              RunConfig
		failKVM, failTCG bool
		wantOut          string
		wantRetry        bool
		wantStarts       int
		wantErr          string
	}{
		{name: "probed KVM fails", probe: kvmProbe, failKVM: true, wantOut: "guest under tcg\n", wantRetry: true, wantStarts: 2},
		{name: "forced KVM fails", probe: tcgProbe, force: qemu.KVM, failKVM: true, wantOut: "guest under tcg\n", wantRetry: true, wantStarts: 2},
		{name: "KVM works", probe: kvmProbe, wantOut: "guest under kvm\n", wantStarts: 1},
		{name: "no KVM", probe: tcgProbe, failKVM: true, wantOut: "guest under tcg\n", wantStarts: 1},
		{name: "accel off", probe: kvmProbe, run: RunConfig{Accel: &off}, failKVM: true, wantOut: "guest under tcg\n", wantStarts: 1},
		{name: "debug wants emulation", probe: kvmProbe, run: RunConfig{Debug: true}, failKVM: true, wantOut: "guest under tcg\n", wantStarts: 1},
		{name: "both fail", probe: kvmProbe, failKVM: true, failTCG: true, wantRetry: true, wantStarts: 2, wantErr: "QEMU failed: qemu-system-x86_64: -accel tcg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			var said []string
			starts, exits := 0, 0
			m := &Machine{
				Built:     &Built{BuildResult: &BuildResult{Path: "image"}, Guest: fakeGuest{}},
				RunConfig: tc.run, QEMU: fakeQEMU(t, tc.failKVM, tc.failTCG), Accel: tc.force, Probe: tc.probe,
				Stdout: &out, Stderr: &bytes.Buffer{},
				Say: func(line string) { said = append(said, line) },
				Started: func(vm qemu.VM, pid int) (func(), error) {
					starts++
					return func() { exits++ }, nil
				},
			}
			res, err := m.Run(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
			} else if err != nil || res.ExitCode != 3 || res.NoCode != nil || res.Stopped {
				t.Fatalf("Run = %+v, %v; want exit code 3", res, err)
			}
			if out.String() != tc.wantOut {
				t.Errorf("console %q, want %q", out.String(), tc.wantOut)
			}
			retried := len(said) > 0 && strings.Contains(said[0], "QEMU failed under KVM (qemu-system-x86_64: -accel kvm: failed to initialize kvm: Operation not permitted); retrying with software emulation")
			if retried != tc.wantRetry {
				t.Errorf("said %q; retry notice wanted: %v", said, tc.wantRetry)
			}
			if starts != tc.wantStarts || exits != starts {
				t.Errorf("Started called %d times (%d ended), want %d", starts, exits, tc.wantStarts)
			}
		})
	}
}

// TestMachineStartedError: an error from Started stops that QEMU and ends
// the boot with it.
func TestMachineStartedError(t *testing.T) {
	boom := errors.New("recording the instance's state: disk full")
	m := &Machine{Built: &Built{BuildResult: &BuildResult{}, Guest: fakeGuest{}}, QEMU: fakeQEMU(t, false, false), Probe: tcgProbe,
		Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{},
		Started: func(qemu.VM, int) (func(), error) { return nil, boom }}
	if _, err := m.Run(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
}

// TestMachineStopped: a machine whose ctx has ended does not start QEMU.
func TestMachineStopped(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	started := false
	m := &Machine{Built: &Built{BuildResult: &BuildResult{}, Guest: fakeGuest{}}, QEMU: fakeQEMU(t, false, false), Probe: tcgProbe,
		Started: func(qemu.VM, int) (func(), error) { started = true; return nil, nil }}
	res, err := m.Run(ctx)
	if err != nil || !res.Stopped || started {
		t.Fatalf("Run = %+v, %v (started %v); want stopped before QEMU", res, err, started)
	}
}
