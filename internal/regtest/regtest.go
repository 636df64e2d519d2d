// Package regtest runs a private Bitcoin regtest network for tests and
// demos: one btcd and any number of lnd nodes, funded and joined by usable
// channels.
//
// Every daemon is a child process bound to the context given to Start: when
// it ends they get SIGTERM, then SIGKILL. Close stops them in order and
// removes the network's temporary directory. If the harness itself dies
// without Close (SIGKILL, an unhandled Ctrl-C in go test), Linux kills the
// daemons too (Pdeathsig) but the directory stays in the system temp dir as
// satwatt-regtest-*.
package regtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"satwatt/internal/daemon"
)

// ChannelSpec is a channel to open: From funds it with CapacitySat and gives
// PushSat of it to To.
type ChannelSpec struct {
	From, To             string
	CapacitySat, PushSat int64
}

// Config describes a network.
type Config struct {
	CacheDir string // where bin/ lives; default DefaultCacheDir(RepoRoot)
	RepoRoot string // to build the binaries when missing; default FindRepoRoot()
	Nodes    []string
	Channels []ChannelSpec
	Logger   *slog.Logger // default slog.Default()
	// TLSExtraIPs are added to every node's TLS certificate, for clients
	// that reach the nodes at another address than loopback (a VM's
	// view of the host).
	TLSExtraIPs []string
	// RPCListenIPs are local addresses on which every node's gRPC also
	// listens, on the same port as RPCAddr, and which its certificate
	// names: the demo's network namespaces reach the nodes there.
	RPCListenIPs []string
}

// Network is a running regtest network.
type Network struct {
	Dir      string
	Nodes    map[string]*Node
	Btcd     *Btcd
	Binaries Binaries

	faucet   *faucet
	order    []*Node
	log      *slog.Logger
	lifetime context.Context
	cancel   context.CancelFunc

	closeOnce sync.Once
	closeErr  error
}

const (
	// matureBlocks activates segwit on btcd's regtest (it locks in after
	// three 144-block windows) and matures the coinbases funding the nodes.
	matureBlocks = 500
	// channelConfs makes channels confirmed and announced.
	channelConfs = 6
	// fundingMargin is what a channel's funder gets on top of the capacity,
	// for fees.
	fundingMargin = 1_000_000
	// probeMinSpendable: a side with less than this above its reserve cannot
	// pay for an HTLC's share of the commitment fee, so it is not probed.
	probeMinSpendable = 10_000
)

// Start runs btcd and the nodes, mines, funds and opens the channels, and
// returns once every channel carries a payment. ctx bounds the whole life of
// the network, not only the start; on any error everything started is
// stopped and removed.
func Start(ctx context.Context, cfg Config) (_ *Network, err error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	bins, err := EnsureBinaries(ctx, cfg.RepoRoot, cfg.CacheDir)
	if err != nil {
		return nil, err
	}
	if bins.BuildTime > 0 {
		log.Info("regtest: built lnd and btcd", "took", bins.BuildTime.Round(time.Millisecond))
	}
	dir, err := os.MkdirTemp("", "satwatt-regtest-")
	if err != nil {
		return nil, fmt.Errorf("regtest: %w", err)
	}
	lifetime, cancel := context.WithCancel(ctx)
	n := &Network{
		Dir:      dir,
		Nodes:    map[string]*Node{},
		Binaries: bins,
		log:      log,
		lifetime: lifetime,
		cancel:   cancel,
	}
	defer func() {
		if err != nil {
			if cerr := n.Close(); cerr != nil {
				log.Warn("regtest: cleanup after failed start", "err", cerr)
			}
		}
	}()
	began := time.Now()
	if n.faucet, err = newFaucet(); err != nil {
		return nil, err
	}
	// All nodes exist before any process starts: btcd's shutdown hook reads
	// the list.
	for _, name := range cfg.Nodes {
		node := newNode(n, name)
		node.tlsExtraIPs = slices.Concat(cfg.TLSExtraIPs, cfg.RPCListenIPs)
		node.rpcListenIPs = cfg.RPCListenIPs
		if err := os.MkdirAll(node.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("regtest: %w", err)
		}
		n.Nodes[name] = node
		n.order = append(n.order, node)
	}
	if err := n.startBtcd(ctx); err != nil {
		return nil, err
	}
	// Mining needs no node, so it runs while the nodes start.
	mined := make(chan error, 1)
	go func() { mined <- n.Btcd.generate(ctx, matureBlocks) }()
	err = n.each(func(node *Node) error { return node.launch(ctx, true) })
	if merr := <-mined; merr != nil {
		err = errors.Join(err, daemon.WithLogTail(fmt.Errorf("regtest: mine %d blocks: %w", matureBlocks, merr), n.Btcd.LogPath))
	}
	if err != nil {
		return nil, err
	}
	if err := n.waitSynced(ctx); err != nil {
		return nil, err
	}
	log.Info("regtest: daemons up, chain ready", "dir", dir, "blocks", matureBlocks, "took", time.Since(began).Round(time.Millisecond))
	if err := n.openChannels(ctx, cfg.Channels); err != nil {
		return nil, err
	}
	log.Info("regtest: network ready", "nodes", len(n.order), "channels", len(cfg.Channels), "took", time.Since(began).Round(time.Millisecond))
	return n, nil
}

