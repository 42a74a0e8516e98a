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
	"github.com/opsdev/ops/arch"
	"github.com/opsdev/ops/internal/fileutil"
)

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
	// Arch is the architecture of the images taken: linux/<Arch> from a
	// multi-platform index, and no single image of another ("": this
	// machine's).
	Arch arch.Arch
}

// Platform is the platform of the images r takes: linux and r's
// architecture.
func (r Registry) Platform() v1.Platform { return platformOf(r.Arch) }

// platformOf is linux/a ("": this machine's architecture).
func platformOf(a arch.Arch) v1.Platform {
	if a == "" {
		a = arch.Host()
	}
	return v1.Platform{OS: "linux", Architecture: string(a)}
}

func (r Registry) options(ctx context.Context) []remote.Option {
	o := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithPlatform(r.Platform())}
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
// tarball (`docker save`) or an OCI layout folder. From a multi-platform
// index it picks the image of r's platform (linux/<Arch>); a single image
// of another platform is refused, in one line naming both.
func (r Registry) LoadImage(ctx context.Context, src string) (v1.Image, error) {
	want := r.Platform()
	if st, err := os.Stat(src); err == nil {
		if st.IsDir() {
			idx, err := layout.ImageIndexFromPath(src)
			if err != nil {
				return nil, fmt.Errorf("%s: not an OCI layout: %w", src, err)
			}
			return PickImage(src, idx, want)
		}
		img, err := tarball.ImageFromPath(src, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: not a docker-archive image tarball: %w", src, err)
		}
		return img, checkPlatform(src, img, want)
	}
	return r.remoteImage(ctx, src)
}

// remoteImage is the image of r's platform that a registry reference
// names.
func (r Registry) remoteImage(ctx context.Context, src string) (v1.Image, error) {
	want := r.Platform()
	ref, err := r.parse(src)
	if err != nil {
		return nil, err
	}
	desc, err := remote.Get(ref, r.options(ctx)...)
	if err != nil {
		return nil, describe(src, err)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, describe(src, err)
		}
		return PickImage(src, idx, want)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, describe(src, err)
	}
	return img, checkPlatform(src, img, want)
}

// PickImage is the image of platform want in a multi-platform index (src
// names it in errors), chosen as go-containerregistry chooses: the first
// entry whose platform satisfies want (v1.Platform.Satisfies), nested
// indexes included. An entry without a platform is taken when its image's
// config says want. Without one, the error names the platforms the index
// has.
func PickImage(src string, idx v1.ImageIndex, want v1.Platform) (v1.Image, error) {
	img, have, err := pickImage(src, idx, want)
	if err != nil || img != nil {
		return img, err
	}
	if len(have) == 0 {
		return nil, fmt.Errorf("%s has no %s image (it lists no platforms)", src, want)
	}
	return nil, fmt.Errorf("%s has no %s image (it has %s)%s", src, want, strings.Join(have, ", "), archHint(have))
}

// pickImage searches idx for want: the image, or nil and the platforms
// found instead.
func pickImage(src string, idx v1.ImageIndex, want v1.Platform) (v1.Image, []string, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, nil, describe(src+": reading the image index", err)
	}
	var have []string
	for _, d := range im.Manifests {
		switch {
		case d.MediaType.IsIndex():
			sub, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, nil, describe(src, err)
			}
			img, more, err := pickImage(src, sub, want)
			if err != nil || img != nil {
				return img, nil, err
			}
			have = append(have, more...)
		case d.Platform != nil && d.MediaType.IsImage():
			if d.Platform.Satisfies(want) {
				img, err := idx.Image(d.Digest)
				if err != nil {
					return nil, nil, describe(src, err)
				}
				return img, nil, checkPlatform(src, img, want)
			}
			// Attestations and signatures are listed as unknown/unknown.
			if d.Platform.OS != "unknown" {
				have = append(have, d.Platform.String())
			}
		case d.MediaType.IsImage():
			// No platform in the index: the image's config says.
			img, err := idx.Image(d.Digest)
			if err != nil {
				return nil, nil, describe(src, err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				return nil, nil, describe(src+": reading the image config", err)
			}
			p := cf.Platform()
			if p == nil || p.Satisfies(want) {
				return img, nil, nil
			}
			have = append(have, p.String())
		}
	}
	return nil, have, nil
}

// CheckArch refuses an image (src names it) whose config names another
// platform than linux/a, in one line naming both.
func CheckArch(src string, img v1.Image, a arch.Arch) error {
	return checkPlatform(src, img, platformOf(a))
}

// checkPlatform refuses an image whose config names another platform than
// want, in one line naming both.
func checkPlatform(src string, img v1.Image, want v1.Platform) error {
	cf, err := img.ConfigFile()
	if err != nil {
		return describe(src+": reading the image config", err)
	}
	if (cf.OS != "" && cf.OS != want.OS) || (cf.Architecture != "" && cf.Architecture != want.Architecture) {
		got := cf.OS + "/" + cf.Architecture
		return fmt.Errorf("%s is a %s image, not %s%s", src, got, want, archHint([]string{got}))
	}
	return nil
}

// archHint is what to do about an image of the platforms in have: the
// --arch that takes the first one ops builds for, if any.
func archHint(have []string) string {
	for _, h := range have {
		goos, rest, _ := strings.Cut(h, "/")
		name, _, _ := strings.Cut(rest, "/")
		if a, err := arch.Parse(name); goos == "linux" && name != "" && err == nil {
			return fmt.Sprintf(": --arch %s takes its %s image", a, h)
		}
	}
	return "; ops builds linux/amd64 and linux/arm64 images"
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
// uid/gid 107, read-only), for platform linux/a (the disk's architecture:
// a node of another one cannot boot it).
func DiskImage(disk string, a arch.Arch) (v1.Image, error) {
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
	return withPlatform(layer, a, nil)
}

// withPlatform is a single-layer OCI image of platform linux/a.
func withPlatform(layer v1.Layer, a arch.Arch, annotations map[string]string) (v1.Image, error) {
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	pl := platformOf(a)
	cf.OS, cf.Architecture = pl.OS, pl.Architecture
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
// <name>_<version>/..., with its name and version as annotations, for
// platform linux/a (the package's architecture). File times are zero, so
// the same package gives the same digest.
func PackageImage(dir string, p Package, a arch.Arch) (v1.Image, error) {
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
	return withPlatform(layer, a, map[string]string{AnnotationName: p.Name, AnnotationVersion: p.Version})
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
// a local package of s, after the same safety checks as any package. The
// image must be of s's architecture (picked from an index, else refused).
func (r Registry) PullPackage(ctx context.Context, ref string, s Store) (Package, string, error) {
	r.Arch = s.Arch
	img, err := r.remoteImage(ctx, ref)
	if err != nil {
		return Package{}, "", err
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
