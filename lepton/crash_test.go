package lepton

import (
	"errors"
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
	left, ok := readImageKey(keyPath(out))
	if !ok {
		t.Fatal("no key left")
	}
	st, _ := os.Stat(out)
	if left.stamp != fileutil.Stamp(st) {
		t.Fatal("the key is not the image's")
	}
	// The key left is one of the plans', and building that plan again
	// reuses the image.
	for _, spec := range specs {
		if k, _ := spec.key(); k == left.key {
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

// TestImageKeyTrust: an image built without waiting for the disk is
// reused in the boot that wrote it, built again in another (a power cut
// may have torn it) unless KeepImage put it on the disk, and a key that
// is torn or from an older ops is no key.
func TestImageKeyTrust(t *testing.T) {
	home := Home{Dir: t.TempDir()}
	k := fakeRelease(t, home.Dir)
	out, _ := home.imagePath("app")
	p, err := newPlan(PlanInput{Config: &Config{}, Program: "/bin/true", Dir: home.Dir})
	if err != nil {
		t.Fatal(err)
	}
	spec := imageSpec{Plan: p, Guest: &nanosGuest{Kernel: k}, Out: out}
	build := func() *BuildResult {
		t.Helper()
		res, err := buildImage(spec)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	setKey := func(k imageKey) {
		t.Helper()
		if err := fileutil.WriteAtomicWith(keyPath(out), 0o644, k.write); err != nil {
			t.Fatal(err)
		}
	}
	build()
	key, ok := readImageKey(keyPath(out))
	if !ok || key.synced || key.boot != bootID() || key.boot == "" {
		t.Fatalf("key after a build: %+v %v, want this boot's (%s)", key, ok, bootID())
	}
	if !build().Reused {
		t.Fatal("not reused in the boot that built it")
	}
	other := key
	other.boot = "another-boot"
	setKey(other)
	if build().Reused {
		t.Fatal("an unsynced image of another boot was reused")
	}
	if err := KeepImage(out); err != nil {
		t.Fatal(err)
	}
	kept, _ := readImageKey(keyPath(out))
	if !kept.synced {
		t.Fatalf("KeepImage left %+v", kept)
	}
	if !kept.trusted("another-boot") || !build().Reused {
		t.Fatal("a kept image was not reused")
	}
	for _, torn := range []string{"", kept.key, kept.key + "\n" + kept.stamp, kept.key + "\n" + kept.stamp + "\nboot \n", kept.key + "\n" + kept.stamp + "\nmaybe\n"} {
		if err := os.WriteFile(keyPath(out), []byte(torn), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, ok := readImageKey(keyPath(out)); ok {
			t.Fatalf("key %q was read", torn)
		}
		if build().Reused {
			t.Fatalf("an image with key %q was reused", torn)
		}
	}
	if err := KeepImage(filepath.Join(home.Dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("KeepImage of a missing image: %v", err)
	}
}
