package lepton

import (
	"fmt"
	"os"
	"time"
)

// Built is an image ready to boot, and the guest it is for.
type Built struct {
	*BuildResult
	Guest Guest
	Note  string // the one line ops prints when it chose the guest by falling back
	Took  time.Duration
}

// Target says where an image goes: Output when set, else the ops home's
// images folder, named by RunConfig.ImageName or else DefaultName.
type Target struct {
	Output      string
	DefaultName string
}

func (t Target) path(home Home, c *Config, g Guest) (string, error) {
	if t.Output != "" {
		return t.Output, nil
	}
	name := c.RunConfig.ImageName
	if name == "" {
		name = t.DefaultName
	}
	return home.ImagePath(g.ImageFile(name))
}

// Build is the whole way from a plan input to an image: the plan, the
// guest, then the image (or the existing one when nothing changed).
func Build(home Home, in PlanInput, t Target) (*Built, error) {
	start := time.Now()
	c := in.Config
	plan, err := NewPlan(in)
	if err != nil {
		return nil, err
	}
	minRoot, err := ParseSize(c.BaseVolumeSz)
	if err != nil {
		return nil, fmt.Errorf("BaseVolumeSz: %w", err)
	}
	g, note, err := ChooseGuest(home, c)
	if err != nil {
		return nil, err
	}
	out, err := t.path(home, c, g)
	if err != nil {
		return nil, err
	}
	res, err := BuildImage(ImageSpec{Plan: plan, Guest: g, Out: out, MinRoot: minRoot})
	if err != nil {
		return nil, err
	}
	return &Built{BuildResult: res, Guest: g, Note: note, Took: time.Since(start)}, nil
}

// Existing is the image Build would write, as it is now, without
// building it (ops run --skipbuild).
func Existing(home Home, c *Config, t Target) (*Built, error) {
	g, note, err := ChooseGuest(home, c)
	if err != nil {
		return nil, err
	}
	out, err := t.path(home, c, g)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(out)
	if err != nil {
		return nil, fmt.Errorf("--skipbuild: no image at %s; build it first", out)
	}
	return &Built{BuildResult: &BuildResult{Path: out, Reused: true, Size: st.Size()}, Guest: g, Note: note}, nil
}
