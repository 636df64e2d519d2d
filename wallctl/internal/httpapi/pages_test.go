package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"satwatt/internal/offer"
	"satwatt/internal/wallstore"
	"satwatt/wallctl/internal/chargepoint"
	"satwatt/web"
)

// pageStore is a real wall database with three sessions: two on
// 2026-11-20 (local time), one on 2026-11-24, each with its payments and
// meter samples.
type pageStore struct {
	*wallstore.Store
	hashes, preimages map[string][]string // by session
}

var day1 = time.Date(2026, 11, 20, 9, 0, 0, 0, time.Local)

func newPageStore(t testing.TB) *pageStore {
	t.Helper()
	ctx := context.Background()
	st, err := wallstore.Open(ctx, filepath.Join(t.TempDir(), "wall.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ps := &pageStore{Store: st, hashes: map[string][]string{}, preimages: map[string][]string{}}
	for i, s := range []struct {
		id       string
		start    time.Time
		payments []int64
		mWh      int64
	}{
		{"sess-a", day1, []int64{10_000, 5_000}, 140_000},
		{"sess-b", day1.Add(3 * time.Hour), []int64{10_000}, 95_500},
		{"sess-c", day1.AddDate(0, 0, 4), []int64{10_000, 5_000, 5_000}, 190_001},
	} {
		o := testOffer
		o.SessionID = s.id
		md, err := offer.Metadata(o, "page test")
		if err != nil {
			t.Fatal(err)
		}
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(st.OpenSession(ctx, wallstore.SessionOpen{ID: s.id, StartedAt: s.start, Offer: o, Metadata: md}))
		at := s.start
		for j, amt := range s.payments {
			pre := sha256.Sum256([]byte(s.id + strconv.Itoa(j)))
			h := sha256.Sum256(pre[:])
			hx := hex.EncodeToString(h[:])
			must(st.AddInvoice(ctx, wallstore.Invoice{PaymentHash: hx, SessionID: s.id, AmountMsat: amt,
				Bolt11: "lnbcrt" + strconv.Itoa(i), CreatedAt: at, ExpiresAt: at.Add(2 * time.Minute)}))
			at = at.Add(time.Second)
			_, err := st.SettleInvoice(ctx, hx, amt, hex.EncodeToString(pre[:]), at)
			must(err)
			ps.hashes[s.id] = append(ps.hashes[s.id], hx)
			ps.preimages[s.id] = append(ps.preimages[s.id], hex.EncodeToString(pre[:]))
			at = at.Add(time.Minute)
			must(st.RecordProgress(ctx, s.id, at, "energising", s.mWh*int64(j+1)/int64(len(s.payments)), 7000))
		}
		must(st.EndSession(ctx, s.id, at.Add(time.Minute), "unplugged", s.mWh))
	}
	return ps
}

func newPageServer(t *testing.T, w *fakeWall, h History) *httptest.Server {
	t.Helper()
	hd, err := New(Config{Token: token}, w, h)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hd)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestPages(t *testing.T) {
	ps := newPageStore(t)
	srv := newPageServer(t, &fakeWall{settings: chargepoint3}, ps)
	cases := []struct {
		name, path string
		code       int
		ctype      string
		contains   []string
		absent     []string
	}{
		{"live", "/", 200, "text/html", []string{`id="live"`, `data-field="connector"`, "/static/live.js", "/static/app.css"}, nil},
		{"history, all", "/history", 200, "text/html", []string{"sess-a", "sess-b", "sess-c", "2026-11-20", "2026-11-24", "2026-11",
			web.FormatEnergy(140_000 + 95_500 + 190_001), web.FormatSat(45_000), `href="/history.csv"`}, nil},
		{"history, one day", "/history?since=2026-11-24&until=2026-11-24", 200, "text/html",
			[]string{"sess-c", web.FormatEnergy(190_001), `/history.csv?since=2026-11-24&amp;until=2026-11-24`}, []string{"sess-a", "sess-b"}},
		{"history, bad date", "/history?since=yesterday", 400, "text/html", []string{"since", "yesterday", "2026-11-25"}, []string{"sess-a"}},
		{"history, range backwards", "/history?since=2026-11-24&until=2026-11-20", 400, "text/html", []string{"after the last"}, nil},
		{"history, bad limit", "/history?limit=0", 400, "text/html", []string{"limit"}, nil},
		{"history, limited", "/history?limit=1", 200, "text/html", []string{"sess-c"}, []string{"sess-a"}},
		{"receipt", "/sessions/sess-c", 200, "text/html", append(append([]string{"sess-c", "unplugged", web.FormatEnergy(190_001), testOffer.WallNodeKey},
			ps.hashes["sess-c"]...), ps.preimages["sess-c"]...), ps.hashes["sess-a"]},
		{"receipt, unknown", "/sessions/nope", 404, "text/html", []string{"nope"}, nil},
		{"receipt, hostile id", "/sessions/%3Cscript%3Ealert(1)%3C%2Fscript%3E", 404, "text/html", []string{"There is no session"}, []string{"<script>alert"}},
		{"settings", "/settings", 200, "text/html", []string{`name="token"`, `name="csrf"`, `value="300"`, `value="20"`, `value="5"`}, []string{token}},
		{"stylesheet", "/static/app.css", 200, "text/css", nil, []string{"http://", "https://"}},
		{"script", "/static/live.js", 200, "javascript", []string{"EventSource"}, []string{"http://", "https://"}},
		{"asset, unknown", "/static/nope.js", 404, "", nil, nil},
		{"series", "/api/sessions/sess-c/series", 200, "application/json", []string{`"points"`, `"credit_msat"`}, nil},
		{"series, unknown", "/api/sessions/nope/series", 404, "application/json", nil, nil},
		{"settings JSON", "/api/settings", 200, "application/json", []string{`"price_msat_per_wh":300`}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, srv.URL+tc.path)
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d: %.300s", resp.StatusCode, tc.code, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, tc.ctype) {
				t.Errorf("Content-Type %q, want %q", ct, tc.ctype)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
			for _, s := range tc.contains {
				if !strings.Contains(body, s) {
					t.Errorf("page lacks %q", s)
				}
			}
			for _, s := range tc.absent {
				if strings.Contains(body, s) {
					t.Errorf("page has %q", s)
				}
			}
		})
	}
}

