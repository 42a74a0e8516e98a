package packages

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	goerrors "github.com/go-errors/errors"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opsdev/ops/internal/fileutil"
)

// targetPlatform is the only platform ops runs.
func targetPlatform() v1.Platform { return v1.Platform{OS: "linux", Architecture: "amd64"} }

// Annotations ops puts on the packages it pushes.
const (
	AnnotationName    = "city.ops.package.name"
	AnnotationVersion = "city.ops.package.version"
)

// Registry holds the options for talking to registries: credentials
// come from the usual docker config file (~/.docker/config.json).
type Registry struct {
	Insecure  bool // plain HTTP (a registry on 127.0.0.1, say)
	Transport http.RoundTripper
	Progress  chan<- v1.Update
}

func (r Registry) options(ctx context.Context) []remote.Option {
	o := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithPlatform(targetPlatform())}
	if r.Transport != nil {
		o = append(o, remote.WithTransport(r.Transport))
	}
	if r.Progress != nil {
		o = append(o, remote.WithProgress(r.Progress))
	}
	return o
}

func (r Registry) parse(ref string) (name.Reference, error) {
	var opts []name.Option
	if r.Insecure {
		opts = append(opts, name.Insecure)
	}
	n, err := name.ParseReference(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("%q is not an image reference (registry/repository:tag): %w", ref, err)
	}
	return n, nil
}

// describe turns registry errors into one line saying what to do.
func describe(ref string, err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%s: the registry refused access (HTTP %d); log in with 'docker login' (ops reads ~/.docker/config.json)", ref, te.StatusCode)
		case http.StatusNotFound:
			return fmt.Errorf("%s: no such image or tag in the registry", ref)
		}
	}
	return goerrors.Errorf("%s: %w", ref, err)
}

// LoadImage opens an image from a registry reference, a docker-archive
// tarball (`docker save`) or an OCI layout folder. From an index it picks
// linux/amd64.
func (r Registry) LoadImage(ctx context.Context, src string) (v1.Image, error) {
	if st, err := os.Stat(src); err == nil {
		if st.IsDir() {
			return imageFromLayout(src)
		}
		img, err := tarball.ImageFromPath(src, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: not a docker-archive image tarball: %w", src, err)
		}
		return img, checkPlatform(src, img)
	}
	ref, err := r.parse(src)
	if err != nil {
		return nil, err
	}
	img, err := remote.Image(ref, r.options(ctx)...)
	if err != nil {
		if strings.Contains(err.Error(), "no child with platform") {
			return nil, fmt.Errorf("%s has no linux/amd64 image; ops runs linux/amd64 programs", src)
		}
		return nil, describe(src, err)
	}
	return img, checkPlatform(src, img)
}

func imageFromLayout(dir string) (v1.Image, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: not an OCI layout: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var platforms []string
	for _, d := range im.Manifests {
		if d.MediaType.IsIndex() {
			sub, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			sim, err := sub.IndexManifest()
			if err != nil {
				return nil, err
			}
			for _, sd := range sim.Manifests {
				if sd.Platform == nil || sd.Platform.Satisfies(targetPlatform()) {
					return sub.Image(sd.Digest)
				}
			}
			continue
		}
		if d.Platform == nil || d.Platform.Satisfies(targetPlatform()) {
			img, err := idx.Image(d.Digest)
			if err != nil {
				return nil, err
			}
			return img, checkPlatform(dir, img)
		}
		platforms = append(platforms, d.Platform.String())
	}
	return nil, fmt.Errorf("%s has no linux/amd64 image (it has %s)", dir, strings.Join(platforms, ", "))
}

func checkPlatform(src string, img v1.Image) error {
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("%s: reading the image config: %w", src, err)
	}
	if (cf.OS != "" && cf.OS != targetPlatform().OS) || (cf.Architecture != "" && cf.Architecture != targetPlatform().Architecture) {
		return fmt.Errorf("%s is a %s/%s image; ops runs linux/amd64 programs", src, cf.OS, cf.Architecture)
	}
	return nil
}

// Flatten unpacks an image's layers, in order, with whiteouts and opaque
// folders applied, into dest (created here) as a root filesystem, with
// the same safety as any package: nothing is written outside dest.
func Flatten(img v1.Image, dest string) error {
	rc := mutate.Extract(img)
	defer rc.Close()
	lim := DefaultLimits()
	lim.RootFS = true
	return extractTar(rc, dest, lim)
}

// ImageConfig is what a package takes from an image's config.
type ImageConfig struct {
	Entrypoint, Cmd, Env []string
	WorkingDir           string
}

// ConfigOf reads an image's ENTRYPOINT, CMD, ENV and WORKDIR.
func ConfigOf(img v1.Image) (ImageConfig, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return ImageConfig{}, err
	}
	c := cf.Config
	return ImageConfig{Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, WorkingDir: c.WorkingDir}, nil
}

// tarLayer makes an uncompressed-tar layer from a function writing it.
func tarLayer(write func(tw *tar.Writer) error) (v1.Layer, error) {
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() {
			tw := tar.NewWriter(pw)
			err := write(tw)
			if err == nil {
				err = tw.Close()
			}
			pw.CloseWithError(err)
		}()
		return pr, nil
	})
}

