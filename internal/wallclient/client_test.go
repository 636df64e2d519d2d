package wallclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"satwatt/internal/lnurlpay"
	"satwatt/internal/offer"
)

func TestOffer(t *testing.T) {
	tests := []struct {
		name     string
		route    http.HandlerFunc // nil: the honest wall
		maxBody  int64
		declined string // want ErrDeclined with this reason
		wantErr  error  // want errors.Is
		errText  string
	}{
		{name: "offer"},
		{
			name: "no session yet",
			route: func(rw http.ResponseWriter, r *http.Request) {
				writeJSON(rw, http.StatusOK, lnurlpay.ErrorResponse("session is not open"))
			},
			declined: "session is not open",
		},
		{
			name: "LUD-06 error with HTTP 503",
			route: func(rw http.ResponseWriter, r *http.Request) {
				writeJSON(rw, http.StatusServiceUnavailable, lnurlpay.ErrorResponse("the wall is not selling energy"))
			},
			declined: "the wall is not selling energy",
		},
		{
			name: "broken wall: HTML error page",
			route: func(rw http.ResponseWriter, r *http.Request) {
				rw.WriteHeader(http.StatusInternalServerError)
				fmt.Fprint(rw, "<html>oops</html>")
			},
			wantErr: lnurlpay.ErrBadResponse,
			errText: "/lnurlp",
		},
		{
			name: "bad metadata",
			route: func(rw http.ResponseWriter, r *http.Request) {
				writeJSON(rw, http.StatusOK, map[string]any{
					"tag": "payRequest", "callback": "http://" + r.Host + "/cb", "minSendable": 1000,
					"maxSendable": 2000, "metadata": `[["text/plain","no offer here"]]`,
				})
			},
			wantErr: offer.ErrMetadata,
		},
		{
			name: "callback on another host",
			route: func(rw http.ResponseWriter, r *http.Request) {
				o := newOfferParams(t)
				o["callback"] = "http://evil.example/cb"
				writeJSON(rw, http.StatusOK, o)
			},
			wantErr: ErrForeignHost,
		},
		{
			name:    "oversized body",
			maxBody: 100,
			wantErr: ErrBodyTooLarge,
		},
		{
			name: "oversized body, default limit",
			route: func(rw http.ResponseWriter, r *http.Request) {
				rw.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(rw, `{"tag":"payRequest","pad":"%s"}`, strings.Repeat("x", lnurlpay.DefaultMaxBody))
			},
			wantErr: ErrBodyTooLarge,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newFakeWall(t)
			if tc.route != nil {
				w.route("GET /lnurlp", tc.route)
			}
			c, _ := w.client()
			c.MaxBody = tc.maxBody
			o, err := c.Offer(context.Background())
			switch {
			case tc.declined != "":
				var re *lnurlpay.RemoteError
				if !errors.Is(err, ErrDeclined) || !errors.As(err, &re) || re.Reason != tc.declined {
					t.Fatalf("err = %v, want ErrDeclined with reason %q", err, tc.declined)
				}
				return
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if errors.Is(err, ErrDeclined) {
					t.Fatalf("a broken wall reported as declining: %v", err)
				}
				if !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.errText)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if !o.Terms.Equal(w.offer) {
				t.Errorf("terms = %+v, want %+v", o.Terms, w.offer)
			}
			if o.Metadata != w.metadata || o.Pay.Metadata != w.metadata {
				t.Errorf("metadata = %q, want %q", o.Metadata, w.metadata)
			}
			if offer.DescriptionHash(o.Metadata) != offer.DescriptionHash(w.metadata) {
				t.Error("description hash differs")
			}
			if got := o.Pay.Callback.Path; got != "/lnurlp/sess-7/callback" {
				t.Errorf("callback path = %q", got)
			}
		})
	}
}

