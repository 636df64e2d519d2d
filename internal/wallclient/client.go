// Package wallclient is the car's adapter to the wall's HTTP API: the
// LNURL-pay offer and invoices (through lnurlpay), the session status as
// JSON and as a server-sent event stream, and the buyer's stop.
//
// The wall is untrusted: every response body is size-limited, every
// request has a time limit, redirects leave neither the wall's scheme,
// host nor port, and errors name the route, the HTTP status and a clipped
// body, never the preimage or a query string. The package declares its
// own types for what it reads; it does not import the wall's packages.
//
// Over https the wall's self-signed certificate is pinned at the first
// handshake (linktls), and the offer must name that certificate: the
// invoices' description hash covers the offer, so the invoice checks bind
// the channel to the node the car pays.
package wallclient

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"satwatt/internal/linktls"
	"satwatt/internal/lnurlpay"
	"satwatt/internal/offer"
)

// Defaults for the Client's limits.
const (
	DefaultMaxBody = 64 << 10
	DefaultTimeout = 10 * time.Second
	// DefaultStreamIdle is how long the status stream may stay silent; the
	// wall sends a keep-alive comment every 15 s.
	DefaultStreamIdle = 45 * time.Second
)

const (
	maxRedirects = 3
	maxErrorBody = 4 << 10 // read of an error answer
	clipLen      = 200     // bytes of an untrusted string quoted in an error
)

var (
	// ErrDeclined: the wall answered a LUD-06 {"status":"ERROR"}, such as
	// "session is not open". The wall works but does not sell now: retry
	// later. The error also wraps the *lnurlpay.RemoteError with the
	// wall's reason.
	ErrDeclined = errors.New("the wall declined")
	// ErrBadResponse: the wall's answer is not what its API promises.
	ErrBadResponse = errors.New("bad response from the wall")
	// ErrBodyTooLarge: a response exceeded the body limit (the same value
	// as lnurlpay's, so one errors.Is covers both).
	ErrBodyTooLarge = lnurlpay.ErrBodyTooLarge
	// ErrForeignHost: the wall redirected or pointed the car to another
	// scheme, host or port (the same value as lnurlpay's).
	ErrForeignHost = lnurlpay.ErrForeignHost
	// ErrConfig: the Client or an argument is unusable; nothing was sent.
	ErrConfig = errors.New("wallclient: bad configuration or argument")
	// ErrCertNotBound: over https, the offer does not name the certificate
	// the wall presented, so nothing ties the channel to the payee.
	ErrCertNotBound = errors.New("the offer does not name the wall's TLS certificate")
)

// HTTPError is a non-success HTTP answer on one of the wall's JSON routes.
type HTTPError struct {
	Method     string
	Path       string // URL path, no query
	StatusCode int
	Message    string // the wall's "error" text or a clipped body; untrusted
}

func (e *HTTPError) Error() string {
	msg := ""
	if e.Message != "" {
		msg = fmt.Sprintf(": %q", e.Message)
	}
	return fmt.Sprintf("wallclient: %s %s: HTTP %d%s", e.Method, e.Path, e.StatusCode, msg)
}

// Client talks to one wall. The zero value is not usable: set Base. A
// Client is safe for concurrent use once set up.
type Client struct {
	// Base is the wall's root, http://[addr%zone]:port/ from SDP or a
	// static configuration. Routes are resolved below its path.
	Base *url.URL
	// HTTP is the client to use (nil: one on http.DefaultTransport). Its
	// CheckRedirect is replaced; its Timeout, if set, must not be shorter
	// than the stream's life, so Follow clears it for the stream. For an
	// https Base its Transport, if set, must be an *http.Transport: a copy
	// of it gets the certificate pin.
	HTTP *http.Client
	// Logger receives Follow's reports (nil: slog.Default()).
	Logger *slog.Logger
	// MaxBody bounds each JSON response (0: DefaultMaxBody for the status
	// routes and lnurlpay.DefaultMaxBody for LNURL-pay, whose metadata
	// alone may be 64 KiB).
	MaxBody int64
	// Timeout bounds each request, from dial to the body's last byte, and
	// the wait for the stream's response headers (0: DefaultTimeout).
	Timeout time.Duration
	// StreamIdle is how long the status stream may go without a byte
	// before Follow drops and reopens it (0: DefaultStreamIdle).
	StreamIdle time.Duration

	pin       linktls.Pin
	pinOnce   sync.Once
	pinned    http.RoundTripper
	pinnedErr error

	// Test hooks: the backoff bounds and a call after each delivery.
	minBackoff, maxBackoff time.Duration
	delivered              func(WallStatus)
}

