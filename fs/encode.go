package fs

import (
	"fmt"
	"math/bits"
)

// Value type codes in a TFS v5 header byte (bits 6..4).
const (
	typeUntyped = 0
	typeTuple   = 1
	typeVector  = 2
	typeInteger = 3
	typeString  = 4
)

// appendVarint appends n as big-endian groups of 7 bits, every byte but
// the last with bit 7 set.
func appendVarint(b []byte, n uint64) []byte {
	k := 0
	for m := n >> 7; m != 0; m >>= 7 {
		k++
	}
	for i := k; i > 0; i-- {
		b = append(b, byte(n>>(7*uint(i)))&0x7f|0x80)
	}
	return append(b, byte(n&0x7f))
}

// appendHeader appends a value header: immediate bit, type, and n, using
// continuation bytes when n does not fit in three bits.
func appendHeader(b []byte, imm bool, typ int, n uint64) []byte {
	h := byte(typ&7) << 4
	if imm {
		h |= 0x80
	}
	if n < 8 {
		return append(b, h|byte(n))
	}
	k := (bits.Len64(n) - 3 + 6) / 7
	b = append(b, h|0x08|byte(n>>(7*uint(k))))
	for i := k - 1; i >= 0; i-- {
		c := byte(n>>(7*uint(i))) & 0x7f
		if i > 0 {
			c |= 0x80
		}
		b = append(b, c)
	}
	return b
}

// Encoder turns values into TFS v5 bytes. It keeps the filesystem-wide
// dictionary: every symbol is written immediate once and referenced after,
// as Nanos requires, and every tuple and vector takes the next index.
type Encoder struct {
	next    uint64
	symbols map[string]uint64
}

// NewEncoder starts a dictionary at index 0, as a new filesystem does.
func NewEncoder() *Encoder { return &Encoder{symbols: map[string]uint64{}} }

// Append encodes v after b.
func (e *Encoder) Append(b []byte, v Value) ([]byte, error) {
	switch v := v.(type) {
	case *Tuple:
		b = appendHeader(b, true, typeTuple, uint64(v.len()))
		e.next++
		for i, k := range v.keys {
			b = e.appendSymbol(b, k)
			var err error
			if b, err = e.Append(b, v.vals[i]); err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
		}
		return b, nil
	case Vector:
		b = appendHeader(b, true, typeVector, uint64(len(v)))
		e.next++
		for i, el := range v {
			var err error
			if b, err = e.Append(b, el); err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return b, nil
	case String:
		b = appendHeader(b, true, typeString, uint64(len(v)))
		return append(b, v...), nil
	case Int:
		neg := uint64(0)
		abs := uint64(v)
		if v < 0 {
			neg, abs = 1, uint64(-v)
		}
		b = appendHeader(b, true, typeInteger, neg)
		return appendVarint(b, abs), nil
	case Null:
		return append(b, 0x81, 0x00), nil
	case nil:
		return nil, fmt.Errorf("nil value")
	}
	return nil, fmt.Errorf("unsupported value %T", v)
}

func (e *Encoder) appendSymbol(b []byte, s string) []byte {
	if idx, ok := e.symbols[s]; ok {
		return appendHeader(b, false, typeUntyped, idx)
	}
	e.next++
	e.symbols[s] = e.next
	b = appendHeader(b, true, typeUntyped, uint64(len(s)))
	return append(b, s...)
}