// newOfferParams is the honest wall's pay request as a map to tamper with.
func newOfferParams(t *testing.T) map[string]any {
	t.Helper()
	o := offer.Offer{
		SessionID: "sess-7", PriceMsatPerWh: 250, IncrementWh: 100, FirstMultiple: 3,
		GraceWh: 20, MaxPowerW: 11000, WallNodeKey: "02" + strings.Repeat("ab", 32),
		ValidUntil: time.Now().Add(time.Hour), Network: "regtest",
	}
	md, err := offer.Metadata(o, "x")
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"tag": "payRequest", "callback": "http://x/cb", "minSendable": 1000, "maxSendable": 2000, "metadata": md}
}

func TestInvoice(t *testing.T) {
	tests := []struct {
		name     string
		amount   int64
		route    http.HandlerFunc
		want     string
		declined string
		wantErr  error
		noCall   bool // the callback must not be reached
	}{
		{name: "invoice", amount: 75000, want: "lnbcrt-fake-75000"},
		{
			name: "too many unpaid invoices", amount: 75000,
			route: func(rw http.ResponseWriter, r *http.Request) {
				writeJSON(rw, http.StatusOK, lnurlpay.ErrorResponse("too many unpaid invoices for this session"))
			},
			declined: "too many unpaid invoices for this session",
		},
		{name: "amount below the offer", amount: 999, wantErr: lnurlpay.ErrAmount, noCall: true},
		{name: "amount above the offer", amount: 10_000_001, wantErr: lnurlpay.ErrAmount, noCall: true},
		{
			name: "no invoice in the answer", amount: 75000,
			route: func(rw http.ResponseWriter, r *http.Request) {
				writeJSON(rw, http.StatusOK, map[string]any{"routes": []any{}})
			},
			wantErr: lnurlpay.ErrBadResponse,
		},
		{
			name: "redirect to another host", amount: 75000,
			route: func(rw http.ResponseWriter, r *http.Request) {
				http.Redirect(rw, r, "http://evil.example/cb?amount=75000", http.StatusFound)
			},
			wantErr: ErrForeignHost,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newFakeWall(t)
			if tc.route != nil {
				w.route("GET /lnurlp/sess-7/callback", tc.route)
			}
			c, _ := w.client()
			o, err := c.Offer(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			pr, err := c.Invoice(context.Background(), o, tc.amount, -1)
			if n := w.count("GET /lnurlp/sess-7/callback"); tc.noCall && n != 0 {
				t.Errorf("callback called %d times, want 0", n)
			}
			switch {
			case tc.declined != "":
				var re *lnurlpay.RemoteError
				if !errors.Is(err, ErrDeclined) || !errors.As(err, &re) || re.Reason != tc.declined {
					t.Fatalf("err = %v, want ErrDeclined with reason %q", err, tc.declined)
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) || errors.Is(err, ErrDeclined) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case pr != tc.want:
				t.Fatalf("invoice = %q, want %q", pr, tc.want)
			}
		})
	}
	t.Run("state of charge shared only when given", func(t *testing.T) {
		for _, soc := range []int64{-1, 0, 593, 1000} {
			w := newFakeWall(t)
			var got url.Values
			w.route("GET /lnurlp/sess-7/callback", func(rw http.ResponseWriter, r *http.Request) {
				got = r.URL.Query()
				rw.Header().Set("Content-Type", "application/json")
				fmt.Fprint(rw, `{"status":"ERROR","reason":"seen"}`)
			})
			c, _ := w.client()
			o, err := c.Offer(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Invoice(context.Background(), o, 75000, soc); !errors.Is(err, ErrDeclined) {
				t.Fatalf("soc %d: %v", soc, err)
			}
			want := ""
			if soc >= 0 {
				want = strconv.FormatInt(soc, 10)
			}
			if got.Get(SoCParam) != want || got.Get("amount") != "75000" {
				t.Errorf("soc %d: callback query %v, want %s=%q and amount=75000", soc, got, SoCParam, want)
			}
			if o.Pay.Callback.Query().Has(SoCParam) {
				t.Errorf("soc %d: the offer's own callback URL was changed", soc)
			}
		}
	})
	t.Run("no offer", func(t *testing.T) {
		c := &Client{Base: &url.URL{Scheme: "http", Host: "127.0.0.1:1"}}
		if _, err := c.Invoice(context.Background(), Offer{}, 1000, -1); !errors.Is(err, ErrConfig) {
			t.Fatalf("err = %v, want ErrConfig", err)
		}
	})
}

func TestStatus(t *testing.T) {
	big := `{"connector":"idle","pad":"` + strings.Repeat("x", DefaultMaxBody) + `"}`
	tests := []struct {
		name    string
		route   http.HandlerFunc
		wantErr error
		errText []string
		check   func(t *testing.T, st WallStatus)
	}{
		{
			name: "wall format",
			check: func(t *testing.T, st WallStatus) {
				want := WallSession{
					ID: "sess-7", State: "energising", PriceMsatPerWh: 250, IncrementWh: 100, FirstPaymentMsat: 75000,
					GraceWh: 20, DeliveredMWh: 1000, PaidMsat: 75000, PaidEnergyMWh: 300000, CreditMsat: -5,
					CreditMWh: -20, PowerW: 7200, Payments: 1,
				}
				if st.Connector != "energising" || st.Why != "paid ahead: delivering" || !st.Ready || st.Last != nil {
					t.Errorf("status = %+v", st)
				}
				if st.Session == nil || *st.Session != want {
					t.Errorf("session = %+v, want %+v", st.Session, want)
				}
			},
		},
		{
			name: "idle with the last session",
			route: jsonRoute(http.StatusOK, `{"connector":"idle","why":"no vehicle plugged in","ready":true,`+
				`"last":{"id":"s1","state":"ended","end_reason":"unplugged","delivered_mwh":5,"paid_msat":7,"payments":2}}`),
			check: func(t *testing.T, st WallStatus) {
				if st.Session != nil || st.Last == nil || st.Last.EndReason != "unplugged" || st.Last.Payments != 2 {
					t.Errorf("status = %+v, last %+v", st, st.Last)
				}
			},
		},
		{name: "float money", route: jsonRoute(200, `{"connector":"energising","session":{"id":"s","paid_msat":1.5}}`), wantErr: ErrBadResponse},
		{name: "exponent", route: jsonRoute(200, `{"connector":"energising","session":{"id":"s","paid_msat":1e3}}`), wantErr: ErrBadResponse},
		{name: "negative delivered", route: jsonRoute(200, `{"connector":"energising","session":{"id":"s","delivered_mwh":-1}}`), wantErr: ErrBadResponse, errText: []string{"delivered_mwh"}},
		{name: "session without id", route: jsonRoute(200, `{"connector":"energising","session":{}}`), wantErr: ErrBadResponse},
		{name: "null", route: jsonRoute(200, `null`), wantErr: ErrBadResponse},
		{name: "no connector", route: jsonRoute(200, `{"ready":true}`), wantErr: ErrBadResponse},
		{name: "garbage", route: jsonRoute(200, `<html>`), wantErr: ErrBadResponse, errText: []string{"/api/status"}},
		{name: "trailing data", route: jsonRoute(200, `{"connector":"idle"} {}`), wantErr: ErrBadResponse},
		{
			name: "HTTP 500 with the wall's error", route: jsonRoute(500, `{"error":"the database is on fire"}`),
			errText: []string{"GET /api/status", "HTTP 500", "the database is on fire"},
		},
		{
			name: "HTTP 502 with a long HTML body, clipped",
			route: func(rw http.ResponseWriter, r *http.Request) {
				rw.WriteHeader(http.StatusBadGateway)
				fmt.Fprint(rw, "<html>\n"+strings.Repeat("bad gateway ", 1000))
			},
			errText: []string{"HTTP 502", "bad gateway"},
		},
		{name: "oversized body", route: jsonRoute(200, big), wantErr: ErrBodyTooLarge},
		{
			name: "oversized body, chunked",
			route: func(rw http.ResponseWriter, r *http.Request) {
				for range 100 {
					fmt.Fprint(rw, strings.Repeat(" ", 1024))
					_ = http.NewResponseController(rw).Flush()
				}
				fmt.Fprint(rw, `{"connector":"idle"}`)
			},
			wantErr: ErrBodyTooLarge,
		},
		{
			name: "same-origin redirect followed",
			route: func(rw http.ResponseWriter, r *http.Request) {
				http.Redirect(rw, r, "/v2/status", http.StatusFound)
			},
			check: func(t *testing.T, st WallStatus) {
				if st.Connector != "idle" {
					t.Errorf("status = %+v", st)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newFakeWall(t)
			if tc.route != nil {
				w.route("GET /api/status", tc.route)
			}
			w.route("GET /v2/status", jsonRoute(200, `{"connector":"idle"}`))
			c, _ := w.client()
			st, err := c.Status(context.Background())
			if tc.check != nil {
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, st)
				return
			}
			if err == nil {
				t.Fatalf("no error, status %+v", st)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			for _, s := range tc.errText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("err = %v, want it to mention %q", err, s)
				}
			}
			if len(err.Error()) > 400 {
				t.Errorf("error is %d bytes long, want it clipped: %.100s...", len(err.Error()), err)
			}
		})
	}
}

