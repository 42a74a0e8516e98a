package lepton

import (
	"fmt"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"

	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/qemu"
)

// What a program finds around it on a Linux machine and would otherwise
// miss in a unikernel image: a user database for servers that switch to
// `nobody`, a host name that resolves, a resolver, CA certificates, a
// writable /tmp, and the usual environment. Both guests get the same.
const (
	defaultPasswd = "root:x:0:0:root:/:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	defaultGroup  = "root:x:0:\nnogroup:x:65534:\n"
	// glibc 2.34 and later have the files and dns sources built in.
	defaultNSSwitch = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n"
	defaultPath     = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// hostCABundle is Debian's (and Ubuntu's) bundle of trusted CAs, at the
	// path TLS libraries look for first.
	hostCABundle = "/etc/ssl/certs/ca-certificates.crt"
	// User-mode networking: QEMU's DNS forwarder, and the guest's address.
	userModeDNS  = "10.0.2.3"
	userModeAddr = "10.0.2.15"
)

// hostnameFor makes a valid host name (RFC 1123: letters, digits and
// inner dashes, at most 63) from an image name.
func hostnameFor(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	h := strings.Trim(b.String(), "-")
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-")
	}
	if h == "" {
		return "ops"
	}
	return h
}

// checkHostname accepts what sethostname and resolvers accept.
func checkHostname(h string) error {
	if h == "" || len(h) > 253 {
		return fmt.Errorf("Hostname %q: use 1 to 253 characters", h)
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return fmt.Errorf("Hostname %q: each dot-separated part is 1 to 63 letters, digits or inner dashes", h)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("Hostname %q: each dot-separated part is 1 to 63 letters, digits or inner dashes", h)
			}
		}
	}
	return nil
}

// addDefaults adds, where the user's files, folders and packages left
// them out, the files every image gets, and records each in p.Defaults.
func (p *Plan) addDefaults(in PlanInput) error {
	c := in.Config
	host := c.Hostname
	if host == "" {
		host = hostnameFor(in.ImageName)
	} else if err := checkHostname(host); err != nil {
		return err
	}
	p.Hostname = host
	files := []struct{ path, data string }{
		{"/etc/passwd", defaultPasswd},
		{"/etc/group", defaultGroup},
		{"/etc/nsswitch.conf", defaultNSSwitch},
		{"/etc/hostname", host + "\n"},
		{"/etc/hosts", fmt.Sprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n", selfAddr(c.RunConfig), host)},
	}
	if ns := nameServers(c); len(ns) > 0 {
		files = append(files, struct{ path, data string }{"/etc/resolv.conf", "nameserver " + strings.Join(ns, "\nnameserver ") + "\n"})
	}
	for _, f := range files {
		if err := p.addDefault(opsfs.Entry{Path: f.path, Kind: opsfs.KindFile, Data: []byte(f.data), Mode: 0o644}); err != nil {
			return err
		}
	}
	if st, err := os.Stat(hostCABundle); err == nil && st.Mode().IsRegular() {
		if err := p.addDefault(opsfs.Entry{Path: hostCABundle, Kind: opsfs.KindFile, Source: hostCABundle, Size: st.Size(), Mode: 0o644}); err != nil {
			return err
		}
		// Where Debian's OpenSSL looks by default (python's ssl, curl), as
		// Debian links it.
		if err := p.addDefault(opsfs.Entry{Path: "/usr/lib/ssl/cert.pem", Kind: opsfs.KindSymlink, Target: hostCABundle}); err != nil {
			return err
		}
	}
	return p.addDefault(opsfs.Entry{Path: "/tmp", Kind: opsfs.KindDir, Mode: 0o777})
}

// addDefault adds e unless the tree has something at its path (through
// links the tree holds: /etc/resolv.conf may be a link in a sysroot).
func (p *Plan) addDefault(e opsfs.Entry) error {
	if _, ok := p.lookup(e.Path); ok {
		return nil
	}
	if _, ok := p.Tree.Get(e.Path); ok {
		return nil // a link that leads out of the tree: the user's choice
	}
	if err := p.Tree.Add(e); err != nil {
		return err
	}
	p.Defaults = append(p.Defaults, e.Path)
	return nil
}

// selfAddr is the guest's address for /etc/hosts: the static one, QEMU's
// user-mode one, or, when DHCP will tell, Debian's 127.0.1.1 convention.
func selfAddr(rc RunConfig) string {
	switch {
	case rc.IPAddress != "":
		return rc.IPAddress
	case rc.usesTap() || rc.DHCP:
		return "127.0.1.1"
	}
	return userModeAddr
}

// nameServers is the resolver for /etc/resolv.conf: NameServers, else
// the network's own: QEMU's forwarder on user-mode networking, the gateway
// on a tap with a static address. On a tap with DHCP there is none to
// write: the Linux guest's init writes the lease's, Nanos asks the lease.
func nameServers(c *Config) []string {
	rc := c.RunConfig
	switch {
	case len(c.NameServers) > 0:
		return c.NameServers
	case !rc.usesTap() && !rc.DHCP:
		return []string{userModeDNS}
	case rc.IPAddress != "" && rc.Gateway != "":
		return []string{rc.Gateway}
	}
	return nil
}

// defaultEnv is the environment every program gets unless the user's Env
// sets the same names: the usual login variables and the ones nanovms/ops
// sets (its users' programs read them).
func defaultEnv(in PlanInput, cwd string) map[string]string {
	env := map[string]string{
		"HOME": "/",
		"USER": "root",
		"PWD":  cwd,
		"PATH": defaultPath,
	}
	if in.OpsVersion != "" {
		env["OPS_VERSION"] = in.OpsVersion
	}
	if in.ImageName != "" {
		env["IMAGE_NAME"] = in.ImageName
	}
	if fw, err := qemu.ParsePorts(in.Config.RunConfig.Ports, "tcp"); err == nil && len(fw) > 0 {
		env["OPS_PORT"] = strconv.Itoa(fw[0].GuestPort)
	}
	for k, v := range in.GuestEnv {
		env[k] = v
	}
	return env
}

// lookup finds a guest path in the tree, following the tree's own links
// as the guest would (absolute targets start at the root). A link whose
// target is not in the tree is not found.
func (p *Plan) lookup(guest string) (*opsfs.Entry, bool) {
	cur := path.Clean("/" + guest)
	for hops := 0; hops < 40; hops++ {
		parts := strings.Split(strings.TrimPrefix(cur, "/"), "/")
		resolved := "/"
		restarted := false
		for i, part := range parts {
			if part == "" {
				continue
			}
			next := path.Join(resolved, part)
			e, ok := p.Tree.Get(next)
			if !ok {
				return nil, false
			}
			if e.Kind == opsfs.KindSymlink {
				rest := strings.Join(parts[i+1:], "/")
				if path.IsAbs(e.Target) {
					cur = path.Clean(e.Target + "/" + rest)
				} else {
					cur = path.Clean(resolved + "/" + e.Target + "/" + rest)
				}
				restarted = true
				break
			}
			if i < len(parts)-1 && e.Kind != opsfs.KindDir {
				return nil, false
			}
			resolved = next
		}
		if !restarted {
			e, ok := p.Tree.Get(resolved)
			return e, ok
		}
	}
	return nil, false
}

// sortedEnv turns a map into the plan's sorted list.
func sortedEnv(env map[string]string) []EnvVar {
	out := make([]EnvVar, 0, len(env))
	for k, v := range env {
		out = append(out, EnvVar{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
