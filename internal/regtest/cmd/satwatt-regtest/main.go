// Command satwatt-regtest starts a regtest Lightning network for manual
// work: btcd, the wall's lnd and the car's lnd with a channel from car to
// wall. It prints how to reach each node with lncli and runs until Ctrl-C,
// then stops everything and removes its files.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"satwatt/internal/regtest"
)

func main() {
	capacity := flag.Int64("capacity", 1_000_000, "channel capacity in sat, car to wall")
	push := flag.Int64("push", 0, "sat the car pushes to the wall when opening")
	cache := flag.String("cache", "", "cache directory holding bin/ (default $SATWATT_CACHE or .cache in the repository)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*capacity, *push, *cache, log); err != nil {
		log.Error("satwatt-regtest", "err", err)
		os.Exit(1)
	}
}

func run(capacity, push int64, cache string, log *slog.Logger) error {
	// The first Ctrl-C ends ctx, which stops the daemons (lnd first); a
	// second one kills this process, and the kernel kills the daemons.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := regtest.Start(ctx, regtest.Config{
		CacheDir: cache,
		Nodes:    []string{"wall", "car"},
		Channels: []regtest.ChannelSpec{{From: "car", To: "wall", CapacitySat: capacity, PushSat: push}},
		Logger:   log,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := n.Close(); err != nil {
			log.Error("satwatt-regtest: close", "err", err)
		}
	}()
	fmt.Printf("regtest network in %s\n\n", n.Dir)
	for _, name := range []string{"wall", "car"} {
		node := n.Nodes[name]
		fmt.Printf("%s  pubkey %s  p2p %s  rpc %s\n  %s getinfo\n\n", name, node.PubKey, node.P2PAddr, node.RPCAddr, node.LncliCommand())
	}
	fmt.Printf("btcd  rpc %s\n  %s %s getblockcount\n\n", n.Btcd.RPCAddr, n.Binaries.Btcctl, strings.Join(n.Btcd.BtcctlArgs(), " "))
	fmt.Println("Ctrl-C stops the network.")
	<-ctx.Done()
	stop()
	log.Info("satwatt-regtest: stopping")
	return nil
}
