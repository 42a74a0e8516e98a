//go:build linux && (amd64 || arm64)

package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// QEMU's arm64 virt machine, booted without firmware, describes its power
// button in the device tree as a gpio-keys key (KEY_POWER) on line 3 of
// its PL061 GPIO controller, and raises that line on system_powerdown.
// A kernel with the gpio-keys driver makes it an input device
// (isPowerButton); Debian's arm64 cloud kernel has no such driver, so
// init asks the GPIO controller's character device for the line's edges.

// Line request flags of the GPIO character device (uapi linux/gpio.h).
const (
	gpioLineActiveLow  = 1 << 1
	gpioLineInput      = 1 << 2
	gpioLineEdgeRising = 1 << 4
)

// keyPower is KEY_POWER, the power button's key code.
const keyPower = 116

// gpioPowerKey is the GPIO line the device tree wires the power key to,
// requested for its rising edges (a press); nil where there is none, or
// where the line is taken (by the gpio-keys driver, whose input device
// is then read instead).
func gpioPowerKey() *os.File {
	codes, _ := filepath.Glob("/proc/device-tree/*/*/linux,code")
	for _, c := range codes {
		key := filepath.Dir(c)
		compatible, _ := os.ReadFile(filepath.Join(filepath.Dir(key), "compatible"))
		code, _ := os.ReadFile(c)
		gpios, _ := os.ReadFile(filepath.Join(key, "gpios"))
		phandle, line, activeLow, ok := powerKeyLine(compatible, code, gpios)
		if !ok {
			continue
		}
		chip := gpioChip(phandle)
		if chip == "" {
			continue
		}
		if f, err := requestEdges(chip, line, activeLow); err == nil {
			return f
		}
	}
	return nil
}

// powerKeyLine reads a gpio-keys key in the device tree: the node's
// compatible strings, the key's linux,code, and its gpios (big-endian
// cells: the controller's phandle, the line, the line's flags). ok says
// whether it is the power key.
func powerKeyLine(compatible, code, gpios []byte) (phandle, line uint32, activeLow, ok bool) {
	if !slices.Contains(strings.Split(string(compatible), "\x00"), "gpio-keys") ||
		len(code) != 4 || binary.BigEndian.Uint32(code) != keyPower || len(gpios) < 8 {
		return 0, 0, false, false
	}
	phandle, line = binary.BigEndian.Uint32(gpios), binary.BigEndian.Uint32(gpios[4:])
	if len(gpios) >= 12 {
		activeLow = binary.BigEndian.Uint32(gpios[8:])&1 != 0 // GPIO_ACTIVE_LOW
	}
	return phandle, line, activeLow, true
}

// gpioChip is the character device of the GPIO controller whose device
// tree node has phandle; "" when none has.
func gpioChip(phandle uint32) string {
	m, _ := filepath.Glob("/sys/bus/gpio/devices/gpiochip*/of_node/phandle")
	for _, p := range m {
		b, _ := os.ReadFile(p)
		if len(b) == 4 && binary.BigEndian.Uint32(b) == phandle {
			return "/dev/" + filepath.Base(filepath.Dir(filepath.Dir(p)))
		}
	}
	return ""
}

// requestEdges requests line of chip as an input reporting its rising
// edges (inactive to active): the file its events are read from.
func requestEdges(chip string, line uint32, activeLow bool) (*os.File, error) {
	c, err := os.OpenFile(chip, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var req unix.GPIOV2LineRequest
	req.Offsets[0] = line
	copy(req.Consumer[:], "ops-init power key")
	req.Num_lines = 1
	req.Config.Flags = gpioLineInput | gpioLineEdgeRising
	if activeLow {
		req.Config.Flags |= gpioLineActiveLow
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, c.Fd(), unix.GPIO_V2_GET_LINE_IOCTL, uintptr(unsafe.Pointer(&req))); e != 0 {
		return nil, fmt.Errorf("%s line %d: %w", chip, line, e)
	}
	return os.NewFile(uintptr(req.Fd), fmt.Sprintf("%s line %d", chip, line)), nil
}

// watchGPIOKey turns each press of the power key, an edge event on its
// line, into SIGTERM for the program.
func watchGPIOKey(line *os.File, pid int) {
	defer line.Close()
	ev := make([]byte, unsafe.Sizeof(unix.GPIOV2LineEvent{}))
	for {
		n, err := line.Read(ev)
		if err != nil {
			return
		}
		if gpioPressed(ev[:n]) {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	}
}

// gpioPressed says whether a line event (struct gpio_v2_line_event: the
// time in ns, then the event's id) is a rising edge, the key going down.
func gpioPressed(ev []byte) bool {
	return len(ev) >= 12 && binary.NativeEndian.Uint32(ev[8:]) == unix.GPIO_V2_LINE_EVENT_RISING_EDGE
}
