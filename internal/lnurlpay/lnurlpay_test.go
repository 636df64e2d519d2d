package lnurlpay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	lnurl "github.com/fiatjaf/go-lnurl"

	"satwatt/internal/invoicecheck"
	"satwatt/internal/invoicecheck/invoicetest"
	"satwatt/internal/offer"
)

var t0 = time.Unix(1_700_000_000, 0).UTC()

var preimage = sha256.Sum256([]byte("preimage seed"))

// testWall is a wall's LNURL-pay endpoint built from this package's server
// functions, with routes a test may replace by hostile ones.
type testWall struct {
	srv            *httptest.Server
	key            *btcec.PrivateKey
	offer          offer.Offer
	metadata       string
	min, max       int64
	commentAllowed int

	mu       sync.Mutex
	routes   map[string]http.HandlerFunc
	hits     map[string]int
	comments []string
}

func newTestWall(t testing.TB) *testWall {
	t.Helper()
	seed := sha256.Sum256([]byte("wall key"))
	key, _ := btcec.PrivKeyFromBytes(seed[:])
	w := &testWall{
		key: key,
		offer: offer.Offer{
			SessionID: "sess-7", PriceMsatPerWh: 250, IncrementWh: 100, FirstMultiple: 3,
			GraceWh: 20, MaxPowerW: 11000,
			WallNodeKey: hex.EncodeToString(key.PubKey().SerializeCompressed()),
			ValidUntil:  t0.Add(10 * time.Minute), Network: "regtest",
		},
		min: 1000, max: 200000, commentAllowed: 16,
		hits: map[string]int{},
	}
	md, err := offer.Metadata(w.offer, "Charge at wall 7")
	if err != nil {
		t.Fatal(err)
	}
	w.metadata = md
	w.routes = map[string]http.HandlerFunc{
		"/lnurlp": w.payRequest,
		"/cb":     w.callback,
		"/verify": func(rw http.ResponseWriter, r *http.Request) {
			writeJSON(rw, 200, VerifyResponse("lnbcrt...", true, hex.EncodeToString(preimage[:])))
		},
	}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		h := w.routes[r.URL.Path]
		w.hits[r.URL.Path]++
		w.mu.Unlock()
		if h == nil {
			http.NotFound(rw, r)
			return
		}
		h(rw, r)
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *testWall) route(path string, h http.HandlerFunc) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.routes[path] = h
}

func (w *testWall) hitCount(path string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hits[path]
}

func (w *testWall) payRequest(rw http.ResponseWriter, r *http.Request) {
	p, err := PayRequest(w.srv.URL+"/cb?session="+w.offer.SessionID, w.min, w.max, w.metadata, w.commentAllowed)
	if err != nil {
		writeJSON(rw, 500, ErrorResponse(err.Error()))
		return
	}
	writeJSON(rw, 200, p)
}

func (w *testWall) callback(rw http.ResponseWriter, r *http.Request) {
	amt, comment, err := ParseCallbackRequest(r.URL.Query(), w.min, w.max, w.commentAllowed)
	if err != nil {
		writeJSON(rw, 400, ErrorResponse(err.Error()))
		return
	}
	if r.URL.Query().Get("session") != w.offer.SessionID {
		writeJSON(rw, 404, ErrorResponse("unknown session"))
		return
	}
	w.mu.Lock()
	w.comments = append(w.comments, comment)
	w.mu.Unlock()
	resp, err := CallbackResponse(w.invoice(amt), w.srv.URL+"/receipt/sess-7", "Receipt", w.srv.URL+"/verify")
	if err != nil {
		writeJSON(rw, 500, ErrorResponse(err.Error()))
		return
	}
	writeJSON(rw, 200, resp)
}

// invoice signs a real regtest BOLT11 invoice as the wall's node would.
func (w *testWall) invoice(amt int64) string {
	h := offer.DescriptionHash(w.metadata)
	s, err := invoicetest.Sign(invoicetest.Spec{Signer: w.key, AmountMsat: amt, DescHash: &h,
		Hash: sha256.Sum256(preimage[:]), Created: t0, Expiry: 5 * time.Minute})
	if err != nil {
		panic(err)
	}
	return s
}

