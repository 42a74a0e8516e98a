package ociruntime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	goerrors "github.com/go-errors/errors"
)

// runHooks runs the hooks of one lifecycle point in order, each with the
// container's state as JSON on its standard input, as the runtime-spec
// says; the first that fails, or outlasts its timeout, is the error, in
// one line with what it printed.
func runHooks(kind string, hooks []Hook, st State) error {
	if len(hooks) == 0 {
		return nil
	}
	in, err := json.Marshal(st)
	if err != nil {
		return goerrors.Wrap(err, 0)
	}
	for _, h := range hooks {
		if err := runHook(h, in); err != nil {
			return fmt.Errorf("%s hook %s: %w", kind, h.Path, err)
		}
	}
	return nil
}

func runHook(h Hook, state []byte) error {
	ctx := context.Background()
	if h.Timeout != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*h.Timeout)*time.Second)
		defer cancel()
	}
	c := exec.CommandContext(ctx, h.Path)
	if len(h.Args) > 0 {
		c.Args = h.Args
	}
	c.Env = h.Env
	if c.Env == nil {
		c.Env = []string{}
	}
	c.Stdin = bytes.NewReader(state)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	c.WaitDelay = time.Second // a hook's own children keeping its output open
	err := c.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("timed out after %ds", *h.Timeout)
	}
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	msg := err.Error()
	if !errors.As(err, &ee) {
		return err
	}
	if said := lastLine(out.String()); said != "" {
		msg += ": " + said
	}
	return errors.New(msg)
}

// lastLine is the last non-empty line of s, trimmed, at most 300 bytes.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := strings.TrimSpace(lines[len(lines)-1])
	if len(l) > 300 {
		l = l[:300] + "…"
	}
	return l
}
