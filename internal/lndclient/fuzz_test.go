package lndclient

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"satwatt/internal/fuzzcheck"
)

// An lndconnect URI is configuration handed to both commands, from a flag
// or the environment, often pasted from another tool: whatever it holds,
// parseLndConnect must refuse it with an error that names the part at
// fault and never quotes the macaroon, or return an address, macaroon and
// certificate that are what the URI says.
//
// Allocation: the URI is decoded a few times over (query, base64,
// certificate), so a few tens of bytes per byte of input, plus x509's
// fixed cost for a certificate.
const (
	lndConnectAllocPerByte = 64
	lndConnectAllocFixed   = 64 << 10
)

// errorParts are the parts of a URI an error may name.
var errorParts = []string{"scheme", "host", "port", "query", "macaroon", "cert", "URL"}

func FuzzParseLndConnect(f *testing.F) {
	// A real lnd-style certificate and macaroon, made into a URI by the
	// same function the commands' users run (LndConnectURI).
	der := fuzzCert(f)
	mac := []byte{0x02, 0x01, 0x03, 'l', 'n', 'd', 0x02, 0xf8, 0x01, 0x03, 0x0a, 0x10, 0xfe, 0xff, 0xfb}
	dir := f.TempDir()
	certPath, macPath := filepath.Join(dir, "tls.cert"), filepath.Join(dir, "admin.macaroon")
	if err := os.WriteFile(certPath, pemOf(der), 0o600); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(macPath, mac, 0o600); err != nil {
		f.Fatal(err)
	}
	for _, addr := range []string{"127.0.0.1:10009", "node.example:10019", "[::1]:10009", "abcdefghijklmnop.onion:10009"} {
		uri, err := LndConnectURI(addr, certPath, macPath)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uri)
	}
	cert := base64.RawURLEncoding.EncodeToString(der)
	m := base64.RawURLEncoding.EncodeToString(mac)
	for _, s := range []string{
		"lndconnect://10.0.0.5?macaroon=" + m + "&cert=" + cert,
		"lndconnect://h:1?macaroon=" + base64.URLEncoding.EncodeToString(mac),
		"lndconnect://h:1?macaroon=" + base64.StdEncoding.EncodeToString(mac),
		"lndconnect://[fe80::1%25eth0]:10009?macaroon=" + m,
		"lndconnect://h:0?macaroon=" + m,
		"lndconnect://h:65536?macaroon=" + m,
		"lndconnect://h:1?macaroon==",
		"lndconnect://h:1?macaroon=" + m + "&macaroon=" + m,
		"lndconnect://h:1?macaroon=" + m + ";x",
		"lndconnect://h:10009&macaroon=" + m,
		"lndconnect://h&macaroon=" + m,
		"lndconnect://h%FF:1?macaroon=" + m,
		"lndconnect://user:pw@h:1/path#frag?macaroon=" + m,
		"https://h:1?macaroon=" + m,
		"lndconnect://h:1\x7f?macaroon=" + m,
		"lndconnect://?macaroon=" + m,
		"lndconnect://h:1?cert=" + cert,
		"",
		":",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		var got connectURI
		var err error
		fuzzcheck.Alloc(t, "parseLndConnect", len(uri), lndConnectAllocPerByte, lndConnectAllocFixed, func() {
			got, err = parseLndConnect(uri)
		})
		if err != nil {
			fuzzcheck.ErrorSays(t, err, "lndconnect URI: ")
			named := false
			for _, part := range errorParts {
				named = named || strings.Contains(err.Error(), part)
			}
			if !named {
				t.Fatalf("error %q names no part of the URI (%v)", err, errorParts)
			}
			if secret := macaroonParam(uri); secret != "" && strings.Contains(err.Error(), secret) {
				t.Fatalf("error %q quotes the macaroon %q", err, secret)
			}
			return
		}
		checkConnectURI(t, uri, got)
	})
}