func jsonRoute(code int, body string) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(code)
		fmt.Fprint(rw, body)
	}
}

func TestStatusTimeout(t *testing.T) {
	w := newFakeWall(t)
	w.route("GET /api/status", func(rw http.ResponseWriter, r *http.Request) {
		// Headers, then nothing: the body must be bounded too.
		rw.WriteHeader(http.StatusOK)
		fmt.Fprint(rw, `{"connector":`)
		_ = http.NewResponseController(rw).Flush()
		select {
		case <-r.Context().Done():
		case <-w.release:
		}
	})
	c, _ := w.client()
	c.Timeout = 200 * time.Millisecond
	start := time.Now()
	_, err := c.Status(context.Background())
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no complete answer within 200ms") {
		t.Fatalf("err = %v, want a time-out", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestForeignRedirectRefused(t *testing.T) {
	// The other host: a second server, named by a different host name or
	// port, that must never be reached.
	var otherHits atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
		jsonRoute(200, `{"connector":"idle","stopped":true}`)(rw, r)
	}))
	defer other.Close()
	ou, _ := url.Parse(other.URL)
	targets := map[string]string{
		"other port":      other.URL,
		"other host name": "http://localhost:" + ou.Port(),
		"other scheme":    "https://" + "127.0.0.1",
	}
	calls := map[string]func(c *Client) error{
		"status": func(c *Client) error { _, err := c.Status(context.Background()); return err },
		"buyer stop": func(c *Client) error {
			return c.BuyerStop(context.Background(), "sess-7", goodPreimage)
		},
		"offer": func(c *Client) error { _, err := c.Offer(context.Background()); return err },
		"stream": func(c *Client) error {
			_, err := c.stream(context.Background(), func(WallStatus) {}, func(int, error) {})
			return err
		},
	}
	routes := map[string]string{
		"status": "GET /api/status", "buyer stop": "POST /api/sessions/sess-7/buyer-stop",
		"offer": "GET /lnurlp", "stream": "GET /api/status/stream",
	}
	for tname, target := range targets {
		for cname, call := range calls {
			t.Run(cname+" to "+tname, func(t *testing.T) {
				w := newFakeWall(t)
				w.route(routes[cname], func(rw http.ResponseWriter, r *http.Request) {
					http.Redirect(rw, r, target+r.URL.Path, http.StatusTemporaryRedirect)
				})
				c, _ := w.client()
				err := call(c)
				if !errors.Is(err, ErrForeignHost) {
					t.Fatalf("err = %v, want ErrForeignHost", err)
				}
				if strings.Contains(err.Error(), goodPreimage) {
					t.Fatalf("error quotes the preimage: %v", err)
				}
				if n := otherHits.Load(); n != 0 {
					t.Fatalf("the other host was reached %d times", n)
				}
			})
		}
	}
}

