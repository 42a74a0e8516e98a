package lepton

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/opsdev/ops/internal/fileutil"
	"github.com/opsdev/ops/internal/proc"
)

// TestBuildImageClearsStale: a build removes what a killed build left in
// the images folder, and nothing of a live writer's.
func TestBuildImageClearsStale(t *testing.T) {
	home := Home{Dir: t.TempDir()}
	k := fakeRelease(t, home.Dir)
	p, err := newPlan(PlanInput{Config: &Config{}, Program: "/bin/true", Dir: home.Dir})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := home.imagePath("true")
	os.MkdirAll(filepath.Dir(out), 0o755)
	c := exec.Command("true")
	c.Start()
	start, _ := proc.Start(c.Process.Pid)
	c.Wait()
	dead := filepath.Join(filepath.Dir(out), ".true.tmp-"+strconv.Itoa(c.Process.Pid)+"-"+strconv.FormatUint(start, 10)+"-0a0b")
	os.WriteFile(dead, []byte("half an image"), 0o644)
	live, err := fileutil.CreateTemp(filepath.Dir(out), "other")
	if err != nil {
		t.Fatal(err)
	}
	live.Close()
	if _, err := buildImage(imageSpec{Plan: p, Guest: &nanosGuest{Kernel: k}, Out: out}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); err == nil {
		t.Error("a dead build's temporary file is still there")
	}
	if _, err := os.Stat(live.Name()); err != nil {
		t.Error("a live writer's temporary file was removed")
	}
}

// TestBuildImageConcurrent: builds of one image name from different
// plans take turns: the key left names the image left, and each build's
// result is the image it wrote.
func TestBuildImageConcurrent(t *testing.T) {
	home := Home{Dir: t.TempDir()}
	k := fakeRelease(t, home.Dir)
	out, _ := home.imagePath("app")
	var specs []imageSpec
	for _, args := range []string{"one", "two", "three", "four"} {
		p, err := newPlan(PlanInput{Config: &Config{Args: []string{args}}, Program: "/bin/true", Dir: home.Dir})
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, imageSpec{Plan: p, Guest: &nanosGuest{Kernel: k}, Out: out})
	}
	var wg sync.WaitGroup
	for _, spec := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := buildImage(spec); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	b, err := os.ReadFile(keyPath(out))
	if err != nil {
		t.Fatal(err)
	}
	key, stamp, _ := strings.Cut(string(b), "\n")
	st, _ := os.Stat(out)
	if stamp != fileutil.Stamp(st) {
		t.Fatal("the key is not the image's")
	}
	// The key left is one of the plans', and building that plan again
	// reuses the image.
	for _, spec := range specs {
		if k, _ := spec.key(); k == key {
			if res, err := buildImage(spec); err != nil || !res.Reused {
				t.Fatalf("reuse: %+v %v", res, err)
			}
			return
		}
	}
	t.Fatal("the key left is none of the builds'")
}

// TestDeleteImageInUse: an image a VM holds (lockVolumes) is not deleted.
func TestDeleteImageInUse(t *testing.T) {
	home := Home{Dir: t.TempDir()}
	p, _ := home.imagePath("app")
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, []byte("image"), 0o644)
	st, _ := os.Stat(p)
	b := &Built{BuildResult: &BuildResult{Path: p, stamp: fileutil.Stamp(st)}}
	release, err := b.lockVolumes()
	if err != nil {
		t.Fatal(err)
	}
	if err := home.DeleteImage("app"); err == nil || !strings.Contains(err.Error(), "image app is in use") {
		t.Fatalf("delete of an image in use: %v", err)
	}
	release()
	if err := home.DeleteImage("app"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err == nil {
		t.Fatal("image still there")
	}
	// A boot of an image another build has replaced since is refused.
	os.WriteFile(p, []byte("another build's"), 0o644)
	if _, err := b.lockVolumes(); err == nil || !strings.Contains(err.Error(), "built again by another ops") {
		t.Fatalf("boot of a replaced image: %v", err)
	}
}
