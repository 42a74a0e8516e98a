// Package proc tells a running process from one that has ended, by its
// PID and its start time: a PID alone may have been reused since.
package proc

import (
	"errors"
	"os"
	"strconv"
	"strings"
)

// Start is a process's start time in clock ticks since boot, field 22
// of /proc/PID/stat; an error for a process that has ended.
func Start(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, errors.New("malformed /proc stat")
	}
	// A zombie has ended; only its parent has not reaped it yet (a
	// supervisor's parent may be an init that never does).
	if f[0] == "Z" || f[0] == "X" {
		return 0, errors.New("process has ended")
	}
	// f[0] is field 3 (state); field 22 is f[19].
	return strconv.ParseUint(f[19], 10, 64)
}

// Alive reports whether pid is the process that started at start (clock
// ticks since boot).
func Alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, err := Start(pid)
	return err == nil && st == start
}
