package httpapi

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"satwatt/internal/historycli"
	"satwatt/internal/wallstore"
	"satwatt/wallctl/internal/chargepoint"
	"satwatt/wallctl/internal/historytable"
	"satwatt/web"
)

// The pages are served with a policy that allows nothing from elsewhere:
// the wall may have no internet, and a page that loads nothing foreign
// cannot be made to.
const contentSecurityPolicy = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		// Not no-referrer: with it a browser sends "Origin: null" on a form
		// POST, and the settings form could not prove it came from here.
		h.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// pageLimit is how many sessions the history page lists by default.
const pageLimit = 500

// csrfLife is how long a settings form stays valid.
const csrfLife = time.Hour

func (a *api) common(title string, nav web.Nav) web.Common {
	return web.Common{Title: title, Nav: nav, Now: time.Now()}
}

// render writes a page only once it rendered whole, so a template error
// becomes a clean 500 instead of half a page.
func (a *api) render(w http.ResponseWriter, code int, fn func(*bytes.Buffer) error) {
	var b bytes.Buffer
	if err := fn(&b); err != nil {
		a.log.Error("httpapi: render page", "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(b.Bytes())
}

func (a *api) errorPage(w http.ResponseWriter, code int, msg string) {
	a.render(w, code, func(b *bytes.Buffer) error {
		return a.pages.Error(b, web.ErrorView{Common: a.common(http.StatusText(code), ""), Status: code, Message: msg})
	})
}

func sessionView(s *chargepoint.SessionStatus) *web.SessionView {
	if s == nil {
		return nil
	}
	v := &web.SessionView{
		ID: s.ID, State: s.State, EndReason: s.EndReason, PriceMsatPerWh: s.PriceMsatPerWh,
		IncrementWh: s.IncrementWh, GraceWh: s.GraceWh, DeliveredMWh: s.DeliveredMWh, PaidMsat: s.PaidMsat,
		PaidEnergyMWh: s.PaidEnergyMWh, CreditMsat: s.CreditMsat, CreditMWh: s.CreditMWh, PowerW: s.PowerW,
		Payments: s.Payments, SoCPermille: s.SoCPermille, StartedAt: s.StartedAt, EndedAt: s.EndedAt,
	}
	for _, p := range s.LastPayments {
		v.LastPayments = append(v.LastPayments, web.PaymentView{At: p.SettledAt, AmountMsat: p.AmountMsat, PaymentHash: p.Hash, AfterEnd: p.Late})
	}
	return v
}

func (a *api) livePage(w http.ResponseWriter, r *http.Request) {
	st := a.wall.Status()
	v := web.LiveView{
		Common:    a.common("Live", web.NavLive),
		Connector: st.Connector, Why: st.Why, LNConnected: st.Lightning.Connected,
		NextPriceMsatPerWh: st.NextPriceMsatPerWh,
		EVSE: web.EVSEView{Reachable: st.EVSE.Reachable, Error: st.EVSE.Error, Pilot: st.EVSE.Pilot,
			ContactorClosed: st.EVSE.ContactorClosed, PowerW: st.EVSE.PowerW, Fault: st.EVSE.Fault},
		Session: sessionView(st.Session), Last: sessionView(st.Last),
		ConnectorName: a.cfg.ConnectorName, StreamURL: a.cfg.PathPrefix + "/api/status/stream",
	}
	a.render(w, http.StatusOK, func(b *bytes.Buffer) error { return a.pages.Live(b, v) })
}

// pageRange reads the history page's since and until: local dates, until
// included, as the form's date inputs give them.
func pageRange(q url.Values) (since, until time.Time, err error) {
	day := func(name string) (time.Time, error) {
		s := q.Get(name)
		if s == "" {
			return time.Time{}, nil
		}
		t, err := time.ParseInLocation(time.DateOnly, s, time.Local)
		if err != nil {
			return time.Time{}, fmt.Errorf("%s: %q is not a date like 2026-11-25", name, clip(s))
		}
		return t, nil
	}
	if since, err = day("since"); err != nil {
		return
	}
	if until, err = day("until"); err != nil {
		return
	}
	if !until.IsZero() {
		until = until.AddDate(0, 0, 1)
	}
	if !since.IsZero() && !until.IsZero() && !since.Before(until) {
		err = fmt.Errorf("the first day (since %s) is after the last (until %s)", q.Get("since"), q.Get("until"))
	}
	return
}

func pageLimitOf(q url.Values) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return pageLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 10000 {
		return 0, fmt.Errorf("limit: %q is not a number from 1 to 10000", clip(v))
	}
	return n, nil
}

// pageQuery is the page's own query, rebuilt from what was understood, so
// the CSV link asks for exactly what the page shows.
func pageQuery(q url.Values) string {
	out := url.Values{}
	for _, k := range []string{"since", "until", "limit"} {
		if v := q.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	return out.Encode()
}

func (a *api) historyPage(w http.ResponseWriter, r *http.Request) {
	q, err := strictQuery(r, "since", "until", "limit")
	v := web.HistoryView{Common: a.common("History", web.NavHistory), Query: pageQuery(q)}
	var since, until time.Time
	if err == nil {
		since, until, err = pageRange(q)
	}
	limit, lerr := pageLimitOf(q)
	if err == nil {
		err = lerr
	}
	if err != nil {
		v.Error = err.Error()
		a.render(w, http.StatusBadRequest, func(b *bytes.Buffer) error { return a.pages.History(b, v) })
		return
	}
	v.Since, v.Until = since, until
	rows, tot, err := a.hist.History(r.Context(), wallstore.HistoryQuery{Since: since, Until: until, Limit: limit})
	if err != nil {
		a.log.Error("httpapi: history page", "err", err)
		a.errorPage(w, http.StatusInternalServerError, "The history could not be read; the wall's log says why.")
		return
	}
	days, err := a.hist.DailyTotals(r.Context(), since, until)
	if err == nil {
		var months []wallstore.PeriodTotal
		months, err = a.hist.MonthlyTotals(r.Context(), since, until)
		v.Months = periodRows(months)
	}
	if err != nil {
		a.log.Error("httpapi: history page totals", "err", err)
		a.errorPage(w, http.StatusInternalServerError, "The history's totals could not be read; the wall's log says why.")
		return
	}
	v.Days = periodRows(days)
	for _, s := range rows {
		v.Sessions = append(v.Sessions, web.HistoryRow{ID: s.ID, StartedAt: s.StartedAt, EndedAt: s.EndedAt,
			State: s.State, EndReason: s.EndReason, PriceMsatPerWh: s.PriceMsatPerWh, DeliveredMWh: s.DeliveredMWh,
			PaidMsat: s.PaidMsat, Payments: s.Payments})
	}
	v.Truncated = int64(len(rows)) < tot.Sessions
	v.Total = web.Totals(tot)
	a.render(w, http.StatusOK, func(b *bytes.Buffer) error { return a.pages.History(b, v) })
}

func periodRows(ps []wallstore.PeriodTotal) []web.PeriodRow {
	out := make([]web.PeriodRow, 0, len(ps))
	for _, p := range ps {
		out = append(out, web.PeriodRow{Period: p.Period, Totals: web.Totals(p.Totals)})
	}
	return out
}

// historyCSV is the page's table as `wallctl history --csv` prints it.
func (a *api) historyCSV(w http.ResponseWriter, r *http.Request) {
	q, err := strictQuery(r, "since", "until", "limit")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	since, until, err := pageRange(q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	limit, err := pageLimitOf(q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rows, tot, err := a.hist.History(r.Context(), wallstore.HistoryQuery{Since: since, Until: until, Limit: limit})
	if err != nil {
		a.log.Error("httpapi: history csv", "err", err)
		http.Error(w, "the history could not be read", http.StatusInternalServerError)
		return
	}
	var b bytes.Buffer
	if err := historytable.Write(&b, historycli.CSV, rows, tot); err != nil {
		a.log.Error("httpapi: history csv", "err", err)
		http.Error(w, "the history could not be written", http.StatusInternalServerError)
		return
	}
	name := "satwatt-history"
	for _, k := range []string{"since", "until"} {
		if v := q.Get(k); v != "" {
			name += "-" + v // a date, checked by pageRange
		}
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b.Bytes())
}

// receiptPage is the session's receipt at its stable URL, the one the
// LNURL success action names.
func (a *api) receiptPage(w http.ResponseWriter, r *http.Request) {
	rc, err := a.hist.Receipt(r.Context(), chi.URLParam(r, "id"))
	if errors.Is(err, wallstore.ErrNotFound) {
		a.errorPage(w, http.StatusNotFound, "There is no session "+strconv.Quote(clip(chi.URLParam(r, "id")))+" on this wall.")
		return
	}
	if err != nil {
		a.log.Error("httpapi: receipt page", "err", err)
		a.errorPage(w, http.StatusInternalServerError, "The receipt could not be read; the wall's log says why.")
		return
	}
	s := rc.Session
	v := web.ReceiptView{
		Common: a.common("Receipt "+s.ID, web.NavReceipt),
		ID:     s.ID, StartedAt: s.StartedAt, EndedAt: s.EndedAt, State: s.State, EndReason: s.EndReason,
		PriceMsatPerWh: s.Offer.PriceMsatPerWh, IncrementWh: s.Offer.IncrementWh, GraceWh: s.Offer.GraceWh,
		Payee: s.Offer.WallNodeKey, Network: s.Offer.Network, DeliveredMWh: s.DeliveredMWh,
		AskedMsat: rc.AskedMsat, PaidMsat: rc.PaidMsat, AfterEndMsat: rc.AfterEndMsat,
	}
	for _, p := range rc.Payments {
		v.Payments = append(v.Payments, web.ReceiptPayment{SettledAt: p.SettledAt, AmountAskedMsat: p.AmountAskedMsat,
			AmountPaidMsat: p.AmountPaidMsat, PaymentHash: p.PaymentHash, Preimage: p.PreimageHex, AfterEnd: p.AfterEnd})
	}
	a.render(w, http.StatusOK, func(b *bytes.Buffer) error { return a.pages.Receipt(b, v) })
}

// seriesPoint is one point of the chart, in the page script's units.
type seriesPoint struct {
	T            int64 `json:"t"` // unix ms
	PowerW       int64 `json:"power_w"`
	CreditMsat   int64 `json:"credit_msat"`
	DeliveredMWh int64 `json:"delivered_mwh"`
}

func (a *api) series(w http.ResponseWriter, r *http.Request) {
	pts, err := a.hist.Series(r.Context(), chi.URLParam(r, "id"))
	if errors.Is(err, wallstore.ErrNotFound) {
		writeErr(w, http.StatusNotFound, "no such session")
		return
	}
	if err != nil {
		a.log.Error("httpapi: series", "err", err)
		writeErr(w, http.StatusInternalServerError, "could not read the session's samples")
		return
	}
	out := make([]seriesPoint, 0, len(pts))
	for _, p := range pts {
		out = append(out, seriesPoint{T: p.At.UnixMilli(), PowerW: p.PowerW, CreditMsat: p.CreditMsat, DeliveredMWh: p.DeliveredMWh})
	}
	writeJSON(w, http.StatusOK, map[string]any{"points": out})
}

// csrfToken binds a settings form to this wall process and a time: a page
// elsewhere cannot make one, and an old one stops working.
func (a *api) csrfToken(at time.Time) string {
	ts := strconv.FormatInt(at.Unix(), 10)
	m := hmac.New(sha256.New, a.csrfKey[:])
	m.Write([]byte("settings " + ts))
	return ts + "." + hex.EncodeToString(m.Sum(nil))
}

func (a *api) csrfValid(tok string, now time.Time) bool {
	ts, _, ok := strings.Cut(tok, ".")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil {
		return false
	}
	at := time.Unix(sec, 0)
	if now.Sub(at) > csrfLife || at.After(now.Add(time.Minute)) {
		return false
	}
	return hmac.Equal([]byte(tok), []byte(a.csrfToken(at)))
}

// sameOrigin refuses a form posted from another site; browsers send Origin
// with every POST.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func (a *api) settingsView(s chargepoint.Settings) web.SettingsView {
	return web.SettingsView{Common: a.common("Settings", web.NavSettings), PriceMsatPerWh: s.PriceMsatPerWh,
		IncrementWh: s.IncrementWh, GraceWh: s.GraceWh, CSRF: a.csrfToken(time.Now())}
}

func (a *api) settingsPage(w http.ResponseWriter, r *http.Request) {
	v := a.settingsView(a.wall.Settings())
	a.render(w, http.StatusOK, func(b *bytes.Buffer) error { return a.pages.Settings(b, v) })
}

func (a *api) postSettings(w http.ResponseWriter, r *http.Request) {
	refuse := func(code int, msg string, s chargepoint.Settings) {
		v := a.settingsView(s)
		v.Error = msg
		a.render(w, code, func(b *bytes.Buffer) error { return a.pages.Settings(b, v) })
	}
	cur := a.wall.Settings()
	if err := r.ParseForm(); err != nil {
		refuse(http.StatusBadRequest, "The form could not be read: "+err.Error(), cur)
		return
	}
	f := r.PostForm
	if !sameOrigin(r) || !a.csrfValid(f.Get("csrf"), time.Now()) {
		refuse(http.StatusForbidden, "This form is out of date or came from another site; it was not applied. Try again.", cur)
		return
	}
	if subtle.ConstantTimeCompare([]byte(f.Get("token")), []byte(a.cfg.Token)) != 1 {
		a.log.Warn("httpapi: settings refused: wrong token", "remote", r.RemoteAddr)
		refuse(http.StatusUnauthorized, "The token is not the wall's; nothing was changed.", cur)
		return
	}
	want := cur
	for _, fld := range []struct {
		name, label string
		dst         *int64
	}{
		{"price_msat_per_wh", "price", &want.PriceMsatPerWh},
		{"increment_wh", "increment", &want.IncrementWh},
		{"grace_wh", "grace", &want.GraceWh},
	} {
		n, err := strconv.ParseInt(strings.TrimSpace(f.Get(fld.name)), 10, 64)
		if err != nil {
			refuse(http.StatusBadRequest, fmt.Sprintf("The %s %q is not a whole number; nothing was changed.", fld.label, clip(f.Get(fld.name))), cur)
			return
		}
		*fld.dst = n
	}
	if err := a.wall.SetSettings(r.Context(), want); err != nil {
		refuse(http.StatusBadRequest, "Not applied: "+err.Error(), want)
		return
	}
	v := a.settingsView(a.wall.Settings())
	v.Saved = fmt.Sprintf("Saved. The next session will cost %d sat/kWh, in %d Wh increments, with %d Wh of grace; the current session keeps its terms.",
		want.PriceMsatPerWh, want.IncrementWh, want.GraceWh)
	a.render(w, http.StatusOK, func(b *bytes.Buffer) error { return a.pages.Settings(b, v) })
}
