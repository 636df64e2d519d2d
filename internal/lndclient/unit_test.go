package lndclient

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDialConfigErrors(t *testing.T) {
	dir := t.TempDir()
	der, _ := selfSigned(t)
	cert := writeFile(t, dir, "tls.cert", pemOf(der))
	notPEM := writeFile(t, dir, "garbage.cert", []byte("not a certificate"))
	mac := writeFile(t, dir, "admin.macaroon", []byte{2, 1, 3})
	empty := writeFile(t, dir, "empty.macaroon", nil)
	missingCert := filepath.Join(dir, "nowhere", "tls.cert")
	missingMac := filepath.Join(dir, "nowhere", "invoice.macaroon")

	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error
	}{
		{"missing cert file names the path", Config{RPCAddr: "127.0.0.1:1", TLSCertPath: missingCert, MacaroonPath: mac},
			[]string{"TLS certificate", missingCert}},
		{"missing macaroon file names the path", Config{RPCAddr: "127.0.0.1:1", TLSCertPath: cert, MacaroonPath: missingMac},
			[]string{"macaroon", missingMac}},
		{"cert file without PEM", Config{RPCAddr: "127.0.0.1:1", TLSCertPath: notPEM, MacaroonPath: mac},
			[]string{notPEM, "no PEM certificate"}},
		{"empty macaroon", Config{RPCAddr: "127.0.0.1:1", TLSCertPath: cert, MacaroonPath: empty},
			[]string{empty, "empty"}},
		{"nothing given", Config{}, []string{"RPCAddr, TLSCertPath, MacaroonPath", "LndConnectURI"}},
		{"address missing", Config{TLSCertPath: cert, MacaroonPath: mac}, []string{"lacks RPCAddr"}},
		{"both URI and fields", Config{LndConnectURI: "lndconnect://h:1?macaroon=AQ", RPCAddr: "h:1"},
			[]string{"both LndConnectURI"}},
		{"bad URI", Config{LndConnectURI: "lndconnect://h:1"}, []string{"no macaroon"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Dial(context.Background(), Config{Logger: quiet, RPCAddr: tt.cfg.RPCAddr,
				TLSCertPath: tt.cfg.TLSCertPath, MacaroonPath: tt.cfg.MacaroonPath, LndConnectURI: tt.cfg.LndConnectURI})
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestDialNetworkErrors dials listeners that are not lnd: nothing listening,
// a TLS server with another certificate, and one that never answers.
func TestDialNetworkErrors(t *testing.T) {
	dir := t.TempDir()
	ourDER, _ := selfSigned(t)
	theirDER, theirKey := selfSigned(t)
	ourCert := writeFile(t, dir, "tls.cert", pemOf(ourDER))
	mac := writeFile(t, dir, "admin.macaroon", []byte{2, 1, 3})

	closedAddr := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}()

	other, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{theirDER}, PrivateKey: theirKey}},
		NextProtos:   []string{"h2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	go serveHandshakes(other)

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go holdConnections(t, silent)

	tests := []struct {
		name    string
		addr    string
		wantErr error
		want    []string
	}{
		{"nothing listening", closedAddr, ErrUnreachable, []string{closedAddr, "call timeout 400ms"}},
		{"another certificate", other.Addr().String(), ErrBadCert,
			[]string{"TLS certificate does not match the node at " + other.Addr().String()}},
		{"no answer", silent.Addr().String(), ErrUnreachable, []string{silent.Addr().String(), "call timeout 400ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Dial(context.Background(), Config{RPCAddr: tt.addr, TLSCertPath: ourCert, MacaroonPath: mac,
				Timeout: 400 * time.Millisecond, Logger: quiet})
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			t.Log(err)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q is not %v", err, tt.wantErr)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func serveHandshakes(l net.Listener) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			_ = conn.(*tls.Conn).Handshake() // fails: the client does not trust us
			conn.Close()
		}()
	}
}

// holdConnections accepts and never speaks, like a host that swallows
// packets after the TCP handshake.
func holdConnections(t *testing.T, l net.Listener) {
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		conns = append(conns, conn)
	}
}

