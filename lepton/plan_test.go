package lepton

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/internal/testutil"
)

// fakeRelease writes a release (testutil.FakeRelease) to dir.
func fakeRelease(t testing.TB, dir string) nanosKernel {
	t.Helper()
	r := testutil.FakeRelease(t, dir)
	return nanosKernel{Kernel: r.Kernel, Boot: r.Boot, KlibDir: r.KlibDir}
}

func TestPlanLayers(t *testing.T) {
	dir := t.TempDir()
	prog, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app"), prog, 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, filepath.Join(dir, "conf/app.yaml"), "a: 1")
	testutil.WriteFile(t, filepath.Join(dir, "static/css/site.css"), "body{}")
	testutil.WriteFile(t, filepath.Join(dir, "assets/one.txt"), "1")
	testutil.WriteFile(t, filepath.Join(dir, "assets/two.txt"), "2")
	if err := os.Symlink("css/site.css", filepath.Join(dir, "static/inside")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../conf/app.yaml", filepath.Join(dir, "static/outside")); err != nil {
		t.Fatal(err)
	}
	c := &Config{
		Files:       []string{"conf/app.yaml"},
		Dirs:        []string{"static"},
		MapDirs:     map[string]string{"assets/*": "/var/www"},
		Args:        []string{"-x"},
		Env:         map[string]string{"B": "2", "A": "1"},
		NameServers: []string{"1.1.1.1"},
	}
	p, err := newPlan(PlanInput{Config: c, Program: "./app", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]opsfs.Kind{
		"/app": opsfs.KindFile, "/conf/app.yaml": opsfs.KindFile, "/static/css/site.css": opsfs.KindFile,
		"/static/inside": opsfs.KindSymlink, "/static/outside": opsfs.KindFile,
		"/var/www/one.txt": opsfs.KindFile, "/var/www/two.txt": opsfs.KindFile,
		"/etc/resolv.conf": opsfs.KindFile, "/lib64/ld-linux-x86-64.so.2": opsfs.KindFile, "/etc/hosts": opsfs.KindFile,
	}
	for path, kind := range want {
		e, ok := p.Tree.Get(path)
		if !ok || e.Kind != kind {
			t.Errorf("%s: %+v, want kind %d", path, e, kind)
		}
	}
	if p.Program != "/app" || strings.Join(p.Args, " ") != "./app -x" {
		t.Fatalf("program %s args %v", p.Program, p.Args)
	}
	// The user's variables, and the defaults (HOME, PATH, PWD, USER), sorted.
	if len(p.Env) != 6 || p.Env[0] != (EnvVar{"A", "1"}) || !sort.SliceIsSorted(p.Env, func(i, j int) bool { return p.Env[i].Name < p.Env[j].Name }) {
		t.Fatalf("env not sorted: %v", p.Env)
	}
	if e, _ := p.Tree.Get("/app"); e.Mode != 0o755 {
		t.Fatalf("program mode %o", e.Mode)
	}
}

func TestPlanErrors(t *testing.T) {
	dir := t.TempDir()
	testutil.WriteFile(t, filepath.Join(dir, "script.sh"), "#!/bin/sh\n")
	testutil.WriteFile(t, filepath.Join(dir, "loop/inner/f"), "x")
	if err := os.Symlink("../../loop", filepath.Join(dir, "loop/inner/up")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		prog string
		c    Config
		err  string
	}{
		{"", Config{}, "no program"},
		{"./nope", Config{}, "nope"},
		{"./script.sh", Config{}, "not an ELF"},
		{"/bin/true", Config{Files: []string{"missing.txt"}}, "Files:"},
		{"/bin/true", Config{MapDirs: map[string]string{"nomatch/*": "/x"}}, "matches no files"},
		{"/bin/true", Config{Dirs: []string{"loop/inner"}}, "loop back"},
	} {
		_, err := newPlan(PlanInput{Config: &tc.c, Program: tc.prog, Dir: dir})
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s %+v: error %v, want %q", tc.prog, tc.c, err, tc.err)
		}
	}
}

