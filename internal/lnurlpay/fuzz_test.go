package lnurlpay

import (
	"context"
	"crypto/aes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	lnurl "github.com/fiatjaf/go-lnurl"

	"satwatt/internal/fuzzcheck"
	"satwatt/internal/offer"
)

// The car reads three answers from a wall it does not trust: the pay
// request, the callback's invoice and the verify answer. Each target below
// serves the fuzzed answer (status, content type, body) from a loopback
// server to the real Client, then feeds the same answer to the pure
// parser the Client uses, whose allocation is bounded.

// originMark in a seed body stands for the test server's origin, so a
// seed (and what the fuzzer makes of it) can name a same-origin URL.
const originMark = "$ORIGIN"

// fuzzMaxBody is the Client's body limit in these targets: small, so the
// fuzzer reaches it.
const fuzzMaxBody = 8 << 10

// maxErrLen bounds an error message: the wall's words and URLs are
// clipped, so a hostile answer cannot flood the car's log.
const maxErrLen = 1 << 10

// Allocation bounds for the pure parsers: JSON decoding of arbitrary
// values (routes may be any JSON) costs tens of bytes per input byte; a
// length field trusted from the wire would cost far more.
const (
	allocPerByte = 128
	allocFixed   = 256 << 10
)

// answer is one fuzzed HTTP answer.
type answer struct {
	status int
	ctype  string
	body   []byte
}

// newAnswer makes the fuzzer's values servable: a final status from 200
// to 599, a content type of printable ASCII (net/http would refuse
// others before the client saw them), and the origin put in the body.
func newAnswer(status uint16, ctype string, body []byte, origin string) answer {
	ct := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, ctype)
	if len(ct) > 200 {
		ct = ct[:200]
	}
	return answer{
		status: 200 + int(status)%400,
		ctype:  ct,
		body:   []byte(strings.ReplaceAll(string(body), originMark, origin)),
	}
}

// delivered is the body the client receives: none with 204 and 304.
func (a answer) delivered() []byte {
	if a.status == http.StatusNoContent || a.status == http.StatusNotModified {
		return nil
	}
	return a.body
}

// answerSlot is the answer a route serves now; the fuzz worker runs one
// input at a time.
type answerSlot struct {
	mu  sync.Mutex
	cur answer
}

func (s *answerSlot) set(a answer) {
	s.mu.Lock()
	s.cur = a
	s.mu.Unlock()
}

func (s *answerSlot) serve(rw http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	a := s.cur
	s.mu.Unlock()
	if a.ctype != "" {
		rw.Header().Set("Content-Type", a.ctype)
	}
	rw.WriteHeader(a.status)
	_, _ = rw.Write(a.body)
}

// seedBody marshals v with the test server's origin replaced by the mark.
func seedBody(t testing.TB, w *testWall, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(strings.ReplaceAll(string(b), w.srv.URL, originMark))
}

