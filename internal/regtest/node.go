package regtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"satwatt/internal/daemon"
)

// Node is one lnd of the network.
type Node struct {
	Name, Dir, RPCAddr, P2PAddr, PubKey                                       string
	TLSCertPath, AdminMacaroonPath, InvoiceMacaroonPath, ReadonlyMacaroonPath string
	// LogPath is lnd's console output.
	LogPath string

	net          *Network
	tlsExtraIPs  []string
	rpcListenIPs []string
	mu           sync.Mutex
	proc         *daemon.Process
}

func newNode(n *Network, name string) *Node {
	dir := filepath.Join(n.Dir, name)
	macs := filepath.Join(dir, "data", "chain", "bitcoin", "regtest")
	return &Node{
		Name:                 name,
		Dir:                  dir,
		TLSCertPath:          filepath.Join(dir, "tls.cert"),
		AdminMacaroonPath:    filepath.Join(macs, "admin.macaroon"),
		InvoiceMacaroonPath:  filepath.Join(macs, "invoice.macaroon"),
		ReadonlyMacaroonPath: filepath.Join(macs, "readonly.macaroon"),
		LogPath:              filepath.Join(dir, "lnd.log"),
		net:                  n,
	}
}

func (n *Node) args() []string {
	b := n.net.Btcd
	args := []string{
		"--lnddir=" + n.Dir,
		"--alias=" + n.Name,
		"--listen=" + n.P2PAddr,
		"--rpclisten=" + n.RPCAddr,
		"--norest",
		"--noseedbackup",
		"--nobootstrap",
		"--bitcoin.regtest",
		"--bitcoin.node=btcd",
		"--btcd.rpchost=" + b.RPCAddr,
		"--btcd.rpcuser=" + b.RPCUser,
		"--btcd.rpcpass=" + b.RPCPass,
		"--btcd.rpccert=" + b.CertPath,
		"--bitcoin.defaultchanconfs=1",
		"--trickledelay=50",
		"--debuglevel=info",
		// Tests may open several channels to one peer at once.
		"--maxpendingchannels=10",
		"--protocol.wumbo-channels",
		// The console output is the log file; a second copy is noise.
		"--logging.file.disable",
	}
	for _, ip := range n.tlsExtraIPs {
		args = append(args, "--tlsextraip="+ip)
	}
	if _, port, err := net.SplitHostPort(n.RPCAddr); err == nil {
		for _, ip := range n.rpcListenIPs {
			args = append(args, "--rpclisten="+net.JoinHostPort(ip, port))
		}
	}
	return args
}

// LncliArgs are the global flags that point lncli at this node with its
// admin macaroon.
func (n *Node) LncliArgs() []string {
	return []string{
		"--network=regtest",
		"--rpcserver=" + n.RPCAddr,
		"--tlscertpath=" + n.TLSCertPath,
		"--macaroonpath=" + n.AdminMacaroonPath,
	}
}

// LncliCommand is a shell command line that reaches this node.
func (n *Node) LncliCommand() string {
	return strings.Join(append([]string{n.net.Binaries.Lncli}, n.LncliArgs()...), " ")
}

// Lncli runs lncli against this node and returns its standard output. On
// failure it returns what lncli printed as well, since some commands
// (sendpayment --json) report a failed payment there.
func (n *Node) Lncli(ctx context.Context, args ...string) ([]byte, error) {
	out, err := runClient(ctx, n.net.Binaries.Lncli, append(n.LncliArgs(), args...))
	if err != nil {
		return out, fmt.Errorf("node %s: %w", n.Name, err)
	}
	return out, nil
}

// lncliJSON runs lncli and decodes its JSON output into v.
func (n *Node) lncliJSON(ctx context.Context, v any, args ...string) error {
	out, err := n.Lncli(ctx, args...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("node %s: lncli %s: decode %q: %w", n.Name, args[0], out, err)
	}
	return nil
}

// Pid is the running lnd's process id, 0 when it is stopped; benchmarks
// read its CPU time.
func (n *Node) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil || n.proc.Exited() {
		return 0
	}
	return n.proc.Pid()
}

func (n *Node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil && !n.proc.Exited()
}

// Start restarts a stopped node with its data directory. It returns when the
// RPC answers, the wallet is unlocked and synced to btcd, and every channel
// to a running peer is active and carries a payment. The process lives as
// long as the context given to the network's Start; ctx bounds only the
// wait.
func (n *Node) Start(ctx context.Context) error {
	if err := n.launch(ctx, false); err != nil {
		return err
	}
	h, err := n.net.Btcd.height(ctx)
	if err != nil {
		return err
	}
	if err := n.waitSynced(ctx, h); err != nil {
		return err
	}
	return n.waitChannelsUsable(ctx)
}

