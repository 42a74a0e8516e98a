package fileutil

import (
	"os"
	"strconv"
	"syscall"
)

// AppendStamp appends what identifies a file's version without reading
// it: its size, modification time, inode and mode.
func AppendStamp(b []byte, st os.FileInfo) []byte {
	ino := uint64(0)
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = s.Ino
	}
	b = strconv.AppendInt(b, st.Size(), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, st.ModTime().UnixNano(), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, ino, 10)
	b = append(b, ' ')
	return strconv.AppendUint(b, uint64(st.Mode()), 8)
}

// Stamp is AppendStamp's text.
func Stamp(st os.FileInfo) string { return string(AppendStamp(nil, st)) }
