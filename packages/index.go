package packages

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	goerrors "github.com/go-errors/errors"
	"github.com/opsdev/ops/arch"
	"github.com/opsdev/ops/internal/editdist"
	"github.com/opsdev/ops/internal/fileutil"
)

// DefaultManifestURL is the public ops package repository's index.
const DefaultManifestURL = "https://repo.ops.city/v2/manifest.json"

// Package is one entry of the repository index.
type Package struct {
	Name        string `json:"name"`
	Namespace   string `json:"namespace"`
	Version     string `json:"version"`
	Language    string `json:"language"`
	Description string `json:"description"`
	SHA256      string `json:"sha256"`
	Arch        string `json:"arch"`
}

// Ref is "namespace/name:version" (namespace and version optional).
func (p Package) Ref() string {
	r := p.Name + ":" + p.Version
	if p.Namespace != "" {
		r = p.Namespace + "/" + r
	}
	return r
}

// DirName is the package's folder name, name_version.
func (p Package) DirName() string { return p.Name + "_" + p.Version }

// Index is <repo>/v2/manifest.json.
type Index struct {
	Version  int       `json:"Version"`
	Packages []Package `json:"Packages"`
}

// parseIndex decodes an index document.
func parseIndex(b []byte) (*Index, error) {
	var ix Index
	if err := json.Unmarshal(b, &ix); err != nil {
		return nil, fmt.Errorf("package index is not valid: %w", err)
	}
	for i, p := range ix.Packages {
		if p.Name == "" || p.Version == "" {
			return nil, fmt.Errorf("package index entry %d has no name or version", i)
		}
		for _, s := range []string{p.Name, p.Namespace, p.Version} {
			if strings.ContainsAny(s, "/\\\x00") || s == ".." || s == "." {
				return nil, fmt.Errorf("package index entry %d has a bad name, namespace or version %q", i, s)
			}
		}
	}
	return &ix, nil
}

// Repo is a package repository and its local cache.
type Repo struct {
	ManifestURL string // the index; file:// works
	BaseURL     string // where tarballs are; default: next to the index
	CacheFile   string // the cached index
	MaxAge      time.Duration
	Client      *http.Client
}

// packageURL is where a package's tarball is, as nanovms/ops fetches it:
// <base>/<namespace>/<name>/<version>.tar.gz for amd64, and
// <base>/<namespace>/<name>/<version>/arm64.tar.gz for arm64.
func (r Repo) packageURL(p Package) string {
	base := r.BaseURL
	if base == "" {
		base = strings.TrimSuffix(r.ManifestURL, "/manifest.json") + "/packages"
	}
	u := strings.TrimRight(base, "/") + "/" + url.PathEscape(p.Namespace) + "/" + url.PathEscape(p.Name) + "/" + url.PathEscape(p.Version)
	if a, _ := p.Target(); a == arch.ARM64 {
		return u + "/arm64.tar.gz"
	}
	return u + ".tar.gz"
}

// open returns a reader for an http(s) or file URL.
func (r Repo) open(ctx context.Context, u string) (io.ReadCloser, int64, error) {
	if rest, ok := strings.CutPrefix(u, "file://"); ok {
		f, err := os.Open(rest)
		if err != nil {
			return nil, 0, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		return f, st.Size(), nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	c := r.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Minute}
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, 0, goerrors.Wrap(err, 0)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	return resp.Body, resp.ContentLength, nil
}

// Load returns the index: the cache while it is fresh, else a new copy
// (cached atomically). When the repository cannot be reached, a cached
// index is used and notice says so; without one it is an error.
func (r Repo) Load(ctx context.Context, refresh bool) (ix *Index, notice string, err error) {
	st, statErr := os.Stat(r.CacheFile)
	if statErr == nil && !refresh && time.Since(st.ModTime()) < r.MaxAge {
		if b, err := os.ReadFile(r.CacheFile); err == nil {
			if ix, err := parseIndex(b); err == nil {
				return ix, "", nil
			}
		}
	}
	b, fetchErr := r.fetchIndex(ctx)
	if fetchErr == nil {
		ix, err := parseIndex(b)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", r.ManifestURL, err)
		}
		if err := os.MkdirAll(filepath.Dir(r.CacheFile), 0o755); err != nil {
			return nil, "", err
		}
		if err := fileutil.ClearStale(filepath.Dir(r.CacheFile)); err != nil {
			return nil, "", err
		}
		if err := fileutil.WriteAtomic(r.CacheFile, b, 0o644); err != nil {
			return nil, "", err
		}
		return ix, "", nil
	}
	if statErr == nil {
		if b, err := os.ReadFile(r.CacheFile); err == nil {
			if ix, err := parseIndex(b); err == nil {
				return ix, fmt.Sprintf("package index: %s cannot be reached; using the copy cached %s", r.ManifestURL, st.ModTime().Format("2006-01-02 15:04")), nil
			}
		}
	}
	return nil, "", fmt.Errorf("cannot fetch the package index from %s and no copy is cached (%v); local packages still work (-l)", r.ManifestURL, fetchErr)
}

