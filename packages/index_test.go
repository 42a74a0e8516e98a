package packages

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseRefAndFind(t *testing.T) {
	pkgs := []Package{
		{Namespace: "eyberg", Name: "node", Version: "20.5.0"},
		{Namespace: "eyberg", Name: "node", Version: "20.10.0"},
		{Namespace: "eyberg", Name: "node", Version: "9.9.0"},
		{Namespace: "other", Name: "node", Version: "99.0"},
		{Name: "node", Version: "v11.15.0"},
		{Namespace: "eyberg", Name: "redis", Version: "7.0"},
		{Namespace: "eyberg", Name: "php_fpm", Version: "8.1"},
	}
	cases := []struct {
		in, want, err string
	}{
		{"eyberg/node:20.5.0", "eyberg/node:20.5.0", ""},
		{"eyberg/node", "eyberg/node:20.10.0", ""},
		{"eyberg/node:latest", "eyberg/node:20.10.0", ""},
		{"node:v11.15.0", "node:v11.15.0", ""},
		{"node_v11.15.0", "node:v11.15.0", ""},
		{"php_fpm_8.1", "eyberg/php_fpm:8.1", ""},
		{"eyberg/nodee", "", "did you mean eyberg/node"},
		{"eyberg/node:1.0", "", "no package eyberg/node:1.0"},
		{"zzzzzz", "", "no package zzzzzz"},
		{"a/b/c", "", "not namespace/name:version"},
		{"", "", "empty"},
	}
	for _, tc := range cases {
		r, err := ParseRef(tc.in)
		var p Package
		if err == nil {
			p, err = Find(pkgs, r)
		}
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || p.Ref() != tc.want {
			t.Errorf("%q: %s %v, want %s", tc.in, p.Ref(), err, tc.want)
		}
	}
}

// repoFixture serves an index and package tarballs on 127.0.0.1.
type repoFixture struct {
	srv   *httptest.Server
	files map[string][]byte
	hits  map[string]int
}

func tgz(t testing.TB, ents []ent) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(mkTar(ents))
	zw.Close()
	return buf.Bytes()
}

