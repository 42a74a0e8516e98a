package packages

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type ent struct {
	name, link string
	typ        byte
	body       string
	size       int64 // overrides len(body) in the header when set
}

func mkTar(ents []ent) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body))}
		if e.typ == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if e.size > 0 {
			h.Size = e.size
		}
		tw.WriteHeader(h)
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func TestExtractGood(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "pkg")
	data := mkTar([]ent{
		{name: "node_20/", typ: tar.TypeDir},
		{name: "node_20/package.manifest", body: `{"Program":"node_20/node"}`},
		{name: "node_20/sysroot/lib/libx.so.1", body: "lib"},
		{name: "node_20/sysroot/lib/libx.so", typ: tar.TypeSymlink, link: "libx.so.1"},
		{name: "node_20/hard", typ: tar.TypeLink, link: "node_20/package.manifest"},
		{name: "./node_20/./sub/../other.txt", body: "x"},
		{name: "node_20/sysroot/bin", typ: tar.TypeSymlink, link: "/usr/bin"},
	})
	if err := extractTar(bytes.NewReader(data), dest, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"node_20/package.manifest", "node_20/sysroot/lib/libx.so", "node_20/hard", "node_20/other.txt"} {
		if _, err := os.Stat(filepath.Join(dest, p)); err != nil {
			t.Error(err)
		}
	}
}

func TestExtractHostile(t *testing.T) {
	small := Limits{MaxFileSize: 100, MaxTotalSize: 150, MaxEntries: 5}
	cases := []struct {
		name string
		ents []ent
		lim  Limits
		err  string
	}{
		{"absolute path", []ent{{name: "/etc/evil", body: "x"}}, DefaultLimits(), "absolute"},
		{"dot-dot escape", []ent{{name: "a/../../evil", body: "x"}}, DefaultLimits(), "climbs out"},
		{"symlink out", []ent{{name: "l", typ: tar.TypeSymlink, link: "../../etc"}}, DefaultLimits(), "outside"},
		{"absolute symlink", []ent{{name: "l", typ: tar.TypeSymlink, link: "/etc/passwd"}}, DefaultLimits(), "outside"},
		{"absolute symlink beside the sysroot", []ent{{name: "p/notsysroot/l", typ: tar.TypeSymlink, link: "/etc"}}, DefaultLimits(), "outside"},
		{"write through a sysroot link", []ent{{name: "p/sysroot/etc", typ: tar.TypeSymlink, link: "/etc"}, {name: "p/sysroot/etc/evil", body: "x"}}, DefaultLimits(), "through the link"},
		{"write through a symlink", []ent{{name: "d", typ: tar.TypeSymlink, link: "."}, {name: "d/x", body: "x"}}, DefaultLimits(), "through the link"},
		{"hard link out", []ent{{name: "h", typ: tar.TypeLink, link: "../../etc/passwd"}}, DefaultLimits(), "outside"},
		{"device", []ent{{name: "dev", typ: tar.TypeChar}}, DefaultLimits(), "not allowed"},
		{"fifo", []ent{{name: "p", typ: tar.TypeFifo}}, DefaultLimits(), "not allowed"},
		{"file too big", []ent{{name: "big", body: strings.Repeat("x", 101)}}, small, "limit"},
		{"total too big", []ent{{name: "a", body: strings.Repeat("x", 90)}, {name: "b", body: strings.Repeat("x", 90)}}, small, "more than"},
		{"too many entries", []ent{{name: "1"}, {name: "2"}, {name: "3"}, {name: "4"}, {name: "5"}, {name: "6"}}, small, "more than 5 entries"},
		{"duplicate file", []ent{{name: "a", body: "1"}, {name: "a", body: "2"}}, DefaultLimits(), "exists"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			outside := filepath.Join(parent, "outside")
			os.Mkdir(outside, 0o755)
			dest := filepath.Join(parent, "a", "b", "pkg")
			os.MkdirAll(filepath.Dir(dest), 0o755)
			err := extractTar(bytes.NewReader(mkTar(tc.ents)), dest, tc.lim)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
			if _, err := os.Stat(dest); !os.IsNotExist(err) {
				t.Fatal("destination left behind after a rejected archive")
			}
			left, _ := os.ReadDir(outside)
			if len(left) > 0 {
				t.Fatal("something was written outside the destination")
			}
			if _, err := os.Stat(filepath.Join(parent, "evil")); err == nil {
				t.Fatal("escape wrote evil")
			}
		})
	}
}

func TestExtractRootFSMode(t *testing.T) {
	lim := DefaultLimits()
	lim.RootFS = true
	dest := filepath.Join(t.TempDir(), "root")
	// Absolute links are kept as written; special files are skipped.
	if err := extractTar(bytes.NewReader(mkTar([]ent{
		{name: "bin", typ: tar.TypeSymlink, link: "/usr/bin"},
		{name: "dev/null", typ: tar.TypeChar},
		{name: "usr/bin/x", body: "x"},
	})), dest, lim); err != nil {
		t.Fatal(err)
	}
	if l, _ := os.Readlink(filepath.Join(dest, "bin")); l != "/usr/bin" {
		t.Fatalf("link %q", l)
	}
	// Still: no climbing out, no writing through a link.
	for _, ents := range [][]ent{
		{{name: "../evil", body: "x"}},
		{{name: "etc", typ: tar.TypeSymlink, link: "/tmp"}, {name: "etc/evil", body: "x"}},
	} {
		d := filepath.Join(t.TempDir(), "r")
		if err := extractTar(bytes.NewReader(mkTar(ents)), d, lim); err == nil {
			t.Fatalf("%v accepted", ents)
		}
		if _, err := os.Stat("/tmp/evil"); err == nil {
			t.Fatal("wrote /tmp/evil")
		}
	}
}

func TestExtractTarGzNotGzip(t *testing.T) {
	err := ExtractTarGz(strings.NewReader("plain"), filepath.Join(t.TempDir(), "x"), DefaultLimits())
	if err == nil || !strings.Contains(err.Error(), "gzip") {
		t.Fatalf("error %v", err)
	}
}

func FuzzExtractTar(f *testing.F) {
	f.Add(mkTar([]ent{{name: "a/b", body: "x"}, {name: "l", typ: tar.TypeSymlink, link: "a/b"}}))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(mkTar([]ent{{name: "../x", body: "x"}}))
	zw.Close()
	f.Add(gz.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		parent := t.TempDir()
		dest := filepath.Join(parent, "d")
		err := extractTar(bytes.NewReader(b), dest, Limits{MaxFileSize: 1 << 20, MaxTotalSize: 4 << 20, MaxEntries: 100})
		// Whatever happened, nothing may exist in parent but dest.
		ents, _ := os.ReadDir(parent)
		for _, e := range ents {
			if e.Name() != "d" {
				t.Fatalf("wrote %s outside the destination", e.Name())
			}
		}
		if err != nil && len(ents) > 0 {
			t.Fatal("rejected archive left its destination behind")
		}
	})
}
