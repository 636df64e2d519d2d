package web

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"satwatt/internal/prereq"
)

// The wall's zone is fixed so the expected times do not depend on the
// machine running the tests.
var wallZone = time.FixedZone("CET", 3600)

func TestMain(m *testing.M) {
	time.Local = wallZone
	os.Exit(m.Run())
}

func at(s string) time.Time {
	t, err := time.ParseInLocation(TimeLayout, s, wallZone)
	if err != nil {
		panic(err)
	}
	return t
}

var (
	hashA = strings.Repeat("a1", 32)
	hashB = strings.Repeat("b2", 32)
	preA  = strings.Repeat("c3", 32)
	preB  = strings.Repeat("d4", 32)
)

func pages(t *testing.T) *Pages {
	t.Helper()
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func check(t *testing.T, out string, want, notWant []string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q", w)
		}
	}
	for _, w := range notWant {
		if strings.Contains(out, w) {
			t.Errorf("output has %q", w)
		}
	}
}

var (
	scriptTag = regexp.MustCompile(`<script[^>]*>`)
	eventAttr = regexp.MustCompile(`<[a-zA-Z][^>]*\son[a-z]+\s*=`)
)

// checkCSP fails on what the pages' Content-Security-Policy would block.
func checkCSP(t *testing.T, out string) {
	t.Helper()
	for _, tag := range scriptTag.FindAllString(out, -1) {
		if !strings.Contains(tag, `src="/static/`) {
			t.Errorf("script without a local src: %s", tag)
		}
	}
	if m := regexp.MustCompile(`<script[^>]*>([^<]+)</script>`).FindStringSubmatch(out); m != nil {
		t.Errorf("inline script code: %q", m[1])
	}
	if strings.Contains(out, "<style") {
		t.Error("inline <style> block")
	}
	if strings.Contains(out, " style=") {
		t.Error("style attribute")
	}
	if m := eventAttr.FindString(out); m != "" {
		t.Errorf("inline event handler %q", m)
	}
	check(t, out, []string{`<html lang="en">`,
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		`<link rel="stylesheet" href="/static/app.css">`,
		`href="/history"`, `href="/settings"`, "satwatt wall"},
		[]string{"http://", "https://"})
}