func newRepo(t *testing.T) *repoFixture {
	f := &repoFixture{files: map[string][]byte{}, hits: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits[r.URL.Path]++
		b, ok := f.files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *repoFixture) add(t *testing.T, p Package, body []byte, sum string) Package {
	if sum == "" {
		s := sha256.Sum256(body)
		sum = hex.EncodeToString(s[:])
	}
	p.SHA256 = sum
	f.files["/v2/packages/"+p.Namespace+"/"+p.Name+"/"+p.Version+".tar.gz"] = body
	var ix Index
	if b, ok := f.files["/v2/manifest.json"]; ok {
		json.Unmarshal(b, &ix)
	}
	ix.Version = 1
	ix.Packages = append(ix.Packages, p)
	b, _ := json.Marshal(ix)
	f.files["/v2/manifest.json"] = b
	return p
}

func TestRepoIndexCacheAndOffline(t *testing.T) {
	f := newRepo(t)
	f.add(t, Package{Namespace: "ns", Name: "hello", Version: "1.0"}, []byte("x"), "")
	cache := filepath.Join(t.TempDir(), "packages", "manifest.json")
	r := Repo{ManifestURL: f.srv.URL + "/v2/manifest.json", CacheFile: cache, MaxAge: time.Hour}
	ctx := context.Background()
	ix, notice, err := r.Load(ctx, false)
	if err != nil || notice != "" || len(ix.Packages) != 1 {
		t.Fatalf("%+v %q %v", ix, notice, err)
	}
	// Fresh cache: no request.
	if _, _, err := r.Load(ctx, false); err != nil || f.hits["/v2/manifest.json"] != 1 {
		t.Fatalf("cache not used: %d requests, %v", f.hits["/v2/manifest.json"], err)
	}
	// Stale cache and the repository down: the cache, with a notice.
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(cache, old, old)
	f.srv.Close()
	ix, notice, err = r.Load(ctx, false)
	if err != nil || !strings.Contains(notice, "cannot be reached") || len(ix.Packages) != 1 {
		t.Fatalf("offline with cache: %q %v", notice, err)
	}
	// No cache and offline: one clear error.
	r.CacheFile = filepath.Join(t.TempDir(), "none.json")
	if _, _, err := r.Load(ctx, false); err == nil || !strings.Contains(err.Error(), "no copy is cached") {
		t.Fatalf("offline without cache: %v", err)
	}
	// file:// works.
	idx := filepath.Join(t.TempDir(), "manifest.json")
	os.WriteFile(idx, []byte(`{"Version":1,"Packages":[{"name":"a","version":"1"}]}`), 0o644)
	r = Repo{ManifestURL: "file://" + idx, CacheFile: filepath.Join(t.TempDir(), "c.json")}
	if ix, _, err := r.Load(ctx, true); err != nil || ix.Packages[0].Name != "a" {
		t.Fatalf("file://: %v", err)
	}
	// A hostile index entry is refused.
	os.WriteFile(idx, []byte(`{"Packages":[{"name":"../../x","version":"1"}]}`), 0o644)
	if _, _, err := r.Load(ctx, true); err == nil {
		t.Fatal("index with a path in a name accepted")
	}
}

func TestStoreInstall(t *testing.T) {
	f := newRepo(t)
	good := f.add(t, Package{Namespace: "ns", Name: "hello", Version: "1.0"}, tgz(t, []ent{
		{name: "hello_1.0/package.manifest", body: `{"Program":"hello_1.0/hello","Version":"1.0"}`},
		{name: "hello_1.0/hello", body: "ELF"},
		{name: "hello_1.0/sysroot/etc/x", body: "x"},
	}), "")
	bad := f.add(t, Package{Namespace: "ns", Name: "tampered", Version: "1.0"}, tgz(t, []ent{{name: "t/package.manifest", body: "{}"}}), strings.Repeat("0", 64))
	hostile := f.add(t, Package{Namespace: "ns", Name: "hostile", Version: "1.0"}, tgz(t, []ent{
		{name: "h/package.manifest", body: "{}"}, {name: "h/../../../evil", body: "x"}}), "")
	unsigned := Package{Namespace: "ns", Name: "nosum", Version: "1"}
	home := t.TempDir()
	s := Store{Home: home, Arch: "amd64"}
	r := Repo{ManifestURL: f.srv.URL + "/v2/manifest.json"}
	ctx := context.Background()
	dir, err := s.Install(ctx, r, good, nil)
	if err != nil {
		t.Fatal(err)
	}
	if dir != filepath.Join(home, "packages", "amd64", "ns", "hello_1.0") || !s.Installed(good) {
		t.Fatalf("installed at %s", dir)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "sysroot", "etc", "x")); string(b) != "x" {
		t.Fatal("sysroot missing")
	}
	for _, tc := range []struct {
		p   Package
		err string
	}{{bad, "checksum mismatch"}, {hostile, "climbs out"}, {unsigned, "no SHA-256"}} {
		if _, err := s.Install(ctx, r, tc.p, nil); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want %q", tc.p.Name, err, tc.err)
		}
		if s.Installed(tc.p) {
			t.Errorf("%s installed", tc.p.Name)
		}
	}
	left, _ := filepath.Glob(filepath.Join(home, "packages", "amd64", "ns", ".*"))
	if len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
	if _, err := os.Stat(filepath.Join(home, "evil")); err == nil {
		t.Fatal("hostile package wrote outside")
	}
}

func TestAddLocal(t *testing.T) {
	s := Store{Home: t.TempDir(), Arch: "amd64"}
	src := filepath.Join(t.TempDir(), "mypkg_2.1")
	os.MkdirAll(filepath.Join(src, "sysroot", "lib"), 0o755)
	os.WriteFile(filepath.Join(src, ManifestFile), []byte(`{"Program":"mypkg_2.1/app","Version":"2.1","Language":"go"}`), 0o644)
	os.WriteFile(filepath.Join(src, "app"), []byte("x"), 0o755)
	os.Symlink("../app", filepath.Join(src, "sysroot", "app-link"))
	if _, err := s.AddLocal(src, "", "", nil); err != nil {
		t.Fatal(err)
	}
	pkgs, err := s.Local()
	if err != nil || len(pkgs) != 1 || pkgs[0].Ref() != "mypkg:2.1" || pkgs[0].Language != "go" {
		t.Fatalf("%+v %v", pkgs, err)
	}
	// A tarball with a link out of the package is refused.
	evil := filepath.Join(t.TempDir(), "evil_1.tar.gz")
	os.WriteFile(evil, tgz(t, []ent{{name: "e/package.manifest", body: `{"Version":"1"}`}, {name: "e/l", typ: tar.TypeSymlink, link: "/etc/passwd"}}), 0o644)
	if _, err := s.AddLocal(evil, "", "", nil); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Fatalf("evil tarball: %v", err)
	}
	// A folder with a link out is refused too.
	os.Symlink("/etc/passwd", filepath.Join(src, "out"))
	if _, err := s.AddLocal(src, "x", "1", nil); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Fatalf("folder with a link out: %v", err)
	}
	if pkgs, _ := s.Local(); len(pkgs) != 1 {
		t.Fatalf("refused packages were added: %+v", pkgs)
	}
}
