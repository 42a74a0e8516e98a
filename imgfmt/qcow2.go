package imgfmt

import (
	"bufio"
	"encoding/binary"
	"os"

	goerrors "github.com/go-errors/errors"
)

// qcow2 version 3 (QEMU's docs/interop/qcow2.txt): 64 KiB clusters, 16-bit
// refcounts, no compression, no snapshots. The file is laid out in one
// pass: header, L1 table, refcount table, refcount blocks, L2 tables, then
// the data clusters in guest order. Zero clusters are left unallocated.
const (
	qcowClusterBits = 16
	qcowCluster     = 1 << qcowClusterBits
	qcowL2Entries   = qcowCluster / 8 // 8-byte entries
	qcowRefsBlock   = qcowCluster / 2 // 16-bit refcounts
	qcowCopied      = 1 << 63         // refcount is exactly 1: writable in place
	qcowHeaderLen   = 104
)

func writeQCOW2(dst *os.File, s *source) error {
	nv := s.chunks() // virtual clusters; chunkSize == qcowCluster
	l1Size := (nv + qcowL2Entries - 1) / qcowL2Entries
	var l2s []int64 // L1 indices that get an L2 table
	var data int64
	for l1 := int64(0); l1 < l1Size; l1++ {
		if s.anyUsed(l1*qcowL2Entries, (l1+1)*qcowL2Entries) {
			l2s = append(l2s, l1)
		}
	}
	for _, u := range s.used {
		if u {
			data++
		}
	}
	l1Clusters := max(1, (l1Size*8+qcowCluster-1)/qcowCluster)
	// The refcount structures count themselves: grow them until they
	// cover every cluster of the file.
	var rb, rt, total int64
	for rb = 1; ; rb++ {
		rt = (rb*8 + qcowCluster - 1) / qcowCluster
		total = 1 + l1Clusters + rt + rb + int64(len(l2s)) + data
		if total <= rb*qcowRefsBlock {
			break
		}
	}
	l1Off := int64(qcowCluster)
	rtOff := l1Off + l1Clusters*qcowCluster
	rbOff := rtOff + rt*qcowCluster
	l2Off := rbOff + rb*qcowCluster
	dataOff := l2Off + int64(len(l2s))*qcowCluster

	w := bufio.NewWriterSize(dst, 1<<20)
	put := func(b []byte) error { _, err := w.Write(b); return err }
	be := binary.BigEndian

	hdr := make([]byte, qcowCluster)
	be.PutUint32(hdr[0:], 0x514649fb) // "QFI\xfb"
	be.PutUint32(hdr[4:], 3)
	be.PutUint32(hdr[20:], qcowClusterBits)
	be.PutUint64(hdr[24:], uint64(s.size))
	be.PutUint32(hdr[36:], uint32(l1Size))
	be.PutUint64(hdr[40:], uint64(l1Off))
	be.PutUint64(hdr[48:], uint64(rtOff))
	be.PutUint32(hdr[56:], uint32(rt))
	be.PutUint32(hdr[96:], 4) // refcount_order: 16 bits
	be.PutUint32(hdr[100:], qcowHeaderLen)
	// Bytes 104.. are zero: the end-of-extensions marker.
	if err := put(hdr); err != nil {
		return goerrors.Wrap(err, 0)
	}

	// L1: each L2 table in order after the refcount blocks.
	l1 := make([]byte, l1Clusters*qcowCluster)
	for i, idx := range l2s {
		be.PutUint64(l1[idx*8:], uint64(l2Off+int64(i)*qcowCluster)|qcowCopied)
	}
	if err := put(l1); err != nil {
		return goerrors.Wrap(err, 0)
	}
	rtab := make([]byte, rt*qcowCluster)
	for i := int64(0); i < rb; i++ {
		be.PutUint64(rtab[i*8:], uint64(rbOff+i*qcowCluster))
	}
	if err := put(rtab); err != nil {
		return goerrors.Wrap(err, 0)
	}
	refs := make([]byte, rb*qcowCluster)
	for i := int64(0); i < total; i++ {
		be.PutUint16(refs[i*2:], 1)
	}
	if err := put(refs); err != nil {
		return goerrors.Wrap(err, 0)
	}
	// L2 tables: data clusters are numbered in guest order.
	next := dataOff
	l2 := make([]byte, qcowCluster)
	for _, idx := range l2s {
		clear(l2)
		for j := int64(0); j < qcowL2Entries; j++ {
			c := idx*qcowL2Entries + j
			if c < nv && s.used[c] {
				be.PutUint64(l2[j*8:], uint64(next)|qcowCopied)
				next += qcowCluster
			}
		}
		if err := put(l2); err != nil {
			return goerrors.Wrap(err, 0)
		}
	}
	buf := make([]byte, qcowCluster)
	for c, u := range s.used {
		if !u {
			continue
		}
		if err := s.read(int64(c), buf); err != nil {
			return err
		}
		if err := put(buf); err != nil {
			return goerrors.Wrap(err, 0)
		}
	}
	if err := w.Flush(); err != nil {
		return goerrors.Wrap(err, 0)
	}
	return nil
}
