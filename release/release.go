// Package release is Nanos kernel releases: their version names, the
// ones installed in a folder (the ops home, a folder per version and
// latest.txt naming the current one), checking a release's files, and
// installing one from a file, a folder or the release server.
package release

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/arch"
	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/packages"
)

// Release is an installed Nanos kernel release.
type Release struct {
	Version string
	Arch    arch.Arch
	Dir     string
	Kernel  string // kernel.img
	Boot    string // boot.img; "" for arm64, whose kernel QEMU loads itself
	KlibDir string
	UEFI    string // the UEFI loader's path in Dir (bootx64.efi, bootaa64.efi), whether there or not
}

var versionRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$`) })

// validVersion reports whether v is usable as a release folder name.
func validVersion(v string) bool {
	return versionRE().MatchString(v) && v != "images" && v != "packages"
}

// ErrNotInstalled means no Nanos release is installed.
var ErrNotInstalled = errors.New("no Nanos release is installed")

// Store is the releases for one architecture installed in a folder: a
// folder per version, and the file naming the current version. As in
// nanovms/ops, an amd64 release's folder is named by its version and an
// arm64 release's by its version and "-arm"; both share latest.txt.
type Store struct {
	Dir        string // the folder holding a folder per version (the ops home)
	LatestFile string // latest.txt
	Arch       arch.Arch
}

// armSuffix ends the folder names of arm64 releases.
const armSuffix = "-arm"

// Latest is the version named in latest.txt.
func (s Store) Latest() (string, error) {
	b, err := os.ReadFile(s.LatestFile)
	if errors.Is(err, os.ErrNotExist) {
		return "", ErrNotInstalled
	}
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(b))
	if !validVersion(v) {
		return "", fmt.Errorf("%s names no valid version (%q)", s.LatestFile, v)
	}
	return v, nil
}

// Find returns an installed release; version "" means the latest: the
// one latest.txt names, else (that version is installed for the other
// architecture only) the newest of this one's.
func (s Store) Find(version string) (*Release, error) {
	if version == "" {
		v, err := s.Latest()
		if errors.Is(err, ErrNotInstalled) {
			err = nil // an arm64 release installed into a home that had none writes no latest.txt of its own
		}
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(filepath.Join(s.dir(v), "kernel.img")); v == "" || err != nil {
			if installed := s.installed(); len(installed) > 0 {
				v = installed[len(installed)-1]
			}
		}
		if v == "" {
			return nil, s.notInstalled()
		}
		version = v
	}
	if !validVersion(version) || strings.HasSuffix(version, armSuffix) {
		return nil, fmt.Errorf("%q is not a release version", version)
	}
	dir := s.dir(version)
	r := &Release{Version: version, Arch: s.arch(), Dir: dir, Kernel: filepath.Join(dir, "kernel.img"),
		KlibDir: filepath.Join(dir, "klibs"), UEFI: filepath.Join(dir, UEFILoader(s.arch()))}
	if s.arch() == arch.AMD64 {
		r.Boot = filepath.Join(dir, "boot.img")
	}
	if _, err := os.Stat(r.Kernel); err != nil {
		installed := s.installed()
		if len(installed) == 0 {
			return nil, fmt.Errorf("Nanos %s: %w", version, s.notInstalled())
		}
		return nil, fmt.Errorf("Nanos %s is not installed for %s (installed: %s)", version, s.arch(), strings.Join(installed, ", "))
	}
	return r, nil
}

// notInstalled is ErrNotInstalled, saying which architecture's release
// is missing when it is not the usual one.
func (s Store) notInstalled() error {
	if s.arch() == arch.AMD64 {
		return ErrNotInstalled
	}
	return fmt.Errorf("%w for %s (ops update --arch %s)", ErrNotInstalled, s.arch(), s.arch())
}

// UEFILoader is the name of a's UEFI loader in a release.
func UEFILoader(a arch.Arch) string {
	if a == arch.ARM64 {
		return "bootaa64.efi"
	}
	return "bootx64.efi"
}

func (s Store) arch() arch.Arch { return s.Arch.OrAMD64() }

// dir is the folder of a release version.
func (s Store) dir(version string) string {
	if s.arch() == arch.ARM64 {
		version += armSuffix
	}
	return filepath.Join(s.Dir, version)
}

// installed lists installed release versions, oldest first.
func (s Store) installed() []string {
	ents, _ := os.ReadDir(s.Dir)
	var out []string
	for _, e := range ents {
		v, arm := strings.CutSuffix(e.Name(), armSuffix)
		if e.IsDir() && validVersion(v) && arm == (s.arch() == arch.ARM64) {
			if _, err := os.Stat(filepath.Join(s.dir(v), "kernel.img")); err == nil {
				out = append(out, v)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return versionLess(out[i], out[j]) })
	return out
}

func versionLess(a, b string) bool { return packages.VersionLess(a, b) }

// CheckKernel checks that a kernel.img is a 64-bit ELF for a.
func CheckKernel(p string, a arch.Arch) error {
	f, err := elf.Open(p)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return goerrors.Wrap(fmt.Errorf("kernel: %w", err), 0) // cannot be read at all
	}
	if err != nil {
		return fmt.Errorf("%s is not an ELF kernel: %w", p, err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != a.ELFMachine() {
		return fmt.Errorf("%s is a %s %s kernel; want %s (%s)", p, f.Class, f.Machine, a, a.Kernel())
	}
	return nil
}

// checkBoot checks boot.img's signature and filesystem region record.
func checkBoot(p string) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if _, err := opsfs.ParseBootImg(b); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// checkDir checks a folder laid out as a release for a: an amd64 release
// has a BIOS boot loader, an arm64 one none (QEMU loads its kernel).
func checkDir(dir string, a arch.Arch) error {
	if err := CheckKernel(filepath.Join(dir, "kernel.img"), a); err != nil {
		return err
	}
	if a == arch.ARM64 {
		return nil
	}
	return checkBoot(filepath.Join(dir, "boot.img"))
}

// DefaultURL is where Nanos releases are published; OPS_RELEASE_URL or
// `ops update --url` replaces it.
const DefaultURL = "https://storage.googleapis.com/nanos/release"

var releaseName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`nanos-release-[a-z]+-(.+?)(-virt)?\.(tar\.gz|tgz)$`) })

// versionFromName takes the version from a release archive or folder name.
func versionFromName(p string) string {
	base := filepath.Base(filepath.Clean(p))
	if m := releaseName().FindStringSubmatch(base); m != nil {
		return m[1]
	}
	// A folder named VERSION, or NAME-VERSION (release-0.1.55, or an
	// unpacked nanos-release-linux-0.1.55).
	for v := base; v != ""; {
		if validVersion(v) && v[0] >= '0' && v[0] <= '9' {
			return strings.TrimSuffix(v, "-virt") // an arm64 (virt platform) release
		}
		_, rest, ok := strings.Cut(v, "-")
		if !ok {
			break
		}
		v = rest
	}
	return ""
}

// Install installs a release from a tarball or a folder holding
// kernel.img, boot.img and klibs/. It checks the files before anything is
// installed, installs atomically (a complete folder renamed into place),
// and records the version in latest.txt.
func (s Store) Install(src, version string) (*Release, error) {
	if version == "" {
		version = versionFromName(src)
	}
	if version == "" {
		return nil, fmt.Errorf("cannot tell the release version from %q; pass --version", src)
	}
	if !validVersion(version) {
		return nil, fmt.Errorf("%q is not a valid release version", version)
	}
	st, err := os.Stat(src)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := fileutil.ClearStale(s.Dir); err != nil {
		return nil, err
	}
	tmp, err := fileutil.MkdirTemp(s.Dir, "release")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	stage := filepath.Join(tmp, "r")
	if st.IsDir() {
		if err := copyRelease(src, stage); err != nil {
			return nil, err
		}
	} else {
		f, err := os.Open(src)
		if err != nil {
			return nil, err
		}
		err = packages.ExtractTarGz(f, stage, packages.DefaultLimits())
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		// Some archives wrap everything in one folder.
		if _, err := os.Stat(filepath.Join(stage, "kernel.img")); err != nil {
			if ents, _ := os.ReadDir(stage); len(ents) == 1 && ents[0].IsDir() {
				stage = filepath.Join(stage, ents[0].Name())
			}
		}
	}
	if err := checkDir(stage, s.arch()); err != nil {
		return nil, fmt.Errorf("%s is not a Nanos release for %s: %w", src, s.arch(), err)
	}
	if err := fileutil.ReplaceDir(stage, s.dir(version), tmp); err != nil {
		return nil, err
	}
	// latest.txt is the amd64 releases' (nanovms/ops reads it so): an
	// arm64 release names itself there only in a home without one.
	if _, err := s.Latest(); s.arch() == arch.AMD64 || errors.Is(err, ErrNotInstalled) {
		if err := fileutil.WriteAtomic(s.LatestFile, []byte(version+"\n"), 0o644); err != nil {
			return nil, err
		}
	}
	return s.Find(version)
}

func copyRelease(src, dest string) error {
	if err := os.MkdirAll(filepath.Join(dest, "klibs"), 0o755); err != nil {
		return err
	}
	for _, n := range []string{"kernel.img", "boot.img", "bootx64.efi", "bootaa64.efi"} {
		if err := fileutil.CopyFile(filepath.Join(src, n), filepath.Join(dest, n), 0o644); err != nil {
			if errors.Is(err, os.ErrNotExist) && n != "kernel.img" {
				continue // checkDir says what a release must have
			}
			return err
		}
	}
	ents, err := os.ReadDir(filepath.Join(src, "klibs"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			if err := fileutil.CopyFile(filepath.Join(src, "klibs", e.Name()), filepath.Join(dest, "klibs", e.Name()), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// ArchiveName is the file name of the release archive of version for a,
// as the release server publishes it.
func ArchiveName(version string, a arch.Arch) string {
	if a == arch.ARM64 {
		return "nanos-release-linux-" + version + "-virt.tar.gz"
	}
	return "nanos-release-linux-" + version + ".tar.gz"
}

// Downloader fetches release files. Progress, when set, wraps the body so
// the caller can show a progress bar.
type Downloader struct {
	BaseURL  string
	Client   *http.Client
	Progress func(total int64, r io.Reader) io.Reader
}

func (d Downloader) get(ctx context.Context, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	c := d.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the Nanos release server (%s); are you offline? Install a release from a file with 'ops update --from FILE': %w", d.BaseURL, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, &httpError{url, resp.StatusCode}
	}
	return resp, nil
}

type httpError struct {
	url  string
	code int
}

func (e *httpError) Error() string { return fmt.Sprintf("GET %s: HTTP %d", e.url, e.code) }

// LatestVersion asks the server for the newest version.
func (d Downloader) LatestVersion(ctx context.Context) (string, error) {
	resp, err := d.get(ctx, strings.TrimRight(d.BaseURL, "/")+"/latest.txt")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256))
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(b))
	if !validVersion(v) {
		return "", fmt.Errorf("the release server's latest.txt names no valid version (%q)", v)
	}
	return v, nil
}

// Install downloads a release to a temporary file, checks its published
// SHA-256 when the server has one, then installs it in s as Store.Install
// does.
// It returns whether a checksum was verified.
func (d Downloader) Install(ctx context.Context, s Store, version string) (*Release, bool, error) {
	name := ArchiveName(version, s.arch())
	url := strings.TrimRight(d.BaseURL, "/") + "/" + version + "/" + name
	resp, err := d.get(ctx, url)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return nil, false, err
	}
	if err := fileutil.ClearStale(s.Dir); err != nil {
		return nil, false, err
	}
	tmpDir, err := fileutil.MkdirTemp(s.Dir, "download")
	if err != nil {
		return nil, false, err
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, name)
	f, err := os.Create(tmp)
	if err != nil {
		return nil, false, err
	}
	var body io.Reader = resp.Body
	if d.Progress != nil {
		body = d.Progress(resp.ContentLength, body)
	}
	hash := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, hash), body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("downloading %s: %w", url, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return nil, false, fmt.Errorf("downloading %s: got %d of %d bytes", url, n, resp.ContentLength)
	}
	verified := false
	if sum, err := d.get(ctx, url+".sha256"); err == nil {
		b, _ := io.ReadAll(io.LimitReader(sum.Body, 4096))
		sum.Body.Close()
		fields := strings.Fields(string(b))
		if len(fields) == 0 {
			return nil, false, fmt.Errorf("%s.sha256 is empty", url)
		}
		if got := hex.EncodeToString(hash.Sum(nil)); !strings.EqualFold(fields[0], got) {
			return nil, false, fmt.Errorf("checksum mismatch for %s: got %s, the server publishes %s; nothing was installed", name, got, fields[0])
		}
		verified = true
	} else {
		var he *httpError
		if !errors.As(err, &he) || he.code != http.StatusNotFound {
			return nil, false, err
		}
	}
	r, err := s.Install(tmp, version)
	return r, verified, err
}
