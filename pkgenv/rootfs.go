package pkgenv

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/opsdev/ops/elfdeps"
	"github.com/opsdev/ops/lepton"
)

// RootfsProcess is a program run from a container's root filesystem
// folder (an OCI bundle's rootfs): its argv as the engine gave it (the
// image's entrypoint and command already joined), its environment
// (KEY=VALUE) and working folder.
type RootfsProcess struct {
	Rootfs string
	Args   []string
	Env    []string
	Cwd    string
}

// RootfsInput is the plan input that runs p: the root filesystem laid
// over the image as a package's sysroot is (its libraries are the
// program's), the program the first element of Args naming an ELF inside
// it (bare names searched on the process's PATH, as FromImage finds an
// entrypoint; scripts before it skipped, said in note), the environment
// and working folder the process's, over a copy of user.
func RootfsInput(user *lepton.Config, p RootfsProcess) (in lepton.PlanInput, note string, err error) {
	env := map[string]string{}
	for k, v := range user.Env {
		env[k] = v
	}
	for _, kv := range p.Env {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			env[k] = v
		}
	}
	pathVar := env["PATH"]
	if pathVar == "" {
		pathVar = defaultPATH
	}
	prog, args, note, err := chooseProgram(p.Rootfs, p.Args, pathVar, p.Cwd)
	if err != nil {
		return in, "", fmt.Errorf("process.args: %s", strings.TrimSuffix(err.Error(), "; pass --program"))
	}
	host := elfdeps.ResolveInRoot(p.Rootfs, prog)
	rel, err := filepath.Rel(p.Rootfs, host)
	if err != nil || strings.HasPrefix(rel, "..") {
		return in, "", fmt.Errorf("process.args: %s leads out of the root filesystem", prog)
	}
	c := *user
	c.Env = env
	if p.Cwd != "" {
		c.CwdPath = p.Cwd
	}
	in = lepton.PlanInput{Config: &c, Program: host, ProgramGuest: "/" + filepath.ToSlash(rel), Argv: args, NoDeps: true,
		Layers: []lepton.Layer{{Host: p.Rootfs, Guest: "/", Root: true}}}
	return in, note, nil
}