// launch starts lnd and waits until its RPC answers. With retryPorts it
// picks new ports when another process took them first.
func (n *Node) launch(ctx context.Context, retryPorts bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil && !n.proc.Exited() {
		return fmt.Errorf("node %s: already running", n.Name)
	}
	for attempt := 1; ; attempt++ {
		if n.RPCAddr == "" || attempt > 1 {
			ports, err := freePorts(2)
			if err != nil {
				return err
			}
			n.RPCAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
			n.P2PAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
		}
		p, err := daemon.Spawn(n.net.lifetime, nil, nil, "lnd "+n.Name, n.LogPath, n.net.Binaries.Lnd, n.args()...)
		if err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
		n.proc = p
		err = n.waitRPC(ctx, p)
		if err == nil {
			return nil
		}
		if !retryPorts || attempt == 3 || !p.Exited() || !daemon.LogContains(n.LogPath, "address already in use") {
			_ = p.Stop(context.WithoutCancel(ctx))
			return err
		}
		n.net.log.Warn("lnd port taken, retrying with new ports", "node", n.Name)
	}
}

// waitRPC waits until getinfo answers, which with --noseedbackup means the
// wallet exists and is unlocked.
func (n *Node) waitRPC(ctx context.Context, p *daemon.Process) error {
	err := poll(ctx, 90*time.Second, 100*time.Millisecond, func() (bool, error) {
		if p.Exited() {
			return false, p.ExitError()
		}
		var info getInfo
		if err := n.lncliJSON(ctx, &info, "getinfo"); err != nil {
			return false, err
		}
		n.PubKey = info.IdentityPubkey
		return true, nil
	})
	if err != nil {
		if p.Exited() {
			return fmt.Errorf("node %s: %w", n.Name, p.ExitError())
		}
		return daemon.WithLogTail(fmt.Errorf("node %s: wait for RPC: %w", n.Name, err), n.LogPath)
	}
	return nil
}

// waitExit waits up to timeout for the node's process, if any, to exit.
func (n *Node) waitExit(timeout time.Duration) {
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	if p == nil {
		return
	}
	select {
	case <-p.Done():
	case <-time.After(timeout):
	}
}

// Stop sends lnd SIGTERM and returns once it has exited and its ports are
// free.
func (n *Node) Stop(ctx context.Context) error {
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	if p == nil {
		return nil
	}
	if err := p.Stop(ctx); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	if err := waitPortsFree(ctx, n.RPCAddr, n.P2PAddr); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	return nil
}

// Restart stops and starts the node; see Start.
func (n *Node) Restart(ctx context.Context) error {
	if err := n.Stop(ctx); err != nil {
		return err
	}
	return n.Start(ctx)
}

// waitSynced waits until lnd has processed the chain up to height.
func (n *Node) waitSynced(ctx context.Context, height int64) error {
	err := poll(ctx, 60*time.Second, 100*time.Millisecond, func() (bool, error) {
		if !n.running() {
			return false, errors.New("lnd is not running")
		}
		var info getInfo
		if err := n.lncliJSON(ctx, &info, "getinfo"); err != nil {
			return false, err
		}
		if info.BlockHeight < height || !info.SyncedToChain {
			return false, fmt.Errorf("at height %d of %d, synced_to_chain=%v", info.BlockHeight, height, info.SyncedToChain)
		}
		return true, nil
	})
	if err != nil {
		return daemon.WithLogTail(fmt.Errorf("node %s: wait for chain sync: %w", n.Name, err), n.LogPath)
	}
	return nil
}

// waitChannelsUsable waits until every channel to a running peer is active
// and then probes it in each direction that has money to send.
func (n *Node) waitChannelsUsable(ctx context.Context) error {
	var chans []channel
	// After a restart lnd reconnects to its channel peers by itself, but
	// the peer that dialled while this node was down may have backed off
	// for a minute or more (CI saw it miss the 60 s here on a loaded
	// machine): dial it from this side too, every few seconds.
	start, dialled := time.Now(), map[string]time.Time{}
	err := poll(ctx, 60*time.Second, 100*time.Millisecond, func() (bool, error) {
		var err error
		chans, err = n.channels(ctx)
		if err != nil {
			return false, err
		}
		for _, c := range chans {
			if peer := n.net.nodeByPubKey(c.RemotePubkey); peer != nil && peer.running() && !c.Active {
				if time.Since(start) > 2*time.Second && time.Since(dialled[peer.Name]) > 5*time.Second {
					dialled[peer.Name] = time.Now()
					// Errors are expected ("already connected" while the
					// channel comes up); the poll reports what matters.
					_, _ = n.Lncli(ctx, "connect", peer.PubKey+"@"+peer.P2PAddr)
				}
				return false, fmt.Errorf("channel %s to %s is not active", c.ChannelPoint, peer.Name)
			}
		}
		return true, nil
	})
	if err != nil {
		return daemon.WithLogTail(fmt.Errorf("node %s: wait for channels: %w", n.Name, err), n.LogPath)
	}
	for _, c := range chans {
		peer := n.net.nodeByPubKey(c.RemotePubkey)
		if peer == nil || !peer.running() {
			continue
		}
		if err := n.net.probeChannel(ctx, n, peer, c.ChannelPoint); err != nil {
			return err
		}
	}
	return nil
}

