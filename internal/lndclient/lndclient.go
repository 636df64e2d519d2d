// Package lndclient talks to one lnd node over gRPC: the wall creates and
// watches invoices with it, the car pays them and asks what it can spend.
//
// Permissions. Each call names the macaroon permission it needs:
//
//	GetInfo           info:read      (Dial, PubKey, Network)
//	AddInvoice        invoices:write
//	LookupInvoice     invoices:read
//	SubscribeInvoices invoices:read  (WatchSettlements)
//	CancelInvoice     invoices:write (invoicesrpc)
//	DecodePayReq      offchain:read  (Pay)
//	SendPaymentV2     offchain:write (Pay)
//	TrackPaymentV2    offchain:read  (Pay, Track)
//	ListChannels      offchain:read  (SpendableMsat)
//
// lnd's invoice.macaroon is enough for the wall (Dial then leaves PubKey and
// Network empty: it lacks info:read). The car should run with a macaroon
// baked for paying only:
//
//	lncli bakemacaroon --save_to pay.macaroon info:read offchain:read offchain:write
package lndclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/invoicesrpc"
	"github.com/lightningnetwork/lnd/lnrpc/routerrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"satwatt/internal/clock"
)

// Errors callers tell apart with errors.Is. Every error of this package wraps
// at most one of them together with the underlying gRPC error.
var (
	// ErrUnreachable: no connection to lnd (refused, timed out, or dropped).
	ErrUnreachable = errors.New("lnd unreachable")
	// ErrBadCert: the TLS handshake failed; the certificate given is not
	// the node's.
	ErrBadCert = errors.New("TLS certificate does not match the node")
	// ErrPermission: lnd refused the macaroon for this call.
	ErrPermission = errors.New("macaroon lacks permission")
	// ErrNotReady: lnd answers but is still starting or its wallet is locked.
	ErrNotReady = errors.New("lnd not ready")
	// ErrInvoiceNotFound: the node has no invoice with that payment hash.
	ErrInvoiceNotFound = errors.New("invoice not found")
	// ErrAlreadySettled: an invoice could not be canceled because it is paid.
	ErrAlreadySettled = errors.New("invoice already settled")
	// ErrPaymentNotFound: the node never started a payment with that hash.
	ErrPaymentNotFound = errors.New("payment not found")
	// ErrAmountMismatch: the node decodes the invoice to another amount
	// than the caller expected; nothing was paid.
	ErrAmountMismatch = errors.New("invoice amount differs from the expected amount")
)

// DefaultTimeout bounds each unary call (and Dial's check) when
// Config.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// maxRecvMsgSize: gRPC's 4 MB default is too small for lnd's larger
// listings; 32 MB is plenty for the calls made here.
const maxRecvMsgSize = 32 << 20

// Config says how to reach one lnd node. Give either LndConnectURI or
// RPCAddr, TLSCertPath and MacaroonPath.
type Config struct {
	RPCAddr      string // host:port of lnd's gRPC listener
	TLSCertPath  string // lnd's tls.cert (PEM)
	MacaroonPath string // a macaroon file, e.g. invoice.macaroon

	// LndConnectURI is the alternative to the three fields above:
	// lndconnect://host:port?cert=<base64url DER>&macaroon=<base64url>.
	// Without cert the system roots verify the node.
	LndConnectURI string

	// Timeout bounds each unary call and Dial's first call; streams are
	// bounded by their context only. Zero means DefaultTimeout.
	Timeout time.Duration
	Logger  *slog.Logger // nil: slog.Default()
	Clock   clock.Clock  // backoff and timestamps; nil: clock.Real{}

	// Needs, when set, is what the command's calls need: Dial reads the
	// macaroon's permissions and warns, naming each, if it grants more.
	Needs *Permissions
}

// Client is a connection to one lnd node. It is safe for concurrent use.
type Client struct {
	addr    string
	timeout time.Duration
	log     *slog.Logger
	clock   clock.Clock

	conn     *grpc.ClientConn
	ln       lnrpc.LightningClient
	router   routerrpc.RouterClient
	invoices invoicesrpc.InvoicesClient

	pubKey  string
	network string
	perms   []string // what the macaroon grants; nil if unreadable
}

// macaroonCred sends the macaroon, hex-encoded, with every call, which is
// how lnd expects it.
type macaroonCred string

func (m macaroonCred) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"macaroon": string(m)}, nil
}

// RequireTransportSecurity keeps the macaroon off unencrypted connections.
func (macaroonCred) RequireTransportSecurity() bool { return true }

