package cmd

import (
	"bytes"
	"slices"
	"testing"
)

// TestTopCommandsNamed: topCommands names each command as the command
// names itself, so newRootFor finds the command the user typed.
func TestTopCommandsNamed(t *testing.T) {
	app := &App{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
	for _, c := range topCommands() {
		if got := c.make(app).Name(); got != c.name {
			t.Errorf("topCommands: %q makes the command %q", c.name, got)
		}
	}
}

// TestNewRootFor: a command line naming a top-level command builds only
// that command; anything else (help, completion, a flag first, a typo,
// nothing) builds every command, as NewRoot does.
func TestNewRootFor(t *testing.T) {
	app := &App{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
	var all []string
	for _, c := range NewRoot(app).Commands() {
		all = append(all, c.Name())
	}
	for _, tc := range []struct {
		args []string
		want []string // nil: every command
	}{
		{[]string{"version"}, []string{"version"}},
		{[]string{"run", "./hello", "-p", "8080"}, []string{"run"}},
		{[]string{"build", "--help"}, []string{"build"}},
		{[]string{"compose", "logs", "--follow"}, []string{"compose"}},
		{[]string{"list"}, []string{"list"}},
		{[]string{"env", "list"}, []string{"env"}},
		{nil, nil},
		{[]string{"help", "run"}, nil},
		{[]string{"completion", "bash"}, nil},
		{[]string{"__complete", "ru"}, nil},
		{[]string{"--show-debug", "run", "./hello"}, nil},
		{[]string{"--version"}, nil},
		{[]string{"rn", "./hello"}, nil},
		{[]string{"./hello"}, nil},
	} {
		var got []string
		for _, c := range newRootFor(app, tc.args).Commands() {
			got = append(got, c.Name())
		}
		want := tc.want
		if want == nil {
			want = all
		}
		if !slices.Equal(got, want) {
			t.Errorf("newRootFor(%q): commands %q, want %q", tc.args, got, want)
		}
	}
}

// TestOneCommandRuns: a command runs the same from the root that holds
// only it: its output, and the root's persistent flags after it.
func TestOneCommandRuns(t *testing.T) {
	t.Setenv("OPS_HOME", t.TempDir())
	for _, args := range [][]string{{"version"}, {"version", "--show-errors"}} {
		var out bytes.Buffer
		app := &App{Stdout: &out, Stderr: &out}
		root := newRootFor(app, args)
		root.SetArgs(args)
		if _, err := root.ExecuteC(); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		if want := "ops " + Version + "\nNanos version: none installed (ops update)\n"; out.String() != want {
			t.Errorf("%q printed %q", args, out.String())
		}
	}
}
