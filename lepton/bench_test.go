package lepton

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opsdev/ops/arch"
	"github.com/opsdev/ops/internal/testutil"
)

// benchKernel uses an installed Nanos release when there is one (so sizes
// are real), else a stand-in kernel.
func benchKernel(b *testing.B) nanosKernel {
	src := os.Getenv("OPS_TEST_NANOS_HOME")
	if src == "" {
		h, _ := os.UserHomeDir()
		src = filepath.Join(h, ".ops")
	}
	if r, err := (Home{Dir: src}).Releases(arch.AMD64).Find(""); err == nil {
		return nanosKernel{Kernel: r.Kernel, Boot: r.Boot, KlibDir: r.KlibDir}
	}
	b.Log("no Nanos release installed: using a stand-in kernel (image sizes exclude the real kernel)")
	return fakeRelease(b, b.TempDir())
}

// benchProgram builds a test program once per benchmark.
func benchProgram(b *testing.B, name string) string {
	dir := b.TempDir()
	switch name {
	case "hello":
		testutil.WriteFile(b, filepath.Join(dir, "h.c"), "#include <stdio.h>\nint main(void){puts(\"hello\");return 0;}\n")
		c := exec.Command("gcc", "-O2", "-static", "-o", "hello", "h.c")
		c.Dir = dir
		if out, err := c.CombinedOutput(); err != nil {
			b.Skipf("SKIP: gcc: %v %s", err, out)
		}
		return filepath.Join(dir, "hello")
	case "goserver":
		testutil.WriteFile(b, filepath.Join(dir, "go.mod"), "module s\n\ngo 1.22\n")
		testutil.WriteFile(b, filepath.Join(dir, "main.go"), `package main

import (
	"fmt"
	"net/http"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	http.ListenAndServe(":8080", nil)
}
`)
		c := exec.Command("go", "build", "-o", "goserver", ".")
		c.Dir = dir
		c.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := c.CombinedOutput(); err != nil {
			b.Fatalf("go build: %v %s", err, out)
		}
		return filepath.Join(dir, "goserver")
	case "python3-stdlib":
		pythonLib(b)
		return "/usr/bin/python3"
	}
	b.Fatalf("unknown program %s", name)
	return ""
}

func benchSpec(b *testing.B, prog string, k nanosKernel, out string) imageSpec {
	c := &Config{}
	if filepath.Base(prog) == "python3" {
		c.Dirs = []string{pythonLib(b)}
	}
	p, err := newPlan(PlanInput{Config: c, Program: prog, Dir: filepath.Dir(prog)})
	if err != nil {
		b.Fatal(err)
	}
	return imageSpec{Plan: p, Guest: &nanosGuest{Kernel: k}, Out: out}
}

// BenchmarkNanosBuild measures a full build (plan, layout, write) of a new
// image, and reports the image size.
func BenchmarkNanosBuild(b *testing.B) {
	k := benchKernel(b)
	for _, name := range []string{"hello", "goserver", "python3-stdlib"} {
		b.Run(name, func(b *testing.B) {
			prog := benchProgram(b, name)
			st, _ := os.Stat(prog)
			dir := b.TempDir()
			var size int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				out := filepath.Join(dir, "img"+strings.Repeat("x", i%2))
				os.Remove(out)
				os.Remove(filepath.Join(dir, "."+filepath.Base(out)+".key"))
				res, err := buildImage(benchSpec(b, prog, k, out))
				if err != nil || res.Reused {
					b.Fatal(err)
				}
				size = res.Size
			}
			b.ReportMetric(float64(st.Size())/1e6, "program-MB")
			b.ReportMetric(float64(size)/1e6, "image-MB")
		})
	}
}

// BenchmarkNanosRebuildUnchanged measures `ops build` when nothing changed:
// plan and cache check only.
func BenchmarkNanosRebuildUnchanged(b *testing.B) {
	k := benchKernel(b)
	prog := benchProgram(b, "goserver")
	out := filepath.Join(b.TempDir(), "img")
	if _, err := buildImage(benchSpec(b, prog, k, out)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := buildImage(benchSpec(b, prog, k, out))
		if err != nil || !res.Reused {
			b.Fatal("not reused", err)
		}
	}
}

// pythonLib is the standard library folder of the host's python3
// (/usr/lib/python3.N), which the python3-stdlib benchmarks put in Dirs:
// a tree of ~1,500 files.
func pythonLib(b *testing.B) string {
	real, err := filepath.EvalSymlinks("/usr/bin/python3")
	if err != nil {
		b.Skip("SKIP: no /usr/bin/python3")
	}
	lib := filepath.Join("/usr/lib", filepath.Base(real))
	if _, err := os.Stat(filepath.Join(lib, "os.py")); err != nil {
		b.Skipf("SKIP: no python standard library in %s", lib)
	}
	return lib
}

// BenchmarkImageKey measures what an image is checked against before a
// build: the plan and every source file's stamp.
func BenchmarkImageKey(b *testing.B) {
	k := benchKernel(b)
	spec := benchSpec(b, benchProgram(b, "python3-stdlib"), k, filepath.Join(b.TempDir(), "img"))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := spec.key(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlanTree measures the plan of python3 with its standard library
// in Dirs: the walk, every file's status and the library closure.
func BenchmarkPlanTree(b *testing.B) {
	lib := pythonLib(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := newPlan(PlanInput{Config: &Config{Dirs: []string{lib}}, Program: "/usr/bin/python3", Dir: "/"}); err != nil {
			b.Fatal(err)
		}
	}
}
