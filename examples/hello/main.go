// Command hello prints a greeting and exits with the code given as its
// second argument, for demos and end-to-end tests.
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	who := "world"
	if len(os.Args) > 1 {
		who = os.Args[1]
	}
	fmt.Printf("hello, %s\n", who)
	if len(os.Args) > 2 {
		code, _ := strconv.Atoi(os.Args[2])
		os.Exit(code)
	}
}
