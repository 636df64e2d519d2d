package regtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"satwatt/internal/daemon"
)

// Btcd is the network's chain backend.
type Btcd struct {
	Dir, RPCAddr      string
	RPCUser, RPCPass  string
	CertPath, LogPath string
	// MiningAddr receives every block's coinbase: the harness's own key,
	// which funds the nodes.
	MiningAddr string

	bin, btcctlBin string
	mu             sync.Mutex
	proc           *daemon.Process
	client         *http.Client
}

func (b *Btcd) args() []string {
	args := []string{
		"--regtest",
		"--configfile=" + filepath.Join(b.Dir, "btcd.conf"),
		"--datadir=" + filepath.Join(b.Dir, "data"),
		"--logdir=" + filepath.Join(b.Dir, "logs"),
		"--rpcuser=" + b.RPCUser,
		"--rpcpass=" + b.RPCPass,
		"--rpccert=" + b.CertPath,
		"--rpckey=" + filepath.Join(b.Dir, "rpc.key"),
		"--rpclisten=" + b.RPCAddr,
		// lnd talks to btcd over RPC only.
		"--nolisten",
		"--nodnsseed",
		"--txindex",
		"--debuglevel=info",
	}
	if b.MiningAddr != "" {
		args = append(args, "--miningaddr="+b.MiningAddr)
	}
	return args
}

// start runs btcd and returns once its RPC answers.
func (b *Btcd) start(ctx, lifetime context.Context, beforeTerm func()) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, err := daemon.Spawn(lifetime, beforeTerm, nil, "btcd", b.LogPath, b.bin, b.args()...)
	if err != nil {
		return err
	}
	b.proc = p
	err = poll(ctx, 60*time.Second, 50*time.Millisecond, func() (bool, error) {
		if p.Exited() {
			return false, p.ExitError()
		}
		if _, err := os.Stat(b.CertPath); err != nil {
			return false, fmt.Errorf("no RPC certificate yet: %w", err)
		}
		if b.client == nil {
			c, err := newRPCClient(b.CertPath)
			if err != nil {
				return false, err
			}
			b.client = c
		}
		_, err := b.call(ctx, "getblockcount")
		return err == nil, err
	})
	if err != nil {
		if p.Exited() {
			return fmt.Errorf("start btcd: %w", p.ExitError())
		}
		return daemon.WithLogTail(fmt.Errorf("start btcd: %w", err), b.LogPath)
	}
	return nil
}

func (b *Btcd) stop(ctx context.Context) error {
	b.mu.Lock()
	p := b.proc
	b.mu.Unlock()
	if p == nil {
		return nil
	}
	if err := p.Stop(ctx); err != nil {
		return err
	}
	return waitPortsFree(ctx, b.RPCAddr)
}

func newRPCClient(certPath string) (*http.Client, error) {
	pem, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("read btcd certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("btcd certificate %s holds no PEM certificate", certPath)
	}
	return &http.Client{
		// generate for a few hundred blocks takes seconds; the caller's
		// context bounds it.
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{
				RootCAs: pool,
				// btcd's self-signed certificate always names localhost.
				ServerName: "localhost",
			},
		},
	}, nil
}

// call makes one JSON-RPC call to btcd and returns its result.
func (b *Btcd) call(ctx context.Context, method string, params ...any) (json.RawMessage, error) {
	if params == nil {
		params = []any{}
	}
	body, err := json.Marshal(map[string]any{"jsonrpc": "1.0", "id": 1, "method": method, "params": params})
	if err != nil {
		return nil, fmt.Errorf("btcd %s: %w", method, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+b.RPCAddr+"/", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("btcd %s: %w", method, err)
	}
	req.SetBasicAuth(b.RPCUser, b.RPCPass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("btcd %s: %w", method, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("btcd %s: %w", method, err)
	}
	var r struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("btcd %s: HTTP %s: %q", method, resp.Status, bytes.TrimSpace(data))
	}
	if r.Error != nil {
		return nil, fmt.Errorf("btcd %s: %s (code %d)", method, r.Error.Message, r.Error.Code)
	}
	return r.Result, nil
}

// height returns btcd's best block height.
func (b *Btcd) height(ctx context.Context) (int64, error) {
	res, err := b.call(ctx, "getblockcount")
	if err != nil {
		return 0, err
	}
	h, err := strconv.ParseInt(string(res), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("btcd getblockcount: %q: %w", res, err)
	}
	return h, nil
}

// generate mines blocks to MiningAddr.
func (b *Btcd) generate(ctx context.Context, blocks int) error {
	_, err := b.call(ctx, "generate", blocks)
	return err
}

// BtcctlArgs are the flags that point btcctl at this btcd.
func (b *Btcd) BtcctlArgs() []string {
	return []string{
		"--regtest",
		"--configfile=" + filepath.Join(b.Dir, "btcctl.conf"),
		"--rpcserver=" + b.RPCAddr,
		"--rpcuser=" + b.RPCUser,
		"--rpcpass=" + b.RPCPass,
		"--rpccert=" + b.CertPath,
	}
}

// Btcctl runs btcctl against this btcd and returns its standard output.
func (b *Btcd) Btcctl(ctx context.Context, args ...string) ([]byte, error) {
	return runClient(ctx, b.btcctlBin, append(b.BtcctlArgs(), args...))
}

// runClient runs a short-lived command-line client; its error carries the
// client's standard error.
func runClient(ctx context.Context, bin string, args []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := bytes.TrimSpace(stderr.Bytes())
		if len(msg) == 0 {
			msg = bytes.TrimSpace(stdout.Bytes())
		}
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), firstNonFlag(args), err, msg)
	}
	return stdout.Bytes(), nil
}

// firstNonFlag names the subcommand in an error.
func firstNonFlag(args []string) string {
	for _, a := range args {
		if len(a) > 0 && a[0] != '-' {
			return a
		}
	}
	return ""
}
