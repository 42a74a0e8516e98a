package fs

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestReadDir(t *testing.T) {
	tree := NewTree()
	for _, e := range []Entry{
		{Path: "/hello", Kind: KindFile, Data: []byte("hi\n")},
		{Path: "/empty", Kind: KindFile, Data: []byte{}},
		{Path: "/lib/link", Kind: KindSymlink, Target: "../hello"},
		{Path: "/lib/sub/deep", Kind: KindFile, Data: []byte("12345")},
		{Path: "/var/empty", Kind: KindDir},
	} {
		if err := tree.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	_, img := writeTFS(t, tree, NewTuple().Set("program", String("/hello")))
	rd, err := OpenTFS(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path string
		want []DirEntry
		err  string // substring of the error; "" means success
	}{
		{"/", []DirEntry{
			{Name: "empty", Kind: KindFile, Size: 0},
			{Name: "hello", Kind: KindFile, Size: 3},
			{Name: "lib", Kind: KindDir},
			{Name: "var", Kind: KindDir},
		}, ""},
		{"", []DirEntry{
			{Name: "empty", Kind: KindFile, Size: 0},
			{Name: "hello", Kind: KindFile, Size: 3},
			{Name: "lib", Kind: KindDir},
			{Name: "var", Kind: KindDir},
		}, ""},
		{"/lib", []DirEntry{
			{Name: "link", Kind: KindSymlink, Target: "../hello"},
			{Name: "sub", Kind: KindDir},
		}, ""},
		{"lib/sub/", []DirEntry{{Name: "deep", Kind: KindFile, Size: 5}}, ""},
		{"/var/empty", nil, ""},
		{"/hello", nil, "/hello is not a folder"},
		{"/lib/link", nil, "/lib/link is not a folder"},
		{"/missing", nil, "no such file"},
		{"/hello/x", nil, "not a directory"},
	}
	for _, c := range cases {
		got, err := rd.ReadDir(c.path)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ReadDir(%q): error %v, want one containing %q", c.path, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ReadDir(%q): %v", c.path, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("ReadDir(%q) = %+v, want %+v", c.path, got, c.want)
		}
	}
}

// A log from elsewhere may hold values ops never writes: ReadDir skips
// children that are not tuples and prints odd link targets with Format.
func TestReadDirOddNodes(t *testing.T) {
	ch := NewTuple().
		Set("b", String("not a node")).
		Set("a", NewTuple().Set("linktarget", Vector{String("x"), Int(1)})).
		Set("c", NewTuple().Set("filelength", String("42")))
	rd := &Reader{Root: NewTuple().Set("children", ch)}
	got, err := rd.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	want := []DirEntry{
		{Name: "a", Kind: KindSymlink, Target: "[x 1]"},
		{Name: "c", Kind: KindFile, Size: 42},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadDir = %+v, want %+v", got, want)
	}
}
