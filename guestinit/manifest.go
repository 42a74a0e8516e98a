// Package guestinit is the Linux guest's side of ops: the manifest that ops
// writes into the initramfs and the init program (in ./init) that reads it.
// The Makefile builds init as a static binary into bin/, and ops embeds it
// from there (package bin).
package guestinit

// Manifest tells init what to run. It is stored as JSON at
// /.ops/manifest.json in the initramfs.
type Manifest struct {
	Program string   `json:"program"`
	Args    []string `json:"args"`
	Env     []string `json:"env"`
	Cwd     string   `json:"cwd"`
	Modules []string `json:"modules"` // initramfs paths, in load order
	// LateModules are loaded after the program started (the power button).
	LateModules []string `json:"late_modules,omitempty"`
	Net         Net      `json:"net"`
	Mounts      []Mount  `json:"mounts,omitempty"`
	Debug       bool     `json:"debug,omitempty"`
}

// Mount is an ext4 volume init mounts before it starts the program: the
// disk whose filesystem carries Label.
type Mount struct {
	Label    string `json:"label"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"readonly,omitempty"`
}

// Net configures eth0.
type Net struct {
	DHCP    bool     `json:"dhcp,omitempty"` // ask a DHCP server instead of Address
	Address string   `json:"address"`        // CIDR, e.g. 10.0.2.15/24
	Gateway string   `json:"gateway"`
	DNS     []string `json:"dns"`
}

// ExitPort is the I/O port of QEMU's isa-debug-exit device. Writing code N
// there makes QEMU exit with status N<<1 | 1.
const ExitPort = 0x501

// ManifestPathInGuest is where init finds the manifest.
const ManifestPathInGuest = "/.ops/manifest.json"
