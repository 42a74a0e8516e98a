package ociruntime

import (
	"errors"
	"fmt"
	"os"

	opsfs "github.com/opsdev/ops/fs"
	"github.com/opsdev/ops/lepton"
)

// giveBack copies what the guest wrote to the container's writable files
// (rec.GiveBack) back to the host, from the container's Nanos image,
// which the guest writes to (it boots writable). Each host file is
// rewritten in place, so the engine's bind mount of it, or the kubelet's
// reading of the termination-log, sees the new contents.
func giveBack(rec *record) error {
	if len(rec.GiveBack) == 0 || rec.Guest != "nanos" {
		return nil // the Linux guest's init sent them (giveBackSent)
	}
	return lepton.Home{Dir: rec.Home}.ReadImage(rec.Image, false, func(root *opsfs.Reader) error {
		var errs []error
		for _, l := range rec.GiveBack {
			if err := giveBackFile(root, l.Guest, l.Host); err != nil {
				errs = append(errs, fmt.Errorf("giving %s back to %s: %w", l.Guest, l.Host, err))
			}
		}
		return errors.Join(errs...)
	})
}

// giveBackSent is the Linux guest's Machine.GiveBack: what init sent of
// the guest file at guest is written over the host file it came from.
func giveBackSent(rec *record) func(guest string, data []byte) error {
	if len(rec.GiveBack) == 0 || rec.Guest == "nanos" {
		return nil
	}
	return func(guest string, data []byte) error {
		for _, l := range rec.GiveBack {
			if l.Guest == guest {
				return writeInPlace(l.Host, data)
			}
		}
		return fmt.Errorf("%s is not a file of the container's to give back", guest)
	}
}

// giveBackFile writes the guest's file at guest over the host file in
// place (never making one that is gone).
func giveBackFile(root *opsfs.Reader, guest, host string) error {
	n, err := root.Lookup(guest)
	if err != nil {
		return err
	}
	b, err := root.ReadFile(n)
	if err != nil {
		return err
	}
	return writeInPlace(host, b)
}

// writeInPlace writes b over the host file at host, the same inode (which
// the engine's bind mount of it, or the kubelet, holds); a file that is
// gone is not made.
func writeInPlace(host string, b []byte) error {
	out, err := os.OpenFile(host, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	if _, err := out.Write(b); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