// Offer is the wall's LNURL-pay offer, checked by lnurlpay: Pay is what
// Invoice needs, Terms the priced offer parsed from Metadata, and
// Metadata the exact string every invoice's description hash must cover
// (offer.DescriptionHash).
type Offer struct {
	Pay      *lnurlpay.PayOffer
	Terms    offer.Offer
	Metadata string
}

// Offer fetches GET {Base}/lnurlp. A wall without an open session answers
// with a LUD-06 error: the returned error then wraps ErrDeclined (and a
// *lnurlpay.RemoteError with the wall's reason), and the car should ask
// again later. Any other error means the wall or the link is broken.
func (c *Client) Offer(ctx context.Context) (Offer, error) {
	u, err := c.endpoint("lnurlp")
	if err != nil {
		return Offer{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	po, err := c.lnurl().FetchOffer(ctx, u.String())
	if err != nil {
		return Offer{}, c.lnurlErr("offer", err)
	}
	// lnurlpay parsed the metadata already; parse it here too, so the
	// terms returned are exactly what the hashed string says.
	terms, _, err := offer.ParseMetadata(po.Metadata)
	if err != nil {
		return Offer{}, fmt.Errorf("wallclient: offer from %s: %w", u.EscapedPath(), err)
	}
	if c.overTLS() {
		if got := c.pin.Fingerprint(); terms.TLSCertSHA256 != got {
			named := terms.TLSCertSHA256
			if named == "" {
				named = "none"
			}
			return Offer{}, fmt.Errorf("wallclient: offer from %s: %w: it names %s, the wall presented sha256 %s",
				u.EscapedPath(), ErrCertNotBound, named, got)
		}
	}
	return Offer{Pay: po, Terms: terms, Metadata: po.Metadata}, nil
}

// Invoice asks the offer's callback for an invoice of amountMsat and
// returns the BOLT11 string, unchecked: run invoicecheck against
// o.Metadata and o.Terms before paying. A LUD-06 error (session over, too
// many unpaid invoices) wraps ErrDeclined. A socPermille from 0 to 1000
// shares the car's state of charge with the wall's page (parameter
// SoCParam on the callback); -1 shares nothing.
func (c *Client) Invoice(ctx context.Context, o Offer, amountMsat, socPermille int64) (string, error) {
	if o.Pay == nil {
		return "", fmt.Errorf("%w: invoice: no offer (use Client.Offer)", ErrConfig)
	}
	pay := o.Pay
	if socPermille >= 0 && socPermille <= 1000 {
		cb := *pay.Callback
		q := cb.Query()
		q.Set(SoCParam, strconv.FormatInt(socPermille, 10))
		cb.RawQuery = q.Encode()
		cp := *pay
		cp.Callback = &cb
		pay = &cp
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	r, err := c.lnurl().RequestInvoice(ctx, pay, amountMsat, "")
	if err != nil {
		return "", c.lnurlErr("invoice", err)
	}
	return r.PR, nil
}

// SoCParam is the callback parameter that carries the car's state of
// charge in per mille; the wall shows it and trusts nothing to it.
const SoCParam = "soc_permille"

// Status fetches GET {Base}/api/status.
func (c *Client) Status(ctx context.Context) (WallStatus, error) {
	body, err := c.do(ctx, http.MethodGet, nil, "", "api", "status")
	if err != nil {
		return WallStatus{}, err
	}
	st, err := decodeStatus(body)
	if err != nil {
		return WallStatus{}, fmt.Errorf("wallclient: GET %s: %w", c.path("api", "status"), err)
	}
	return st, nil
}

// BuyerStop asks the wall to end session sessionID, proving the car is the
// buyer with the hex preimage of one of the session's payments (POST
// {Base}/api/sessions/{id}/buyer-stop). A refusal is an *HTTPError: 403
// when the wall does not accept the proof, 409 when it cannot stop. The
// preimage never appears in an error.
func (c *Client) BuyerStop(ctx context.Context, sessionID, preimageHex string) error {
	if err := validSessionID(sessionID); err != nil {
		return err
	}
	if b, err := hex.DecodeString(preimageHex); err != nil || len(b) != 32 {
		return fmt.Errorf("%w: buyer stop: the preimage must be 64 hex digits (got %d characters)", ErrConfig, len(preimageHex))
	}
	body, err := json.Marshal(map[string]string{"preimage": preimageHex})
	if err != nil {
		return fmt.Errorf("wallclient: buyer stop: %w", err)
	}
	elem := []string{"api", "sessions", sessionID, "buyer-stop"}
	resp, err := c.do(ctx, http.MethodPost, body, preimageHex, elem...)
	if err != nil {
		return err
	}
	var ok struct {
		Stopped bool `json:"stopped"`
	}
	if err := json.Unmarshal(resp, &ok); err != nil || !ok.Stopped {
		return fmt.Errorf("wallclient: POST %s: %w: want {\"stopped\":true}, got %q",
			c.path(elem...), ErrBadResponse, clip(redactFold(string(resp), preimageHex)))
	}
	return nil
}

// lnurl builds the LNURL-pay client; lnurlpay replaces CheckRedirect
// with its own same-origin policy.
func (c *Client) lnurl() *lnurlpay.Client {
	hc := c.httpClient()
	hc.Timeout = c.timeout()
	return &lnurlpay.Client{HTTP: hc, MaxBody: c.MaxBody}
}

// lnurlErr wraps an lnurlpay error, marking the wall's LUD-06 refusals.
func (c *Client) lnurlErr(op string, err error) error {
	var re *lnurlpay.RemoteError
	if errors.As(err, &re) {
		return fmt.Errorf("wallclient: %s: %w: %w", op, ErrDeclined, err)
	}
	return fmt.Errorf("wallclient: %s: %w", op, err)
}

// do sends one request to the route elem below Base and returns the body
// of a 2xx answer, read within the body limit and the timeout. secret, if
// not empty, is redacted from the wall's words in an error.
func (c *Client) do(parent context.Context, method string, body []byte, secret string, elem ...string) ([]byte, error) {
	u, err := c.endpoint(elem...)
	if err != nil {
		return nil, err
	}
	where := u.EscapedPath()
	ctx, cancel := context.WithTimeout(parent, c.timeout())
	defer cancel()
	// timed names a time-out as such, not as a bare context error.
	timed := func(err error) error {
		if errors.Is(err, context.DeadlineExceeded) && parent.Err() == nil {
			return fmt.Errorf("no complete answer within %v: %w", c.timeout(), err)
		}
		return err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("wallclient: %s %s: %w", method, where, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("wallclient: %s %s: %w", method, where, timed(transportErr(err)))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, httpErr(method, where, resp, secret)
	}
	limit := c.maxBody()
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("wallclient: %s %s: %w: %d bytes, limit %d", method, where, ErrBodyTooLarge, resp.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("wallclient: reading %s %s: %w", method, where, timed(err))
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("wallclient: %s %s: %w: over %d bytes", method, where, ErrBodyTooLarge, limit)
	}
	return b, nil
}

// transportErr unwraps the *url.Error that net/http adds, which would
// repeat the whole URL; the caller names the route.
func transportErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// httpErr reads a little of a failure answer for the message: the
// wall's {"error": "..."} text, else the clipped body, without secret.
func httpErr(method, where string, resp *http.Response, secret string) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	msg := string(b)
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	return &HTTPError{Method: method, Path: where, StatusCode: resp.StatusCode, Message: clip(redactFold(msg, secret))}
}

// endpoint resolves the route elem below Base, with no query.
func (c *Client) endpoint(elem ...string) (*url.URL, error) {
	b := c.Base
	if b == nil {
		return nil, fmt.Errorf("%w: no base URL", ErrConfig)
	}
	if (b.Scheme != "http" && b.Scheme != "https") || b.Host == "" {
		return nil, fmt.Errorf("%w: base URL must be absolute http(s), got scheme %q host %q", ErrConfig, clip(b.Scheme), clip(b.Host))
	}
	if b.User != nil {
		return nil, fmt.Errorf("%w: base URL must not carry user info", ErrConfig)
	}
	u := b.JoinPath(elem...)
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	return u, nil
}

// path names a route in messages.
func (c *Client) path(elem ...string) string {
	if u, err := c.endpoint(elem...); err == nil {
		return u.EscapedPath()
	}
	return "/" + strings.Join(elem, "/")
}

// httpClient copies the configured client with a redirect policy that
// stays on Base's origin and keeps Base's host string (an IPv6 zone such
// as %eth0 is the car's own: the wall cannot know it).
func (c *Client) httpClient() *http.Client {
	hc := &http.Client{}
	if c.HTTP != nil {
		*hc = *c.HTTP
	}
	if c.overTLS() {
		hc.Transport = c.pinnedTransport()
	}
	base := c.Base
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) > maxRedirects {
			return fmt.Errorf("%w: more than %d redirects", ErrBadResponse, maxRedirects)
		}
		if base == nil || !sameOrigin(base, req.URL) {
			return fmt.Errorf("%w: redirect to %s://%s%s", ErrForeignHost, req.URL.Scheme, clip(req.URL.Host), clip(req.URL.EscapedPath()))
		}
		req.URL.Host = base.Host
		return nil
	}
	return hc
}

// overTLS says whether the wall is reached over https.
func (c *Client) overTLS() bool {
	return c.Base != nil && strings.EqualFold(c.Base.Scheme, "https")
}

// pinnedTransport is the one transport of an https Client, so that its
// connections are reused and every handshake is held to the same pin.
func (c *Client) pinnedTransport() http.RoundTripper {
	c.pinOnce.Do(func() {
		rt := c.httpTransport()
		tr, ok := rt.(*http.Transport)
		if !ok {
			c.pinnedErr = fmt.Errorf("%w: an https wall needs an *http.Transport to pin its certificate, got %T", ErrConfig, rt)
			return
		}
		tr = tr.Clone()
		tr.TLSClientConfig = c.pin.ClientConfig()
		c.pinned = tr
	})
	if c.pinnedErr != nil {
		return failing{c.pinnedErr}
	}
	return c.pinned
}

func (c *Client) httpTransport() http.RoundTripper {
	if c.HTTP != nil && c.HTTP.Transport != nil {
		return c.HTTP.Transport
	}
	return http.DefaultTransport
}

// failing refuses every request with a configuration error.
type failing struct{ err error }

func (f failing) RoundTrip(*http.Request) (*http.Response, error) { return nil, f.err }

func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && sameHost(a.Hostname(), b.Hostname()) && port(a) == port(b)
}

