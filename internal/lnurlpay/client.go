package lnurlpay

import (
	"context"
	"crypto/aes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	lnurl "github.com/fiatjaf/go-lnurl"

	"satwatt/internal/offer"
)

// DefaultMaxBody bounds a response body when Client.MaxBody is 0. The
// metadata may be 64 KiB and JSON escaping can grow it several times.
const DefaultMaxBody = 512 << 10

// maxRedirects bounds same-origin redirects.
const maxRedirects = 3

// maxReasonInError bounds the wall's words quoted in a RemoteError's
// message (Reason keeps them whole).
const maxReasonInError = 200

// maxURLInError bounds a URL named in an error: long enough for any
// route of the wall's, short enough that a hostile path cannot flood a log.
const maxURLInError = 200

var (
	// ErrForeignHost: the wall pointed the car at another origin (callback,
	// redirect, verify or success URL). A hostile wall must not send the
	// car elsewhere.
	ErrForeignHost = errors.New("points to another host")
	// ErrBodyTooLarge: the response exceeded the body limit.
	ErrBodyTooLarge = errors.New("response body too large")
	// ErrBadResponse: the response is not a well-formed LNURL-pay answer.
	ErrBadResponse = errors.New("bad LNURL-pay response")
	// ErrAmount: the amount or comment is outside what the offer allows;
	// nothing was sent.
	ErrAmount = errors.New("amount or comment outside the offer's limits")
)

// RemoteError is a LUD-06 {"status":"ERROR"} answer from the wall.
type RemoteError struct {
	URL    string // where it came from, without the query
	Reason string // the wall's words, untrusted
}

func (e *RemoteError) Error() string {
	// The reason may be as long as the body limit.
	return fmt.Sprintf("lnurlpay: %s answered ERROR: %q", e.URL, clipN(e.Reason, maxReasonInError))
}

// Client is the car's LNURL-pay client. It does not decode or pay
// invoices: the caller must run invoicecheck.Decode and invoicecheck.Check
// on InvoiceResponse.PR, against PayOffer.Metadata and PayOffer.Offer,
// before paying.
type Client struct {
	HTTP    *http.Client // nil: a client with a 15 s timeout; its CheckRedirect is replaced
	MaxBody int64        // response body limit; 0: DefaultMaxBody
}

// PayOffer is a wall's pay request, checked.
type PayOffer struct {
	URL             *url.URL // where the offer was fetched
	Callback        *url.URL // same origin as URL, with URL's host (and IPv6 zone)
	MinSendableMsat int64
	MaxSendableMsat int64
	CommentAllowed  int
	Metadata        string // exact string served: invoices must hash to it
	Description     string
	Offer           offer.Offer
}

var defaultHTTP = &http.Client{Timeout: 15 * time.Second}

// FetchOffer GETs the pay request at rawURL and checks it: tag payRequest,
// a sane sendable range, strict satwatt metadata, and a callback on the
// same origin (scheme, host, port) as rawURL.
func (c *Client) FetchOffer(ctx context.Context, rawURL string) (*PayOffer, error) {
	u, err := absHTTPURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("lnurlpay: offer URL: %w", err)
	}
	status, body, err := c.get(ctx, u, u)
	if err != nil {
		return nil, err
	}
	return parseOffer(u, status, body)
}

// parseOffer reads the answer to GET u (HTTP status and body) as a pay
// request and checks it as FetchOffer says.
func parseOffer(u *url.URL, status int, body []byte) (*PayOffer, error) {
	where := redact(u)
	var p lnurl.LNURLPayParams
	if err := decodeAnswer(where, status, body, &p); err != nil {
		return nil, err
	}
	if p.Tag != Tag {
		return nil, fmt.Errorf("lnurlpay: %s: %w: tag %q, want %q", where, ErrBadResponse, clip(p.Tag), Tag)
	}
	if p.MinSendable < 1 || p.MinSendable > p.MaxSendable {
		return nil, fmt.Errorf("lnurlpay: %s: %w: minSendable %d, maxSendable %d msat: want 1 <= minSendable <= maxSendable",
			where, ErrBadResponse, p.MinSendable, p.MaxSendable)
	}
	if p.CommentAllowed < 0 || p.CommentAllowed > MaxCommentAllowed {
		return nil, fmt.Errorf("lnurlpay: %s: %w: commentAllowed %d outside 0..%d", where, ErrBadResponse, p.CommentAllowed, MaxCommentAllowed)
	}
	o, desc, err := offer.ParseMetadata(p.EncodedMetadata)
	if err != nil {
		return nil, fmt.Errorf("lnurlpay: %s: metadata: %w", where, err)
	}
	cb, err := sameOriginURL(u, p.Callback)
	if err != nil {
		return nil, fmt.Errorf("lnurlpay: %s: callback: %w", where, err)
	}
	return &PayOffer{
		URL:             u,
		Callback:        cb,
		MinSendableMsat: p.MinSendable,
		MaxSendableMsat: p.MaxSendable,
		CommentAllowed:  int(p.CommentAllowed),
		Metadata:        p.EncodedMetadata,
		Description:     desc,
		Offer:           o,
	}, nil
}

