// Command satwatt-regtest starts a regtest Lightning network for manual
// work: btcd, the wall's lnd and the car's lnd with a channel from car to
// wall. It prints how to reach each node with lncli, writes an lndconnect
// URI for wallctl and one for vehiclegw into the cache's regtest folder
// (each with a least-privilege macaroon), and runs until Ctrl-C, then stops
// everything and removes its files.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"satwatt/internal/lndclient"
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
	files, err := writeConnectFiles(ctx, n, cache)
	defer func() {
		for _, f := range files {
			os.Remove(f)
		}
	}()
	if err != nil {
		return err
	}
	fmt.Printf("lndconnect URIs (secrets: they hold macaroons):\n  wallctl:   %s\n  vehiclegw: %s\n\n", files[0], files[1])
	fmt.Println("Ctrl-C stops the network.")
	<-ctx.Done()
	stop()
	log.Info("satwatt-regtest: stopping")
	return nil
}

// writeConnectFiles bakes the macaroon each side should run with, the wall's
// (invoices and its own node key) and the car's (paying and reading only),
// and writes each node's lndconnect URI, readable by the owner only, as
// <cache>/regtest/wall.lndconnect and car.lndconnect.
func writeConnectFiles(ctx context.Context, n *regtest.Network, cache string) ([]string, error) {
	if cache == "" {
		cache = os.Getenv("SATWATT_CACHE")
	}
	if cache == "" {
		cache = ".cache"
	}
	dir := filepath.Join(cache, "regtest")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	perms := map[string][]string{
		"wall": {"info:read", "invoices:read", "invoices:write"},
		"car":  {"info:read", "offchain:read", "offchain:write"},
	}
	var files []string
	for _, name := range []string{"wall", "car"} {
		node := n.Nodes[name]
		mac := filepath.Join(n.Dir, name+"-least.macaroon")
		args := append([]string{"bakemacaroon", "--save_to", mac}, perms[name]...)
		if out, err := node.Lncli(ctx, args...); err != nil {
			return files, fmt.Errorf("bake the %s macaroon: %w: %s", name, err, out)
		}
		uri, err := lndclient.LndConnectURI(node.RPCAddr, node.TLSCertPath, mac)
		if err != nil {
			return files, err
		}
		f := filepath.Join(dir, name+".lndconnect")
		if err := os.WriteFile(f, []byte(uri+"\n"), 0o600); err != nil {
			return files, err
		}
		files = append(files, f)
	}
	return files, nil
}