// Dial connects to lnd and makes one call, so that a wrong address, a
// certificate that is not the node's, or a macaroon without permission
// shows up here rather than at the first payment.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	c := &Client{
		timeout: cfg.Timeout,
		log:     cfg.Logger,
		clock:   cfg.Clock,
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.clock == nil {
		c.clock = clock.Real{}
	}

	addr, tlsCfg, mac, err := endpoint(cfg)
	if err != nil {
		return nil, err
	}
	c.addr = addr
	c.log = c.log.With("lnd", addr)
	c.checkPermissions(mac, cfg.Needs)

	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
		grpc.WithPerRPCCredentials(macaroonCred(hex.EncodeToString(mac))),
		// gRPC's own reconnect backoff grows to 120 s; keep it as short
		// as the watcher's so a restarted lnd is found again quickly.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  minBackoff,
				Multiplier: 2,
				Jitter:     0.2,
				MaxDelay:   maxBackoff,
			},
			MinConnectTimeout: c.timeout,
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMsgSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("lndclient: set up gRPC client for %s: %w", addr, err)
	}
	c.conn = conn
	c.ln = lnrpc.NewLightningClient(conn)
	c.router = routerrpc.NewRouterClient(conn)
	c.invoices = invoicesrpc.NewInvoicesClient(conn)

	if err := c.check(ctx); err != nil {
		_ = conn.Close()
		return nil, err
	}
	c.log.Debug("lnd connected", "pubkey", c.pubKey, "network", c.network)
	return c, nil
}

// checkPermissions reads what the macaroon grants and warns about what
// need does not use. It never refuses: lnd is the judge of the macaroon,
// and an owner may knowingly run with more.
func (c *Client) checkPermissions(mac []byte, need *Permissions) {
	perms, err := MacaroonPermissions(mac)
	if err != nil {
		if need != nil {
			c.log.Warn("cannot read the macaroon's permissions to check them", "err", err)
		}
		return
	}
	c.perms = perms
	if need == nil {
		return
	}
	if extra := Excess(perms, *need); len(extra) > 0 {
		c.log.Warn("the macaroon grants more than this command uses; bake one with only what it needs",
			"beyond_need", strings.Join(extra, " "),
			"bake", "lncli bakemacaroon --save_to <file> "+strings.Join(need.Perms, " "))
	}
}

// MacaroonPermissions returns what the client's macaroon grants, as
// "entity:action" strings, or nil if it could not be read.
func (c *Client) MacaroonPermissions() []string { return slices.Clone(c.perms) }

// check makes Dial's first call. GetInfo needs info:read, which an invoice
// macaroon lacks; then a call the macaroon may hold proves the connection
// and the macaroon instead.
func (c *Client) check(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	info, err := c.ln.GetInfo(cctx, &lnrpc.GetInfoRequest{})
	if err == nil {
		c.pubKey = info.IdentityPubkey
		if len(info.Chains) > 0 {
			c.network = info.Chains[0].Network
		}
		return nil
	}
	infoErr := c.wrap(cctx, "GetInfo", err)
	if !errors.Is(infoErr, ErrPermission) || macaroonRejected(err) {
		return infoErr // no other call can succeed either
	}
	probes := []struct {
		rpc  string
		call func(context.Context) error
	}{
		{"ListInvoices", func(ctx context.Context) error {
			_, err := c.ln.ListInvoices(ctx, &lnrpc.ListInvoiceRequest{NumMaxInvoices: 1})
			return err
		}},
		{"ListChannels", func(ctx context.Context) error {
			_, err := c.ln.ListChannels(ctx, &lnrpc.ListChannelsRequest{ActiveOnly: true})
			return err
		}},
	}
	for _, p := range probes {
		perr := c.wrap(cctx, p.rpc, p.call(cctx))
		if perr == nil {
			c.log.Info("macaroon lacks info:read; node public key and network unknown")
			return nil
		}
		if !errors.Is(perr, ErrPermission) {
			return perr
		}
	}
	return fmt.Errorf("lndclient: the macaroon allows none of GetInfo (info:read), "+
		"ListInvoices (invoices:read), ListChannels (offchain:read) at %s; first refusal: %w", c.addr, infoErr)
}

// endpoint turns the config into an address, a TLS config and the macaroon
// bytes, naming the file or field at fault.
func endpoint(cfg Config) (string, *tls.Config, []byte, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.LndConnectURI != "" {
		if cfg.RPCAddr != "" || cfg.TLSCertPath != "" || cfg.MacaroonPath != "" {
			return "", nil, nil, errors.New("lndclient: config sets both LndConnectURI and " +
				"RPCAddr/TLSCertPath/MacaroonPath; give one or the other")
		}
		u, err := parseLndConnect(cfg.LndConnectURI)
		if err != nil {
			return "", nil, nil, fmt.Errorf("lndclient: %w", err)
		}
		if u.cert != nil {
			tlsCfg.RootCAs = x509.NewCertPool()
			tlsCfg.RootCAs.AddCert(u.cert)
		}
		return u.addr, tlsCfg, u.macaroon, nil
	}

	var missing []string
	for _, f := range []struct{ name, val string }{
		{"RPCAddr", cfg.RPCAddr}, {"TLSCertPath", cfg.TLSCertPath}, {"MacaroonPath", cfg.MacaroonPath},
	} {
		if f.val == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return "", nil, nil, fmt.Errorf("lndclient: config lacks %s (or give LndConnectURI)",
			strings.Join(missing, ", "))
	}
	pem, err := os.ReadFile(cfg.TLSCertPath)
	if err != nil {
		return "", nil, nil, fmt.Errorf("lndclient: read lnd TLS certificate: %w", err)
	}
	tlsCfg.RootCAs = x509.NewCertPool()
	if !tlsCfg.RootCAs.AppendCertsFromPEM(pem) {
		return "", nil, nil, fmt.Errorf("lndclient: lnd TLS certificate %s holds no PEM certificate", cfg.TLSCertPath)
	}
	mac, err := os.ReadFile(cfg.MacaroonPath)
	if err != nil {
		return "", nil, nil, fmt.Errorf("lndclient: read macaroon: %w", err)
	}
	if len(mac) == 0 {
		return "", nil, nil, fmt.Errorf("lndclient: macaroon file %s is empty", cfg.MacaroonPath)
	}
	return cfg.RPCAddr, tlsCfg, mac, nil
}