func TestNanosImageRoundTrip(t *testing.T) {
	dir := t.TempDir()
	k := fakeRelease(t, dir)
	c := &Config{Env: map[string]string{"MODE": "prod"}, Klibs: []string{"strace"},
		ManifestPassthrough: map[string]any{"exec_wait_for_ip4_secs": "5", "uname": map[string]any{"sysname": "ops"}},
		RunConfig:           RunConfig{IPAddress: "10.3.0.10", Gateway: "10.3.0.1", NetMask: "255.255.255.0"}}
	p, err := newPlan(PlanInput{Config: c, Program: "/bin/true", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "images", "true")
	spec := imageSpec{Plan: p, Guest: &nanosGuest{Kernel: k}, Out: out}
	res, err := buildImage(spec)
	if err != nil {
		t.Fatal(err)
	}
	if res.Reused {
		t.Fatal("first build reported as reused")
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	boot, root, err := opsfs.OpenNanosDisk(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	kn, err := boot.Lookup("/kernel")
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := boot.ReadFile(kn)
	if want, _ := os.ReadFile(k.Kernel); !bytes.Equal(kb, want) {
		t.Fatal("boot filesystem /kernel differs from kernel.img")
	}
	if _, err := boot.Lookup("/klib/strace"); err != nil {
		t.Fatal(err)
	}
	got := opsfs.Format(root.Root)
	for _, w := range []string{"program:/true", "arguments:[/bin/true]", "MODE:prod", "HOME:/", "debug_exit:t",
		"klibs:bootfs", "en1:(gateway:10.3.0.1 ipaddr:10.3.0.10 netmask:255.255.255.0)", "exec_wait_for_ip4_secs:5", "uname:(sysname:ops)"} {
		if !strings.Contains(got, w) {
			t.Errorf("manifest lacks %s:\n%s", w, got)
		}
	}
	n, err := root.Lookup("/true")
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := root.ReadFile(n)
	if want, _ := os.ReadFile("/bin/true"); !bytes.Equal(pb, want) {
		t.Fatal("program contents differ")
	}
	// Disk layout: boot FS right after boot.img and the 4 KiB klog area,
	// root FS after the 12 MiB boot FS, image ends with the root FS.
	mbr := make([]byte, 512)
	f.ReadAt(mbr, 0)
	parts, _ := opsfs.ReadPartitions(mbr)
	if parts[0].LBA != (512+1024+4096)/512 || parts[0].Sectors != 12<<20/512 || parts[1].LBA != parts[0].LBA+parts[0].Sectors {
		t.Fatalf("partitions %+v", parts)
	}
	if int64(parts[1].LBA+parts[1].Sectors)*512 != st.Size() || st.Size()%512 != 0 {
		t.Fatalf("root partition %+v does not end the %d-byte image", parts[1], st.Size())
	}
	if st.Mode().Perm() != 0o644 {
		t.Fatalf("image mode %o", st.Mode().Perm())
	}

	// Unchanged inputs reuse the image; a touched source rebuilds it.
	if res, err = buildImage(spec); err != nil || !res.Reused {
		t.Fatalf("second build: reused=%v err=%v", res != nil && res.Reused, err)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(k.Kernel, later, later); err != nil {
		t.Fatal(err)
	}
	if res, err = buildImage(spec); err != nil || res.Reused {
		t.Fatalf("build after the kernel changed: reused=%v err=%v", res != nil && res.Reused, err)
	}
	// An image changed since it was built: TestBuildImageKeepsGuestWrites.
	if left, _ := filepath.Glob(filepath.Join(dir, "images", ".*tmp*")); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestNanosImageReproducible(t *testing.T) {
	var imgs [][]byte
	for i := 0; i < 2; i++ {
		dir := t.TempDir()
		k := fakeRelease(t, dir)
		p, err := newPlan(PlanInput{Config: &Config{Args: []string{"a"}}, Program: "/bin/ls", Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "img")
		if _, err := buildImage(imageSpec{Plan: p, Guest: &nanosGuest{Kernel: k}, Out: out}); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(out)
		imgs = append(imgs, b)
	}
	if !bytes.Equal(imgs[0], imgs[1]) {
		t.Fatal("the same inputs in two folders gave different images")
	}
}

func TestLayoutNanosErrors(t *testing.T) {
	dir := t.TempDir()
	k := fakeRelease(t, dir)
	p, err := newPlan(PlanInput{Config: &Config{Klibs: []string{"nope"}}, Program: "/bin/true", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := layoutNanos(p, k, 0, nil); err == nil || !strings.Contains(err.Error(), `klib "nope" not found`) {
		t.Fatalf("error %v", err)
	}
	p.Klibs = []string{"../x"}
	if _, err := layoutNanos(p, k, 0, nil); err == nil || !strings.Contains(err.Error(), "not a klib name") {
		t.Fatalf("error %v", err)
	}
	bad := k
	bad.Boot = k.Kernel
	p.Klibs = nil
	if _, err := layoutNanos(p, bad, 0, nil); err == nil || !strings.Contains(err.Error(), "boot.img") && !strings.Contains(err.Error(), "55AA") {
		t.Fatalf("error %v", err)
	}
}

// TestKlibPaths: a klib may sit in a folder of the klib folder, and lands
// at the same path under /klib; names that leave the folder are refused.
func TestKlibPaths(t *testing.T) {
	dir := t.TempDir()
	k := fakeRelease(t, dir)
	testutil.WriteFile(t, filepath.Join(k.KlibDir, "test", "klib"), "klib")
	for _, tc := range []struct {
		klib, path, err string
	}{
		{"strace", "/klib/strace", ""},
		{"test/klib", "/klib/test/klib", ""},
		{"./test//klib", "/klib/test/klib", ""},
		{"../x", "", "not a klib name"},
		{"test/../../x", "", "not a klib name"},
		{"/etc/passwd", "", "not a klib name"},
		{"", "", "not a klib name"},
	} {
		p, err := newPlan(PlanInput{Config: &Config{Klibs: []string{tc.klib}, NoDefaults: true}, Program: "/bin/true", Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		d, err := layoutNanos(p, k, 0, nil)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.klib, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.klib, err)
			continue
		}
		f, err := os.Create(filepath.Join(dir, "img"))
		if err != nil {
			t.Fatal(err)
		}
		if err := d.WriteTo(f); err != nil {
			t.Fatal(err)
		}
		boot, _, err := opsfs.OpenNanosDisk(f, d.Size())
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := boot.Lookup(tc.path); err != nil {
			t.Errorf("%q: no %s in the boot filesystem: %v", tc.klib, tc.path, err)
		}
	}
}

// TestBuildImageKeepsGuestWrites: an image a guest wrote to (ops run -s)
// is not rebuilt over: that would discard what the guest wrote.
func TestBuildImageKeepsGuestWrites(t *testing.T) {
	dir := t.TempDir()
	k := fakeRelease(t, dir)
	p, err := newPlan(PlanInput{Config: &Config{}, Program: "/bin/true", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	spec := imageSpec{Plan: p, Guest: &nanosGuest{Kernel: k}, Out: filepath.Join(dir, "img")}
	if _, err := buildImage(spec); err != nil {
		t.Fatal(err)
	}
	if r, err := buildImage(spec); err != nil || !r.Reused {
		t.Fatalf("unchanged rebuild: %+v %v", r, err)
	}
	// The guest writes to the image.
	f, err := os.OpenFile(spec.Out, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("guest data"), 1<<20)
	f.Close()
	later := time.Now().Add(2 * time.Second)
	os.Chtimes(spec.Out, later, later)
	for _, change := range []string{"same inputs", "changed inputs"} {
		if change == "changed inputs" {
			spec.Plan.Args = append(spec.Plan.Args, "-x")
		}
		if _, err := buildImage(spec); err == nil || !strings.Contains(err.Error(), "ops run -s") {
			t.Fatalf("%s: error %v", change, err)
		}
	}
	os.Remove(spec.Out)
	if _, err := buildImage(spec); err != nil {
		t.Fatalf("after removing the image: %v", err)
	}
}

// TestPlanDirLinks checks Dirs through links: a Dirs entry that is itself
// a link to a folder, and a link inside a folder to a folder outside it
// (both followed), beside links that stay inside (kept), across a tree
// wide and deep enough to be read on several goroutines.
func TestPlanDirLinks(t *testing.T) {
	dir := t.TempDir()
	want := map[string]string{}
	for i := 0; i < 30; i++ {
		for j := 0; j < 5; j++ {
			rel := filepath.Join("real", "d"+strings.Repeat("x", i%4), string(rune('a'+i)), string(rune('a'+j))+".txt")
			testutil.WriteFile(t, filepath.Join(dir, rel), rel)
			want["/static/"+filepath.ToSlash(strings.TrimPrefix(rel, "real/"))] = rel
		}
	}
	testutil.WriteFile(t, filepath.Join(dir, "elsewhere/data/x.txt"), "x")
	if err := os.Symlink("real", filepath.Join(dir, "static")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../elsewhere/data", filepath.Join(dir, "real/outside")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("dx/c/a.txt", filepath.Join(dir, "real/inside")); err != nil {
		t.Fatal(err)
	}
	want["/static/outside/x.txt"] = "x"
	p, err := newPlan(PlanInput{Config: &Config{Dirs: []string{"static"}}, Program: "/bin/true", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for g, content := range want {
		e, ok := p.Tree.Get(g)
		if !ok || e.Kind != opsfs.KindFile || e.Size != int64(len(content)) || e.Info == nil {
			t.Errorf("%s: %+v, want a %d-byte file with its status", g, e, len(content))
		}
	}
	if e, ok := p.Tree.Get("/static/inside"); !ok || e.Kind != opsfs.KindSymlink || e.Target != "dx/c/a.txt" {
		t.Errorf("/static/inside: %+v, want the link kept", e)
	}
	if e, ok := p.Tree.Get("/static/outside"); !ok || e.Kind != opsfs.KindDir {
		t.Errorf("/static/outside: %+v, want the folder it links to", e)
	}
}

// TestBootUUIDMemo checks that a build which finds the boot filesystem's
// UUID kept by an earlier one (and so does not hash the kernel) writes
// the same bytes, that a memo it cannot read is ignored, and that a
// changed kernel is not given the old UUID.
func TestBootUUIDMemo(t *testing.T) {
	dir := t.TempDir()
	k := fakeRelease(t, dir)
	memo := filepath.Join(dir, "memo")
	if err := os.Mkdir(memo, 0o755); err != nil {
		t.Fatal(err)
	}
	build := func(g *nanosGuest, name string) []byte {
		t.Helper()
		p, err := newPlan(PlanInput{Config: &Config{}, Program: "/bin/true", Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, name)
		if _, err := buildImage(imageSpec{Plan: p, Guest: g, Out: out}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	want := build(&nanosGuest{Kernel: k}, "plain")
	kept := &nanosGuest{Kernel: k, Memo: memo}
	if got := build(kept, "first"); !bytes.Equal(got, want) {
		t.Fatal("the build that keeps the UUID wrote other bytes")
	}
	memos, _ := filepath.Glob(filepath.Join(memo, ".boot-*.uuid"))
	if len(memos) != 1 {
		t.Fatalf("memo files %v, want one", memos)
	}
	if got := build(kept, "second"); !bytes.Equal(got, want) {
		t.Fatal("the build that recalled the UUID wrote other bytes")
	}
	if err := os.WriteFile(memos[0], []byte("not a uuid\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := build(kept, "third"); !bytes.Equal(got, want) {
		t.Fatal("an unreadable memo changed the image")
	}
	// A new kernel (another stamp) is hashed, not given the old UUID.
	kern, _ := os.ReadFile(k.Kernel)
	kern[len(kern)-1] ^= 0xff
	if err := os.WriteFile(k.Kernel+".new", kern, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(k.Kernel+".new", k.Kernel); err != nil {
		t.Fatal(err)
	}
	fresh := build(&nanosGuest{Kernel: k}, "fresh")
	if got := build(kept, "fourth"); !bytes.Equal(got, fresh) {
		t.Fatal("a changed kernel was given the old boot filesystem's UUID")
	}
}

// TestReadImageFile: image cat (and image cp -L) reads through links
// inside the image, one or more, within a folder and up from one.
func TestReadImageFile(t *testing.T) {
	dir := t.TempDir()
	k := fakeRelease(t, dir)
	data := filepath.Join(dir, "data")
	testutil.WriteFile(t, filepath.Join(data, "real.txt"), "real\n")
	testutil.WriteFile(t, filepath.Join(data, "sub", "keep"), "")
	for link, target := range map[string]string{"rel": "real.txt", "twice": "rel", "sub/up": "../real.txt"} {
		if err := os.Symlink(target, filepath.Join(data, link)); err != nil {
			t.Fatal(err)
		}
	}
	c := &Config{Dirs: []string{"data"}}
	p, err := newPlan(PlanInput{Config: c, Program: "/bin/true", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "images", "links")
	if _, err := buildImage(imageSpec{Plan: p, Guest: &nanosGuest{Kernel: k}, Out: out}); err != nil {
		t.Fatal(err)
	}
	err = Home{Dir: dir}.ReadImage(out, false, func(rd *opsfs.Reader) error {
		for _, name := range []string{"/data/real.txt", "/data/rel", "/data/twice", "/data/sub/up"} {
			if b, err := ReadImageFile(rd, name); err != nil || string(b) != "real\n" {
				t.Errorf("%s: %q, %v", name, b, err)
			}
		}
		// image cp -L follows the same links; without -L a link is a link.
		out := t.TempDir()
		if err := CopyOut(rd, "/data/twice", filepath.Join(out, "deref"), false, true); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(out, "deref")); err != nil || string(b) != "real\n" {
			t.Errorf("cp -L of a link to a link: %q, %v", b, err)
		}
		if err := CopyOut(rd, "/data/twice", filepath.Join(out, "link"), false, false); err != nil {
			t.Fatal(err)
		}
		if target, err := os.Readlink(filepath.Join(out, "link")); err != nil || target != "rel" {
			t.Errorf("cp of a link: %q, %v", target, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
