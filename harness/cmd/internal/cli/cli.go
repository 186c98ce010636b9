// Package cli is what the harness's commands share: each is written as a
// function run(ctx, args, stdout, stderr) that returns its exit code, which
// its tests call directly, and Main runs that function as the process.
package cli

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Command is a command line program as a function: it runs with args (no
// program name), writes to stdout and stderr, stops when ctx is done, and
// returns its exit code.
type Command func(ctx context.Context, args []string, stdout, stderr io.Writer) int

// Main runs c with the process's arguments and standard streams, its
// context cancelled by SIGINT or SIGTERM (as a scheduler's timeout sends
// it), and exits with the code c returns.
func Main(c Command) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := c(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
