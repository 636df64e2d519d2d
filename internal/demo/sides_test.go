package demo

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"satwatt/internal/linktls"
)

// checkSides: with the PLC link, the car reaches the LNURL routes on the
// wall's PLC interface and nothing of the owner's side, and the LAN reaches
// the pages but not the LNURL routes.
func checkSides(t *testing.T, s *Site) {
	t.Helper()
	if s.NS == nil {
		t.Log("sides not checked: the site runs on loopback, without a PLC interface")
		return
	}
	out, err := exec.CommandContext(t.Context(), "ip", "-n", s.NS.Wall, "-6", "addr", "show", "dev", PLCIface, "scope", "link").CombinedOutput()
	m := regexp.MustCompile(`inet6 (fe80::[0-9a-f:]+)/`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("the wall's link-local address on %s: %v %s", PLCIface, err, out)
	}
	// The address as the car sees it, zoned with the car's end of the link
	// (%25 is the zone's "%" in a URL).
	wallLL := string(m[1]) + "%25" + PLCIface
	webPort := strings.TrimPrefix(s.WebURL[strings.LastIndexByte(s.WebURL, ':'):], ":")
	// The car's side is TLS with the wall's own certificate: pin it as
	// the gateway does, and compare with the file the wall keeps.
	var pin linktls.Pin
	fromCar := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dialIn(s.NS.Car), TLSClientConfig: pin.ClientConfig()}}
	plainFromCar := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dialIn(s.NS.Car)}}
	fromLAN := &http.Client{Timeout: 10 * time.Second}
	unrouted := "404 page not found\n"
	for _, tc := range []struct {
		name   string
		client *http.Client
		url    string
		want   string // "served", "unrouted" or "closed"
	}{
		{"car: the offer on the PLC side", fromCar, "https://" + net.JoinHostPort(wallLL, "8081") + "/lnurlp", "served"},
		{"car: the status on the PLC side", fromCar, "https://" + net.JoinHostPort(wallLL, "8081") + "/api/status", "served"},
		{"car: no settings on the PLC side", fromCar, "https://" + net.JoinHostPort(wallLL, "8081") + "/settings", "unrouted"},
		{"car: no metrics on the PLC side", fromCar, "https://" + net.JoinHostPort(wallLL, "8081") + "/metrics", "unrouted"},
		{"car: no plain HTTP on the PLC side", plainFromCar, "http://" + net.JoinHostPort(wallLL, "8081") + "/lnurlp", "refused"},
		{"car: the owner's listener over the cable", fromCar, "http://" + net.JoinHostPort(wallLL, webPort) + "/settings", "closed"},
		{"LAN: the page", fromLAN, s.WebURL + "/settings", "served"},
		{"LAN: no offer", fromLAN, s.WebURL + "/lnurlp", "unrouted"},
		{"LAN: no invoice", fromLAN, s.WebURL + "/lnurlp/x/callback?amount=1000", "unrouted"},
	} {
		got := "served"
		if _, err := url.Parse(tc.url); err != nil {
			t.Fatal(err)
		}
		resp, err := tc.client.Get(tc.url)
		if err != nil {
			got = "closed"
			t.Logf("%s: %v", tc.name, err)
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusNotFound && string(b) == unrouted:
				got = "unrouted"
			case resp.StatusCode == http.StatusBadRequest && strings.Contains(string(b), "HTTPS server"):
				got = "refused" // Go's answer to plain HTTP on a TLS listener
			}
		}
		if got != tc.want {
			t.Errorf("%s (%s): %s, want %s", tc.name, tc.url, got, tc.want)
		}
	}
	_, onDisk, err := linktls.LoadOrCreate(s.WallDB+".plc.pem", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := pin.Fingerprint(); got != onDisk {
		t.Errorf("the car's side presented certificate sha256 %s, the wall keeps %s", got, onDisk)
	}
}

// dialIn dials from inside the network namespace ns: a locked thread
// enters it, creates the socket and is then discarded (never unlocked), so
// no other goroutine runs in the namespace.
func dialIn(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		done := make(chan result, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
			f, err := os.Open("/var/run/netns/" + ns)
			if err != nil {
				done <- result{nil, err}
				return
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				done <- result{nil, fmt.Errorf("enter namespace %s: %w", ns, err)}
				return
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			done <- result{c, err}
		}()
		r := <-done
		return r.c, r.err
	}
}