// connect connects to peer unless already connected, and waits until the
// peer is listed: lncli connect may return before the handshake is done.
func (n *Node) connect(ctx context.Context, peer *Node) error {
	_, err := n.Lncli(ctx, "connect", peer.PubKey+"@"+peer.P2PAddr)
	if err != nil && !strings.Contains(err.Error(), "already connected") {
		return fmt.Errorf("regtest: connect %s to %s: %w", n.Name, peer.Name, err)
	}
	err = poll(ctx, 20*time.Second, 50*time.Millisecond, func() (bool, error) {
		var resp struct {
			Peers []struct {
				PubKey string `json:"pub_key"`
			} `json:"peers"`
		}
		if err := n.lncliJSON(ctx, &resp, "listpeers"); err != nil {
			return false, err
		}
		for _, p := range resp.Peers {
			if p.PubKey == peer.PubKey {
				return true, nil
			}
		}
		return false, fmt.Errorf("%s not among the peers yet", peer.Name)
	})
	if err != nil {
		return daemon.WithLogTail(fmt.Errorf("regtest: connect %s to %s: %w", n.Name, peer.Name, err), n.LogPath)
	}
	return nil
}

// channels lists the node's open channels.
func (n *Node) channels(ctx context.Context) ([]channel, error) {
	var resp struct {
		Channels []channel `json:"channels"`
	}
	if err := n.lncliJSON(ctx, &resp, "listchannels"); err != nil {
		return nil, err
	}
	return resp.Channels, nil
}

// channel finds the open channel with the given channel point.
func (n *Node) channel(ctx context.Context, point string) (channel, bool, error) {
	chans, err := n.channels(ctx)
	if err != nil {
		return channel{}, false, err
	}
	for _, c := range chans {
		if c.ChannelPoint == point {
			return c, true, nil
		}
	}
	return channel{}, false, nil
}

// newAddress returns a fresh P2WKH address of the node's wallet.
func (n *Node) newAddress(ctx context.Context) (string, error) {
	var resp struct {
		Address string `json:"address"`
	}
	if err := n.lncliJSON(ctx, &resp, "newaddress", "p2wkh"); err != nil {
		return "", err
	}
	return resp.Address, nil
}

// confirmedBalance is the node's confirmed on-chain balance in satoshis.
func (n *Node) confirmedBalance(ctx context.Context) (int64, error) {
	var resp struct {
		Confirmed jint `json:"confirmed_balance"`
	}
	if err := n.lncliJSON(ctx, &resp, "walletbalance"); err != nil {
		return 0, err
	}
	return int64(resp.Confirmed), nil
}

type getInfo struct {
	IdentityPubkey string `json:"identity_pubkey"`
	BlockHeight    int64  `json:"block_height"`
	SyncedToChain  bool   `json:"synced_to_chain"`
}

type channel struct {
	Active       bool   `json:"active"`
	RemotePubkey string `json:"remote_pubkey"`
	ChannelPoint string `json:"channel_point"`
	// SCID is the short channel id that --outgoing_chan_id takes; lnd 0.21
	// prints chan_id as a hex channel id instead.
	SCID             string `json:"scid"`
	Capacity         jint   `json:"capacity"`
	LocalBalance     jint   `json:"local_balance"`
	LocalConstraints struct {
		ChanReserveSat jint `json:"chan_reserve_sat"`
	} `json:"local_constraints"`
}

// jint decodes an integer that lncli prints as a number or, for 64-bit
// fields, as a string.
type jint int64

func (j *jint) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*j = 0
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("integer %s: %w", b, err)
	}
	*j = jint(v)
	return nil
}

// payment is the part of lnrpc.Payment the harness reads.
type payment struct {
	PaymentHash   string `json:"payment_hash"`
	Status        string `json:"status"`
	FailureReason string `json:"failure_reason"`
}

// lastPayment decodes the last of the newline-separated JSON payment updates
// that sendpayment --json prints.
func lastPayment(out []byte) (payment, bool) {
	var last payment
	found := false
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p payment
		if err := dec.Decode(&p); err != nil {
			// io.EOF, or lncli printed an error instead of JSON.
			return last, found
		}
		last, found = p, true
	}
}

func randomHex32() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
