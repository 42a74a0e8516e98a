package fs

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func TestVarint(t *testing.T) {
	for _, tc := range []struct {
		n   uint64
		hex string
	}{
		{5, "05"}, {1024, "8800"}, {3073, "9801"}, {1742992, "eab110"}, {0, "00"}, {127, "7f"}, {128, "8100"},
	} {
		got := hex.EncodeToString(appendVarint(nil, tc.n))
		if got != tc.hex {
			t.Errorf("varint(%d) = %s, want %s", tc.n, got, tc.hex)
		}
		v, k, err := readVarint(appendVarint(nil, tc.n))
		if err != nil || v != tc.n || k != len(tc.hex)/2 {
			t.Errorf("readVarint(%s) = %d, %d, %v", tc.hex, v, k, err)
		}
	}
}

func TestStringHeader(t *testing.T) {
	// Lengths checked byte for byte against Nanos's mkfs (format notes 3.2).
	for _, tc := range []struct {
		n   uint64
		hex string
	}{
		{7, "c7"}, {8, "c808"}, {200, "c948"}, {1000, "cf68"}, {1024, "c88800"}, {20000, "c99c20"},
	} {
		got := hex.EncodeToString(appendHeader(nil, true, typeString, tc.n))
		if got != tc.hex {
			t.Errorf("header(string, %d) = %s, want %s", tc.n, got, tc.hex)
		}
		imm, typ, n, used, err := readHeader(appendHeader(nil, true, typeString, tc.n))
		if err != nil || !imm || typ != typeString || n != tc.n || used != len(tc.hex)/2 {
			t.Errorf("readHeader(%s) = %v %d %d %d %v", tc.hex, imm, typ, n, used, err)
		}
	}
}

// workedExample is the tree of the format notes, section 3.5.
func workedExample() *Tuple {
	d := NewTuple().Set("children", NewTuple())
	l := NewTuple().Set("linktarget", String("/d"))
	return NewTuple().
		Set("children", NewTuple().Set("d", d).Set("l", l)).
		Set("arguments", Vector{String("l"), String("-v")}).
		Set("n", Int(300))
}

func TestWorkedExampleGolden(t *testing.T) {
	want := "9388086368696c6472656e92816491029081" + "6c91880a6c696e6b746172676574c22f64" +
		"880961726775" + "6d656e7473a2c16cc22d76816eb0822c"
	got, err := NewEncoder().Append(nil, workedExample())
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got) != want {
		t.Fatalf("encoding\n got %x\nwant %s", got, want)
	}
	if len(got) != 57 {
		t.Fatalf("encoded %d bytes, want 57", len(got))
	}
	v, n, err := NewDecoder().Decode(got)
	if err != nil || n != len(got) {
		t.Fatalf("decode: %v (%d of %d bytes)", err, n, len(got))
	}
	if s := Format(v); s != "(arguments:[l -v] children:(d:(children:()) l:(linktarget:/d)) n:300)" {
		t.Fatalf("decoded %s", s)
	}
}

func TestReferenceUpdate(t *testing.T) {
	// mkfs writes updates as references: 11 05 88 0a "filelength" b0 eab110
	// merges filelength into tuple #5.
	d := NewDecoder()
	enc, _ := NewEncoder().Append(nil, workedExample())
	if _, _, err := d.Decode(enc); err != nil {
		t.Fatal(err)
	}
	upd := append([]byte{0x11, 0x05, 0x88, 0x0a}, "filelength"...)
	upd = append(upd, 0xb0, 0xea, 0xb1, 0x10)
	v, _, err := d.Decode(upd)
	if err != nil {
		t.Fatal(err)
	}
	if s := Format(v); s != "(children:() filelength:1742992)" {
		t.Fatalf("updated tuple #5 = %s", s)
	}
}

func TestRoundTripValues(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 70000)
	for _, v := range []Value{
		NewTuple(),
		NewTuple().Set("a", Null{}).Set("b", Int(-5)).Set("c", String(big)),
		NewTuple().Set("v", Vector{NewTuple().Set("a", String("1")), Vector{}, Int(1 << 40)}).Set("a", String("")),
	} {
		enc, err := NewEncoder().Append(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		got, n, err := NewDecoder().Decode(enc)
		if err != nil || n != len(enc) {
			t.Fatalf("decode %s: %v", Format(v), err)
		}
		if Format(got) != Format(v) {
			t.Fatalf("round trip: got %s want %s", Format(got), Format(v))
		}
	}
}

func TestSymbolsImmediateOnce(t *testing.T) {
	// Every symbol text appears immediate only once per filesystem.
	v := NewTuple().Set("x", NewTuple().Set("x", NewTuple().Set("x", String("x"))))
	enc, _ := NewEncoder().Append(nil, v)
	if c := bytes.Count(enc, []byte{0x81, 'x'}); c != 1 {
		t.Fatalf("symbol x immediate %d times in %x", c, enc)
	}
}

// TestFormatLoops: references in a damaged log can point back up the tree
// or share a node; Format prints each tuple and vector once.
func TestFormatLoops(t *testing.T) {
	self := NewTuple()
	self.Set("me", self)
	up := NewTuple()
	up.Set("b", NewTuple().Set("up", up))
	shared := NewTuple().Set("x", String("1"))
	vec := Vector{nil, Int(2)}
	vec[0] = vec
	for _, tc := range []struct {
		name string
		v    Value
		want string
	}{
		{"self", self, "(me:(…))"},
		{"parent", up, "(b:(up:(…)))"},
		{"shared", NewTuple().Set("a", shared).Set("b", shared), "(a:(x:1) b:(…))"},
		{"vector", vec, "[[…] 2]"},
		{"tree", NewTuple().Set("a", NewTuple()).Set("b", NewTuple()), "(a:() b:())"},
	} {
		if got := Format(tc.v); got != tc.want {
			t.Errorf("%s: Format = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	enc, _ := NewEncoder().Append(nil, workedExample())
	f.Add(enc)
	f.Add([]byte{0x11, 0x05, 0x88})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, n, err := NewDecoder().Decode(b)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("used %d of %d bytes", n, len(b))
		}
		_ = Format(v)
	})
}
