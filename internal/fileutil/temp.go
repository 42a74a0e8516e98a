package fileutil

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opsdev/ops/internal/proc"
)

// A temporary file or folder is named .BASE.tmp-PID-START-RANDOM: the
// writer's process ID and its start time (clock ticks since boot), so a
// later ops tells a live writer's (the process is still there) from a
// dead one's (it is gone, or the PID now belongs to another process).
const tempMark = ".tmp-"

// tempName is a new temporary name for base, written by this process.
func tempName(base string) (string, error) {
	pid := os.Getpid()
	start, err := proc.Start(pid)
	if err != nil {
		return "", err
	}
	var r [4]byte
	rand.Read(r[:])
	return "." + base + tempMark + strconv.Itoa(pid) + "-" + strconv.FormatUint(start, 10) + "-" + hex.EncodeToString(r[:]), nil
}

// CreateTemp makes a new temporary file in dir for base (the name of
// what it will become, or of what it is for), named after its writer
// so that ClearStale can remove it once the writer is dead.
func CreateTemp(dir, base string) (*os.File, error) {
	for range 100 {
		name, err := tempName(base)
		if err != nil {
			return nil, err
		}
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, &os.PathError{Op: "createtemp", Path: filepath.Join(dir, "."+base+tempMark+"*"), Err: os.ErrExist}
}

// MkdirTemp is CreateTemp for a folder.
func MkdirTemp(dir, base string) (string, error) {
	for range 100 {
		name, err := tempName(base)
		if err != nil {
			return "", err
		}
		p := filepath.Join(dir, name)
		err = os.Mkdir(p, 0o700)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		return p, err
	}
	return "", &os.PathError{Op: "mkdirtemp", Path: filepath.Join(dir, "."+base+tempMark+"*"), Err: os.ErrExist}
}

// tempWriter reads the writer back from a temporary name: ok is false
// for a name that is not one.
func tempWriter(name string) (pid int, start uint64, ok bool) {
	i := strings.LastIndex(name, tempMark)
	if !strings.HasPrefix(name, ".") || i < 2 {
		return 0, 0, false
	}
	f := strings.Split(name[i+len(tempMark):], "-")
	if len(f) != 3 {
		return 0, 0, false
	}
	pid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	_, err3 := hex.DecodeString(f[2])
	if err1 != nil || err2 != nil || err3 != nil || pid <= 0 {
		return 0, 0, false
	}
	return pid, start, true
}

// legacyTemp matches the temporaries of an ops from before writers were
// named in them (os.CreateTemp's and os.MkdirTemp's random digits).
var legacyTemp = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^\.(.+\.tmp|get|add|pull|release|download|from-[a-z]+)-[0-9]+$`)
})

// legacyAge is how long a temporary of an older ops must have been left
// alone before ClearStale takes its writer for dead: its name does not
// say who wrote it, and a writer still at work changes it sooner.
const legacyAge = time.Hour

// ClearStale removes from dir the temporary files and folders whose
// writers are dead (killed, or lost in a power cut), and leaves a live
// writer's alone. A missing dir has nothing to clear.
func ClearStale(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var first error
	for _, e := range ents {
		if !stale(e, time.Now()) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// stale reports whether e is a temporary whose writer is dead.
func stale(e os.DirEntry, now time.Time) bool {
	if pid, start, ok := tempWriter(e.Name()); ok {
		return !proc.Alive(pid, start)
	}
	if !legacyTemp().MatchString(e.Name()) {
		return false
	}
	info, err := e.Info()
	return err == nil && now.Sub(info.ModTime()) > legacyAge
}

// RemoveAll removes a folder (or file) so that it is there whole or not
// at all: it is first renamed to a temporary name, which ClearStale
// finishes removing should this process be killed on the way.
func RemoveAll(path string) error {
	name, err := tempName(filepath.Base(path))
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), name)
	if err := os.Rename(path, tmp); errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return err
	}
	return os.RemoveAll(tmp)
}
