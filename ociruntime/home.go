package ociruntime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/lepton"
)

// ConfigName is the runtime's configuration file, beside the
// ops-runtime link: engines start a runtime with little of the user's
// environment (conmon passes HOME and PATH to create, and podman's
// delete gets neither), so what `ops runtime install` was told is kept
// there.
const ConfigName = "ops-runtime.json"

// Config is ops-runtime.json.
type Config struct {
	// Home is the ops home itself (the folder holding latest.txt, the
	// releases and images: ~/.ops), not OPS_HOME's parent.
	Home string `json:"home,omitempty"`
	// Guest, when set, is the guest every container boots ("nanos" or
	// "linux"); else Nanos when a release is installed, else Linux.
	Guest string `json:"guest,omitempty"`
	// Root, when set, is the containers' state folder when the engine
	// passes no --root (Podman passes none).
	Root string `json:"root,omitempty"`
}

// ConfigPath is where the configuration of the runtime invoked as link
// (os.Args[0], made absolute through PATH when it is a bare name) is.
func ConfigPath(link string) string { return filepath.Join(filepath.Dir(link), ConfigName) }

// LoadConfig reads the configuration file at p; a missing one is empty.
func LoadConfig(p string) (Config, error) {
	var c Config
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, goerrors.Wrap(err, 0)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%s: %w", p, jsonError(err))
	}
	if c.Root != "" && !filepath.IsAbs(c.Root) {
		return c, fmt.Errorf("%s: root %q is not an absolute path", p, c.Root)
	}
	if c.Guest != "" {
		if err := lepton.CheckGuestName(c.Guest); err != nil {
			return c, fmt.Errorf("%s: guest: %w", p, err)
		}
	}
	return c, nil
}

// FindHome is the ops home a container's image is built with: OPS_HOME
// when the engine passed it (the folder holding .ops, as for ops), else
// the configuration file's home, else ~/.ops of HOME. where says which,
// for the log.
func FindHome(getenv func(string) string, c Config) (home lepton.Home, where string, err error) {
	if d := getenv("OPS_HOME"); d != "" {
		return lepton.Home{Dir: filepath.Join(d, ".ops")}, "OPS_HOME", nil
	}
	if c.Home != "" {
		return lepton.Home{Dir: c.Home}, ConfigName, nil
	}
	if h := getenv("HOME"); h != "" {
		return lepton.Home{Dir: filepath.Join(h, ".ops")}, "HOME", nil
	}
	return lepton.Home{}, "", fmt.Errorf("no ops home: the engine passed neither OPS_HOME nor HOME; name one with ops runtime install --home DIR")
}
