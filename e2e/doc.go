// Package e2e holds ops's end-to-end tests and whole-process benchmarks:
// they build the ops binary and real guest programs, boot real VMs under
// QEMU and read what the guest printed and its exit code. Every test file
// carries the build tag e2e, so `go test ./...` (the unit suite) leaves
// them out. Run them with `make test` (unit and end-to-end), or one with
//
//	go test -tags e2e -run '^TestE2EHello$' -v ./e2e/
//
// and the benchmarks with `make bench`. The Linux guest's init must be built
// first (make build). Nanos tests skip, saying why, without a Nanos release
// in ~/.ops or $OPS_TEST_NANOS_HOME.
package e2e
