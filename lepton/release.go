package lepton

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/packages"
)

// DefaultReleaseURL is where Nanos releases are published; OPS_RELEASE_URL
// or `ops update --url` replaces it.
const DefaultReleaseURL = "https://storage.googleapis.com/nanos/release"

var releaseName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`nanos-release-[a-z]+-(.+?)\.(tar\.gz|tgz)$`) })

// VersionFromName takes the version from a release archive or folder name.
func VersionFromName(p string) string {
	base := filepath.Base(filepath.Clean(p))
	if m := releaseName().FindStringSubmatch(base); m != nil {
		return m[1]
	}
	// A folder named VERSION, or NAME-VERSION (release-0.1.55, or an
	// unpacked nanos-release-linux-0.1.55).
	for v := base; v != ""; {
		if ValidVersion(v) && v[0] >= '0' && v[0] <= '9' {
			return v
		}
		_, rest, ok := strings.Cut(v, "-")
		if !ok {
			break
		}
		v = rest
	}
	return ""
}

// InstallRelease installs a release from a tarball or a folder holding
// kernel.img, boot.img and klibs/. It checks the files before anything is
// installed, installs atomically (a complete folder renamed into place),
// and records the version in latest.txt.
func (h Home) InstallRelease(src, version string) (*Release, error) {
	if version == "" {
		version = VersionFromName(src)
	}
	if version == "" {
		return nil, fmt.Errorf("cannot tell the release version from %q; pass --version", src)
	}
	if !ValidVersion(version) {
		return nil, fmt.Errorf("%q is not a valid release version", version)
	}
	st, err := os.Stat(src)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(h.Dir, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(h.Dir, ".release-")
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
	if err := CheckReleaseDir(stage); err != nil {
		return nil, fmt.Errorf("%s is not a Nanos release: %w", src, err)
	}
	if err := fileutil.ReplaceDir(stage, filepath.Join(h.Dir, version), tmp); err != nil {
		return nil, err
	}
	if err := fileutil.WriteAtomic(filepath.Join(h.Dir, "latest.txt"), []byte(version+"\n"), 0o644); err != nil {
		return nil, err
	}
	return h.Release(version)
}

func copyRelease(src, dest string) error {
	if err := os.MkdirAll(filepath.Join(dest, "klibs"), 0o755); err != nil {
		return err
	}
	for _, n := range []string{"kernel.img", "boot.img", "bootx64.efi"} {
		if err := fileutil.CopyFile(filepath.Join(src, n), filepath.Join(dest, n), 0o644); err != nil {
			if errors.Is(err, os.ErrNotExist) && n == "bootx64.efi" {
				continue
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
	if !ValidVersion(v) {
		return "", fmt.Errorf("the release server's latest.txt names no valid version (%q)", v)
	}
	return v, nil
}

// Install downloads a release to a temporary file, checks its published
// SHA-256 when the server has one, then installs it as InstallRelease does.
// It returns whether a checksum was verified.
func (d Downloader) Install(ctx context.Context, h Home, version string) (*Release, bool, error) {
	name := "nanos-release-linux-" + version + ".tar.gz"
	url := strings.TrimRight(d.BaseURL, "/") + "/" + version + "/" + name
	resp, err := d.get(ctx, url)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	if err := os.MkdirAll(h.Dir, 0o755); err != nil {
		return nil, false, err
	}
	tmpDir, err := os.MkdirTemp(h.Dir, ".download-")
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
	r, err := h.InstallRelease(tmp, version)
	return r, verified, err
}