func (cfg *Config) fill() error {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RepoRoot == "" {
		root, err := FindRepoRoot()
		if err != nil && cfg.CacheDir == "" {
			return fmt.Errorf("regtest: no CacheDir and %w", err)
		}
		cfg.RepoRoot = root
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = DefaultCacheDir(cfg.RepoRoot)
	}
	seen := map[string]bool{}
	for _, name := range cfg.Nodes {
		if name == "" || strings.ContainsAny(name, `/\`) || name == "btcd" || seen[name] {
			return fmt.Errorf("regtest: bad or repeated node name %q", name)
		}
		seen[name] = true
	}
	for _, ip := range slices.Concat(cfg.TLSExtraIPs, cfg.RPCListenIPs) {
		if _, err := netip.ParseAddr(ip); err != nil {
			return fmt.Errorf("regtest: TLS extra IP: %w", err)
		}
	}
	for _, c := range cfg.Channels {
		if err := checkSpec(c, seen); err != nil {
			return err
		}
	}
	return nil
}

func checkSpec(c ChannelSpec, nodes map[string]bool) error {
	switch {
	case !nodes[c.From] || !nodes[c.To]:
		return fmt.Errorf("regtest: channel %s→%s names an unknown node", c.From, c.To)
	case c.From == c.To:
		return fmt.Errorf("regtest: channel %s→%s goes nowhere", c.From, c.To)
	case c.CapacitySat <= 0 || c.PushSat < 0 || c.PushSat >= c.CapacitySat:
		return fmt.Errorf("regtest: channel %s→%s: capacity %d, push %d", c.From, c.To, c.CapacitySat, c.PushSat)
	}
	return nil
}

func (n *Network) startBtcd(ctx context.Context) error {
	dir := filepath.Join(n.Dir, "btcd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("regtest: %w", err)
	}
	// Empty config files keep btcd and btcctl from reading or creating
	// ones in the home directory.
	for _, f := range []string{"btcd.conf", "btcctl.conf"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			return fmt.Errorf("regtest: %w", err)
		}
	}
	n.Btcd = &Btcd{
		Dir:        dir,
		RPCUser:    "satwatt",
		RPCPass:    randomHex32()[:24],
		MiningAddr: n.faucet.addr.EncodeAddress(),
		CertPath:   filepath.Join(dir, "rpc.cert"),
		LogPath:    filepath.Join(dir, "btcd.log"),
		bin:        n.Binaries.Btcd,
		btcctlBin:  n.Binaries.Btcctl,
	}
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(1)
		if err != nil {
			return err
		}
		n.Btcd.RPCAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		// lnd takes 15 s to exit when btcd vanishes under it, so when the
		// network's context ends btcd waits for the nodes.
		err = n.Btcd.start(ctx, n.lifetime, func() {
			n.each(func(node *Node) error { node.waitExit(daemon.StopTimeout); return nil })
		})
		if err == nil {
			return nil
		}
		_ = n.Btcd.stop(ctx)
		if attempt == 3 || !daemon.LogContains(n.Btcd.LogPath, "address already in use") {
			return err
		}
		n.log.Warn("regtest: btcd port taken, retrying with a new port")
	}
}

// Close stops every process the network started (lnd first, then btcd),
// waits for them to exit, and removes the network's directory. It is safe to
// call more than once.
func (n *Network) Close() error {
	n.closeOnce.Do(func() {
		ctx := context.Background()
		var errs []error
		errs = append(errs, n.each(func(node *Node) error { return node.Stop(ctx) }))
		if n.Btcd != nil {
			errs = append(errs, n.Btcd.stop(ctx))
		}
		n.cancel()
		if err := os.RemoveAll(n.Dir); err != nil {
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			n.closeErr = fmt.Errorf("regtest: close: %w", err)
		}
	})
	return n.closeErr
}

// Mine mines blocks and returns once every running node has processed them.
func (n *Network) Mine(ctx context.Context, blocks int) error {
	if err := n.Btcd.generate(ctx, blocks); err != nil {
		return daemon.WithLogTail(fmt.Errorf("regtest: mine %d blocks: %w", blocks, err), n.Btcd.LogPath)
	}
	return n.waitSynced(ctx)
}

// waitSynced waits until every running node has reached btcd's tip.
func (n *Network) waitSynced(ctx context.Context) error {
	h, err := n.Btcd.height(ctx)
	if err != nil {
		return err
	}
	return n.each(func(node *Node) error {
		if !node.running() {
			return nil
		}
		return node.waitSynced(ctx, h)
	})
}

// Fund sends sat from the network's coinbases to a new address of the node,
// mines a block and waits until the node counts the coins as confirmed.
func (n *Network) Fund(ctx context.Context, node string, sat int64) error {
	nd, ok := n.Nodes[node]
	if !ok {
		return fmt.Errorf("regtest: fund: no node %q", node)
	}
	return n.fund(ctx, []funding{{nd, sat}})
}

type funding struct {
	node *Node
	sat  int64
}

// fund pays every funding its own output of one transaction, so that two
// channels from one node do not wait for each other's change.
func (n *Network) fund(ctx context.Context, fs []funding) error {
	if len(fs) == 0 {
		return nil
	}
	before := map[*Node]int64{}
	want := map[*Node]int64{}
	outputs := map[string]int64{}
	for _, f := range fs {
		if _, ok := before[f.node]; !ok {
			b, err := f.node.confirmedBalance(ctx)
			if err != nil {
				return err
			}
			before[f.node] = b
		}
		addr, err := f.node.newAddress(ctx)
		if err != nil {
			return err
		}
		outputs[addr] = f.sat
		want[f.node] += f.sat
	}
	if _, err := n.faucet.send(ctx, n.Btcd, outputs); err != nil {
		return fmt.Errorf("regtest: fund nodes: %w", err)
	}
	if err := n.Mine(ctx, 1); err != nil {
		return err
	}
	for node, amt := range want {
		err := poll(ctx, 30*time.Second, 100*time.Millisecond, func() (bool, error) {
			b, err := node.confirmedBalance(ctx)
			if err != nil {
				return false, err
			}
			if b < before[node]+amt {
				return false, fmt.Errorf("confirmed balance %d, want %d", b, before[node]+amt)
			}
			return true, nil
		})
		if err != nil {
			return daemon.WithLogTail(fmt.Errorf("regtest: node %s: wait for funds: %w", node.Name, err), node.LogPath)
		}
	}
	return nil
}

// OpenChannel funds c.From, connects the peers, opens
// the channel, mines it deep enough to be announced and returns once it
// carries a payment.
func (n *Network) OpenChannel(ctx context.Context, c ChannelSpec) error {
	names := map[string]bool{}
	for name := range n.Nodes {
		names[name] = true
	}
	if err := checkSpec(c, names); err != nil {
		return err
	}
	return n.openChannels(ctx, []ChannelSpec{c})
}

// openChannels opens several channels with one funding transaction and one
// round of mining for all of them.
func (n *Network) openChannels(ctx context.Context, specs []ChannelSpec) error {
	if len(specs) == 0 {
		return nil
	}
	began := time.Now()
	var fs []funding
	for _, c := range specs {
		fs = append(fs, funding{n.Nodes[c.From], c.CapacitySat + fundingMargin})
	}
	if err := n.fund(ctx, fs); err != nil {
		return err
	}

	points := make([]string, len(specs))
	for i, c := range specs {
		from, to := n.Nodes[c.From], n.Nodes[c.To]
		if err := from.connect(ctx, to); err != nil {
			return err
		}
		var resp struct {
			FundingTxid string `json:"funding_txid"`
		}
		// A peer that just connected may still be finishing its handshake;
		// other errors (size limits, funds) are final.
		err := poll(ctx, 20*time.Second, 250*time.Millisecond, func() (bool, error) {
			err := from.lncliJSON(ctx, &resp, "openchannel",
				"--node_key", to.PubKey,
				"--local_amt", strconv.FormatInt(c.CapacitySat, 10),
				"--push_amt", strconv.FormatInt(c.PushSat, 10))
			if err != nil && !strings.Contains(err.Error(), "not online") {
				return false, final(err)
			}
			return err == nil, err
		})
		if err != nil {
			return fmt.Errorf("regtest: open channel %s→%s: %w", c.From, c.To, err)
		}
		points[i] = resp.FundingTxid
	}
	if err := n.Mine(ctx, channelConfs); err != nil {
		return err
	}
	for i, c := range specs {
		from, to := n.Nodes[c.From], n.Nodes[c.To]
		point, err := n.waitActive(ctx, from, to, points[i])
		if err != nil {
			return err
		}
		if err := n.probeChannel(ctx, from, to, point); err != nil {
			return err
		}
		n.log.Info("regtest: channel usable", "from", c.From, "to", c.To, "capacity_sat", c.CapacitySat,
			"push_sat", c.PushSat, "channel_point", point, "took", time.Since(began).Round(time.Millisecond))
	}
	return nil
}

// waitActive waits until both ends list the channel funded by txid as
// active, and returns its channel point.
func (n *Network) waitActive(ctx context.Context, from, to *Node, txid string) (string, error) {
	var point string
	err := poll(ctx, 60*time.Second, 100*time.Millisecond, func() (bool, error) {
		for _, node := range []*Node{from, to} {
			chans, err := node.channels(ctx)
			if err != nil {
				return false, err
			}
			active := false
			for _, c := range chans {
				if strings.HasPrefix(c.ChannelPoint, txid+":") && c.Active {
					point, active = c.ChannelPoint, true
				}
			}
			if !active {
				return false, fmt.Errorf("%s does not list channel %s as active yet", node.Name, txid)
			}
		}
		return true, nil
	})
	if err != nil {
		return "", daemon.WithLogTail(fmt.Errorf("regtest: channel %s→%s: %w", from.Name, to.Name, err), from.LogPath)
	}
	return point, nil
}

// probeChannel proves the channel carries payments in each direction that
// has money to send. An active channel can still refuse the first payment
// for a moment (INSUFFICIENT_BALANCE while its link starts), so it sends a
// 1-sat payment with a random hash: the payee fails it as unknown, which
// proves the route and moves no money.
func (n *Network) probeChannel(ctx context.Context, a, b *Node, point string) error {
	for _, dir := range [][2]*Node{{a, b}, {b, a}} {
		from, to := dir[0], dir[1]
		c, ok, err := from.channel(ctx, point)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("regtest: node %s does not list channel %s", from.Name, point)
		}
		if int64(c.LocalBalance-c.LocalConstraints.ChanReserveSat) < probeMinSpendable {
			continue
		}
		if err := n.probe(ctx, from, to, c); err != nil {
			return err
		}
	}
	return nil
}

func (n *Network) probe(ctx context.Context, from, to *Node, c channel) error {
	var hashes []string
	attempts := 0
	var firstErr error
	err := poll(ctx, 30*time.Second, 200*time.Millisecond, func() (bool, error) {
		attempts++
		h := randomHex32()
		out, err := from.Lncli(ctx, "sendpayment",
			"--dest", to.PubKey, "--amt", "1", "--payment_hash", h,
			"--final_cltv_delta", "40", "--outgoing_chan_id", c.SCID,
			"--timeout", "10s", "--json")
		if p, ok := lastPayment(out); ok {
			hashes = append(hashes, h)
			if p.FailureReason == "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS" {
				return true, nil
			}
			err = fmt.Errorf("probe payment %s: %s", p.Status, p.FailureReason)
		}
		if firstErr == nil {
			firstErr = err
		}
		return false, err
	})
	// The probes are not payments anyone made: drop them from the payment
	// history, and after failed attempts forget what mission control
	// learned from them so it does not avoid the channel.
	cleanup := context.WithoutCancel(ctx)
	for _, h := range hashes {
		_, _ = from.Lncli(cleanup, "deletepayments", "--payment_hash", h)
	}
	if attempts > 1 {
		if _, rerr := from.Lncli(cleanup, "resetmc"); rerr != nil {
			n.log.Warn("regtest: reset mission control after probing", "node", from.Name, "err", rerr)
		}
		n.log.Info("regtest: channel needed retries before carrying a payment", "from", from.Name, "to", to.Name, "attempts", attempts, "first_failure", firstErr)
	}
	if err != nil {
		return daemon.WithLogTail(fmt.Errorf("regtest: channel %s %s→%s carries no payment: %w", c.ChannelPoint, from.Name, to.Name, err), from.LogPath)
	}
	return nil
}

// each runs f for every node at once and joins the errors.
func (n *Network) each(f func(*Node) error) error {
	errs := make([]error, len(n.order))
	var wg sync.WaitGroup
	for i, node := range n.order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(node)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (n *Network) nodeByPubKey(pub string) *Node {
	for _, node := range n.order {
		if node.PubKey == pub {
			return node
		}
	}
	return nil
}

// addrs lists every address a daemon listens on; for tests.
func (n *Network) addrs() []string {
	var out []string
	for _, node := range n.order {
		out = append(out, node.RPCAddr, node.P2PAddr)
	}
	if n.Btcd != nil {
		out = append(out, n.Btcd.RPCAddr)
	}
	return out
}
