package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"satwatt/internal/prereq"
	"satwatt/wallctl/internal/chargepoint"
	"satwatt/web"
)

// chromium is a headless Chromium driven over the DevTools protocol.
type chromium struct {
	t     *testing.T
	ctx   context.Context
	shots string // where screenshots go: the test's artifact folder
}

// startChromium starts Debian's chromium with the flags this machine needs
// (no sandbox as root, no background networking: there is no internet).
func startChromium(t *testing.T) *chromium {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		prereq.Missing(t, "headless Chromium is not installed (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first call starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium (%s): %v", path, err)
	}
	c := &chromium{t: t, ctx: ctx, shots: shotDir(t)}
	t.Logf("screenshots in %s", c.shots)
	return c
}

// shotDir is $SATWATT_TEST_OUTPUT/<test> (make test sets it to a folder
// under the build cache), or a temporary folder.
func shotDir(t *testing.T) string {
	t.Helper()
	base := os.Getenv("SATWATT_TEST_OUTPUT")
	if base == "" {
		return t.TempDir()
	}
	dir := filepath.Join(base, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func (c *chromium) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		c.t.Fatalf("browser: %s: %v", what, err)
	}
}

// eval returns a JavaScript expression's value.
func eval[T any](c *chromium, expr string) T {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		c.t.Fatalf("browser: evaluate %s: %v", expr, err)
	}
	return v
}

// field is the text the live view shows in data-field name.
func (c *chromium) field(name string) string {
	c.t.Helper()
	return strings.TrimSpace(eval[string](c, fmt.Sprintf(`(document.querySelector('[data-field=%q]') || {textContent: '(missing)'}).textContent`, name)))
}