// wallSeeds are bodies captured from wallctl's own handler (see
// testdata/wall/README), as the car's client reads them.
func wallSeeds(t testing.TB, prefix string) [][]byte {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", "wall", prefix+"*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// checkErr asserts what every refusal says: the package's prefix, the URL
// it came from, a known kind, a bounded message, and for a malformed
// answer what in it is wrong (one of what).
func checkErr(t *testing.T, err error, where string, what ...string) {
	t.Helper()
	fuzzcheck.ErrorSays(t, err, "lnurlpay: ", where)
	msg := err.Error()
	if len(msg) > maxErrLen {
		t.Fatalf("error is %d bytes, limit %d: %.300q...", len(msg), maxErrLen, msg)
	}
	var re *RemoteError
	switch {
	case errors.As(err, &re), errors.Is(err, ErrBodyTooLarge), errors.Is(err, ErrForeignHost):
	case errors.Is(err, ErrBadResponse), errors.Is(err, offer.ErrMetadata):
		for _, w := range what {
			if strings.Contains(msg, w) {
				return
			}
		}
		t.Fatalf("error %q names none of %q", msg, what)
	default:
		t.Fatalf("error %q is none of the documented kinds", msg)
	}
}

// FuzzPayOffer: FetchOffer must refuse a bad pay request clearly and
// return only what it promises: 1 <= min <= max, commentAllowed within
// bounds, a callback on the offer's origin, metadata that parses to a
// valid offer.
func FuzzPayOffer(f *testing.F) {
	w := newTestWall(f)
	var slot answerSlot
	w.route("/lnurlp", slot.serve)
	honest, err := PayRequest(w.srv.URL+"/cb?session=sess-7", w.min, w.max, w.metadata, w.commentAllowed)
	if err != nil {
		f.Fatal(err)
	}
	asMap := func(mutate func(map[string]any)) []byte {
		var m map[string]any
		_ = json.Unmarshal(seedBody(f, w, honest), &m)
		mutate(m)
		return seedBody(f, w, m)
	}
	for _, b := range append([][]byte{
		seedBody(f, w, honest),
		seedBody(f, w, ErrorResponse("no vehicle has an open session")),
		// Shaped like other LNURL servers' answers (LNbits, LUD-18).
		asMap(func(m map[string]any) {
			m["commentAllowed"] = 255
			m["payerData"] = map[string]any{"name": map[string]any{"mandatory": false}}
			m["allowsNostr"] = true
		}),
		asMap(func(m map[string]any) { m["maxSendable"] = 1000.5 }),
		asMap(func(m map[string]any) { m["callback"] = "http://elsewhere.example/cb" }),
	}, wallSeeds(f, "offer")...) {
		f.Add(uint16(200), "application/json", b)
	}
	f.Add(uint16(300), "application/json; charset=utf-8", seedBody(f, w, ErrorResponse("busy")))
	f.Add(uint16(0), "text/html", []byte("<html>gateway timeout</html>"))
	u, err := url.Parse(w.srv.URL + "/lnurlp")
	if err != nil {
		f.Fatal(err)
	}
	c := &Client{MaxBody: fuzzMaxBody}
	what := []string{"HTTP", "body", "field", "tag", "minSendable", "commentAllowed", "metadata", "callback"}
	f.Fuzz(func(t *testing.T, status uint16, ctype string, body []byte) {
		a := newAnswer(status, ctype, body, w.srv.URL)
		var pure *PayOffer
		var pureErr error
		fuzzcheck.Alloc(t, "parseOffer", len(a.body), allocPerByte, allocFixed, func() {
			pure, pureErr = parseOffer(u, a.status, a.delivered())
		})
		slot.set(a)
		po, err := c.FetchOffer(context.Background(), u.String())
		if len(a.delivered()) > fuzzMaxBody {
			if !errors.Is(err, ErrBodyTooLarge) {
				t.Fatalf("a %d-byte body over the %d-byte limit: %v", len(a.body), fuzzMaxBody, err)
			}
			checkErr(t, err, "/lnurlp")
			return
		}
		if (err == nil) != (pureErr == nil) {
			t.Fatalf("client and parser disagree: %v / %v", err, pureErr)
		}
		if err != nil {
			checkErr(t, err, "/lnurlp", what...)
			checkErr(t, pureErr, "/lnurlp", what...)
			return
		}
		if !reflect.DeepEqual(po, pure) {
			t.Fatalf("client %+v, parser %+v", po, pure)
		}
		if po.MinSendableMsat < 1 || po.MinSendableMsat > po.MaxSendableMsat {
			t.Fatalf("sendable %d..%d accepted", po.MinSendableMsat, po.MaxSendableMsat)
		}
		if po.CommentAllowed < 0 || po.CommentAllowed > MaxCommentAllowed {
			t.Fatalf("commentAllowed %d accepted", po.CommentAllowed)
		}
		cb := po.Callback
		if !sameOrigin(u, cb) || cb.Host != u.Host || cb.User != nil || cb.Fragment != "" {
			t.Fatalf("callback %s accepted for an offer from %s", cb, u)
		}
		o, d, err := offer.ParseMetadata(po.Metadata)
		if err != nil || !o.Equal(po.Offer) || d != po.Description || o.Validate() != nil {
			t.Fatalf("metadata %q: %v; offer %+v", po.Metadata, err, po.Offer)
		}
	})
}

// FuzzInvoiceResponse: RequestInvoice must refuse a bad callback answer
// clearly and return only an answer with an invoice, a success action the
// car can show (LUD-09/10, on the offer's host) and a same-origin verify
// URL.
func FuzzInvoiceResponse(f *testing.F) {
	w := newTestWall(f)
	c := &Client{MaxBody: fuzzMaxBody}
	po, err := c.FetchOffer(context.Background(), w.srv.URL+"/lnurlp")
	if err != nil {
		f.Fatal(err)
	}
	var slot answerSlot
	w.route("/cb", slot.serve)
	const amt = 75000
	pr := w.invoice(amt)
	seed := func(successURL, text, verify string) []byte {
		r, err := CallbackResponse(pr, successURL, text, verify)
		if err != nil {
			f.Fatal(err)
		}
		return seedBody(f, w, r)
	}
	aesAction, err := lnurl.AESAction("Your code", preimage[:], "PIN 4711")
	if err != nil {
		f.Fatal(err)
	}
	for _, b := range append([][]byte{
		seed(w.srv.URL+"/receipt/sess-7", "Receipt", w.srv.URL+"/verify"),
		seed("", "Thanks", ""),
		seed("", "", ""),
		seedBody(f, w, InvoiceResponse{LNURLResponse: lnurl.OkResponse(), PR: pr, Routes: []any{}, SuccessAction: aesAction}),
		seedBody(f, w, ErrorResponse("too many unpaid invoices for this session")),
		[]byte(`{"pr":"` + pr + `","routes":[[{"pubkey":"02","short_channel_id":"1x2x3"}]],"disposable":false}`),
	}, wallSeeds(f, "callback")...) {
		f.Add(uint16(200), "application/json", b)
	}
	f.Add(uint16(100), "text/plain", []byte("Internal Server Error"))
	cb := *po.Callback
	what := []string{"HTTP", "body", "field", "pr", "successAction"}
	f.Fuzz(func(t *testing.T, status uint16, ctype string, body []byte) {
		a := newAnswer(status, ctype, body, w.srv.URL)
		var pure *InvoiceResponse
		var pureErr error
		fuzzcheck.Alloc(t, "parseInvoiceResponse", len(a.body), allocPerByte, allocFixed, func() {
			pure, pureErr = parseInvoiceResponse(&cb, po.URL, a.status, a.delivered())
		})
		slot.set(a)
		r, err := c.RequestInvoice(context.Background(), po, amt, "")
		if len(a.delivered()) > fuzzMaxBody {
			if !errors.Is(err, ErrBodyTooLarge) {
				t.Fatalf("a %d-byte body over the %d-byte limit: %v", len(a.body), fuzzMaxBody, err)
			}
			checkErr(t, err, "/cb")
			return
		}
		if (err == nil) != (pureErr == nil) {
			t.Fatalf("client and parser disagree: %v / %v", err, pureErr)
		}
		if err != nil {
			checkErr(t, err, "/cb", what...)
			checkErr(t, pureErr, "/cb", what...)
			return
		}
		if !reflect.DeepEqual(r, pure) {
			t.Fatalf("client %+v, parser %+v", r, pure)
		}
		if r.PR == "" {
			t.Fatal("accepted without an invoice")
		}
		if r.Verify != "" {
			v, err := url.Parse(r.Verify)
			if err != nil || !sameOrigin(po.URL, v) {
				t.Fatalf("verify %q accepted for an offer from %s", r.Verify, po.URL)
			}
		}
		checkShowable(t, r.SuccessAction, po.URL)
	})
}

// checkShowable asserts that an accepted success action is one the car
// can show: LUD-09's message or url (on the offer's host), or LUD-10's
// aes with an iv and whole blocks a decrypter can take.
func checkShowable(t *testing.T, a *lnurl.SuccessAction, origin *url.URL) {
	t.Helper()
	if a == nil {
		return
	}
	short := func(s string) bool { return utf8.RuneCountInString(s) <= MaxSuccessText }
	switch a.Tag {
	case "message":
		if !short(a.Message) {
			t.Fatalf("message of %d characters accepted", utf8.RuneCountInString(a.Message))
		}
	case "url":
		u, err := url.Parse(a.URL)
		if err != nil || !short(a.Description) || (u.Scheme != "http" && u.Scheme != "https") || !sameHost(origin, u) {
			t.Fatalf("url action %+v accepted for an offer from %s", a, origin)
		}
	case "aes":
		iv, err := base64.StdEncoding.DecodeString(a.IV)
		if err != nil || len(iv) != aes.BlockSize {
			t.Fatalf("aes iv %q accepted", a.IV)
		}
		ct, err := base64.StdEncoding.DecodeString(a.Ciphertext)
		if err != nil || len(ct) == 0 || len(ct)%aes.BlockSize != 0 || len(ct) > MaxAESCiphertext || !short(a.Description) {
			t.Fatalf("aes action with %d bytes of ciphertext accepted: %v", len(ct), err)
		}
	default:
		t.Fatalf("success action %q accepted", a.Tag)
	}
}

// FuzzVerifyResponse: Verify must refuse a bad LUD-21 answer clearly and
// never report a settlement without a 32-byte preimage.
func FuzzVerifyResponse(f *testing.F) {
	w := newTestWall(f)
	c := &Client{MaxBody: fuzzMaxBody}
	po, err := c.FetchOffer(context.Background(), w.srv.URL+"/lnurlp")
	if err != nil {
		f.Fatal(err)
	}
	var slot answerSlot
	w.route("/verify", slot.serve)
	pr := w.invoice(75000)
	for _, b := range append([][]byte{
		seedBody(f, w, VerifyResponse(pr, true, hex.EncodeToString(preimage[:]))),
		seedBody(f, w, VerifyResponse(pr, false, "")),
		seedBody(f, w, ErrorResponse("unknown invoice")),
		[]byte(`{"status":"OK","settled":true,"preimage":null,"pr":"` + pr + `"}`),
	}, wallSeeds(f, "verify")...) {
		f.Add(uint16(200), "application/json", b)
	}
	verifyURL := w.srv.URL + "/verify"
	vu, err := url.Parse(verifyURL)
	if err != nil {
		f.Fatal(err)
	}
	what := []string{"HTTP", "body", "field", "preimage"}
	f.Fuzz(func(t *testing.T, status uint16, ctype string, body []byte) {
		a := newAnswer(status, ctype, body, w.srv.URL)
		var pure *VerifyResult
		var pureErr error
		fuzzcheck.Alloc(t, "parseVerify", len(a.body), allocPerByte, allocFixed, func() {
			pure, pureErr = parseVerify(vu, a.status, a.delivered())
		})
		slot.set(a)
		r, err := c.Verify(context.Background(), po, verifyURL)
		if len(a.delivered()) > fuzzMaxBody {
			if !errors.Is(err, ErrBodyTooLarge) {
				t.Fatalf("a %d-byte body over the %d-byte limit: %v", len(a.body), fuzzMaxBody, err)
			}
			checkErr(t, err, "/verify")
			return
		}
		if (err == nil) != (pureErr == nil) {
			t.Fatalf("client and parser disagree: %v / %v", err, pureErr)
		}
		if err != nil {
			checkErr(t, err, "/verify", what...)
			checkErr(t, pureErr, "/verify", what...)
			return
		}
		if !reflect.DeepEqual(r, pure) {
			t.Fatalf("client %+v, parser %+v", r, pure)
		}
		if r.Settled {
			if r.Preimage == nil {
				t.Fatal("settled without a preimage")
			}
			if b, err := hex.DecodeString(*r.Preimage); err != nil || len(b) != 32 {
				t.Fatalf("settled with preimage %q", *r.Preimage)
			}
		}
	})
}