func (r Repo) fetchIndex(ctx context.Context) ([]byte, error) {
	rc, _, err := r.open(ctx, r.ManifestURL)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, 64<<20))
}

// Download fetches a package's tarball to dest (a new file), checking its
// SHA-256 against the index before anything else happens to it. progress,
// when set, wraps the stream.
func (r Repo) Download(ctx context.Context, p Package, dest string, progress func(int64, io.Reader) io.Reader) error {
	if len(p.SHA256) != 64 {
		return fmt.Errorf("%s: the index gives no SHA-256 for it; refusing to install an unverified package", p.Ref())
	}
	u := r.packageURL(p)
	rc, size, err := r.open(ctx, u)
	if err != nil {
		return fmt.Errorf("downloading %s: %w", p.Ref(), err)
	}
	defer rc.Close()
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	var body io.Reader = rc
	if progress != nil {
		body = progress(size, rc)
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, p.SHA256) {
			err = fmt.Errorf("checksum mismatch for %s: got %s, the index says %s; nothing was installed", p.Ref(), got, p.SHA256)
		}
	}
	if err != nil {
		os.Remove(dest)
		return err
	}
	return nil
}

// Ref is a parsed package name.
type Ref struct {
	Namespace, Name, Version string
	Legacy                   string // the whole name, for name_version lookups
}

// ParseRef reads "namespace/name:version", "name:version", "name" and the
// legacy "name_version".
func ParseRef(s string) (Ref, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Ref{}, errors.New("empty package name")
	}
	var r Ref
	rest := s
	if ns, n, ok := strings.Cut(rest, "/"); ok {
		r.Namespace, rest = ns, n
	}
	if n, v, ok := strings.Cut(rest, ":"); ok {
		r.Name, r.Version = n, v
	} else {
		r.Name, r.Legacy = rest, rest
	}
	if r.Version == "latest" {
		r.Version = ""
	}
	for _, p := range []string{r.Namespace, r.Name, r.Version} {
		if strings.ContainsAny(p, "/\\:\x00") || p == ".." || p == "." {
			return Ref{}, fmt.Errorf("package name %q is not namespace/name:version", s)
		}
	}
	if r.Name == "" {
		return Ref{}, fmt.Errorf("package name %q has no name", s)
	}
	return r, nil
}

// String is the reference as written: [namespace/]name[:version].
func (r Ref) String() string {
	s := r.Name
	if r.Version != "" {
		s += ":" + r.Version
	}
	if r.Namespace != "" {
		s = r.Namespace + "/" + s
	}
	return s
}

// Find resolves a reference among pkgs: an exact version, else the newest
// (":latest" or no version); the legacy name_version form matches
// DirName. An unknown name suggests close matches.
func Find(pkgs []Package, r Ref) (Package, error) {
	var cands []Package
	for _, p := range pkgs {
		if r.Namespace != "" && p.Namespace != r.Namespace {
			continue
		}
		if r.Legacy != "" && p.DirName() == r.Legacy {
			return p, nil
		}
		if p.Name == r.Name && (r.Version == "" || p.Version == r.Version) {
			cands = append(cands, p)
		}
	}
	if len(cands) == 0 {
		want := r.String()
		if s := suggest(pkgs, r.Name); len(s) > 0 {
			return Package{}, fmt.Errorf("no package %s; did you mean %s?", want, strings.Join(s, ", "))
		}
		return Package{}, fmt.Errorf("no package %s", want)
	}
	sort.SliceStable(cands, func(i, j int) bool { return VersionLess(cands[j].Version, cands[i].Version) })
	return cands[0], nil
}

// suggest lists up to five package refs whose names are close to name.
func suggest(pkgs []Package, name string) []string {
	type scored struct {
		ref string
		d   int
	}
	var out []scored
	seen := map[string]bool{}
	for _, p := range pkgs {
		d := editdist.Distance(strings.ToLower(p.Name), strings.ToLower(name))
		if strings.Contains(strings.ToLower(p.Name), strings.ToLower(name)) {
			d = 1
		}
		if d <= 2 || d <= len(name)/3 {
			if !seen[p.Ref()] {
				seen[p.Ref()] = true
				out = append(out, scored{p.Ref(), d})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].d < out[j].d })
	var s []string
	for i := 0; i < len(out) && i < 5; i++ {
		s = append(s, out[i].ref)
	}
	return s
}

// VersionLess orders version strings naturally: runs of digits compare as
// numbers ("0.1.10" after "0.1.9"), everything else byte by byte.
func VersionLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			x, _ := strconv.ParseUint(a[:da], 10, 64)
			y, _ := strconv.ParseUint(b[:db], 10, 64)
			if x != y {
				return x < y
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digitRun(s string) int {
	n := 0
	for n < len(s) && n < 18 && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}