// DiskImage makes a single-layer OCI image holding a disk image at
// /disk/<name>.img, laid out as KubeVirt's containerDisk expects (owned by
// uid/gid 107, read-only).
func DiskImage(disk string) (v1.Image, error) {
	st, err := os.Stat(disk)
	if err != nil {
		return nil, err
	}
	base := strings.TrimSuffix(filepath.Base(disk), ".img") + ".img"
	layer, err := tarLayer(func(tw *tar.Writer) error {
		if err := tw.WriteHeader(&tar.Header{Name: "disk/", Typeflag: tar.TypeDir, Mode: 0o555, Uid: 107, Gid: 107}); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: "disk/" + base, Typeflag: tar.TypeReg, Mode: 0o440, Uid: 107, Gid: 107, Size: st.Size()}); err != nil {
			return err
		}
		f, err := os.Open(disk)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return nil, err
	}
	return withPlatform(layer, nil)
}

func withPlatform(layer v1.Layer, annotations map[string]string) (v1.Image, error) {
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = targetPlatform().OS, targetPlatform().Architecture
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if annotations != nil {
		img = mutate.Annotations(img, annotations).(v1.Image)
	}
	return img, nil
}

// PackageImage makes a single-layer OCI image holding a package folder as
// <name>_<version>/..., with its name and version as annotations. File
// times are zero, so the same package gives the same digest.
func PackageImage(dir string, p Package) (v1.Image, error) {
	top := p.DirName()
	layer, err := tarLayer(func(tw *tar.Writer) error {
		return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(dir, path)
			if err != nil {
				return err
			}
			name := top
			if rel != "." {
				name = top + "/" + filepath.ToSlash(rel)
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			h := &tar.Header{Name: name, Mode: int64(info.Mode().Perm()), Format: tar.FormatPAX}
			switch {
			case d.IsDir():
				h.Typeflag, h.Name = tar.TypeDir, name+"/"
				return tw.WriteHeader(h)
			case d.Type()&fs.ModeSymlink != 0:
				target, err := os.Readlink(path)
				if err != nil {
					return err
				}
				h.Typeflag, h.Linkname = tar.TypeSymlink, target
				return tw.WriteHeader(h)
			case d.Type().IsRegular():
				h.Typeflag, h.Size = tar.TypeReg, info.Size()
				if err := tw.WriteHeader(h); err != nil {
					return err
				}
				f, err := os.Open(path)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = io.Copy(tw, f)
				return err
			}
			return fmt.Errorf("%s: special files cannot be pushed", path)
		})
	})
	if err != nil {
		return nil, err
	}
	return withPlatform(layer, map[string]string{AnnotationName: p.Name, AnnotationVersion: p.Version})
}

// Push writes an image to a registry.
func (r Registry) Push(ctx context.Context, img v1.Image, ref string) (string, error) {
	n, err := r.parse(ref)
	if err != nil {
		return "", err
	}
	if err := remote.Write(n, img, r.options(ctx)...); err != nil {
		return "", describe(ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return n.Context().Digest(d.String()).String(), nil
}

// PullPackage fetches a package pushed by PackageImage and installs it as
// a local package, after the same safety checks as any package.
func (r Registry) PullPackage(ctx context.Context, ref string, s Store) (Package, string, error) {
	n, err := r.parse(ref)
	if err != nil {
		return Package{}, "", err
	}
	img, err := remote.Image(n, r.options(ctx)...)
	if err != nil {
		return Package{}, "", describe(ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return Package{}, "", err
	}
	p := Package{Name: m.Annotations[AnnotationName], Version: m.Annotations[AnnotationVersion], Arch: IndexArch(s.Arch)}
	if p.Name == "" || p.Version == "" {
		return Package{}, "", fmt.Errorf("%s is not an ops package (no %s/%s annotations)", ref, AnnotationName, AnnotationVersion)
	}
	if _, err := ParseRef(p.Ref()); err != nil {
		return Package{}, "", err
	}
	layers, err := img.Layers()
	if err != nil {
		return Package{}, "", err
	}
	if len(layers) != 1 {
		return Package{}, "", fmt.Errorf("%s has %d layers; an ops package has one", ref, len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		return Package{}, "", err
	}
	defer rc.Close()
	if err := os.MkdirAll(s.LocalDir(), 0o755); err != nil {
		return Package{}, "", err
	}
	if err := fileutil.ClearStale(s.LocalDir()); err != nil {
		return Package{}, "", err
	}
	tmp, err := fileutil.MkdirTemp(s.LocalDir(), "pull")
	if err != nil {
		return Package{}, "", err
	}
	defer os.RemoveAll(tmp)
	if err := extractTar(rc, filepath.Join(tmp, "x"), DefaultLimits()); err != nil {
		return Package{}, "", fmt.Errorf("%s: %w", ref, err)
	}
	dir, err := packageRoot(filepath.Join(tmp, "x"))
	if err != nil {
		return Package{}, "", fmt.Errorf("%s: %w", ref, err)
	}
	dest := s.LocalDirOf(p)
	return p, dest, fileutil.ReplaceDir(dir, dest, tmp)
}