func TestReasonFromLnd(t *testing.T) {
	tests := []struct {
		in   lnrpc.PaymentFailureReason
		want Reason
	}{
		{lnrpc.PaymentFailureReason_FAILURE_REASON_NONE, ReasonNone},
		{lnrpc.PaymentFailureReason_FAILURE_REASON_TIMEOUT, ReasonTimeout},
		{lnrpc.PaymentFailureReason_FAILURE_REASON_NO_ROUTE, ReasonNoRoute},
		{lnrpc.PaymentFailureReason_FAILURE_REASON_ERROR, ReasonError},
		{lnrpc.PaymentFailureReason_FAILURE_REASON_INCORRECT_PAYMENT_DETAILS, ReasonIncorrectDetails},
		{lnrpc.PaymentFailureReason_FAILURE_REASON_INSUFFICIENT_BALANCE, ReasonInsufficientBalance},
		{lnrpc.PaymentFailureReason_FAILURE_REASON_CANCELED, ReasonCanceled},
		{lnrpc.PaymentFailureReason(99), ReasonError}, // newer than this package
	}
	for _, tt := range tests {
		if got := reasonFromLnd(tt.in); got != tt.want {
			t.Errorf("reasonFromLnd(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestPaymentResult(t *testing.T) {
	preimage := [32]byte{1, 2, 3}
	hash := sha256.Sum256(preimage[:])
	hashHex := hex.EncodeToString(hash[:])
	tests := []struct {
		name    string
		in      *lnrpc.Payment
		want    PaymentResult
		wantErr string
	}{
		{"succeeded", &lnrpc.Payment{PaymentHash: hashHex, Status: lnrpc.Payment_SUCCEEDED,
			PaymentPreimage: hex.EncodeToString(preimage[:]), ValueMsat: 25_000, FeeMsat: 3},
			PaymentResult{PaymentHash: hash, Status: Succeeded, Preimage: preimage, AmountMsat: 25_000, FeeMsat: 3}, ""},
		{"failed", &lnrpc.Payment{PaymentHash: hashHex, Status: lnrpc.Payment_FAILED,
			FailureReason: lnrpc.PaymentFailureReason_FAILURE_REASON_NO_ROUTE, ValueMsat: 25_000},
			PaymentResult{PaymentHash: hash, Status: Failed, FailureReason: ReasonNoRoute, AmountMsat: 25_000}, ""},
		{"failed without a reason is an error, never none", &lnrpc.Payment{PaymentHash: hashHex, Status: lnrpc.Payment_FAILED},
			PaymentResult{PaymentHash: hash, Status: Failed, FailureReason: ReasonError}, ""},
		{"in flight", &lnrpc.Payment{PaymentHash: hashHex, Status: lnrpc.Payment_IN_FLIGHT},
			PaymentResult{PaymentHash: hash, Status: InFlight}, ""},
		{"initiated", &lnrpc.Payment{PaymentHash: hashHex, Status: lnrpc.Payment_INITIATED},
			PaymentResult{PaymentHash: hash, Status: InFlight}, ""},
		{"preimage of another hash", &lnrpc.Payment{PaymentHash: hashHex, Status: lnrpc.Payment_SUCCEEDED,
			PaymentPreimage: hex.EncodeToString(make([]byte, 32))}, PaymentResult{}, "does not hash to it"},
		{"short preimage", &lnrpc.Payment{PaymentHash: hashHex, Status: lnrpc.Payment_SUCCEEDED,
			PaymentPreimage: "0102"}, PaymentResult{}, "32-byte preimage"},
		{"bad hash", &lnrpc.Payment{PaymentHash: "zz", Status: lnrpc.Payment_IN_FLIGHT}, PaymentResult{}, "not 32 hex bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := paymentResult(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestWrap checks that lnd's answers become the typed errors, as lnd words
// them (a refused macaroon comes back as code Unknown, "permission denied").
func TestWrap(t *testing.T) {
	c := &Client{addr: "192.0.2.1:10009", timeout: time.Second}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		rpc  string
		err  error
		want error
		msg  []string
	}{
		{"lnd permission denied", context.Background(), "AddInvoice",
			status.Error(codes.Unknown, "permission denied"), ErrPermission, []string{"AddInvoice", "invoices:write", "192.0.2.1:10009"}},
		{"grpc PermissionDenied", context.Background(), "SendPaymentV2",
			status.Error(codes.PermissionDenied, "no"), ErrPermission, []string{"offchain:write"}},
		{"macaroon of another node", context.Background(), "GetInfo",
			status.Error(codes.Unknown, "verification failed: signature mismatch after caveat verification"), ErrPermission, nil},
		{"bad cert", context.Background(), "GetInfo",
			status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"`),
			ErrBadCert, []string{"TLS certificate does not match the node at 192.0.2.1:10009"}},
		{"refused", context.Background(), "GetInfo",
			status.Error(codes.Unavailable, "connection refused"), ErrUnreachable, []string{"192.0.2.1:10009", "call timeout 1s"}},
		{"starting", context.Background(), "GetInfo",
			status.Error(codes.Unknown, "the RPC server is in the process of starting up, but not yet ready to accept calls"), ErrNotReady, nil},
		{"server not active", context.Background(), "LookupInvoice",
			status.Error(codes.Unknown, "server is still in the process of starting"), ErrNotReady, nil},
		{"invoice not found", context.Background(), "LookupInvoice",
			status.Error(codes.NotFound, "unable to locate invoice"), ErrInvoiceNotFound, nil},
		{"cancel unknown invoice", context.Background(), "CancelInvoice",
			status.Error(codes.Unknown, "unable to locate invoice"), ErrInvoiceNotFound, nil},
		{"cancel settled invoice", context.Background(), "CancelInvoice",
			status.Error(codes.Unknown, "invoice already settled"), ErrAlreadySettled, nil},
		{"payment not found", context.Background(), "TrackPaymentV2",
			status.Error(codes.NotFound, "payment isn't initiated"), ErrPaymentNotFound, nil},
		{"caller canceled", canceled, "ListChannels",
			status.Error(codes.Canceled, "context canceled"), context.Canceled, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.wrap(tt.ctx, tt.rpc, tt.err)
			if !errors.Is(got, tt.want) {
				t.Fatalf("wrap = %v, want %v", got, tt.want)
			}
			if !errors.Is(got, tt.err) && tt.want != context.Canceled {
				t.Errorf("wrap = %v does not keep the gRPC error", got)
			}
			for _, m := range tt.msg {
				if !strings.Contains(got.Error(), m) {
					t.Errorf("%q does not contain %q", got, m)
				}
			}
		})
	}
}

func TestNextBackoff(t *testing.T) {
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, 1600 * time.Millisecond, 3200 * time.Millisecond, 5 * time.Second, 5 * time.Second}
	d := time.Duration(0)
	for i, w := range want {
		d = nextBackoff(d)
		if d != w {
			t.Fatalf("step %d: %v, want %v", i, d, w)
		}
	}
}

func TestHTLCFeeBuffer(t *testing.T) {
	tests := []struct {
		name                              string
		initiator                         bool
		feePerKw, commitWeight, fee, want int64
	}{
		// An anchor channel at 2,500 sat/kw: weight 1,116, fee 2,790 sat
		// today; with one more HTLC at twice the rate 6,440 sat.
		{"opener", true, 2_500, 1_116, 2_790, 3_650},
		{"not the opener", false, 2_500, 1_116, 2_790, 0},
		{"no fee rate", true, 0, 1_116, 0, 0},
	}
	for _, tt := range tests {
		if got := htlcFeeBuffer(tt.initiator, tt.feePerKw, tt.commitWeight, tt.fee); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestCallerEnded(t *testing.T) {
	expired, cancel := context.WithTimeout(context.Background(), -time.Second)
	defer cancel()
	withDeadline, cancel2 := context.WithTimeout(context.Background(), time.Hour)
	defer cancel2()
	deadlineErr := status.Error(codes.DeadlineExceeded, "stream terminated by RST_STREAM with error code: CANCEL")
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"context over", expired, errors.New("anything"), true},
		// lnd cut the stream at the deadline a moment before ctx knew.
		{"deadline reached at lnd first", withDeadline, deadlineErr, true},
		{"no deadline: lnd's own timeout", context.Background(), deadlineErr, false},
		{"other error", withDeadline, status.Error(codes.Unavailable, "gone"), false},
	}
	for _, tt := range tests {
		if got := callerEnded(tt.ctx, tt.err); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
