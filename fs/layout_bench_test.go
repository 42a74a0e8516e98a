package fs

import (
	"fmt"
	"testing"
)

// BenchmarkLayoutTFS lays out a tree shaped like a language runtime's
// library (1,500 files in 100 folders): the metadata work of a build.
func BenchmarkLayoutTFS(b *testing.B) {
	tree := NewTree()
	for i := 0; i < 1500; i++ {
		p := fmt.Sprintf("/usr/lib/python3/pkg%02d/module_%04d.py", i%100, i)
		if err := tree.Add(Entry{Path: p, Kind: KindFile, Source: "/nonexistent", Size: int64(1000 + i*37)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := LayoutTFS(tree, nil, TFSOptions{Slack: RootSlack}); err != nil {
			b.Fatal(err)
		}
	}
}
