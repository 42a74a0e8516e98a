package fs

import (
	"fmt"
	"math"
)

// newc cpio ("070701") for the Linux guest's initramfs (WriteCPIO). Every
// header field is eight hex digits; names and data are padded to four
// bytes.

// appendCPIOHeader appends an entry's header, name and the padding after it.
func appendCPIOHeader(b []byte, ino uint32, name string, mode uint32, size int64) ([]byte, error) {
	if size > math.MaxUint32 {
		return nil, fmt.Errorf("%s: %d bytes is too large for a cpio archive", name, size)
	}
	nlink := uint32(1)
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	start := len(b)
	b = append(b, "070701"...)
	for _, v := range [13]uint32{ino, mode, 0, 0, nlink, 0, uint32(size), 0, 0, 0, 0, uint32(len(name) + 1), 0} {
		b = appendHex8(b, v)
	}
	b = append(b, name...)
	b = append(b, 0)
	return append(b, pad4[:(4-(len(b)-start)%4)%4]...), nil
}

var pad4 [4]byte

// appendHex8 appends v as eight lower-case hex digits.
func appendHex8(b []byte, v uint32) []byte {
	const digits = "0123456789abcdef"
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, digits[v>>uint(shift)&0xf])
	}
	return b
}
