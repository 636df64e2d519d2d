package lndclient

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// selfSigned makes a throwaway certificate for localhost, like lnd's.
func selfSigned(t *testing.T) (der []byte, key *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{Organization: []string{"lndclient test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func pemOf(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestParseLndConnect(t *testing.T) {
	der, _ := selfSigned(t)
	mac := []byte{0x02, 0x01, 0x03, 0xfe, 0xff, 0xfb} // bytes that need '-' and '_' in base64url
	cert := base64.RawURLEncoding.EncodeToString(der)
	macB64 := base64.RawURLEncoding.EncodeToString(mac)
	padded := base64.URLEncoding.EncodeToString(mac)
	std := base64.StdEncoding.EncodeToString(mac) // '+' arrives as a space after query decoding

	tests := []struct {
		name     string
		uri      string
		wantAddr string
		wantCert bool
		wantErr  string // substring; empty means success
	}{
		{"full", "lndconnect://node.example:10019?cert=" + cert + "&macaroon=" + macB64, "node.example:10019", true, ""},
		{"default port", "lndconnect://10.0.0.5?macaroon=" + macB64 + "&cert=" + cert, "10.0.0.5:10009", true, ""},
		{"no cert trusts system roots", "lndconnect://node.example:443?macaroon=" + macB64, "node.example:443", false, ""},
		{"ipv6 host", "lndconnect://[fe80::1]:10009?macaroon=" + macB64, "[fe80::1]:10009", false, ""},
		{"padded base64url", "lndconnect://h:1?macaroon=" + padded, "h:1", false, ""},
		{"standard base64", "lndconnect://h:1?macaroon=" + std, "h:1", false, ""},
		{"wrong scheme", "https://h:1?macaroon=" + macB64, "", false, `scheme is "https"`},
		{"no host", "lndconnect://?macaroon=" + macB64, "", false, "no host"},
		{"no macaroon", "lndconnect://h:1?cert=" + cert, "", false, "no macaroon"},
		{"macaroon not base64", "lndconnect://h:1?macaroon=%21%21%21", "", false, "macaroon is not base64url"},
		{"cert not base64", "lndconnect://h:1?macaroon=" + macB64 + "&cert=%21%21", "", false, "cert is not base64url"},
		{"cert not DER", "lndconnect://h:1?macaroon=" + macB64 + "&cert=" + macB64, "", false, "cert is not a DER certificate"},
		{"not a URL", "lndconnect://h:1\x7f?macaroon=" + macB64, "", false, "not a valid URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseLndConnect(tt.uri)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), macB64) {
					t.Errorf("error quotes the macaroon: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got.addr != tt.wantAddr {
				t.Errorf("addr = %q, want %q", got.addr, tt.wantAddr)
			}
			if !bytes.Equal(got.macaroon, mac) {
				t.Errorf("macaroon = %x, want %x", got.macaroon, mac)
			}
			if (got.cert != nil) != tt.wantCert {
				t.Errorf("cert present = %v, want %v", got.cert != nil, tt.wantCert)
			}
			if got.cert != nil && !bytes.Equal(got.cert.Raw, der) {
				t.Error("cert differs from the one encoded")
			}
		})
	}
}
