package cmd

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"github.com/opsdev/ops/instance"
	"github.com/opsdev/ops/lepton"
	"github.com/spf13/cobra"
)

func newInstanceCreateCmd(app *App) *cobra.Command {
	f := &runFlags{}
	var name, restart string
	cmd := &cobra.Command{
		Use:   "create IMAGE|ELF",
		Short: "Start an image (a name in the ops home, or a path) or an ELF program (built first) in the background",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			policy, err := instance.ParsePolicy(restart)
			if err != nil {
				return err
			}
			c, err := f.configFrom(cmd.Flags())
			if err != nil {
				return err
			}
			for _, n := range c.RunConfig.NetNotes() {
				fmt.Fprintln(app.Stderr, n)
			}
			store, home, err := instances(app)
			if err != nil {
				return err
			}
			image, err := instanceImage(app, home, c, args[0], name)
			if err != nil {
				return err
			}
			if name == "" {
				name = lepton.ImageName(image)
			}
			spec := instance.Spec{Name: name, Image: image, Config: *c, Restart: policy, Created: time.Now().UTC()}
			if err := store.Create(spec); err != nil {
				return err
			}
			return startInstance(app, store, name)
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&name, "name", "", "instance name (default: the image's name)")
	cmd.Flags().StringVar(&restart, "restart", "no", "restart policy: no, on-failure[:N] (at most N restarts) or always")
	return cmd
}

// instanceImage is the built image an instance boots: an ELF is built
// first with the run flags, into an image named after the instance
// (instance, when given; -i names another), so that two instances of one
// program keep their own arguments; otherwise the argument names a built
// image. c.Guest is set to the image's guest.
func instanceImage(app *App, home lepton.Home, c *lepton.Config, arg, instance string) (string, error) {
	if isELF(arg) {
		in, name, err := elfInput(c, []string{arg})
		if err != nil {
			return "", err
		}
		if instance != "" {
			name = instance
		}
		in.OpsVersion = Version
		b, err := app.builder.Build(home, in, lepton.Target{DefaultName: name})
		if err != nil {
			return "", err
		}
		if b.Note != "" {
			fmt.Fprintln(app.Stderr, b.Note)
		}
		c.Guest = b.Guest.Name()
		return b.Path, nil
	}
	p, g, a, err := home.BuiltImage(arg, c.Guest)
	if err != nil {
		return "", err
	}
	if want, err := c.Target(); c.Arch != "" && err == nil && want != a {
		return "", fmt.Errorf("%s is an %s image; --arch %s names another architecture", p, a, c.Arch)
	}
	c.Guest, c.Arch = g.Name(), string(a)
	return p, nil
}

func isELF(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 4)
	n, _ := f.Read(b)
	return n == 4 && bytes.Equal(b, []byte("\x7fELF"))
}