func writeJSON(rw http.ResponseWriter, status int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(status)
	_ = json.NewEncoder(rw).Encode(v)
}

func TestHappyPath(t *testing.T) {
	w := newTestWall(t)
	ctx := context.Background()
	c := &Client{}
	po, err := c.FetchOffer(ctx, w.srv.URL+"/lnurlp")
	if err != nil {
		t.Fatalf("FetchOffer: %v", err)
	}
	if po.Metadata != w.metadata || !po.Offer.Equal(w.offer) || po.Description != "Charge at wall 7" ||
		po.MinSendableMsat != 1000 || po.MaxSendableMsat != 200000 || po.CommentAllowed != 16 {
		t.Fatalf("offer = %+v", po)
	}
	if po.Callback.Query().Get("session") != "sess-7" {
		t.Fatalf("callback %s lost its query", po.Callback)
	}

	amt, err := po.Offer.CostMsat(300)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.RequestInvoice(ctx, po, amt, "car ⚡ 1")
	if err != nil {
		t.Fatalf("RequestInvoice: %v", err)
	}
	if w.comments[0] != "car ⚡ 1" {
		t.Errorf("wall got comment %q", w.comments[0])
	}
	if resp.SuccessAction == nil || resp.SuccessAction.Tag != "url" || resp.SuccessAction.Description != "Receipt" ||
		resp.Verify != w.srv.URL+"/verify" {
		t.Errorf("response = %+v", resp)
	}

	// What the car does next: decode and check the invoice before paying.
	inv, err := invoicecheck.Decode(resp.PR, "regtest")
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	err = invoicecheck.Check(inv, invoicecheck.Expect{
		AmountMsat: amt, Metadata: po.Metadata, Offer: po.Offer, Now: t0.Add(time.Second),
		MaxPaymentMsat: 100000, MaxPriceMsatPerWh: 300,
	})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}

	v, err := c.Verify(ctx, po, resp.Verify)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !v.Settled || v.Preimage == nil || *v.Preimage != hex.EncodeToString(preimage[:]) {
		t.Fatalf("Verify = %+v", v)
	}
}