func TestBuyerStop(t *testing.T) {
	tests := []struct {
		name      string
		session   string
		preimage  string
		route     http.HandlerFunc
		wantErr   error
		wantCode  int
		noRequest bool
	}{
		{name: "stopped", session: "sess-7", preimage: goodPreimage},
		{name: "wrong preimage, echoed back", session: "sess-7", preimage: strings.Repeat("c3", 32), wantCode: http.StatusForbidden},
		{
			name: "session over", session: "sess-7", preimage: goodPreimage,
			route:    jsonRoute(http.StatusConflict, `{"error":"session is not open"}`),
			wantCode: http.StatusConflict,
		},
		{
			name: "echo in a non-JSON body", session: "sess-7", preimage: goodPreimage,
			route:    jsonRoute(http.StatusTeapot, "preimage="+strings.ToUpper(goodPreimage)+" refused"),
			wantCode: http.StatusTeapot,
		},
		{
			name: "200 without stopped", session: "sess-7", preimage: goodPreimage,
			route:   jsonRoute(http.StatusOK, `{"you sent":"`+goodPreimage+`"}`),
			wantErr: ErrBadResponse,
		},
		{name: "short preimage", session: "sess-7", preimage: "abcd", wantErr: ErrConfig, noRequest: true},
		{name: "preimage not hex", session: "sess-7", preimage: strings.Repeat("zz", 32), wantErr: ErrConfig, noRequest: true},
		{name: "session id with a slash", session: "../price", preimage: goodPreimage, wantErr: ErrConfig, noRequest: true},
		{name: "empty session id", session: "", preimage: goodPreimage, wantErr: ErrConfig, noRequest: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newFakeWall(t)
			if tc.route != nil {
				w.route("POST /api/sessions/sess-7/buyer-stop", tc.route)
			}
			c, _ := w.client()
			err := c.BuyerStop(context.Background(), tc.session, tc.preimage)
			if tc.noRequest && len(w.hitList()) != 0 {
				t.Errorf("requests sent: %v", w.hitList())
			}
			if err != nil {
				low := strings.ToLower(err.Error())
				if strings.Contains(low, strings.ToLower(tc.preimage)) && len(tc.preimage) == 64 {
					t.Fatalf("error quotes the preimage: %v", err)
				}
			}
			switch {
			case tc.wantCode != 0:
				var he *HTTPError
				if !errors.As(err, &he) || he.StatusCode != tc.wantCode || he.Path != "/api/sessions/sess-7/buyer-stop" {
					t.Fatalf("err = %v, want HTTP %d", err, tc.wantCode)
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			}
		})
	}
}

