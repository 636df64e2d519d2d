// Command vehiclegw is satwatt's car gateway. It sits on the car's CAN bus,
// reads battery and charge-port state through a vehicle profile, and (in
// later versions) buys energy from the wall over Lightning.
package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"satwatt/internal/subcmd"
)

var commands = []subcmd.Command{
	{Name: "monitor", Summary: "show the decoded vehicle state live (--json for machines)", Run: runMonitor},
	{Name: "simcar", Summary: "run the simulated car (a demo and test feature) on a CAN bus", Run: runSimcar},
	{Name: "profiles", Summary: "list the built-in vehicle profiles", Run: runProfiles},
	{Name: "history", Summary: "list charging sessions paid for (table, --csv or --json) with totals", Run: runHistory},
	{Name: "session show", Summary: "print one session's receipt: wall, price, energy, every payment", Run: runSessionShow},
	{Name: "run", Summary: "buy energy from the wall as the car charges: discover, judge the offer, pay as you go", Run: runRun},
	{Name: "discover", Summary: "find the wall over the charge cable's PLC link (ISO 15118 SDP)", Run: runDiscover},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return subcmd.Run(ctx, "vehiclegw", commands, args, stdout, stderr)
}

// errUsage marks an error the user can fix by reading the usage text.
var errUsage = subcmd.ErrUsage

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	return subcmd.NewFlagSet("vehiclegw", name, stderr)
}

func parseFlags(fs *flag.FlagSet, args []string) error { return subcmd.Parse(fs, args, 0) }

func newLogger(stderr io.Writer, level string) (*slog.Logger, error) {
	return subcmd.NewLogger(stderr, level)
}

func sortedKeys[V any](m map[uint32]V) []uint32 {
	keys := make([]uint32, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}
