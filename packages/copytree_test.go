package packages

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// A treeSpec maps slash paths to contents: "name/" is a folder, a value
// starting with "-> " a symlink, anything else a file's contents. "$OUT"
// in a link stands for a folder outside both trees.
type treeSpec map[string]string

func mkTree(t *testing.T, root, out string, l treeSpec) {
	t.Helper()
	for name, v := range l {
		p := filepath.Join(root, filepath.FromSlash(strings.TrimSuffix(name, "/")))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case strings.HasSuffix(name, "/"):
			err = os.MkdirAll(p, 0o755)
		case strings.HasPrefix(v, "-> "):
			err = os.Symlink(strings.ReplaceAll(strings.TrimPrefix(v, "-> "), "$OUT", out), p)
		default:
			err = os.WriteFile(p, []byte(v), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func readTree(t *testing.T, root, out string) treeSpec {
	t.Helper()
	l := treeSpec{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		name := filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			l[name+"/"] = ""
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if out != "" {
				target = strings.ReplaceAll(target, out, "$OUT")
			}
			l[name] = "-> " + target
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			l[name] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestCopyTree(t *testing.T) {
	outside := treeSpec{"secret": "keep", "etc/": ""}
	cases := []struct {
		name   string
		rootFS bool
		src    treeSpec
		dest   treeSpec // already in the destination before the copy
		linkTo string   // when set, dest itself is a link to this
		want   treeSpec // the destination afterwards; ignored on error
		err    string   // substring of the error; "" means success
	}{
		{
			name: "files, nested folders and inside links",
			src: treeSpec{
				"package.manifest": "{}",
				"a/b/c.txt":        "deep",
				"a/empty/":         "",
				"a/link":           "-> b/c.txt",
				"top":              "-> a/b",
			},
			want: treeSpec{
				"package.manifest": "{}",
				"a/":               "", "a/b/": "", "a/empty/": "",
				"a/b/c.txt": "deep",
				"a/link":    "-> b/c.txt",
				"top":       "-> a/b",
			},
		},
		{
			name: "package link climbing out",
			src:  treeSpec{"a/up": "-> ../../secret"},
			err:  "points outside the package",
		},
		{
			name: "package link to an absolute path",
			src:  treeSpec{"lib": "-> $OUT"},
			err:  "points outside the package",
		},
		{
			name: "absolute links in sysroot name guest paths",
			src:  treeSpec{"sysroot/lib64": "-> /lib", "sysroot/lib/": ""},
			want: treeSpec{"sysroot/": "", "sysroot/lib/": "", "sysroot/lib64": "-> /lib"},
		},
		{
			name:   "root filesystem keeps links as written, unfollowed",
			rootFS: true,
			src:    treeSpec{"bin/sh": "-> /bin/busybox", "etc": "-> $OUT/etc", "out": "-> $OUT", "up": "-> ../../secret"},
			want:   treeSpec{"bin/": "", "bin/sh": "-> /bin/busybox", "etc": "-> $OUT/etc", "out": "-> $OUT", "up": "-> ../../secret"},
		},
		{
			name:   "no file written through a link already in dest",
			rootFS: true,
			src:    treeSpec{"secret": "overwritten"},
			dest:   treeSpec{"secret": "-> $OUT/secret"},
			err:    "refusing to write through it",
		},
		{
			name:   "no folder filled through a link already in dest",
			rootFS: true,
			src:    treeSpec{"etc/passwd": "root::0:0"},
			dest:   treeSpec{"etc": "-> $OUT/etc"},
			err:    "refusing to write through it",
		},
		{
			name:   "package copy into a dest that is a link",
			src:    treeSpec{"x": "y"},
			linkTo: "$OUT",
			err:    "refusing to write through it",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir()
			src, dest, out := filepath.Join(base, "src"), filepath.Join(base, "dest"), filepath.Join(base, "out")
			mkTree(t, out, out, outside)
			if err := os.Mkdir(src, 0o755); err != nil {
				t.Fatal(err)
			}
			mkTree(t, src, out, c.src)
			if c.linkTo != "" {
				mkTree(t, base, out, treeSpec{"dest": "-> " + c.linkTo})
			}
			mkTree(t, dest, out, c.dest)
			cp := copyPackageTree
			if c.rootFS {
				cp = CopyRootTree
			}
			err := cp(src, dest)
			if got := readTree(t, out, out); !reflect.DeepEqual(got, outside) {
				t.Fatalf("the folder outside changed: %v", got)
			}
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := readTree(t, dest, out); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("copied\n%v\nwant\n%v", got, c.want)
			}
		})
	}
}

func TestCopyTreeSpecialFiles(t *testing.T) {
	src := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(src, "fifo"), 0o644); err != nil {
		t.Skip("no fifos here:", err)
	}
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := copyPackageTree(src, filepath.Join(t.TempDir(), "d")); err == nil || !strings.Contains(err.Error(), "special files") {
		t.Fatalf("package copy of a fifo: %v", err)
	}
	dest := filepath.Join(t.TempDir(), "d")
	if err := CopyRootTree(src, dest); err != nil {
		t.Fatal(err)
	}
	if got := readTree(t, dest, ""); !reflect.DeepEqual(got, treeSpec{"f": "x"}) {
		t.Fatalf("root filesystem copy of a fifo: %v", got)
	}
}
