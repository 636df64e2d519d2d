// Package web renders the wall controller's status pages: server-side HTML
// from embedded templates, one stylesheet and one script, nothing fetched
// from outside the wall (the pages are served under a strict
// Content-Security-Policy: no inline script or style).
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"slices"
	"time"
)

//go:embed templates static
var files embed.FS

// ProductName is shown in every page's header and title.
const ProductName = "satwatt wall"

// Pages holds the parsed templates; it is safe for concurrent use.
type Pages struct {
	pages map[string]*template.Template
}

// pageNames are the templates besides the layout, one per page.
var pageNames = []string{"live", "history", "receipt", "settings", "error"}

// New parses every template once, so a broken template fails at start-up
// rather than on a visitor's request.
func New() (*Pages, error) {
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("web: layout: %w", err)
	}
	p := &Pages{pages: make(map[string]*template.Template, len(pageNames))}
	for _, name := range pageNames {
		t, err := base.Clone()
		if err != nil {
			return nil, fmt.Errorf("web: %s: %w", name, err)
		}
		if t, err = t.ParseFS(files, "templates/"+name+".html"); err != nil {
			return nil, fmt.Errorf("web: %s: %w", name, err)
		}
		if t.Lookup("content") == nil {
			return nil, fmt.Errorf("web: %s: no content template", name)
		}
		p.pages[name] = t
	}
	return p, nil
}

