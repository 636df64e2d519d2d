package wallclient

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

// BenchmarkOfferOverTLS: what TLS on the PLC link costs the car where it
// is felt, at plug-in: a new session's first request (a new client, so a
// full handshake, the pin and the offer's certificate check) against the
// same offer over plain HTTP, measured in turns in the same run. Loopback,
// so the figures are the two ends' CPU, not a powerline's latency.
func BenchmarkOfferOverTLS(b *testing.B) {
	cert, fp := newCert(b)
	walls := []*fakeWall{newFakeWall(b), newFakeWallTLS(b, &cert, fp)}
	var spent [2]time.Duration
	for b.Loop() {
		for i, w := range walls {
			u, _ := url.Parse(w.srv.URL + "/")
			tr := &http.Transport{}
			c := &Client{Base: u, HTTP: &http.Client{Transport: tr}, Timeout: 5 * time.Second}
			start := time.Now()
			if _, err := c.Offer(b.Context()); err != nil {
				b.Fatal(err)
			}
			spent[i] += time.Since(start)
			tr.CloseIdleConnections()
			if c.pinned != nil {
				c.pinned.(*http.Transport).CloseIdleConnections()
			}
		}
	}
	plain := float64(spent[0].Microseconds()) / 1000 / float64(b.N)
	tls := float64(spent[1].Microseconds()) / 1000 / float64(b.N)
	b.ReportMetric(tls, "tls-ms")
	b.ReportMetric(plain, "plain-ms")
	b.ReportMetric(tls/plain, "x-plain")
}
