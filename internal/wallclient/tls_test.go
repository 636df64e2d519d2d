package wallclient

import (
	"crypto/tls"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"satwatt/internal/linktls"
)

func newCert(t testing.TB) (tls.Certificate, string) {
	t.Helper()
	cert, fp, err := linktls.LoadOrCreate(filepath.Join(t.TempDir(), "plc.pem"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return cert, fp
}

// TestOverTLS: over https the offer must name the certificate the wall
// presented, and the wall must keep presenting it.
func TestOverTLS(t *testing.T) {
	certA, fpA := newCert(t)
	_, fpB := newCert(t)
	cases := []struct {
		name  string
		named string // the certificate hash in the offer
		want  string // "" = the offer is taken
	}{
		{"the offer names the certificate", fpA, ""},
		{"the offer names none", "", "it names none"},
		{"the offer names another certificate", fpB, "it names " + fpB},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newFakeWallTLS(t, &certA, tc.named)
			c, _ := w.client()
			o, err := c.Offer(t.Context())
			if tc.want != "" {
				if !errors.Is(err, ErrCertNotBound) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), fpA) {
					t.Fatalf("Offer: %v; want ErrCertNotBound saying %q and naming the certificate presented", err, tc.want)
				}
				if n := w.count("GET /lnurlp/sess-7/callback"); n != 0 {
					t.Errorf("asked for %d invoices", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.Terms.TLSCertSHA256 != fpA || !strings.HasPrefix(o.Pay.Callback.String(), "https://") {
				t.Fatalf("offer %+v, callback %s", o.Terms, o.Pay.Callback)
			}
			if _, err := c.Invoice(t.Context(), o, 300_000, -1); err != nil {
				t.Fatalf("Invoice over TLS: %v", err)
			}
			if _, err := c.Status(t.Context()); err != nil {
				t.Fatalf("Status over TLS: %v", err)
			}
		})
	}
}

// TestCertificateChangesMidSession: a wall that presents another
// certificate after the offer (a relay taking over the link) is refused
// at the handshake.
func TestCertificateChangesMidSession(t *testing.T) {
	certA, fpA := newCert(t)
	certB, fpB := newCert(t)
	w := newFakeWallTLS(t, &certA, fpA)
	var current atomic.Pointer[tls.Certificate]
	current.Store(&certA)
	w.srv.TLS.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return linktls.ServerConfig(*current.Load()), nil
	}
	c, tr := w.client()
	if _, err := c.Offer(t.Context()); err != nil {
		t.Fatal(err)
	}
	current.Store(&certB)
	tr.CloseIdleConnections()
	c.pinned.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	_, err := c.Status(t.Context())
	if !errors.Is(err, linktls.ErrPinMismatch) || !strings.Contains(err.Error(), fpB) {
		t.Fatalf("Status after the certificate changed: %v; want ErrPinMismatch naming %s", err, fpB)
	}
}

// TestHTTPSNeedsATransportToPin: a caller's RoundTripper that is not an
// *http.Transport cannot carry the pin: refused, nothing sent.
func TestHTTPSNeedsATransportToPin(t *testing.T) {
	certA, fpA := newCert(t)
	w := newFakeWallTLS(t, &certA, fpA)
	c, _ := w.client()
	c.HTTP.Transport = roundTripFunc(nil)
	if _, err := c.Status(t.Context()); !errors.Is(err, ErrConfig) {
		t.Fatalf("Status: %v, want ErrConfig", err)
	}
	if hits := w.hitList(); len(hits) != 0 {
		t.Errorf("sent %v", hits)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