// render executes into a buffer first so a failing template never sends
// half a page.
func (p *Pages) render(w io.Writer, name string, data any) error {
	var b bytes.Buffer
	if err := p.pages[name].ExecuteTemplate(&b, "layout.html", data); err != nil {
		return fmt.Errorf("web: render %s: %w", name, err)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// fill gives a page its defaults when the handler left them out.
func (c *Common) fill(title string, nav Nav) {
	if c.Title == "" {
		c.Title = title
	}
	if c.Nav == "" {
		c.Nav = nav
	}
	if c.Now.IsZero() {
		c.Now = time.Now()
	}
}

// livePage is what the live template sees: the view plus the choices made
// here rather than in template logic.
type livePage struct {
	LiveView
	// Shown is the session whose numbers fill the tiles: the open one,
	// else the last one, else nil.
	Shown   *SessionView
	Heading string
	// PowerW is the session's power, or the charger's without a session.
	PowerW int64
	// Price is the open session's price, else the next session's.
	PriceMsatPerWh int64
	PriceLabel     string
	// InGrace is set when the shown session's credit is negative: energy
	// delivered ahead of payment, within the grace.
	InGrace bool
	// UTCOffsetMin lets the script show times in the wall's zone whatever
	// the browser's zone.
	UTCOffsetMin int
}

// Live renders the live page (/).
func (p *Pages) Live(w io.Writer, v LiveView) error {
	v.fill("Live", NavLive)
	lp := livePage{LiveView: v, Heading: "No session", PowerW: v.EVSE.PowerW,
		PriceMsatPerWh: v.NextPriceMsatPerWh, PriceLabel: "Price (next session)"}
	switch {
	case v.Session != nil:
		lp.Shown, lp.Heading, lp.PowerW = v.Session, "Session", v.Session.PowerW
		lp.PriceMsatPerWh, lp.PriceLabel = v.Session.PriceMsatPerWh, "Price"
	case v.Last != nil:
		lp.Shown, lp.Heading = v.Last, "Last session"
	}
	lp.InGrace = lp.Shown != nil && lp.Shown.CreditMsat < 0
	_, off := v.Now.In(time.Local).Zone()
	lp.UTCOffsetMin = off / 60
	return p.render(w, "live", lp)
}

// historyPage adds the form's dates, the CSV link and the chart.
type historyPage struct {
	HistoryView
	SinceDate, UntilDate string
	CSVURL               string
	Chart                *dayChart
}

// History renders the history page (/history).
func (p *Pages) History(w io.Writer, v HistoryView) error {
	v.fill("History", NavHistory)
	hp := historyPage{HistoryView: v, CSVURL: "/history.csv", Chart: newDayChart(v.Days)}
	if v.Query != "" {
		hp.CSVURL += "?" + v.Query
	}
	if !v.Since.IsZero() {
		hp.SinceDate = v.Since.In(time.Local).Format(time.DateOnly)
	}
	if !v.Until.IsZero() {
		// Until is exclusive; the form shows the last day included.
		hp.UntilDate = v.Until.In(time.Local).AddDate(0, 0, -1).Format(time.DateOnly)
	}
	return p.render(w, "history", hp)
}

// Receipt renders one session's receipt (/sessions/{id}).
func (p *Pages) Receipt(w io.Writer, v ReceiptView) error {
	v.fill("Receipt "+v.ID, NavReceipt)
	return p.render(w, "receipt", v)
}

// Settings renders the owner's settings form (/settings).
func (p *Pages) Settings(w io.Writer, v SettingsView) error {
	v.fill("Settings", NavSettings)
	return p.render(w, "settings", v)
}

// Error renders an error page; the caller writes the status code.
func (p *Pages) Error(w io.Writer, v ErrorView) error {
	if v.Status == 0 {
		v.Status = http.StatusInternalServerError
	}
	v.fill(fmt.Sprintf("Error %d", v.Status), "")
	return p.render(w, "error", v)
}

var funcs = template.FuncMap{
	"sat":        FormatSat,
	"energy":     FormatEnergy,
	"power":      FormatPower,
	"price":      FormatPrice,
	"soc":        FormatSoC,
	"duration":   FormatDuration,
	"time":       FormatTime,
	"connector":  ConnectorWords,
	"evse":       evseLine,
	"lightning":  lightningWords,
	"shortHash":  shortHash,
	"sessionURL": sessionURL,
	"elapsed":    elapsed,
	"stamp":      stamp,
	"statusText": http.StatusText,
	"newestFirst": func(ps []PaymentView) []PaymentView {
		ps = slices.Clone(ps)
		slices.Reverse(ps)
		return ps
	},
	"stateText": stateText,
	"inc":       func(i int) int { return i + 1 },
	"ended":     func(t time.Time) bool { return !t.IsZero() },
}

// sessionURL is the receipt's address; the id is escaped as one path
// segment so an odd id cannot point elsewhere.
func sessionURL(id string) string {
	return "/sessions/" + url.PathEscape(id)
}

// elapsed runs from start to end, or to now while the session runs.
func elapsed(start, end, now time.Time) string {
	if start.IsZero() {
		return "—"
	}
	if end.IsZero() {
		end = now
	}
	return FormatDuration(end.Sub(start))
}

// stamp is a machine-readable instant for data attributes the script
// reads (empty for the zero time).
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// stateText is a session's state with its end reason, if any.
func stateText(state, reason string) string {
	if reason == "" {
		return state
	}
	return state + ": " + reason
}

// staticTypes are set by hand: mime.TypeByExtension reads the host's
// mime.types, which differs between machines.
var staticTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
	".png": "image/png",
}

// Static serves the embedded files under /static/ (mount it there without
// stripping the prefix). Unknown names and directories are 404.
func Static() http.Handler {
	etags := map[string]string{}
	_ = fs.WalkDir(files, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		// Embedded files have no modification time, so the ETag is what
		// lets a browser revalidate cheaply.
		etags["/"+name] = `"` + hex.EncodeToString(sum[:8]) + `"`
		return nil
	})
	fileServer := http.FileServer(http.FS(files))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		etag, ok := etags[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		if ct, ok := staticTypes[path.Ext(r.URL.Path)]; ok {
			h.Set("Content-Type", ct)
		}
		h.Set("Cache-Control", "public, max-age=3600")
		h.Set("ETag", etag)
		h.Set("X-Content-Type-Options", "nosniff")
		fileServer.ServeHTTP(w, r)
	})
}
