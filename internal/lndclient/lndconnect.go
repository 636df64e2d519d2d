package lndclient

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// defaultRPCPort is lnd's gRPC port, which the lndconnect format lets a URI
// leave out.
const defaultRPCPort = "10009"

// connectURI is what an lndconnect URI carries.
type connectURI struct {
	addr     string            // host:port
	cert     *x509.Certificate // nil when the URI has no cert: trust the system roots
	macaroon []byte
}

// CheckLndConnect reports whether uri is an lndconnect URI that Dial can
// use, without dialing: for checking configuration before anything starts.
// The error never quotes the query, which holds the macaroon.
func CheckLndConnect(uri string) error {
	_, err := parseLndConnect(uri)
	return err
}

// parseLndConnect reads lndconnect://host[:port]?cert=...&macaroon=...,
// where cert is the node's TLS certificate as base64url DER and macaroon the
// raw macaroon as base64url. Every error starts "lndconnect URI: " and names
// the part at fault (scheme, host, port, query, macaroon, cert); none
// quotes the query: it holds the macaroon.
func parseLndConnect(uri string) (connectURI, error) {
	u, err := url.Parse(uri)
	if err != nil {
		// Not wrapped: url's error quotes the whole URI, and even the
		// error inside it quotes the port, which holds the macaroon when
		// the '?' before the parameters is missing
		// (lndconnect://host:10009&macaroon=...).
		return connectURI{}, fmt.Errorf("lndconnect URI: not a valid URL: %s", urlProblem(err))
	}
	if u.Scheme != "lndconnect" {
		return connectURI{}, fmt.Errorf("lndconnect URI: scheme is %q, want \"lndconnect\"", u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return connectURI{}, errors.New("lndconnect URI: no host")
	}
	if !validHost(host) {
		// Not quoted: a host that is not one may hold the parameters.
		return connectURI{}, errors.New("lndconnect URI: the host is neither an IP address nor a DNS name (is the '?' before the parameters missing?)")
	}
	port := u.Port()
	if port == "" {
		port = defaultRPCPort
	} else if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return connectURI{}, fmt.Errorf("lndconnect URI: port %q is not a TCP port (1 to 65535)", port)
	}
	out := connectURI{addr: net.JoinHostPort(host, port)}

	// ParseQuery rather than Query, which drops what it cannot decode, so
	// that a damaged macaroon parameter is not reported as missing. Its
	// error may quote a piece of the query, so it is not wrapped.
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return connectURI{}, errors.New("lndconnect URI: the query is not valid URL encoding (a stray % or ;)")
	}
	mac, err := oneParam(q, "macaroon")
	if err != nil {
		return connectURI{}, err
	}
	if mac == "" {
		return connectURI{}, errors.New("lndconnect URI: no macaroon parameter")
	}
	if out.macaroon, err = decodeB64URL(mac); err != nil {
		return connectURI{}, fmt.Errorf("lndconnect URI: macaroon is not base64url: %w", err)
	}
	if len(out.macaroon) == 0 {
		return connectURI{}, errors.New("lndconnect URI: macaroon is empty")
	}
	c, err := oneParam(q, "cert")
	if err != nil {
		return connectURI{}, err
	}
	if c != "" {
		der, err := decodeB64URL(c)
		if err != nil {
			return connectURI{}, fmt.Errorf("lndconnect URI: cert is not base64url: %w", err)
		}
		if out.cert, err = x509.ParseCertificate(der); err != nil {
			return connectURI{}, fmt.Errorf("lndconnect URI: cert is not a DER certificate: %w", err)
		}
	}
	return out, nil
}

// urlProblem says which part of a URI url.Parse refused, without quoting
// any of it.
func urlProblem(err error) string {
	var host url.InvalidHostError
	var esc url.EscapeError
	msg := err.Error()
	switch {
	case errors.As(err, &host):
		return "the host holds a character a host cannot"
	case errors.As(err, &esc):
		return "a %-escape is not two hex digits"
	case strings.Contains(msg, "invalid port"):
		return "the port after the host is not a number (is the '?' before the parameters missing?)"
	case strings.Contains(msg, "control character"):
		return "it holds a control character"
	case strings.Contains(msg, "missing protocol scheme"), strings.Contains(msg, "first path segment"):
		return "the scheme is missing"
	case strings.Contains(msg, "userinfo"):
		return "the user information before the host is malformed"
	case strings.Contains(msg, "]"), strings.Contains(msg, "IP-literal"):
		return "the host's [IPv6 address] is malformed"
	}
	return "it does not parse"
}

// oneParam returns a query parameter that must not be given twice: with
// two macaroons or certificates it is not clear which one is meant.
func oneParam(q url.Values, name string) (string, error) {
	switch v := q[name]; len(v) {
	case 0:
		return "", nil
	case 1:
		return v[0], nil
	default:
		return "", fmt.Errorf("lndconnect URI: %s parameter given %d times", name, len(v))
	}
}

// validHost accepts an IP address (an IPv6 one with a zone too) or a DNS
// name: letters, digits, '-', '_' and dots, at most 253 characters, as an
// lnd node's address can be, and a .onion one too.
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// decodeB64URL accepts base64url with or without padding: lndconnect
// producers differ, and some pass standard base64 through, whose '+' the
// query decoding has already turned into a space.
func decodeB64URL(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	s = strings.NewReplacer("+", "-", " ", "-", "/", "_").Replace(s)
	return base64.RawURLEncoding.DecodeString(s)
}

// LndConnectURI builds lndconnect://addr?cert=<DER>&macaroon=<bytes>, both
// base64url, from a node's tls.cert (PEM) and a macaroon file: one string
// that carries everything a client needs. It holds the macaroon, so treat
// it as a secret.
func LndConnectURI(addr, certPath, macaroonPath string) (string, error) {
	pemBytes, err := os.ReadFile(certPath)
	if err != nil {
		return "", fmt.Errorf("lndconnect URI: %w", err)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return "", fmt.Errorf("lndconnect URI: %s holds no PEM certificate", certPath)
	}
	mac, err := os.ReadFile(macaroonPath)
	if err != nil {
		return "", fmt.Errorf("lndconnect URI: %w", err)
	}
	return "lndconnect://" + addr + "?cert=" + base64.RawURLEncoding.EncodeToString(block.Bytes) +
		"&macaroon=" + base64.RawURLEncoding.EncodeToString(mac), nil
}
