// Command wallctl is satwatt's wall controller. It answers the car over the
// charge cable's powerline link, sells energy over Lightning a few Wh at a
// time, switches the charger only while energy is paid for, and records
// every session in SQLite.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"satwatt/internal/subcmd"
)

var commands = []subcmd.Command{
	{Name: "serve", Summary: "run the wall controller", Run: runServe},
	{Name: "history", Summary: "list sessions (table, --csv or --json) with totals", Run: runHistory},
	{Name: "session show", Summary: "print one session's receipt: energy, price, every payment", Run: runSessionShow},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return subcmd.Run(ctx, "wallctl", commands, args, stdout, stderr)
}
