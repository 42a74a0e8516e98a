// Package fs writes and reads the disk formats ops produces: the Nanos
// TFS filesystem and its value encoding, the bootable disk layout around it,
// and the newc cpio archive used by the Linux guest.
package fs

import (
	"sort"
	"strconv"
)

// Value is one node of a TFS value tree: *Tuple, Vector, String, Int or Null.
type Value interface{ isValue() }

// String is a byte string value (type 4).
type String string

// Int is an integer value (type 3).
type Int int64

// Null is the untyped one-byte value Nanos uses for flags.
type Null struct{}

// Vector is an ordered list of values (type 2).
type Vector []Value

// Tuple is a map from symbol to value (type 1). Keys keep their insertion
// order, which is the order the encoder writes; builders insert in sorted
// order so equal inputs encode identically. Most tuples hold a few keys
// (a file's node, an extent) and are searched in place; a large one (a
// folder's children) gets an index, so a tree of many files costs no map
// per node.
type Tuple struct {
	keys []string
	vals []Value
	idx  map[string]int // position of each key, once there are many
}

// indexFrom is the number of keys from which a tuple keeps an index.
const indexFrom = 16

func (*Tuple) isValue() {}
func (String) isValue() {}
func (Int) isValue()    {}
func (Null) isValue()   {}
func (Vector) isValue() {}

// NewTuple returns an empty tuple.
func NewTuple() *Tuple { return &Tuple{} }

// newTupleSize returns an empty tuple with room for n keys.
func newTupleSize(n int) *Tuple {
	return &Tuple{keys: make([]string, 0, n), vals: make([]Value, 0, n)}
}

// find returns key's position, or -1.
func (t *Tuple) find(key string) int {
	if t.idx != nil {
		if i, ok := t.idx[key]; ok {
			return i
		}
		return -1
	}
	for i, k := range t.keys {
		if k == key {
			return i
		}
	}
	return -1
}

// Set adds or replaces key.
func (t *Tuple) Set(key string, v Value) *Tuple {
	if i := t.find(key); i >= 0 {
		t.vals[i] = v
		return t
	}
	t.keys = append(t.keys, key)
	t.vals = append(t.vals, v)
	if t.idx != nil {
		t.idx[key] = len(t.keys) - 1
	} else if len(t.keys) >= indexFrom {
		t.reindex()
	}
	return t
}

func (t *Tuple) reindex() {
	t.idx = make(map[string]int, len(t.keys))
	for i, k := range t.keys {
		t.idx[k] = i
	}
}

// Get returns the value stored at key.
func (t *Tuple) Get(key string) (Value, bool) {
	if i := t.find(key); i >= 0 {
		return t.vals[i], true
	}
	return nil, false
}

// get is Get's value alone.
func (t *Tuple) get(key string) Value {
	v, _ := t.Get(key)
	return v
}

// Delete removes key.
func (t *Tuple) Delete(key string) {
	i := t.find(key)
	if i < 0 {
		return
	}
	t.keys = append(t.keys[:i], t.keys[i+1:]...)
	t.vals = append(t.vals[:i], t.vals[i+1:]...)
	if t.idx != nil {
		t.reindex()
	}
}

// len is the number of entries.
func (t *Tuple) len() int { return len(t.keys) }

// Keys returns the keys in sorted order.
func (t *Tuple) Keys() []string {
	ks := append([]string(nil), t.keys...)
	sort.Strings(ks)
	return ks
}

// Tuple returns the tuple stored at key, or nil.
func (t *Tuple) Tuple(key string) *Tuple {
	v, _ := t.get(key).(*Tuple)
	return v
}

// uint reads key as a non-negative number, accepting both integers and
// decimal strings (Nanos accepts both forms in extents).
func (t *Tuple) uint(key string) (uint64, bool) {
	switch v := t.get(key).(type) {
	case Int:
		if v < 0 {
			return 0, false
		}
		return uint64(v), true
	case String:
		n, err := strconv.ParseUint(string(v), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// Format renders a value the way Nanos's dump tool prints it, for tests and
// `ops image tree`. A filesystem read from disk is a tree, but a hostile or
// damaged log can make references that point back up the tree or share a
// node: a tuple or vector met a second time prints as "(…)" or "[…]", so
// the output stays as long as the value's entries, whatever they point to.
func Format(v Value) string {
	f := formatter{seen: map[any]bool{}}
	return string(f.append(nil, v))
}

type formatter struct {
	seen map[any]bool // *Tuple, or a vector's first element
}

func (f formatter) append(b []byte, v Value) []byte {
	switch v := v.(type) {
	case *Tuple:
		if f.seen[v] {
			return append(b, "(…)"...)
		}
		f.seen[v] = true
		b = append(b, '(')
		for i, k := range v.Keys() {
			if i > 0 {
				b = append(b, ' ')
			}
			b = append(b, k...)
			b = append(b, ':')
			b = f.append(b, v.get(k))
		}
		return append(b, ')')
	case Vector:
		if len(v) > 0 {
			if f.seen[&v[0]] {
				return append(b, "[…]"...)
			}
			f.seen[&v[0]] = true
		}
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ' ')
			}
			b = f.append(b, e)
		}
		return append(b, ']')
	case String:
		return append(b, v...)
	case Int:
		return strconv.AppendInt(b, int64(v), 10)
	case Null:
		return b
	}
	return append(b, '?')
}