func TestBadBase(t *testing.T) {
	for name, base := range map[string]*url.URL{
		"nil":       nil,
		"relative":  {Path: "/x"},
		"ftp":       {Scheme: "ftp", Host: "wall"},
		"user info": {Scheme: "http", Host: "wall", User: url.UserPassword("u", "secret")},
	} {
		t.Run(name, func(t *testing.T) {
			c := &Client{Base: base}
			_, err := c.Status(context.Background())
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error quotes the password: %v", err)
			}
		})
	}
}

func TestBasePathPrefix(t *testing.T) {
	w := newFakeWall(t)
	w.route("GET /wall/api/status", jsonRoute(200, `{"connector":"idle"}`))
	c, _ := w.client()
	c.Base = c.Base.JoinPath("wall")
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestClip(t *testing.T) {
	for in, want := range map[string]string{
		"ok":                     "ok",
		"a\nb\x00c":              "a b c",
		"bad \xff utf8":          "bad ? utf8",
		strings.Repeat("é", 150): strings.Repeat("é", 100) + "...",
		strings.Repeat("x", 201): strings.Repeat("x", 200) + "...",
		"AbCd secret ABCD":       "AbCd secret ABCD",
	} {
		if got := clip(in); got != want {
			t.Errorf("clip(%q) = %q, want %q", in, got, want)
		}
	}
	if got := redactFold("x ABcd y abcd", "abCD"); got != "x <redacted> y <redacted>" {
		t.Errorf("redactFold = %q", got)
	}
}