func TestFormatters(t *testing.T) {
	type tc struct {
		in   int64
		want string
	}
	tables := []struct {
		name  string
		f     func(int64) string
		cases []tc
	}{
		{"FormatSat", FormatSat, []tc{
			{0, "0 sat"}, {1, "0.001 sat"}, {10, "0.01 sat"}, {999, "0.999 sat"},
			{1000, "1 sat"}, {1500, "1.5 sat"}, {12345, "12.345 sat"}, {30000, "30 sat"},
			{1234000, "1,234 sat"}, {1234567, "1,234.567 sat"}, {-1500, "-1.5 sat"},
			{-3704, "-3.704 sat"}, {-1, "-0.001 sat"}, {1000000000000, "1,000,000,000 sat"},
			{math.MaxInt64, "9,223,372,036,854,775.807 sat"},
			{math.MinInt64, "-9,223,372,036,854,775.808 sat"},
		}},
		{"FormatEnergy", FormatEnergy, []tc{
			{0, "0 Wh"}, {499, "0 Wh"}, {500, "1 Wh"}, {-499, "0 Wh"}, {-500, "-1 Wh"},
			{999, "1 Wh"}, {1000, "1 Wh"}, {1500, "2 Wh"}, {12345, "12 Wh"},
			{950000, "950 Wh"}, {999499, "999 Wh"}, {999500, "1.00 kWh"},
			{1000000, "1.00 kWh"}, {1500000, "1.50 kWh"}, {12345000, "12.35 kWh"},
			{12344999, "12.34 kWh"}, {-12345000, "-12.35 kWh"}, {-87655, "-88 Wh"},
			{1234567890, "1,234.57 kWh"},
		}},
		{"FormatPower", FormatPower, []tc{
			{0, "0 W"}, {1, "1 W"}, {950, "950 W"}, {999, "999 W"}, {1000, "1.00 kW"},
			{1004, "1.00 kW"}, {1005, "1.01 kW"}, {1500, "1.50 kW"}, {7360, "7.36 kW"},
			{11000, "11.00 kW"}, {350000, "350.00 kW"}, {1234567, "1,234.57 kW"},
			{-7360, "-7.36 kW"}, {-5, "-5 W"},
		}},
		{"FormatPrice", FormatPrice, []tc{
			{0, "0 sat/kWh"}, {1, "1 sat/kWh"}, {300, "300 sat/kWh"}, {999, "999 sat/kWh"},
			{1000, "1,000 sat/kWh"}, {1500, "1,500 sat/kWh"}, {-300, "-300 sat/kWh"},
			{123456789, "123,456,789 sat/kWh"},
		}},
		{"FormatSoC", FormatSoC, []tc{
			{-1, SoCUnknown}, {-500, SoCUnknown}, {0, "0.0 %"}, {5, "0.5 %"},
			{593, "59.3 %"}, {999, "99.9 %"}, {1000, "100.0 %"},
		}},
		{"FormatDuration", func(s int64) string { return FormatDuration(time.Duration(s) * time.Millisecond) }, []tc{
			{0, "0 s"}, {999, "0 s"}, {1000, "1 s"}, {1500, "1 s"}, {59999, "59 s"},
			{60000, "1 min 00 s"}, {127000, "2 min 07 s"}, {3599000, "59 min 59 s"},
			{3600000, "1 h 00 min 00 s"}, {3727000, "1 h 02 min 07 s"},
			{100 * 3600000, "100 h 00 min 00 s"}, {-5000, "0 s"},
		}},
	}
	for _, tab := range tables {
		for _, c := range tab.cases {
			if got := tab.f(c.in); got != c.want {
				t.Errorf("%s(%d) = %q, want %q", tab.name, c.in, got, c.want)
			}
		}
	}
	if got := FormatTime(at("2026-11-25 14:03:07").UTC()); got != "2026-11-25 14:03:07" {
		t.Errorf("FormatTime = %q", got)
	}
	if got := FormatTime(time.Time{}); got != "—" {
		t.Errorf("FormatTime(zero) = %q", got)
	}
	for in, want := range map[string]string{"idle": "idle", "awaiting_payment": "awaiting payment",
		"energising": "charging", "suspended": "suspended for non-payment", "ended": "ended",
		"fault": "fault", "new_state": "new state", "": "unknown"} {
		if got := ConnectorWords(in); got != want {
			t.Errorf("ConnectorWords(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNiceScale(t *testing.T) {
	for _, c := range []struct{ max, min, step, top int64 }{
		{0, 1000, 1000, 1000},
		{1, 1000, 1000, 1000},
		{3999, 1000, 1000, 4000},
		{4001, 1000, 2000, 6000},
		{12345000, 1000, 5000000, 15000000},
	} {
		step, top := niceScale(c.max, 4, c.min)
		if step != c.step || top != c.top {
			t.Errorf("niceScale(%d) = %d, %d; want %d, %d", c.max, step, top, c.step, c.top)
		}
	}
	// Huge values must neither overflow nor leave the axis short.
	for _, m := range []int64{math.MaxInt64 / 2, math.MaxInt64 / 5, 1 << 60} {
		step, top := niceScale(m, 4, 1000)
		if step <= 0 || top < m || top%step != 0 {
			t.Errorf("niceScale(%d) = %d, %d", m, step, top)
		}
	}
}

var liveFields = []string{"connector", "why", "power", "delivered", "paid_energy", "credit",
	"credit_energy", "price", "received", "elapsed", "soc", "payments", "session_id",
	"next_price", "evse", "lightning"}

func running() *SessionView {
	return &SessionView{
		ID: "s-20261125-140001-ab12", State: "energising", PriceMsatPerWh: 300,
		IncrementWh: 50, GraceWh: 10, DeliveredMWh: 12345, PaidMsat: 30000,
		PaidEnergyMWh: 100000, CreditMsat: 26296, CreditMWh: 87655, PowerW: 7360,
		Payments: 1, SoCPermille: 593, StartedAt: at("2026-11-25 14:00:01"),
		LastPayments: []PaymentView{
			{At: at("2026-11-25 14:00:03"), AmountMsat: 30000, PaymentHash: hashA},
			{At: at("2026-11-25 14:01:03"), AmountMsat: 15000, PaymentHash: hashB},
		},
	}
}

func TestLive(t *testing.T) {
	p := pages(t)
	now := at("2026-11-25 15:02:08")
	evse := EVSEView{Reachable: true, Pilot: "C", ContactorClosed: true, PowerW: 7360}

	ended := running()
	ended.State, ended.EndReason, ended.EndedAt, ended.PowerW = "ended", "vehicle stopped", at("2026-11-25 14:30:00"), 0
	ended.LastPayments = append(ended.LastPayments, PaymentView{At: at("2026-11-25 14:30:02"), AmountMsat: 1000, PaymentHash: hashB, AfterEnd: true})

	grace := running()
	grace.State, grace.CreditMsat, grace.CreditMWh = "suspended", -3704, -12345

	nosoc := running()
	nosoc.SoCPermille = -1
	nosoc.LastPayments = nil

	hostile := running()
	hostile.ID = `<script>alert("id")</script>`
	hostile.EndReason = `<script>alert(1)</script>`

	cases := []struct {
		name          string
		v             LiveView
		want, notWant []string
	}{
		{"idle", LiveView{Common: Common{Now: now}, Connector: "idle", Why: "no vehicle plugged in",
			EVSE: EVSEView{Reachable: true, Pilot: "A"}, LNConnected: true, NextPriceMsatPerWh: 300},
			[]string{`data-session=""`, `data-field="connector" data-state="idle">idle<`,
				`data-field="price">300 sat/kWh<`, `data-field="next_price">300 sat/kWh<`,
				`data-field="delivered">—<`, `data-field="soc">—<`, `data-field="lightning">connected<`,
				"reachable, pilot A, contactor open, no fault", "No payments yet.", "No session",
				`id="receipt-link" class="receipt-link" href="/" hidden`, "no session"},
			[]string{"Last session", "within grace</span>\n"}},
		{"running", LiveView{Common: Common{Now: now}, Connector: "energising", Why: "paid ahead: delivering",
			EVSE: evse, LNConnected: true, NextPriceMsatPerWh: 350, Session: running()},
			[]string{`data-session="s-20261125-140001-ab12"`, ">charging<", "badge-energising",
				"paid ahead: delivering", `data-field="power">7.36 kW<`, `data-field="delivered">12 Wh<`,
				`data-field="paid_energy">100 Wh<`, `data-field="credit">26.296 sat<`,
				`data-field="credit_energy">88 Wh<`, `data-field="price">300 sat/kWh<`,
				`data-field="next_price">350 sat/kWh<`, `data-field="received">30 sat<`,
				`data-field="soc">59.3 %<`, `data-field="payments">1<`,
				`data-field="elapsed" data-started="2026-11-25T13:00:01.000Z" data-ended="">1 h 02 min 07 s<`,
				`href="/sessions/s-20261125-140001-ab12"`, `title="` + hashA + `"`,
				"a1a1a1a1…a1a1a1a1", "2026-11-25 14:00:03", "15 sat",
				"reachable, pilot C, contactor closed, no fault", `data-utc-offset="60"`,
				`<script src="/static/live.js" defer></script>`},
			[]string{"tile-negative", "Last session"}},
		{"ended, still plugged", LiveView{Common: Common{Now: now}, Connector: "ended", Why: "the car stopped",
			EVSE: EVSEView{Reachable: true, Pilot: "B"}, Session: ended},
			[]string{"badge-ended", ">ended<", `data-field="elapsed" data-started="2026-11-25T13:00:01.000Z" data-ended="2026-11-25T13:30:00.000Z">29 min 59 s<`,
				`<span class="tag">after end</span>`, "not connected"}, nil},
		{"negative credit", LiveView{Common: Common{Now: now}, Connector: "suspended", Why: "waiting for the next payment",
			EVSE: evse, Session: grace},
			[]string{">suspended for non-payment<", `data-field="credit">-3.704 sat<`,
				`data-field="credit_energy">-12 Wh<`, "tile-negative",
				`<span id="credit-grace" class="grace">within grace</span>`}, nil},
		{"soc unknown, no payments", LiveView{Common: Common{Now: now}, Connector: "awaiting_payment",
			Why: "waiting for the first payment", Session: nosoc, EVSE: EVSEView{Error: "timeout"}},
			[]string{`data-field="soc">not shared by the car<`, ">awaiting payment<", "No payments yet.",
				`data-field="evse">unreachable, error: timeout<`}, nil},
		{"last session only", LiveView{Common: Common{Now: now}, Connector: "idle", Why: "no vehicle",
			NextPriceMsatPerWh: 400, Last: ended},
			[]string{"Last session", `data-session=""`, `data-last="s-20261125-140001-ab12"`,
				`href="/sessions/s-20261125-140001-ab12"`, `data-field="delivered">12 Wh<`,
				`data-field="price">400 sat/kWh<`, "Price (next session)", `data-field="power">0 W<`},
			[]string{`receipt-link" href="/" hidden`}},
		{"hostile", LiveView{Common: Common{Now: now}, Connector: `<script>x</script>`, Why: `<img src=x onerror=alert(1)>`,
			Session: hostile},
			[]string{"&lt;script&gt;alert(&#34;id&#34;)&lt;/script&gt;", "&lt;img src=x onerror=alert(1)&gt;",
				`href="/sessions/%3Cscript%3Ealert%28%22id%22%29%3C%2Fscript%3E"`},
			[]string{`<script>alert`, `<img src=x`, `<script>x`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := p.Live(&b, c.v); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			check(t, out, c.want, c.notWant)
			checkCSP(t, out)
			for _, f := range liveFields {
				if n := strings.Count(out, `data-field="`+f+`"`); n != 1 {
					t.Errorf("data-field %q appears %d times", f, n)
				}
			}
			check(t, out, []string{`id="live"`, `<svg id="chart"`, `<tbody id="payments">`,
				`id="stream-state"`, `aria-current="page">Live<`, "<title>Live · satwatt wall</title>"}, nil)
		})
	}
}

func TestLivePaymentsNewestFirst(t *testing.T) {
	var b bytes.Buffer
	if err := pages(t).Live(&b, LiveView{Connector: "energising", Session: running()}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if i, j := strings.Index(out, "2026-11-25 14:01:03"), strings.Index(out, "2026-11-25 14:00:03"); i < 0 || j < 0 || i > j {
		t.Errorf("payments not newest first (%d, %d)", i, j)
	}
}

func history() HistoryView {
	return HistoryView{
		Common: Common{Now: at("2026-11-26 10:00:00")},
		Since:  at("2026-11-01 00:00:00"), Until: at("2026-12-01 00:00:00"),
		Query: "since=2026-11-01&until=2026-11-30",
		Sessions: []HistoryRow{
			{ID: "s-2", StartedAt: at("2026-11-26 09:00:00"), State: "energising", PriceMsatPerWh: 300,
				DeliveredMWh: 2500000, PaidMsat: 750000, Payments: 3},
			{ID: "s-1", StartedAt: at("2026-11-25 14:00:01"), EndedAt: at("2026-11-25 15:02:08"),
				State: "ended", EndReason: "vehicle stopped", PriceMsatPerWh: 300,
				DeliveredMWh: 12345000, PaidMsat: 3703500, Payments: 74},
		},
		Total: Totals{Sessions: 2, DeliveredMWh: 14845000, PaidMsat: 4453500, Payments: 77},
		Days: []PeriodRow{
			{Period: "2026-11-25", Totals: Totals{Sessions: 1, DeliveredMWh: 12345000, PaidMsat: 3703500, Payments: 74}},
			{Period: "2026-11-26", Totals: Totals{Sessions: 1, DeliveredMWh: 2500000, PaidMsat: 750000, Payments: 3}},
		},
		Months: []PeriodRow{{Period: "2026-11", Totals: Totals{Sessions: 2, DeliveredMWh: 14845000, PaidMsat: 4453500, Payments: 77}}},
	}
}

func TestHistory(t *testing.T) {
	p := pages(t)
	full := history()
	truncated := history()
	truncated.Truncated = true
	bad := HistoryView{Error: `bad date "2026-13-01"`, Query: "since=2026-13-01"}
	hostile := history()
	hostile.Sessions[0].ID = `"><script>alert(1)</script>`
	hostile.Sessions[0].EndReason = `<script>alert(2)</script>`
	hostile.Query = `a="><script>alert(3)</script>`
	many := history()
	many.Days = nil
	for d := range 40 {
		many.Days = append(many.Days, PeriodRow{Period: at("2026-10-01 12:00:00").AddDate(0, 0, d).Format(time.DateOnly),
			Totals: Totals{Sessions: 1, DeliveredMWh: int64(d) * 1000000, PaidMsat: int64(d) * 300000, Payments: 1}})
	}

	cases := []struct {
		name          string
		v             HistoryView
		want, notWant []string
	}{
		{"empty", HistoryView{}, []string{"No sessions in this range.", `href="/history.csv"`,
			`name="since" value=""`, `name="until" value=""`, "Nothing to show for this range.",
			`>0 Wh<`, `>0 sat<`},
			[]string{"<svg", "Only the newest"}},
		{"range", full, []string{
			`<form class="range-form" method="get" action="/history">`,
			`<input type="date" name="since" value="2026-11-01">`,
			`<input type="date" name="until" value="2026-11-30">`,
			`href="/history.csv?since=2026-11-01&amp;until=2026-11-30"`, "Download CSV",
			"Totals for 2026-11-01 to 2026-11-30", ">14.85 kWh<", ">4,453.5 sat<", ">77<",
			"2026-11-25 14:00:01", "2026-11-25 15:02:08", ">running<", "1 h 02 min 07 s",
			"ended: vehicle stopped", ">12.35 kWh<", ">3,703.5 sat<", ">300 sat/kWh<",
			`href="/sessions/s-1"`, `href="/sessions/s-2"`, "<title>2026-11-25: 12.35 kWh, 3,703.5 sat, 1 session, 74 payments</title>",
			`class="chart day-chart"`, ">2026-11<", ">2026-11-25<", ">11-25<", `aria-current="page">History<`},
			[]string{"Only the newest", "<script"}},
		{"truncated", truncated, []string{"Only the newest 2 sessions are listed"}, nil},
		{"error", bad, []string{`class="box box-error" role="alert"`, "bad date &#34;2026-13-01&#34;",
			`href="/history.csv?since=2026-13-01"`}, []string{"<table"}},
		{"hostile", hostile, []string{"&lt;script&gt;alert(2)&lt;/script&gt;",
			`href="/sessions/%22%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E"`},
			[]string{"<script>alert"}},
		{"many days", many, []string{"<title>2026-11-09: 39.00 kWh, 11,700 sat, 1 session, 1 payment</title>", ">10-01<"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := p.History(&b, c.v); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			check(t, out, c.want, c.notWant)
			checkCSP(t, out)
			if strings.Contains(out, "<script") {
				t.Error("history page has a script")
			}
		})
	}
}

func TestReceipt(t *testing.T) {
	p := pages(t)
	v := ReceiptView{
		Common: Common{Now: at("2026-11-25 16:00:00")},
		ID:     "s-20261125-140001-ab12", StartedAt: at("2026-11-25 14:00:01"), EndedAt: at("2026-11-25 15:02:08"),
		State: "ended", EndReason: "vehicle left", PriceMsatPerWh: 300, IncrementWh: 50, GraceWh: 10,
		Payee: "02" + strings.Repeat("ef", 32), Network: "regtest", DeliveredMWh: 12345000,
		Payments: []ReceiptPayment{
			{SettledAt: at("2026-11-25 14:00:03"), AmountAskedMsat: 15000, AmountPaidMsat: 15000, PaymentHash: hashA, Preimage: preA},
			{SettledAt: at("2026-11-25 15:02:10"), AmountAskedMsat: 15000, AmountPaidMsat: 15001, PaymentHash: hashB, Preimage: preB, AfterEnd: true},
		},
		AskedMsat: 30000, PaidMsat: 30001, AfterEndMsat: 15001,
	}
	runningV := v
	runningV.EndedAt, runningV.EndReason, runningV.Payments = time.Time{}, "", nil
	hostile := v
	hostile.ID, hostile.EndReason = `<script>alert(1)</script>`, `<b>reason</b>`

	cases := []struct {
		name          string
		v             ReceiptView
		want, notWant []string
	}{
		{"ended, payment after the end", v, []string{"<h1>Receipt</h1>", "s-20261125-140001-ab12",
			"2026-11-25 14:00:01", "2026-11-25 15:02:08", "vehicle left", "12.35 kWh", "300 sat/kWh",
			v.Payee, "regtest", hashA, hashB, preA, preB, "15.001 sat", "30.001 sat", "30 sat",
			`<tr class="after-end">`, "after the end</span>", "sha256(preimage) = payment hash",
			"Print", "<title>Receipt s-20261125-140001-ab12 · satwatt wall</title>"},
			[]string{"…", "still running"}},
		{"running, no payments", runningV, []string{"still running", "No payments were made"}, []string{"after-end"}},
		{"hostile", hostile, []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;b&gt;reason&lt;/b&gt;"},
			[]string{"<script>alert", "<b>reason"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := p.Receipt(&b, c.v); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			check(t, out, c.want, c.notWant)
			checkCSP(t, out)
			if strings.Contains(out, "<script") {
				t.Error("receipt page has a script")
			}
		})
	}
}

func TestSettings(t *testing.T) {
	p := pages(t)
	base := SettingsView{PriceMsatPerWh: 300, IncrementWh: 50, GraceWh: 10, CSRF: `c"s<rf`}
	saved, refused := base, base
	saved.Saved = "Saved: 350 sat/kWh from the next session."
	refused.Error = "wrong token"
	fields := []string{`<form class="settings-form" method="post" action="/settings">`,
		`<input type="hidden" name="csrf" value="c&#34;s&lt;rf">`,
		`type="number" name="price_msat_per_wh" value="300" min="1" step="1"`,
		`type="number" name="increment_wh" value="50" min="1" step="1"`,
		`type="number" name="grace_wh" value="10" min="0" step="1"`,
		`type="password" name="token" autocomplete="off"`, "sat/kWh", "next session",
		`aria-current="page">Settings<`}
	cases := []struct {
		name          string
		v             SettingsView
		want, notWant []string
	}{
		{"plain", base, fields, []string{"box-ok", "box-error"}},
		{"saved", saved, append([]string{`box box-ok`, "Saved: 350 sat/kWh"}, fields...), []string{"box-error"}},
		{"refused", refused, append([]string{`box box-error`, "wrong token"}, fields...), []string{"box-ok"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := p.Settings(&b, c.v); err != nil {
				t.Fatal(err)
			}
			check(t, b.String(), c.want, c.notWant)
			checkCSP(t, b.String())
		})
	}
}

func TestError(t *testing.T) {
	p := pages(t)
	for _, c := range []struct {
		v    ErrorView
		want []string
	}{
		{ErrorView{Status: 404, Message: "no session s-x"}, []string{"Error 404", "Not Found", "no session s-x", "<title>Error 404 · satwatt wall</title>"}},
		{ErrorView{Message: "<script>alert(1)</script>"}, []string{"Error 500", "&lt;script&gt;alert(1)&lt;/script&gt;"}},
	} {
		var b bytes.Buffer
		if err := p.Error(&b, c.v); err != nil {
			t.Fatal(err)
		}
		check(t, b.String(), c.want, []string{"<script>alert", "aria-current"})
		checkCSP(t, b.String())
	}
}

// TestNoExternalURLs reads every embedded file: the wall must work with no
// internet and the CSP allows only its own origin.
func TestNoExternalURLs(t *testing.T) {
	n := 0
	err := fs.WalkDir(files, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, err := files.ReadFile(name)
		if err != nil {
			return err
		}
		s := strings.ToLower(string(b))
		for _, bad := range []string{"http://", "https://", `src="//`, `href="//`, "url(", "@import", "@font-face"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 8 {
		t.Errorf("only %d embedded files", n)
	}
}

func TestStatic(t *testing.T) {
	srv := httptest.NewServer(Static())
	defer srv.Close()
	get := func(path string, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, c := range []struct{ path, ctype string }{
		{"/static/app.css", "text/css; charset=utf-8"},
		{"/static/live.js", "text/javascript; charset=utf-8"},
		{"/static/favicon.png", "image/png"},
	} {
		resp := get(c.path)
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", c.path, resp.StatusCode)
			continue
		}
		if got := resp.Header.Get("Content-Type"); got != c.ctype {
			t.Errorf("%s: Content-Type %q, want %q", c.path, got, c.ctype)
		}
		if got := resp.Header.Get("Cache-Control"); got != "public, max-age=3600" {
			t.Errorf("%s: Cache-Control %q", c.path, got)
		}
		etag := resp.Header.Get("ETag")
		if etag == "" {
			t.Errorf("%s: no ETag", c.path)
			continue
		}
		if resp := get(c.path, "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
			t.Errorf("%s with its ETag: %d, want 304", c.path, resp.StatusCode)
		}
	}
	for _, path := range []string{"/static/nope.css", "/static/", "/static", "/templates/layout.html",
		"/static/../templates/layout.html", "/app.css", "/static/app.css/"} {
		if resp := get(path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, resp.StatusCode)
		}
	}
	resp, err := http.Post(srv.URL+"/static/app.css", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}
}

// TestScriptFormatters runs live.js's formatters under node to prove the
// script shows the same strings as the Go side.
func TestScriptFormatters(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		prereq.Missing(t, "node is not installed, needed to run the page script's formatters (apt-get install nodejs)")
		return
	}
	src, err := files.ReadFile("static/live.js")
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	i, j := strings.Index(s, "// ---- formatting"), strings.Index(s, "// ---- the page's elements")
	if i < 0 || j < i {
		t.Fatal("live.js: formatting section markers not found")
	}
	ints := []int64{0, 1, 5, 10, 499, 500, 593, 950, 999, 1000, 1004, 1005, 1500, 3704, 7360, 12345,
		30000, 59999, 60000, 87655, 127000, 950000, 999499, 999500, 1000000, 1234567, 3727000,
		12344999, 12345000, 1234567890, 1000000000000, 4503599627370495}
	var cases []int64
	for _, v := range ints {
		cases = append(cases, v, -v)
	}
	in, _ := json.Marshal(cases)
	script := "const utcOffsetMin = 60;\n" + s[i:j] + `
const cases = ` + string(in) + `;
const out = {};
for (const v of cases) {
  out[v] = [fmtSat(v), fmtEnergy(v), fmtPower(v), fmtPrice(v), fmtSoC(v), fmtDuration(v)];
}
out.time = fmtTime('2026-11-25T13:03:07.123Z');
out.evse = [fmtEVSE({reachable: true, pilot: 'C', contactor_closed: true}), fmtEVSE({reachable: false, error: 'timeout'}), fmtEVSE({reachable: true, fault: 'GFI'})];
out.connector = ['idle', 'awaiting_payment', 'energising', 'suspended', 'ended', 'fault', 'x_y'].map(fmtConnector);
out.hash = shortHash(` + "'" + hashA + "'" + `);
process.stdout.write(JSON.stringify(out));
`
	cmd := exec.Command(node, "-")
	cmd.Stdin = strings.NewReader(script)
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, v := range cases {
		var js []string
		if err := json.Unmarshal(got[strings.TrimSpace(string(mustJSON(v)))], &js); err != nil {
			t.Fatalf("%d: %v", v, err)
		}
		want := []string{FormatSat(v), FormatEnergy(v), FormatPower(v), FormatPrice(v), FormatSoC(v),
			FormatDuration(time.Duration(v) * time.Millisecond)}
		if v > 1e12 || v < -1e12 {
			want = want[:5] // a Duration of that many ms overflows
		}
		for k := range want {
			if js[k] != want[k] {
				t.Errorf("formatter %d of %d: script %q, Go %q", k, v, js[k], want[k])
			}
		}
	}
	var tm string
	_ = json.Unmarshal(got["time"], &tm)
	if want := FormatTime(time.Date(2026, 11, 25, 13, 3, 7, 0, time.UTC)); tm != want {
		t.Errorf("time: script %q, Go %q", tm, want)
	}
	var ev []string
	_ = json.Unmarshal(got["evse"], &ev)
	wantEV := []string{evseLine(EVSEView{Reachable: true, Pilot: "C", ContactorClosed: true}),
		evseLine(EVSEView{Error: "timeout"}), evseLine(EVSEView{Reachable: true, Fault: "GFI"})}
	if strings.Join(ev, "|") != strings.Join(wantEV, "|") {
		t.Errorf("evse: script %q, Go %q", ev, wantEV)
	}
	var cw []string
	_ = json.Unmarshal(got["connector"], &cw)
	for k, st := range []string{"idle", "awaiting_payment", "energising", "suspended", "ended", "fault", "x_y"} {
		if k >= len(cw) || cw[k] != ConnectorWords(st) {
			t.Errorf("connector %q: script %v, Go %q", st, cw, ConnectorWords(st))
		}
	}
	var h string
	_ = json.Unmarshal(got["hash"], &h)
	if h != shortHash(hashA) {
		t.Errorf("hash: script %q, Go %q", h, shortHash(hashA))
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