func TestFetchOfferHostile(t *testing.T) {
	elsewhere := newTestWall(t) // another origin the car must never reach
	big := strings.Repeat(" ", 5000)
	tests := []struct {
		name  string
		serve func(w *testWall) http.HandlerFunc
		check func(error) bool
	}{
		{"callback on another port", func(w *testWall) http.HandlerFunc {
			return payRequestWith(w, func(m map[string]any) { m["callback"] = elsewhere.srv.URL + "/cb" })
		}, isErr(ErrForeignHost)},
		{"callback on another host", func(w *testWall) http.HandlerFunc {
			return payRequestWith(w, func(m map[string]any) {
				m["callback"] = strings.Replace(w.srv.URL, "127.0.0.1", "localhost", 1) + "/cb"
			})
		}, isErr(ErrForeignHost)},
		{"callback on https", func(w *testWall) http.HandlerFunc {
			return payRequestWith(w, func(m map[string]any) { m["callback"] = strings.Replace(w.srv.URL, "http:", "https:", 1) + "/cb" })
		}, isErr(ErrForeignHost)},
		{"callback relative", func(w *testWall) http.HandlerFunc {
			return payRequestWith(w, func(m map[string]any) { m["callback"] = "/cb" })
		}, isErr(ErrBadResponse)},
		{"callback with user info", func(w *testWall) http.HandlerFunc {
			return payRequestWith(w, func(m map[string]any) { m["callback"] = strings.Replace(w.srv.URL, "//", "//u:p@", 1) + "/cb" })
		}, isErr(ErrBadResponse)},
		{"redirect to another host", func(w *testWall) http.HandlerFunc {
			return func(rw http.ResponseWriter, r *http.Request) {
				http.Redirect(rw, r, elsewhere.srv.URL+"/lnurlp", http.StatusFound)
			}
		}, isErr(ErrForeignHost)},
		{"redirect loop", func(w *testWall) http.HandlerFunc {
			return func(rw http.ResponseWriter, r *http.Request) { http.Redirect(rw, r, "/lnurlp", http.StatusFound) }
		}, isErr(ErrBadResponse)},
		{"oversized with length", func(w *testWall) http.HandlerFunc {
			return func(rw http.ResponseWriter, r *http.Request) {
				rw.Header().Set("Content-Length", "5002")
				rw.Write([]byte(big + "{}"))
			}
		}, isErr(ErrBodyTooLarge)},
		{"oversized chunked", func(w *testWall) http.HandlerFunc {
			return func(rw http.ResponseWriter, r *http.Request) {
				for i := 0; i < 10; i++ {
					rw.Write([]byte(big[:1000]))
					rw.(http.Flusher).Flush()
				}
			}
		}, isErr(ErrBodyTooLarge)},
		{"non-JSON", func(w *testWall) http.HandlerFunc {
			return func(rw http.ResponseWriter, r *http.Request) { rw.Write([]byte("<html>hello</html>")) }
		}, isErr(ErrBadResponse)},
		{"HTTP 500 without LNURL error", func(w *testWall) http.HandlerFunc {
			return func(rw http.ResponseWriter, r *http.Request) { writeJSON(rw, 500, map[string]any{}) }
		}, isErr(ErrBadResponse)},
		{"ERROR status", func(w *testWall) http.HandlerFunc {
			return func(rw http.ResponseWriter, r *http.Request) {
				writeJSON(rw, 200, ErrorResponse("charger out of order"))
			}
		}, isRemote("charger out of order")},
		{"ERROR status with HTTP 503", func(w *testWall) http.HandlerFunc {
			return func(rw http.ResponseWriter, r *http.Request) { writeJSON(rw, 503, ErrorResponse("busy")) }
		}, isRemote("busy")},
		{"wrong tag", func(w *testWall) http.HandlerFunc {
			return payRequestWith(w, func(m map[string]any) { m["tag"] = "withdrawRequest" })
		}, isErr(ErrBadResponse)},
		{"min above max", func(w *testWall) http.HandlerFunc {
			return payRequestWith(w, func(m map[string]any) { m["minSendable"] = 300000 })
		}, isErr(ErrBadResponse)},
		{"min zero", func(w *testWall) http.HandlerFunc {
			return payRequestWith(w, func(m map[string]any) { m["minSendable"] = 0 })
		}, isErr(ErrBadResponse)},
		{"fractional amount", func(w *testWall) http.HandlerFunc {
			return payRequestWith(w, func(m map[string]any) { m["maxSendable"] = 1000.5 })
		}, isErr(ErrBadResponse)},
		{"negative commentAllowed", func(w *testWall) http.HandlerFunc {
			return payRequestWith(w, func(m map[string]any) { m["commentAllowed"] = -1 })
		}, isErr(ErrBadResponse)},
		{"metadata with two offers", func(w *testWall) http.HandlerFunc {
			return payRequestWith(w, func(m map[string]any) {
				var arr [][2]string
				_ = json.Unmarshal([]byte(w.metadata), &arr)
				arr = append(arr, arr[1])
				b, _ := json.Marshal(arr)
				m["metadata"] = string(b)
			})
		}, isErr(offer.ErrMetadata)},
		{"metadata with unknown field", func(w *testWall) http.HandlerFunc {
			return payRequestWith(w, func(m map[string]any) {
				m["metadata"] = strings.Replace(w.metadata, `\"grace_wh\"`, `\"free\":1,\"grace_wh\"`, 1)
			})
		}, isErr(offer.ErrMetadata)},
		{"metadata not a string", func(w *testWall) http.HandlerFunc {
			return payRequestWith(w, func(m map[string]any) { m["metadata"] = []any{} })
		}, isErr(ErrBadResponse)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newTestWall(t)
			w.route("/lnurlp", tt.serve(w))
			before := elsewhere.hitCount("/lnurlp") + elsewhere.hitCount("/cb")
			c := &Client{MaxBody: 4096}
			po, err := c.FetchOffer(context.Background(), w.srv.URL+"/lnurlp")
			if err == nil || !tt.check(err) {
				t.Fatalf("FetchOffer = %+v, %v", po, err)
			}
			t.Log(err)
			if after := elsewhere.hitCount("/lnurlp") + elsewhere.hitCount("/cb"); after != before {
				t.Fatalf("the car reached the other host")
			}
		})
	}
}