// sameHost compares host names without an IPv6 zone, and addresses by
// value.
func sameHost(a, b string) bool {
	a, _, _ = strings.Cut(a, "%")
	b, _, _ = strings.Cut(b, "%")
	ia, errA := netip.ParseAddr(a)
	ib, errB := netip.ParseAddr(b)
	if errA == nil && errB == nil {
		return ia == ib
	}
	return errA != nil && errB != nil && strings.EqualFold(a, b)
}

func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

func (c *Client) maxBody() int64 {
	if c.MaxBody > 0 {
		return c.MaxBody
	}
	return DefaultMaxBody
}

func (c *Client) streamIdle() time.Duration {
	if c.StreamIdle > 0 {
		return c.StreamIdle
	}
	return DefaultStreamIdle
}

func (c *Client) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// validSessionID accepts the ids offer.Offer accepts, so the id is one
// clean path segment.
func validSessionID(id string) error {
	if len(id) == 0 || len(id) > offer.MaxSessionIDLen {
		return fmt.Errorf("%w: session id is %d bytes, want 1..%d", ErrConfig, len(id), offer.MaxSessionIDLen)
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '_' || ch == '-') {
			return fmt.Errorf("%w: session id %q has byte %q at %d, want [A-Za-z0-9_-]", ErrConfig, clip(id), ch, i)
		}
	}
	return nil
}

// clip makes an untrusted string fit for a message: valid UTF-8, no
// control characters, at most clipLen bytes.
func clip(s string) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) <= clipLen {
		return s
	}
	n := clipLen
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// redactFold replaces every occurrence of secret in s, ignoring ASCII
// case (hex may come back in either), with <redacted>.
func redactFold(s, secret string) string {
	if secret == "" {
		return s
	}
	ls, lsec := asciiLower(s), asciiLower(secret)
	var b strings.Builder
	for {
		i := strings.Index(ls, lsec)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString("<redacted>")
		s, ls = s[i+len(secret):], ls[i+len(secret):]
	}
}

// asciiLower lowers ASCII letters only, keeping byte offsets.
func asciiLower(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if ch >= 'A' && ch <= 'Z' {
			b[i] = ch + 'a' - 'A'
		}
	}
	return string(b)
}