// waitFor re-evaluates cond in the page until it is true.
func (c *chromium) waitFor(what string, limit time.Duration, cond func() (bool, string)) {
	c.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, got := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("browser: %s not shown within %s; the page shows %s", what, limit, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitField waits until the live view's field reads want.
func (c *chromium) waitField(name, want string, limit time.Duration) {
	c.t.Helper()
	c.waitFor(fmt.Sprintf("%s = %q", name, want), limit, func() (bool, string) {
		got := c.field(name)
		return got == want, strconv.Quote(got)
	})
}

// shot saves the page, all of it, as the viewport width given sees it.
func (c *chromium) shot(name string, width int64) {
	c.t.Helper()
	c.do("set viewport for "+name, chromedp.EmulateViewport(width, 900))
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		c.t.Fatalf("browser: screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(c.shots, name+".png"), png, 0o644); err != nil {
		c.t.Fatal(err)
	}
	c.do("reset viewport", chromedp.EmulateViewport(1280, 900))
}

// testWebPage drives the wall's page in a real browser through a real
// regtest session: the live view follows the session without a reload,
// the history lists it, the CSV download is the database's, and the
// receipt names every payment.
func testWebPage(t *testing.T, bin string, c *car, lnd []string) {
	ctx := t.Context()
	db := filepath.Join(t.TempDir(), "wall.db")
	w := startWall(t, bin, append([]string{"--db", db, "--evse", "sim"}, lnd...)...)
	b := startChromium(t)

	b.do("open the live view", chromedp.Navigate(w.base+"/"), chromedp.WaitVisible(chromedp.CSS("#live")))
	b.waitField("connector", web.ConnectorWords("idle"), 10*time.Second)
	// A mark in the page's own memory: a reload would wipe it.
	eval[bool](b, `window.satwattNoReload = true`)
	updates := func() int { return eval[int](b, `Number(document.body.dataset.updates || 0)`) }
	before := updates()

	w.post("/api/sim/plug")
	b.waitField("connector", web.ConnectorWords("awaiting_payment"), 20*time.Second)
	id := w.status().Session.ID
	b.waitFor("the session id", 10*time.Second, func() (bool, string) {
		got := b.field("session_id")
		return strings.Contains(got, id), got
	})

	// 10,000 msat at 1,000 msat/Wh buys 10 Wh; the car shares 42.3 %.
	res := c.paySharing(ctx, w.base, 10_000, 423)
	hash1 := hex.EncodeToString(res.PaymentHash[:])
	b.waitField("received", web.FormatSat(10_000), 20*time.Second)
	b.waitField("soc", web.FormatSoC(423), 10*time.Second)
	b.waitFor("the payment's hash in the last payments", 10*time.Second, func() (bool, string) {
		html := eval[string](b, `document.getElementById('payments').innerHTML`)
		return strings.Contains(html, hash1), html
	})
	b.waitField("connector", web.ConnectorWords("energising"), 20*time.Second)
	b.waitFor("power flowing", 20*time.Second, func() (bool, string) {
		got := b.field("power")
		return got != web.FormatPower(0) && got != "", got
	})
	b.waitFor("the chart growing", 20*time.Second, func() (bool, string) {
		n := eval[int](b, `Number(document.getElementById('chart').dataset.points || 0)`)
		return n >= 2, strconv.Itoa(n) + " points"
	})
	// The picture is worth more with some energy on it: 5 Wh of the 10.
	b.waitFor("energy delivered", 20*time.Second, func() (bool, string) {
		got := b.field("delivered")
		wh, err := strconv.Atoi(strings.TrimSuffix(got, " Wh"))
		return err == nil && wh >= 5, got
	})
	b.shot("live-charging-desktop", 1280)
	b.shot("live-charging-phone", 390)

	// 10 Wh + 2 Wh grace last about 6 s at 7.36 kW: the wall suspends, and
	// the page shows the power gone.
	b.waitField("connector", web.ConnectorWords("suspended"), 30*time.Second)
	b.waitField("power", web.FormatPower(0), 10*time.Second)
	b.shot("live-suspended", 1280)
	c.paySharing(ctx, w.base, 5_000, 431)
	b.waitField("received", web.FormatSat(15_000), 20*time.Second)
	b.waitField("connector", web.ConnectorWords("energising"), 20*time.Second)
	w.post("/api/sim/unplug")
	st := w.waitFor("ended", 20*time.Second, func(s chargepoint.Status) bool { return s.Connector == "idle" && s.Last != nil })
	b.waitField("connector", web.ConnectorWords("idle"), 20*time.Second)
	if !eval[bool](b, `window.satwattNoReload === true`) {
		t.Error("the live view reloaded; it must update in place")
	}
	if n := updates(); n <= before {
		t.Errorf("the page counted %d status events, %d before the session", n, before)
	}
	b.shot("live-after", 1280)

	// History: the finished session, and the CSV download is exactly what
	// wallctl history --csv prints from the database.
	b.do("open the history", chromedp.Navigate(w.base+"/history"), chromedp.WaitVisible(chromedp.CSS("table")))
	if body := eval[string](b, `document.body.innerText`); !strings.Contains(body, id) || !strings.Contains(body, web.FormatSat(st.Last.PaidMsat)) {
		t.Errorf("history page lacks session %s or its %s:\n%s", id, web.FormatSat(st.Last.PaidMsat), body)
	}
	b.shot("history", 1280)
	dl := t.TempDir()
	progress := chromedp.Events(b.ctx, browser.DownloadProgress)
	b.do("download the CSV",
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			t := true
			_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dl, EventsEnabled: &t})
			return err
		}),
		chromedp.Click(chromedp.CSS(`a[href^="/history.csv"]`)))
	var file string
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("download: %v", err)
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			t.Fatal("the browser canceled the CSV download")
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			file = filepath.Join(dl, ev.GUID)
			break
		}
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if want := runCLI(t, bin, "history", "--db", db, "--csv"); string(got) != string(want) {
		t.Errorf("the CSV download differs from wallctl history --csv:\ndownload:\n%s\nwallctl:\n%s", got, want)
	}

	// The receipt, at the URL the LNURL success action names, shows every
	// payment hash and preimage.
	b.do("open the receipt", chromedp.Navigate(w.base+"/sessions/"+id), chromedp.WaitVisible(chromedp.CSS("table")))
	body := eval[string](b, `document.body.innerText`)
	var hashes []string
	for _, p := range st.Last.LastPayments {
		hashes = append(hashes, p.Hash)
	}
	if len(hashes) != 2 {
		t.Fatalf("the wall lists %d payments, want 2", len(hashes))
	}
	for _, h := range hashes {
		if _, ok := c.paid[h]; !ok {
			t.Errorf("the wall lists payment %s that the car did not make", h)
		}
		if !strings.Contains(body, h) {
			t.Errorf("the receipt lacks payment hash %s", h)
		}
	}
	b.shot("receipt", 1280)

	// Settings: the owner changes the price for the next session.
	b.do("open the settings", chromedp.Navigate(w.base+"/settings"), chromedp.WaitVisible(chromedp.CSS("form")))
	b.shot("settings", 1280)
	b.do("save a new price",
		chromedp.SetValue(chromedp.CSS(`input[name="token"]`), testToken),
		chromedp.SetValue(chromedp.CSS(`input[name="price_msat_per_wh"]`), "1200"),
		chromedp.Submit(chromedp.CSS(`form`)),
	)
	b.waitFor("the change confirmed", 10*time.Second, func() (bool, string) {
		body := eval[string](b, `document.body.innerText`)
		return strings.Contains(body, "Saved"), body
	})
	if got := w.status().NextPriceMsatPerWh; got != 1200 {
		t.Errorf("next price %d after the form, want 1200", got)
	}
}
