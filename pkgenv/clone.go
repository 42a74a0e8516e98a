package pkgenv

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"

	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/lepton"
	"github.com/opsdev/ops/packages"
)

// Clone makes the local package name_version from the package in
// src (ops pkg from-pkg): a copy of its files, with a manifest whose
// Program lives in the new folder, whose Version is version, and which
// takes the user's Args (after the package's), Env (over the package's)
// and Nanos options. It appears complete or not at all.
func Clone(store packages.Store, src, name, version string, user *lepton.Config) (string, error) {
	if name == "" || version == "" {
		return "", fmt.Errorf("pass --name and --version for the new package")
	}
	p, err := localPackage(name, version)
	if err != nil {
		return "", err
	}
	mf := filepath.Join(src, packages.ManifestFile)
	b, err := os.ReadFile(mf)
	if err != nil {
		return "", err
	}
	var man map[string]any
	if err := json.Unmarshal(b, &man); err != nil {
		return "", fmt.Errorf("%s: %w", mf, err)
	}
	if prog, _ := man["Program"].(string); prog != "" && !path.IsAbs(prog) {
		man["Program"] = p.DirName() + "/" + path.Base(prog)
	}
	man["Version"] = version
	mergeManifest(man, user)
	out, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return "", err
	}
	tmp, err := staging(store, "pkg")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, p.DirName())
	if err := packages.CopyRootTree(src, dir); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, packages.ManifestFile), append(out, '\n'), 0o644); err != nil {
		return "", err
	}
	dest := store.LocalDirOf(p)
	return dest, fileutil.ReplaceDir(dir, dest, tmp)
}

// mergeManifest lays the user's config over a package manifest: Args
// after the package's, Env over its, and the Nanos options set.
func mergeManifest(man map[string]any, c *lepton.Config) {
	if c == nil {
		return
	}
	if len(c.Args) > 0 {
		args, _ := man["Args"].([]any)
		for _, a := range c.Args {
			args = append(args, a)
		}
		man["Args"] = args
	}
	if len(c.Env) > 0 {
		env, _ := man["Env"].(map[string]any)
		if env == nil {
			env = map[string]any{}
		}
		for k, v := range c.Env {
			env[k] = v
		}
		man["Env"] = env
	}
	if len(c.Debugflags) > 0 {
		man["Debugflags"] = c.Debugflags
	}
	if len(c.NoTrace) > 0 {
		man["NoTrace"] = c.NoTrace
	}
	if c.RebootOnExit {
		man["RebootOnExit"] = true
	}
}
