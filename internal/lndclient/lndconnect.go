package lndclient

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
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

// parseLndConnect reads lndconnect://host[:port]?cert=...&macaroon=...,
// where cert is the node's TLS certificate as base64url DER and macaroon the
// raw macaroon as base64url. The error never quotes the query: it holds the
// macaroon.
func parseLndConnect(uri string) (connectURI, error) {
	u, err := url.Parse(uri)
	if err != nil {
		// url's own error quotes the whole URI, macaroon included.
		return connectURI{}, errors.New("lndconnect URI: not a valid URL")
	}
	if u.Scheme != "lndconnect" {
		return connectURI{}, fmt.Errorf("lndconnect URI: scheme is %q, want \"lndconnect\"", u.Scheme)
	}
	if u.Hostname() == "" {
		return connectURI{}, errors.New("lndconnect URI: no host")
	}
	port := u.Port()
	if port == "" {
		port = defaultRPCPort
	}
	out := connectURI{addr: net.JoinHostPort(u.Hostname(), port)}

	q := u.Query()
	mac := q.Get("macaroon")
	if mac == "" {
		return connectURI{}, errors.New("lndconnect URI: no macaroon parameter")
	}
	if out.macaroon, err = decodeB64URL(mac); err != nil {
		return connectURI{}, fmt.Errorf("lndconnect URI: macaroon is not base64url: %w", err)
	}
	if c := q.Get("cert"); c != "" {
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
