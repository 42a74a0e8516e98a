package fs

import (
	"errors"
	"fmt"
)

// maxCount bounds any count or length read from a header, so hostile input
// cannot make the decoder allocate without limit.
const maxCount = 1 << 26

var errShort = errors.New("truncated value")

// Decoder reads TFS v5 values, keeping the filesystem-wide dictionary so
// references resolve to earlier symbols, tuples and vectors.
type Decoder struct {
	dict []any // index i-1 holds the object numbered i: string, *Tuple or *vecRef
}

// vecRef lets a reference update a vector in place.
type vecRef struct{ v Vector }

// NewDecoder starts an empty dictionary.
func NewDecoder() *Decoder { return &Decoder{} }

func readVarint(b []byte) (uint64, int, error) {
	var n uint64
	for i, c := range b {
		if i >= 10 {
			return 0, 0, errors.New("varint too long")
		}
		n = n<<7 | uint64(c&0x7f)
		if c&0x80 == 0 {
			return n, i + 1, nil
		}
	}
	return 0, 0, errShort
}

// readHeader returns immediate flag, type, n and the bytes used.
func readHeader(b []byte) (bool, int, uint64, int, error) {
	if len(b) == 0 {
		return false, 0, 0, 0, errShort
	}
	h := b[0]
	imm := h&0x80 != 0
	typ := int(h>>4) & 7
	n := uint64(h & 7)
	used := 1
	if h&0x08 != 0 {
		for {
			if used >= len(b) {
				return false, 0, 0, 0, errShort
			}
			if used > 10 {
				return false, 0, 0, 0, errors.New("header too long")
			}
			c := b[used]
			used++
			n = n<<7 | uint64(c&0x7f)
			if c&0x80 == 0 {
				break
			}
		}
	}
	return imm, typ, n, used, nil
}

func (d *Decoder) lookup(idx uint64) (any, error) {
	if idx == 0 || idx > uint64(len(d.dict)) {
		return nil, fmt.Errorf("reference to unknown dictionary entry %d", idx)
	}
	return d.dict[idx-1], nil
}

// lookupRef reads the dictionary index that follows a reference header and
// returns the earlier object it names, which must be a T (what names T in
// the error), with the bytes used.
func lookupRef[T any](d *Decoder, b []byte, what string) (T, int, error) {
	var zero T
	idx, k, err := readVarint(b)
	if err != nil {
		return zero, 0, err
	}
	o, err := d.lookup(idx)
	if err != nil {
		return zero, 0, err
	}
	v, ok := o.(T)
	if !ok {
		return zero, 0, fmt.Errorf("reference %d is not a %s", idx, what)
	}
	return v, k, nil
}

// Decode reads one value from b and returns it with the bytes used. A
// reference tuple or vector merges into the existing object and returns it.
func (d *Decoder) Decode(b []byte) (Value, int, error) {
	return d.decode(b, 0)
}

func (d *Decoder) decode(b []byte, depth int) (Value, int, error) {
	if depth > 512 {
		return nil, 0, errors.New("values nested too deeply")
	}
	imm, typ, n, used, err := readHeader(b)
	if err != nil {
		return nil, 0, err
	}
	if n > maxCount {
		return nil, 0, fmt.Errorf("count %d too large", n)
	}
	switch typ {
	case typeTuple:
		t := NewTuple()
		if imm {
			d.dict = append(d.dict, t)
		} else {
			var k int
			if t, k, err = lookupRef[*Tuple](d, b[used:], "tuple"); err != nil {
				return nil, 0, err
			}
			used += k
		}
		for i := uint64(0); i < n; i++ {
			key, k, err := d.symbol(b[used:])
			if err != nil {
				return nil, 0, err
			}
			used += k
			if used < len(b) && b[used] == 0x80 { // no value: delete the key
				used++
				t.Delete(key)
				continue
			}
			v, k, err := d.decode(b[used:], depth+1)
			if err != nil {
				return nil, 0, fmt.Errorf("%s: %w", key, err)
			}
			used += k
			t.Set(key, v)
		}
		return t, used, nil
	case typeVector:
		vr := &vecRef{}
		if imm {
			d.dict = append(d.dict, vr)
		} else {
			var k int
			if vr, k, err = lookupRef[*vecRef](d, b[used:], "vector"); err != nil {
				return nil, 0, err
			}
			used += k
		}
		for i := uint64(0); i < n; i++ {
			v, k, err := d.decode(b[used:], depth+1)
			if err != nil {
				return nil, 0, err
			}
			used += k
			if imm {
				vr.v = append(vr.v, v)
			} else if i < uint64(len(vr.v)) {
				vr.v[i] = v
			} else {
				vr.v = append(vr.v, v)
			}
		}
		return vr.v, used, nil
	case typeInteger:
		a, k, err := readVarint(b[used:])
		if err != nil {
			return nil, 0, err
		}
		if a > 1<<63 {
			return nil, 0, errors.New("integer out of range")
		}
		v := Int(a)
		if n == 1 {
			v = -v
		}
		return v, used + k, nil
	case typeString:
		if uint64(len(b)-used) < n {
			return nil, 0, errShort
		}
		return String(b[used : used+int(n)]), used + int(n), nil
	case typeUntyped:
		if !imm {
			o, err := d.lookup(n)
			if err != nil {
				return nil, 0, err
			}
			switch o := o.(type) {
			case string:
				return String(o), used, nil
			case *Tuple:
				return o, used, nil
			case *vecRef:
				return o.v, used, nil
			}
		}
		if uint64(len(b)-used) < n {
			return nil, 0, errShort
		}
		if n == 1 && b[used] == 0 {
			return Null{}, used + 1, nil
		}
		return String(b[used : used+int(n)]), used + int(n), nil
	}
	return nil, 0, fmt.Errorf("unknown value type %d", typ)
}

// symbol reads a tuple key: an immediate symbol (which takes the next
// index) or a reference to an earlier one.
func (d *Decoder) symbol(b []byte) (string, int, error) {
	imm, _, n, used, err := readHeader(b)
	if err != nil {
		return "", 0, err
	}
	if !imm {
		o, err := d.lookup(n)
		if err != nil {
			return "", 0, err
		}
		s, ok := o.(string)
		if !ok {
			return "", 0, fmt.Errorf("key reference %d is not a symbol", n)
		}
		return s, used, nil
	}
	if n > maxCount || uint64(len(b)-used) < n {
		return "", 0, errShort
	}
	s := string(b[used : used+int(n)])
	d.dict = append(d.dict, s)
	return s, used + int(n), nil
}