// Close ends the connection.
func (c *Client) Close() error {
	if err := c.conn.Close(); err != nil {
		return fmt.Errorf("lndclient: close connection to %s: %w", c.addr, err)
	}
	return nil
}

// Addr is the node's gRPC address.
func (c *Client) Addr() string { return c.addr }

// PubKey is the node's identity key (hex) from GetInfo; empty when the
// macaroon lacks info:read.
func (c *Client) PubKey() string { return c.pubKey }

// Network is the node's network from GetInfo ("mainnet", "testnet",
// "regtest", ...); empty when the macaroon lacks info:read.
func (c *Client) Network() string { return c.network }

// permissions names what each call needs, for error messages.
var permissions = map[string]string{
	"GetInfo":           "info:read",
	"AddInvoice":        "invoices:write",
	"LookupInvoice":     "invoices:read",
	"ListInvoices":      "invoices:read",
	"SubscribeInvoices": "invoices:read",
	"CancelInvoice":     "invoices:write",
	"DecodePayReq":      "offchain:read",
	"SendPaymentV2":     "offchain:write",
	"TrackPaymentV2":    "offchain:read",
	"ListChannels":      "offchain:read",
}

// macaroonRejected tells a macaroon lnd does not accept at all from one
// that merely lacks a permission.
func macaroonRejected(err error) bool {
	msg := status.Convert(err).Message()
	return strings.Contains(msg, "verification failed") || strings.Contains(msg, "cannot get macaroon")
}

// unary bounds a unary call by the configured timeout.
func (c *Client) unary(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// wrap turns a gRPC error from rpc into one that says what failed and where,
// and wraps the matching sentinel. ctx is the call's context: its end is
// reported as such, not as an unreachable node.
func (c *Client) wrap(ctx context.Context, rpc string, err error) error {
	if err == nil {
		return nil
	}
	st, _ := status.FromError(err)
	msg := st.Message()
	where := fmt.Sprintf("lndclient: %s at %s", rpc, c.addr)
	switch {
	case st.Code() == codes.PermissionDenied || strings.Contains(msg, "permission denied"):
		return fmt.Errorf("%s: %w (needs %s): %w", where, ErrPermission, permissions[rpc], err)
	case macaroonRejected(err):
		return fmt.Errorf("%s: %w: lnd rejects the macaroon (made for another node, or damaged): %w",
			where, ErrPermission, err)
	case strings.Contains(msg, "authentication handshake failed"), strings.Contains(msg, "x509:"):
		return fmt.Errorf("lndclient: %w at %s (%s): %w", ErrBadCert, c.addr, rpc, err)
	case st.Code() == codes.NotFound && rpc == "TrackPaymentV2":
		return fmt.Errorf("%s: %w: %w", where, ErrPaymentNotFound, err)
	case st.Code() == codes.NotFound && rpc == "LookupInvoice",
		strings.Contains(msg, "unable to locate invoice"),
		strings.Contains(msg, "there are no existing invoices"):
		return fmt.Errorf("%s: %w: %w", where, ErrInvoiceNotFound, err)
	case strings.Contains(msg, "already settled"):
		return fmt.Errorf("%s: %w: %w", where, ErrAlreadySettled, err)
	case strings.Contains(msg, "starting up"), strings.Contains(msg, "waiting to start"),
		strings.Contains(msg, "process of starting"), strings.Contains(msg, "shutting down"),
		strings.Contains(msg, "wallet locked"), strings.Contains(msg, "wallet not created"):
		return fmt.Errorf("%s: %w: %w", where, ErrNotReady, err)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		// The unary timeout or the caller's deadline: either way lnd
		// did not answer in time.
		return fmt.Errorf("%s: %w: no answer before the deadline (call timeout %v): %w",
			where, ErrUnreachable, c.timeout, err)
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", where, ctx.Err())
	case st.Code() == codes.Unavailable:
		return fmt.Errorf("%s: %w (call timeout %v): %w", where, ErrUnreachable, c.timeout, err)
	}
	return fmt.Errorf("%s: %w", where, err)
}