// RequestInvoice calls the offer's callback for amountMsat with an
// optional comment and returns the wall's answer. The invoice in it is
// unchecked: run invoicecheck before paying.
func (c *Client) RequestInvoice(ctx context.Context, po *PayOffer, amountMsat int64, comment string) (*InvoiceResponse, error) {
	if po == nil || po.URL == nil || po.Callback == nil {
		return nil, errors.New("lnurlpay: request invoice: no offer (use FetchOffer)")
	}
	if amountMsat < po.MinSendableMsat || amountMsat > po.MaxSendableMsat {
		return nil, fmt.Errorf("lnurlpay: %w: %d msat outside the offer's %d..%d msat",
			ErrAmount, amountMsat, po.MinSendableMsat, po.MaxSendableMsat)
	}
	if !utf8.ValidString(comment) {
		return nil, fmt.Errorf("lnurlpay: %w: comment is not UTF-8", ErrAmount)
	}
	if n := utf8.RuneCountInString(comment); n > po.CommentAllowed {
		return nil, fmt.Errorf("lnurlpay: %w: comment is %d characters, the offer allows %d", ErrAmount, n, po.CommentAllowed)
	}
	cb := *po.Callback
	q := cb.Query()
	q.Set("amount", strconv.FormatInt(amountMsat, 10))
	if comment != "" {
		q.Set("comment", comment)
	}
	cb.RawQuery = q.Encode()
	status, body, err := c.get(ctx, &cb, po.URL)
	if err != nil {
		return nil, err
	}
	return parseInvoiceResponse(&cb, po.URL, status, body)
}

// parseInvoiceResponse reads the answer to the callback cb of an offer
// fetched from origin, and checks it as RequestInvoice says.
func parseInvoiceResponse(cb, origin *url.URL, status int, body []byte) (*InvoiceResponse, error) {
	where := redact(cb)
	var r InvoiceResponse
	if err := decodeAnswer(where, status, body, &r); err != nil {
		return nil, err
	}
	if r.PR == "" {
		return nil, fmt.Errorf("lnurlpay: %s: %w: no invoice (pr)", where, ErrBadResponse)
	}
	if err := checkSuccessAction(r.SuccessAction, origin); err != nil {
		return nil, fmt.Errorf("lnurlpay: %s: successAction: %w", where, err)
	}
	if r.Verify != "" {
		if _, err := sameOriginURL(origin, r.Verify); err != nil {
			return nil, fmt.Errorf("lnurlpay: %s: verify: %w", where, err)
		}
	}
	return &r, nil
}

// Verify GETs a LUD-21 verify URL from RequestInvoice. A settled answer
// must carry a 32-byte hex preimage; matching it to the payment hash is
// the caller's job.
func (c *Client) Verify(ctx context.Context, po *PayOffer, verifyURL string) (*VerifyResult, error) {
	if po == nil || po.URL == nil {
		return nil, errors.New("lnurlpay: verify: no offer (use FetchOffer)")
	}
	u, err := sameOriginURL(po.URL, verifyURL)
	if err != nil {
		return nil, fmt.Errorf("lnurlpay: verify: %w", err)
	}
	status, body, err := c.get(ctx, u, po.URL)
	if err != nil {
		return nil, err
	}
	return parseVerify(u, status, body)
}