// checkConnectURI: an accepted URI gives a dialable address, a macaroon and
// maybe a certificate, and writing them back as a URI gives them again.
func checkConnectURI(t *testing.T, uri string, got connectURI) {
	t.Helper()
	host, port, err := net.SplitHostPort(got.addr)
	if err != nil || !validHost(host) {
		t.Fatalf("%q: address %q: %v", uri, got.addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		t.Fatalf("%q: port %q", uri, port)
	}
	if len(got.macaroon) == 0 {
		t.Fatalf("%q: accepted with an empty macaroon", uri)
	}
	again := "lndconnect://" + strings.ReplaceAll(got.addr, "%", "%25") + "?macaroon=" + base64.RawURLEncoding.EncodeToString(got.macaroon)
	if got.cert != nil {
		again += "&cert=" + base64.RawURLEncoding.EncodeToString(got.cert.Raw)
	}
	back, err := parseLndConnect(again)
	if err != nil {
		t.Fatalf("%q parsed, but written back as %q: %v", uri, again, err)
	}
	if back.addr != got.addr || !bytes.Equal(back.macaroon, got.macaroon) || (back.cert == nil) != (got.cert == nil) ||
		(got.cert != nil && !bytes.Equal(back.cert.Raw, got.cert.Raw)) {
		t.Fatalf("%q parsed as %s, written back and parsed as %s", uri, got.addr, back.addr)
	}
}

// macaroonParam is what follows "macaroon=" in uri, up to the next
// separator, wherever it is (a URI missing its '?' has it in the host or
// port): the macaroon, as the user meant it. It is "" when too short for
// an error quoting it to be a leak rather than chance, or when it also
// appears elsewhere in the URI.
func macaroonParam(uri string) string {
	_, v, ok := strings.Cut(uri, "macaroon=")
	if i := strings.IndexAny(v, "&#;"); i >= 0 {
		v = v[:i]
	}
	if !ok || len(v) < 8 || strings.Count(uri, v) != 1 {
		return ""
	}
	return v
}

// fuzzCert makes a certificate like lnd's tls.cert: self-signed ECDSA P-256
// for localhost, with a fixed key so the seed corpus stays the same.
func fuzzCert(f *testing.F) []byte {
	f.Helper()
	key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), bytes.Repeat([]byte{0x5a}, 32))
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"lnd autogenerated cert"}, CommonName: "localhost"},
		NotBefore:             time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost", "unix", "unixpacket", "bufconn"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(zeroReader{}, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		f.Fatal(err)
	}
	return der
}

// zeroReader is a deterministic "random" source for the seed certificate.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestLndConnectErrorsKeepTheMacaroon holds what fuzzing found: a URI
// missing the '?' before its parameters (an easy slip when typing one) had
// its macaroon quoted in the error, as the port or the host url and the
// host check saw. And cases the parser used to accept: an empty macaroon,
// port 0 and ports beyond 65535, a host that is no host, and parameters
// given twice.
func TestLndConnectErrorsKeepTheMacaroon(t *testing.T) {
	const mac = "AgEDbG5kAvgBAwoQ_v_7"
	for _, tc := range []struct {
		name, uri, want string
	}{
		{"& instead of ? after the port", "lndconnect://h:10009&macaroon=" + mac, "lndconnect URI: not a valid URL: the port after the host is not a number"},
		{"& instead of ? after the host", "lndconnect://h&macaroon=" + mac, "lndconnect URI: the host is neither"},
		{"no ? and no port", "lndconnect://h:macaroon=" + mac, "the port after the host is not a number"},
		{"bare zone", "lndconnect://[fe80::1%eth0]:1?macaroon=" + mac, "not a valid URL"},
		{"empty macaroon", "lndconnect://h:1?macaroon==", "lndconnect URI: macaroon is empty"},
		{"port 0", "lndconnect://h:0?macaroon=" + mac, `lndconnect URI: port "0" is not a TCP port`},
		{"port beyond 65535", "lndconnect://h:65536?macaroon=" + mac, `lndconnect URI: port "65536" is not a TCP port`},
		{"host of non-ASCII bytes", "lndconnect://h%FF:1?macaroon=" + mac, "lndconnect URI: the host is neither"},
		{"macaroon twice", "lndconnect://h:1?macaroon=" + mac + "&macaroon=AgED", "lndconnect URI: macaroon parameter given 2 times"},
		{"cert twice", "lndconnect://h:1?macaroon=" + mac + "&cert=AA&cert=AA", "lndconnect URI: cert parameter given 2 times"},
		{"malformed query", "lndconnect://h:1?macaroon=" + mac + "&x=%zz", "lndconnect URI: the query is not valid URL encoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseLndConnect(tc.uri)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), mac) {
				t.Fatalf("error %q quotes the macaroon", err)
			}
		})
	}
	// What must still pass: an IPv6 zone, written as a URL writes it.
	got, err := parseLndConnect("lndconnect://[fe80::1%25eth0]:10009?macaroon=" + mac)
	if err != nil || got.addr != "[fe80::1%eth0]:10009" {
		t.Fatalf("zone: %+v, %v", got, err)
	}
}