var chargepoint3 = settingsOf(300, 20, 5)

// Pages that must read without JavaScript carry none; every asset is the
// wall's own.
func TestPagesLoadNothingFromElsewhere(t *testing.T) {
	ps := newPageStore(t)
	srv := newPageServer(t, &fakeWall{settings: chargepoint3}, ps)
	ref := regexp.MustCompile(`(?i)(?:src|href|action)="([^"]*)"`)
	for _, p := range []string{"/", "/history", "/sessions/sess-a", "/settings", "/sessions/nope"} {
		_, body := get(t, srv.URL+p)
		for _, m := range ref.FindAllStringSubmatch(body, -1) {
			u := html.UnescapeString(m[1])
			if !strings.HasPrefix(u, "/") || strings.HasPrefix(u, "//") {
				t.Errorf("%s refers to %q, not one of the wall's own paths", p, u)
			}
		}
		if (p == "/history" || strings.HasPrefix(p, "/sessions/")) && strings.Contains(body, "<script") {
			t.Errorf("%s has a script; it must read without one", p)
		}
	}
}

func TestSeriesJSON(t *testing.T) {
	ps := newPageStore(t)
	srv := newPageServer(t, &fakeWall{}, ps)
	_, body := get(t, srv.URL+"/api/sessions/sess-a/series")
	var got struct {
		Points []seriesPoint `json:"points"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	// Two samples: after 10,000 msat, 70 Wh at 100 msat/Wh; after 15,000
	// msat, 140 Wh.
	want := []seriesPoint{{PowerW: 7000, CreditMsat: 10_000 - 7_000, DeliveredMWh: 70_000},
		{PowerW: 7000, CreditMsat: 15_000 - 14_000, DeliveredMWh: 140_000}}
	if len(got.Points) != len(want) {
		t.Fatalf("%d points, want %d: %s", len(got.Points), len(want), body)
	}
	for i, p := range got.Points {
		p.T = 0
		if p != want[i] {
			t.Errorf("point %d = %+v, want %+v", i, p, want[i])
		}
	}
}

// The CSV is the page's table: the same sessions, in the same order, with
// the database's integers.
func TestHistoryCSVMatchesTheDatabase(t *testing.T) {
	ps := newPageStore(t)
	srv := newPageServer(t, &fakeWall{}, ps)
	for _, tc := range []struct {
		query string
		ids   []string
	}{
		{"", []string{"sess-c", "sess-b", "sess-a"}},
		{"since=2026-11-20&until=2026-11-20", []string{"sess-b", "sess-a"}},
		{"since=2026-11-21", []string{"sess-c"}},
		{"limit=2", []string{"sess-c", "sess-b"}},
	} {
		resp, body := get(t, srv.URL+"/history.csv?"+tc.query)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
			!strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
			t.Fatalf("%q: %d %v", tc.query, resp.StatusCode, resp.Header)
		}
		recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
		if err != nil {
			t.Fatalf("%q: %v", tc.query, err)
		}
		head := recs[0]
		col := map[string]int{}
		for i, h := range head {
			col[h] = i
		}
		rows := recs[1 : len(recs)-1]
		if len(rows) != len(tc.ids) {
			t.Fatalf("%q: %d rows, want %v", tc.query, len(rows), tc.ids)
		}
		for i, id := range tc.ids {
			rc, err := ps.Receipt(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			r := rows[i]
			if r[col["id"]] != id || r[col["delivered_mwh"]] != strconv.FormatInt(rc.Session.DeliveredMWh, 10) ||
				r[col["paid_msat"]] != strconv.FormatInt(rc.PaidMsat, 10) || r[col["payments"]] != strconv.Itoa(len(rc.Payments)) {
				t.Errorf("%q row %d = %v, want session %s: %d mWh, %d msat, %d payments", tc.query, i, r, id,
					rc.Session.DeliveredMWh, rc.PaidMsat, len(rc.Payments))
			}
		}
		if last := recs[len(recs)-1]; !strings.HasPrefix(last[0], "TOTAL") {
			t.Errorf("%q: last row %v, want the totals", tc.query, last)
		}
	}
	if resp, _ := get(t, srv.URL+"/history.csv?until=someday"); resp.StatusCode != 400 {
		t.Errorf("bad date: status %d, want 400", resp.StatusCode)
	}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func TestSettingsForm(t *testing.T) {
	w := &fakeWall{settings: chargepoint3}
	srv := newPageServer(t, w, newPageStore(t))
	_, page := get(t, srv.URL+"/settings")
	m := csrfRe.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf field in the form:\n%s", page)
	}
	csrf := html.UnescapeString(m[1])
	post := func(form url.Values, origin string) (int, string) {
		req, _ := http.NewRequest("POST", srv.URL+"/settings", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	form := func(tok, csrf, price, inc, grace string) url.Values {
		return url.Values{"token": {tok}, "csrf": {csrf}, "price_msat_per_wh": {price}, "increment_wh": {inc}, "grace_wh": {grace}}
	}
	self := srv.URL
	for _, tc := range []struct {
		name     string
		form     url.Values
		origin   string
		code     int
		contains string
		want     settingsT
	}{
		{"wrong token", form("not-the-token-000000", csrf, "250", "10", "2"), self, 401, "token", chargepoint3},
		{"no csrf", form(token, "", "250", "10", "2"), self, 403, "out of date", chargepoint3},
		{"forged csrf", form(token, "1700000000.00", "250", "10", "2"), self, 403, "out of date", chargepoint3},
		{"another site", form(token, csrf, "250", "10", "2"), "http://evil.example", 403, "another site", chargepoint3},
		{"not a number", form(token, csrf, "2.5", "10", "2"), self, 400, "whole number", chargepoint3},
		{"refused by the wall", form(token, csrf, "0", "10", "2"), self, 400, "Not applied", chargepoint3},
		{"saved", form(token, csrf, "250", "10", "2"), self, 200, "next session", settingsOf(250, 10, 2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(tc.form, tc.origin)
			if code != tc.code || !strings.Contains(body, tc.contains) {
				t.Errorf("status %d, want %d with %q:\n%.400s", code, tc.code, tc.contains, body)
			}
			if strings.Contains(body, token) {
				t.Error("the page echoes the token")
			}
			if got := w.Settings(); got != tc.want {
				t.Errorf("settings %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestCallbackSharesSoC(t *testing.T) {
	w := &fakeWall{open: true}
	srv := newServer(t, w)
	for _, tc := range []struct {
		query string
		ok    bool
		soc   int64
	}{
		{"amount=10000&soc_permille=593", true, 593},
		{"amount=10000&soc_permille=1001", false, -1},
		{"amount=10000&soc_permille=-1", false, -1},
		{"amount=10000&soc_permille=5&soc_permille=6", false, -1},
		{"amount=10000", true, -1},
	} {
		w.mu.Lock()
		w.soc = nil
		w.mu.Unlock()
		_, body := do(t, "GET", srv.URL+"/lnurlp/"+sid+"/callback?"+tc.query, "", "")
		if ok := strings.Contains(body, `"pr"`); ok != tc.ok {
			t.Errorf("%s: answer %s", tc.query, body)
		}
		w.mu.Lock()
		got, shared := w.soc[sid]
		w.mu.Unlock()
		if (tc.soc >= 0) != shared || (shared && got != tc.soc) {
			t.Errorf("%s: shared %v %d, want %d", tc.query, shared, got, tc.soc)
		}
	}
}

type settingsT = chargepoint.Settings

func settingsOf(price, inc, grace int64) chargepoint.Settings {
	return chargepoint.Settings{PriceMsatPerWh: price, IncrementWh: inc, GraceWh: grace}
}
