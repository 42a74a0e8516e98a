package lepton

import (
	"testing"

	opsfs "github.com/opsdev/ops/fs"
)

// TestMountPoints: a volume's mount folder is made in the image.
func TestMountPoints(t *testing.T) {
	p := planFor(t, &Config{Mounts: map[string]string{"data": "/srv/data:ro"}})
	if e, ok := p.Tree.Get("/srv/data"); !ok || e.Kind != opsfs.KindDir {
		t.Fatal("no mount point")
	}
}