func TestFetchOfferSameOriginRedirect(t *testing.T) {
	w := newTestWall(t)
	w.route("/start", func(rw http.ResponseWriter, r *http.Request) {
		http.Redirect(rw, r, w.srv.URL+"/lnurlp", http.StatusFound)
	})
	if _, err := (&Client{}).FetchOffer(context.Background(), w.srv.URL+"/start"); err != nil {
		t.Fatalf("FetchOffer via same-origin redirect: %v", err)
	}
}

func TestRequestInvoiceHostile(t *testing.T) {
	tests := []struct {
		name    string
		amount  int64
		comment string
		serve   func(w *testWall) http.HandlerFunc // nil: the honest callback
		check   func(error) bool
		reached bool // whether the callback is called
	}{
		{"below min", 999, "", nil, isErr(ErrAmount), false},
		{"above max", 200001, "", nil, isErr(ErrAmount), false},
		{"comment too long", 1000, strings.Repeat("é", 17), nil, isErr(ErrAmount), false},
		{"wall refuses amount", 1000, "", func(w *testWall) http.HandlerFunc {
			return func(rw http.ResponseWriter, r *http.Request) {
				_, _, err := ParseCallbackRequest(r.URL.Query(), 5000, 6000, 0)
				writeJSON(rw, 400, ErrorResponse(err.Error()))
			}
		}, isRemote("amount 1000 msat outside 5000..6000 msat"), true},
		{"no invoice", 1000, "", func(w *testWall) http.HandlerFunc {
			return func(rw http.ResponseWriter, r *http.Request) { writeJSON(rw, 200, map[string]any{"routes": []any{}}) }
		}, isErr(ErrBadResponse), true},
		{"verify on another host", 1000, "", func(w *testWall) http.HandlerFunc {
			return func(rw http.ResponseWriter, r *http.Request) {
				resp, _ := CallbackResponse("lnbcrt1x", "", "", "http://verify.example/v")
				writeJSON(rw, 200, resp)
			}
		}, isErr(ErrForeignHost), true},
		{"success url on another host", 1000, "", func(w *testWall) http.HandlerFunc {
			return func(rw http.ResponseWriter, r *http.Request) {
				resp, _ := CallbackResponse("lnbcrt1x", "https://phish.example/r", "see", "")
				writeJSON(rw, 200, resp)
			}
		}, isErr(ErrForeignHost), true},
		{"unknown success action", 1000, "", func(w *testWall) http.HandlerFunc {
			return func(rw http.ResponseWriter, r *http.Request) {
				writeJSON(rw, 200, map[string]any{"pr": "lnbcrt1x", "successAction": map[string]any{"tag": "video"}})
			}
		}, isErr(ErrBadResponse), true},
		{"long success message", 1000, "", func(w *testWall) http.HandlerFunc {
			return func(rw http.ResponseWriter, r *http.Request) {
				writeJSON(rw, 200, map[string]any{"pr": "lnbcrt1x", "successAction": map[string]any{"tag": "message", "message": strings.Repeat("m", 145)}})
			}
		}, isErr(ErrBadResponse), true},
		{"oversized", 1000, "", func(w *testWall) http.HandlerFunc {
			return func(rw http.ResponseWriter, r *http.Request) {
				writeJSON(rw, 200, map[string]any{"pr": strings.Repeat("x", 5000)})
			}
		}, isErr(ErrBodyTooLarge), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newTestWall(t)
			c := &Client{MaxBody: 4096}
			po, err := c.FetchOffer(context.Background(), w.srv.URL+"/lnurlp")
			if err != nil {
				t.Fatal(err)
			}
			if tt.serve != nil {
				w.route("/cb", tt.serve(w))
			}
			resp, err := c.RequestInvoice(context.Background(), po, tt.amount, tt.comment)
			if err == nil || !tt.check(err) {
				t.Fatalf("RequestInvoice = %+v, %v", resp, err)
			}
			t.Log(err)
			if got := w.hitCount("/cb") > 0; got != tt.reached {
				t.Fatalf("callback reached = %v, want %v", got, tt.reached)
			}
		})
	}
}

