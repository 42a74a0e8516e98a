// Command ops turns a Linux program into a unikernel virtual machine and
// runs it.
package main

import (
	"os"

	"github.com/opsdev/ops/cmd"
)

func main() {
	os.Exit(cmd.Main(os.Args[1:]))
}