// parseVerify reads the answer to the verify URL u and checks it as
// Verify says.
func parseVerify(u *url.URL, status int, body []byte) (*VerifyResult, error) {
	where := redact(u)
	var r VerifyResult
	if err := decodeAnswer(where, status, body, &r); err != nil {
		return nil, err
	}
	if r.Settled {
		if r.Preimage == nil {
			return nil, fmt.Errorf("lnurlpay: %s: %w: settled without a preimage", where, ErrBadResponse)
		}
		if b, err := hex.DecodeString(*r.Preimage); err != nil || len(b) != 32 {
			return nil, fmt.Errorf("lnurlpay: %s: %w: preimage %q is not 32 bytes of hex", where, ErrBadResponse, clip(*r.Preimage))
		}
	}
	return &r, nil
}

// checkSuccessAction accepts the LUD-09 and LUD-10 tags only: LUD-09 says
// not to pay when the action cannot be shown.
func checkSuccessAction(a *lnurl.SuccessAction, origin *url.URL) error {
	if a == nil {
		return nil
	}
	switch a.Tag {
	case "message":
		if n := utf8.RuneCountInString(a.Message); n > MaxSuccessText {
			return fmt.Errorf("%w: message is %d characters, LUD-09 allows %d", ErrBadResponse, n, MaxSuccessText)
		}
	case "url":
		if n := utf8.RuneCountInString(a.Description); n > MaxSuccessText {
			return fmt.Errorf("%w: description is %d characters, LUD-09 allows %d", ErrBadResponse, n, MaxSuccessText)
		}
		// LUD-09: the url's domain is the callback's.
		u, err := absHTTPURL(a.URL)
		if err != nil {
			return fmt.Errorf("%w: url: %w", ErrBadResponse, err)
		}
		if !sameHost(origin, u) {
			return fmt.Errorf("%w: url host %q, offer host %q", ErrForeignHost, u.Hostname(), origin.Hostname())
		}
	case "aes":
		// LUD-10. A payer that cannot decrypt cannot show the action, and
		// a decrypter handed a wrong-sized iv or a partial block panics.
		if n := utf8.RuneCountInString(a.Description); n > MaxSuccessText {
			return fmt.Errorf("%w: description is %d characters, LUD-10 allows %d", ErrBadResponse, n, MaxSuccessText)
		}
		iv, err := base64.StdEncoding.DecodeString(a.IV)
		if err != nil || len(iv) != aes.BlockSize {
			return fmt.Errorf("%w: iv %q is not %d bytes of base64", ErrBadResponse, clip(a.IV), aes.BlockSize)
		}
		if len(a.Ciphertext) > base64.StdEncoding.EncodedLen(MaxAESCiphertext) {
			return fmt.Errorf("%w: ciphertext is %d characters of base64, LUD-10 allows %d bytes", ErrBadResponse, len(a.Ciphertext), MaxAESCiphertext)
		}
		ct, err := base64.StdEncoding.DecodeString(a.Ciphertext)
		if err != nil || len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
			return fmt.Errorf("%w: ciphertext is not base64 of whole %d-byte AES blocks", ErrBadResponse, aes.BlockSize)
		}
	default:
		return fmt.Errorf("%w: unsupported tag %q", ErrBadResponse, clip(a.Tag))
	}
	return nil
}

// get fetches u, which must be on origin's origin, and returns the HTTP
// status and the body, read within the body limit. Redirects are followed
// only within that origin.
func (c *Client) get(ctx context.Context, u, origin *url.URL) (int, []byte, error) {
	where := redact(u)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, nil, fmt.Errorf("lnurlpay: %s: %w", where, urlErr(err))
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient(origin).Do(req)
	if err != nil {
		// The *url.Error repeats the whole URL, query included.
		return 0, nil, fmt.Errorf("lnurlpay: GET %s: %w", where, urlErr(err))
	}
	defer resp.Body.Close()
	limit := c.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	if resp.ContentLength > limit {
		return 0, nil, fmt.Errorf("lnurlpay: %s: %w: %d bytes, limit %d", where, ErrBodyTooLarge, resp.ContentLength, limit)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return 0, nil, fmt.Errorf("lnurlpay: reading %s: %w", where, err)
	}
	if int64(len(body)) > limit {
		return 0, nil, fmt.Errorf("lnurlpay: %s: %w: over %d bytes", where, ErrBodyTooLarge, limit)
	}
	return resp.StatusCode, body, nil
}

