package compose

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
)

// packages finds the package of every service that runs one, and makes
// each service's container image a local package (once per image), before
// anything is built: u.images holds their folders.
func (u *up) packages(ctx context.Context, order []string) error {
	for _, name := range order {
		s := u.file.Services[name]
		if s.Image == "" && s.Package == "" {
			continue
		}
		if u.opts.Packages == nil {
			return fmt.Errorf("service %s: packages and images cannot be resolved here", name)
		}
		// The package comes from the repository the service's config names,
		// built (an image: taken) for the service's architecture.
		c, err := u.file.serviceConfig(u.file.replicasOf(name)[0], u.opts.Guest)
		if err != nil {
			return fmt.Errorf("service %s: %w", name, err)
		}
		env, err := u.opts.Packages.For(c)
		if err != nil {
			return fmt.Errorf("service %s: %w", name, err)
		}
		if s.Image != "" {
			dir, err := env.ImagePackage(ctx, imageRef(u.file.Dir, s.Image), s.Entrypoint, s.Command)
			if err != nil {
				return fmt.Errorf("service %s: image %w", name, err)
			}
			u.images[name] = dir
			continue
		}
		dir, _, err := env.Resolve(ctx, s.Package, s.Local)
		if err != nil {
			return fmt.Errorf("service %s: %w", name, err)
		}
		u.images[name] = dir
	}
	return nil
}

// imageRef is a service's image reference, a tarball or folder named
// relative to the compose file's folder (dir) made absolute.
func imageRef(dir, ref string) string {
	if !filepath.IsAbs(ref) && (strings.HasPrefix(ref, ".") || strings.HasSuffix(ref, ".tar")) {
		return filepath.Join(dir, ref)
	}
	return ref
}
