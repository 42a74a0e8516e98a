// Command ops turns a Linux program into a unikernel virtual machine and
// runs it. Run through a link named ops-runtime (ops runtime install
// makes one), it is an OCI runtime for container engines instead.
package main

import (
	"os"
	"path/filepath"

	"github.com/opsdev/ops/cmd"
)

func main() {
	if filepath.Base(os.Args[0]) == cmd.RuntimeName {
		os.Exit(cmd.RuntimeMain(os.Args[0], os.Args[1:]))
	}
	os.Exit(cmd.Main(os.Args[1:]))
}