func TestParseCallbackRequest(t *testing.T) {
	tests := []struct {
		query   string
		amount  int64
		comment string
		err     string // substring; "" = accepted
	}{
		{"amount=1000", 1000, "", ""},
		{"amount=5000&comment=hi", 5000, "hi", ""},
		{"amount=5000&comment=%E2%9A%A1%E2%9A%A1%E2%9A%A1%E2%9A%A1", 5000, "⚡⚡⚡⚡", ""},
		{"", 0, "", "want one amount parameter, got 0"},
		{"amount=1000&amount=2000", 0, "", "got 2"},
		{"amount=", 0, "", "not a whole number"},
		{"amount=1.5", 0, "", "not a whole number"},
		{"amount=-1000", 0, "", "not a whole number"},
		{"amount=%2B1000", 0, "", "not a whole number"},
		{"amount=1e3", 0, "", "not a whole number"},
		{"amount=99999999999999999999", 0, "", "too large"},
		{"amount=999", 0, "", "amount 999 msat outside 1000..5000 msat"},
		{"amount=5001", 0, "", "outside"},
		{"amount=1000&comment=hello", 0, "", "comment is 5 characters, at most 4 allowed"},
		{"amount=1000&comment=a&comment=b", 0, "", "2 comment parameters"},
		{"amount=1000&comment=%FF", 0, "", "not UTF-8"},
	}
	for _, tt := range tests {
		q, err := url.ParseQuery(tt.query)
		if err != nil {
			t.Fatal(err)
		}
		amt, comment, err := ParseCallbackRequest(q, 1000, 5000, 4)
		if tt.err == "" {
			if err != nil || amt != tt.amount || comment != tt.comment {
				t.Errorf("%q: = %d, %q, %v; want %d, %q", tt.query, amt, comment, err, tt.amount, tt.comment)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%q: err = %v, want ErrBadRequest containing %q", tt.query, err, tt.err)
		}
	}
}

func TestServerValues(t *testing.T) {
	w := newTestWall(t)
	p, err := PayRequest("http://[fe80::1]:15118/cb", 1000, 2000, w.metadata, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	b, _ := json.Marshal(p)
	_ = json.Unmarshal(b, &got)
	if got["tag"] != "payRequest" || got["metadata"] != w.metadata || got["minSendable"] != 1000.0 ||
		got["maxSendable"] != 2000.0 || got["callback"] != "http://[fe80::1]:15118/cb" || got["status"] != nil {
		t.Errorf("PayRequest JSON = %s", b)
	}

	b, _ = json.Marshal(ErrorResponse("no session"))
	if string(b) != `{"status":"ERROR","reason":"no session"}` {
		t.Errorf("ErrorResponse JSON = %s", b)
	}

	r, err := CallbackResponse("lnbcrt1x", "", "Thanks", "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(r)
	if string(b) != `{"status":"OK","pr":"lnbcrt1x","routes":[],"successAction":{"tag":"message","message":"Thanks"}}` {
		t.Errorf("CallbackResponse JSON = %s", b)
	}
	r, _ = CallbackResponse("lnbcrt1x", "", "", "")
	if b, _ = json.Marshal(r); strings.Contains(string(b), "successAction") || strings.Contains(string(b), "verify") {
		t.Errorf("CallbackResponse without extras = %s", b)
	}

	bad := []struct {
		name string
		err  error
	}{
		{"relative callback", second(PayRequest("/cb", 1, 2, w.metadata, 0))},
		{"min zero", second(PayRequest("http://h/cb", 0, 2, w.metadata, 0))},
		{"min above max", second(PayRequest("http://h/cb", 3, 2, w.metadata, 0))},
		{"bad metadata", second(PayRequest("http://h/cb", 1, 2, `[["text/plain","x"]]`, 0))},
		{"comment too long", second(PayRequest("http://h/cb", 1, 2, w.metadata, MaxCommentAllowed+1))},
		{"empty invoice", second(CallbackResponse("", "", "", ""))},
		{"long text", second(CallbackResponse("ln", "", strings.Repeat("t", 145), ""))},
		{"bad success url", second(CallbackResponse("ln", "ftp://h/x", "", ""))},
		{"bad verify url", second(CallbackResponse("ln", "", "", "v"))},
	}
	for _, tt := range bad {
		if tt.err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func TestSameOriginURL(t *testing.T) {
	tests := []struct {
		origin, raw string
		want        string // "" = refused
	}{
		{"http://[fe80::1%25eth0]:15118/lnurlp", "http://[fe80::1]:15118/cb?s=1", "http://[fe80::1%25eth0]:15118/cb?s=1"},
		{"http://[fe80::1%25eth0]:15118/lnurlp", "http://[FE80:0::1%25wall0]:15118/cb", "http://[fe80::1%25eth0]:15118/cb"},
		{"http://[fe80::1%25eth0]:15118/lnurlp", "http://[fe80::2]:15118/cb", ""},
		{"http://[fe80::1%25eth0]:15118/lnurlp", "http://[fe80::1]:15119/cb", ""},
		{"http://wall.local/lnurlp", "http://WALL.local:80/cb", "http://wall.local/cb"},
		{"https://wall.local/lnurlp", "https://wall.local:443/cb", "https://wall.local/cb"},
		{"https://wall.local/lnurlp", "http://wall.local/cb", ""},
		{"http://127.0.0.1:8080/x", "http://localhost:8080/cb", ""},
		{"http://127.0.0.1:8080/x", "http://127.0.0.1:8080/cb#frag", "http://127.0.0.1:8080/cb"},
	}
	for _, tt := range tests {
		origin, err := url.Parse(tt.origin)
		if err != nil {
			t.Fatal(err)
		}
		got, err := sameOriginURL(origin, tt.raw)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("sameOriginURL(%s, %s) = %s, want refused", tt.origin, tt.raw, got)
		case tt.want != "" && (err != nil || got.String() != tt.want):
			t.Errorf("sameOriginURL(%s, %s) = %v, %v; want %s", tt.origin, tt.raw, got, err, tt.want)
		}
	}
}

// payRequestWith serves the honest pay request after mutate edits its
// JSON fields.
func payRequestWith(w *testWall, mutate func(map[string]any)) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		p, err := PayRequest(w.srv.URL+"/cb", w.min, w.max, w.metadata, w.commentAllowed)
		if err != nil {
			panic(err)
		}
		var m map[string]any
		b, _ := json.Marshal(p)
		_ = json.Unmarshal(b, &m)
		mutate(m)
		writeJSON(rw, 200, m)
	}
}

func isErr(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

func isRemote(reason string) func(error) bool {
	return func(err error) bool {
		var re *RemoteError
		return errors.As(err, &re) && strings.Contains(re.Reason, reason)
	}
}

// TestHostileAnswersSaidClearly covers what fuzzing the client asked for:
// a refusal names the field and stays short whatever the wall sends, and
// an aes success action the car could not decrypt is refused.
func TestHostileAnswersSaidClearly(t *testing.T) {
	long := strings.Repeat("x", 60<<10)
	tests := []struct {
		name  string
		route string // /lnurlp or /cb
		serve http.HandlerFunc
		check func(error) bool
		says  string
	}{
		{"long reason", "/lnurlp", func(rw http.ResponseWriter, r *http.Request) {
			writeJSON(rw, 200, ErrorResponse(long))
		}, isRemote(long), "answered ERROR"},
		{"huge number names its field", "/lnurlp", func(rw http.ResponseWriter, r *http.Request) {
			rw.Write([]byte(`{"tag":"payRequest","maxSendable":` + strings.Repeat("9", 60<<10) + `}`))
		}, isErr(ErrBadResponse), "field maxSendable: got a JSON number 999"},
		{"status of the wrong type", "/lnurlp", func(rw http.ResponseWriter, r *http.Request) {
			rw.Write([]byte(`{"status":5}`))
		}, isErr(ErrBadResponse), "field status: got a JSON number"},
		{"syntax error says where", "/lnurlp", func(rw http.ResponseWriter, r *http.Request) {
			rw.Write([]byte(`{"tag": x}`))
		}, isErr(ErrBadResponse), "near byte 9"},
		{"array body", "/lnurlp", func(rw http.ResponseWriter, r *http.Request) {
			rw.Write([]byte(`[1]`))
		}, isErr(ErrBadResponse), "the body is a JSON array, want an object"},
		{"foreign callback with a long path", "/lnurlp", nil, isErr(ErrForeignHost), "callback"},
		{"callback with a long port", "/lnurlp", func(rw http.ResponseWriter, r *http.Request) {
			writeJSON(rw, 200, map[string]any{"tag": "payRequest", "minSendable": 1000, "maxSendable": 2000,
				"metadata": newTestWall(t).metadata, "callback": "http://127.0.0.1:" + strings.Repeat("x", 60<<10) + "/cb"})
		}, isErr(ErrBadResponse), "callback: bad LNURL-pay response"},
		{"aes iv too short", "/cb", func(rw http.ResponseWriter, r *http.Request) {
			writeJSON(rw, 200, map[string]any{"pr": "lnbcrt1x", "successAction": map[string]any{"tag": "aes",
				"description": "code", "ciphertext": "AAAAAAAAAAAAAAAAAAAAAA==", "iv": "AAAA"}})
		}, isErr(ErrBadResponse), "iv"},
		{"aes partial block", "/cb", func(rw http.ResponseWriter, r *http.Request) {
			writeJSON(rw, 200, map[string]any{"pr": "lnbcrt1x", "successAction": map[string]any{"tag": "aes",
				"description": "code", "ciphertext": "AAAA", "iv": "AAAAAAAAAAAAAAAAAAAAAA=="}})
		}, isErr(ErrBadResponse), "ciphertext"},
		{"aes not base64", "/cb", func(rw http.ResponseWriter, r *http.Request) {
			writeJSON(rw, 200, map[string]any{"pr": "lnbcrt1x", "successAction": map[string]any{"tag": "aes",
				"description": "code", "ciphertext": "!!!!", "iv": "AAAAAAAAAAAAAAAAAAAAAA=="}})
		}, isErr(ErrBadResponse), "ciphertext"},
		{"aes long description", "/cb", func(rw http.ResponseWriter, r *http.Request) {
			writeJSON(rw, 200, map[string]any{"pr": "lnbcrt1x", "successAction": map[string]any{"tag": "aes",
				"description": strings.Repeat("d", 145), "ciphertext": "AAAAAAAAAAAAAAAAAAAAAA==", "iv": "AAAAAAAAAAAAAAAAAAAAAA=="}})
		}, isErr(ErrBadResponse), "description"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newTestWall(t)
			c := &Client{}
			if tt.serve == nil {
				// A callback on another host whose path is as long as the
				// body allows.
				md := w.metadata
				w.route("/lnurlp", payRequestWith(w, func(m map[string]any) {
					m["callback"] = "http://elsewhere.example/" + long
					m["metadata"] = md
				}))
			} else if tt.route == "/lnurlp" {
				w.route("/lnurlp", tt.serve)
			}
			var err error
			if tt.route == "/lnurlp" {
				_, err = c.FetchOffer(context.Background(), w.srv.URL+"/lnurlp")
			} else {
				po, ferr := c.FetchOffer(context.Background(), w.srv.URL+"/lnurlp")
				if ferr != nil {
					t.Fatal(ferr)
				}
				w.route("/cb", tt.serve)
				_, err = c.RequestInvoice(context.Background(), po, 1000, "")
			}
			if err == nil || !tt.check(err) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("err = %.300v, want it to say %q", err, tt.says)
			}
			if n := len(err.Error()); n > maxErrLen {
				t.Fatalf("error is %d bytes", n)
			}
		})
	}
	// A real LUD-10 action, as go-lnurl encrypts one, is accepted.
	w := newTestWall(t)
	c := &Client{}
	po, err := c.FetchOffer(context.Background(), w.srv.URL+"/lnurlp")
	if err != nil {
		t.Fatal(err)
	}
	a, err := lnurl.AESAction("Your code", preimage[:], "PIN 4711")
	if err != nil {
		t.Fatal(err)
	}
	w.route("/cb", func(rw http.ResponseWriter, r *http.Request) {
		writeJSON(rw, 200, InvoiceResponse{LNURLResponse: lnurl.OkResponse(), PR: "lnbcrt1x", Routes: []any{}, SuccessAction: a})
	})
	r, err := c.RequestInvoice(context.Background(), po, 1000, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.SuccessAction.Decipher(preimage[:]); err != nil || got != "PIN 4711" {
		t.Fatalf("Decipher = %q, %v", got, err)
	}
}
