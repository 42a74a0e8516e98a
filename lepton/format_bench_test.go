package lepton

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/opsdev/ops/imgfmt"
)

// BenchmarkFormats measures writing the Go server's Nanos image in each
// format from the built raw image (what `ops build --format F` adds to a
// build), beside the raw build itself, and reports each file's size.
func BenchmarkFormats(b *testing.B) {
	k := benchKernel(b)
	prog := benchProgram(b, "goserver")
	dir := b.TempDir()
	raw := filepath.Join(dir, "img")
	b.Run("raw-build", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			os.Remove(raw)
			os.Remove(filepath.Join(dir, ".img.key"))
			if _, err := buildImage(benchSpec(b, prog, k, raw)); err != nil {
				b.Fatal(err)
			}
		}
		st, _ := os.Stat(raw)
		b.ReportMetric(float64(st.Size())/1e6, "file-MB")
	})
	for _, f := range imgfmt.Formats()[1:] {
		b.Run(string(f), func(b *testing.B) {
			out := filepath.Join(dir, "out"+f.Ext())
			var size int64
			for i := 0; i < b.N; i++ {
				src, err := os.Open(raw)
				if err != nil {
					b.Fatal(err)
				}
				os.Remove(out)
				dst, err := os.Create(out)
				if err != nil {
					b.Fatal(err)
				}
				if err := imgfmt.Convert(dst, src, f); err != nil {
					b.Fatal(err)
				}
				st, _ := dst.Stat()
				size = st.Size()
				dst.Close()
				src.Close()
			}
			b.ReportMetric(float64(size)/1e6, "file-MB")
		})
	}
}