// decodeAnswer reads an LNURL answer with HTTP status into v: a LUD-06
// error answer becomes a *RemoteError whatever the status, anything else
// must come with 200 and decode into v.
func decodeAnswer(where string, status int, body []byte, v any) error {
	// An error answer may come with any HTTP status, so look for one first.
	var st lnurl.LNURLResponse
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("lnurlpay: %s: %w: HTTP %d: %w", where, ErrBadResponse, status, JSONProblem(err))
	}
	if strings.EqualFold(st.Status, "ERROR") {
		return &RemoteError{URL: where, Reason: st.Reason}
	}
	if status != http.StatusOK {
		return fmt.Errorf("lnurlpay: %s: %w: HTTP %d", where, ErrBadResponse, status)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("lnurlpay: %s: %w: %w", where, ErrBadResponse, JSONProblem(err))
	}
	return nil
}

// JSONProblem says where a JSON decoding error is: the field whose value
// has the wrong type, or the byte offset of a syntax error. Its message
// never quotes more than a clip of the other side's text (encoding/json
// quotes a number literal whole). The car's other clients of the wall use
// it too.
func JSONProblem(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	var msg string
	switch {
	case errors.As(err, &te) && te.Field == "":
		msg = fmt.Sprintf("the body is a JSON %s, want an object", clip(te.Value))
	case errors.As(err, &te):
		msg = fmt.Sprintf("field %s: got a JSON %s, want %s", clip(te.Field), clip(te.Value), te.Type)
	case errors.As(err, &se):
		msg = fmt.Sprintf("the body is not JSON: near byte %d: %s", se.Offset, clip(se.Error()))
	default:
		msg = "the body is not JSON: " + clip(err.Error())
	}
	return &clippedError{msg: msg, err: err}
}

// clippedError is err with a shorter message.
type clippedError struct {
	msg string
	err error
}

func (e *clippedError) Error() string { return e.msg }
func (e *clippedError) Unwrap() error { return e.err }

// urlErr unwraps the *url.Error that net/url and net/http add, whose
// message repeats the whole URL, and clips what is left: net/url quotes a
// bad port whole.
func urlErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &clippedError{msg: clipN(err.Error(), maxURLInError), err: err}
}

// httpClient copies the configured client with a redirect policy that
// stays on origin.
func (c *Client) httpClient(origin *url.URL) *http.Client {
	base := c.HTTP
	if base == nil {
		base = defaultHTTP
	}
	hc := *base
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) > maxRedirects {
			return fmt.Errorf("%w: more than %d redirects", ErrBadResponse, maxRedirects)
		}
		if !sameOrigin(origin, req.URL) {
			return fmt.Errorf("%w: redirect to %s", ErrForeignHost, redact(req.URL))
		}
		// Keep the car's own IPv6 zone, which the wall cannot know.
		req.URL.Host = origin.Host
		return nil
	}
	return &hc
}

// sameOriginURL parses a URL the wall gave and requires it on origin's
// scheme, host and port. The result carries origin's host string, so a
// link-local zone such as %eth0 (which the wall cannot know; Go sends
// Host headers without it) carries over.
func sameOriginURL(origin *url.URL, raw string) (*url.URL, error) {
	u, err := absHTTPURL(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	if !sameOrigin(origin, u) {
		return nil, fmt.Errorf("%w: %s, offer came from %s://%s", ErrForeignHost, redact(u), origin.Scheme, origin.Host)
	}
	u.Host = origin.Host
	u.Fragment = ""
	return u, nil
}

func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && sameHost(a, b) && port(a) == port(b)
}

// sameHost compares host names without an IPv6 zone, and IP addresses by
// value, so [fe80::1%eth0] matches [FE80:0::1].
func sameHost(a, b *url.URL) bool {
	ha, hb := stripZone(a.Hostname()), stripZone(b.Hostname())
	ia, errA := netip.ParseAddr(ha)
	ib, errB := netip.ParseAddr(hb)
	if errA == nil && errB == nil {
		return ia == ib
	}
	return errA != nil && errB != nil && strings.EqualFold(ha, hb)
}

func stripZone(h string) string {
	if i := strings.IndexByte(h, '%'); i >= 0 {
		return h[:i]
	}
	return h
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

// redact names a URL in messages without its query, which may carry
// comments or nonces. The wall chooses the callback's path, so it is
// clipped too.
func redact(u *url.URL) string {
	return clipN(u.Scheme+"://"+u.Host+u.EscapedPath(), maxURLInError)
}
