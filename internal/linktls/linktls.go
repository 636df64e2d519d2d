// Package linktls is TLS for the PLC link, where there is no CA and no
// name: the wall keeps a self-signed certificate, and the car pins the
// certificate it meets for the length of a session.
//
// Trust does not come from the certificate. The wall names the
// certificate's SHA-256 in its LNURL offer; the offer's metadata is what
// every invoice's description hash covers, and the wall's Lightning node
// signs every invoice. So the car's invoice checks (payee and description
// hash) bind the TLS channel to the node it pays, and a relay that
// terminated TLS would have to name its own certificate in an offer that
// only its own node can sign invoices for.
package linktls

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// ErrPinMismatch means the wall presented another certificate than the
// one pinned earlier in the session.
var ErrPinMismatch = errors.New("the wall's certificate changed")

// Validity is how long a new certificate is valid. The car ignores the
// dates (its clock may be wrong, and the pin is the trust), so this only
// keeps other TLS tools quiet.
const Validity = 20 * 365 * 24 * time.Hour

// maxFile bounds what LoadOrCreate reads: a certificate and a key are
// about 1 KiB.
const maxFile = 64 << 10

// Fingerprint is the lower-case hex SHA-256 of a certificate's DER bytes.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// LoadOrCreate reads the certificate and key PEM blocks in path, or, if
// the file does not exist, makes a new self-signed ECDSA P-256
// certificate and writes it there (mode 0600, written whole or not at
// all). A file that exists but cannot be used is an error that names it,
// and the file is left as it is: a car that pinned the old certificate
// would otherwise meet a new one without the owner knowing why.
func LoadOrCreate(path string, now time.Time) (tls.Certificate, string, error) {
	b, err := readBounded(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := create(path, now); err != nil {
			return tls.Certificate{}, "", err
		}
		b, err = readBounded(path)
	}
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("linktls: %s: %w", path, err)
	}
	cert, err := tls.X509KeyPair(b, b)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("linktls: %s: not a certificate and its key in PEM: %w", path, err)
	}
	return cert, Fingerprint(cert.Certificate[0]), nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFile {
		return nil, fmt.Errorf("over %d bytes: not a certificate file", maxFile)
	}
	return b, nil
}

func create(path string, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("linktls: new key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return fmt.Errorf("linktls: serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "satwatt wall"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(Validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("linktls: self-signed certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("linktls: encoding the key: %w", err)
	}
	var out bytes.Buffer
	pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	pem.Encode(&out, &pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	// Write beside, then rename: a crash leaves the old state or the new,
	// never half a key.
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".new-*")
	if err != nil {
		return fmt.Errorf("linktls: writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("linktls: writing %s: %w", path, err)
	}
	if _, err := tmp.Write(out.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("linktls: writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("linktls: writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("linktls: writing %s: %w", path, err)
	}
	// Link, not rename: if another process created the file meanwhile,
	// keep theirs rather than replace a certificate already in use.
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("linktls: writing %s: %w", path, err)
	}
	return nil
}

// ServerConfig serves cert over TLS 1.3.
func ServerConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
}

// Pin holds the certificate a car met on a wall: the first handshake pins
// it, and every later handshake must present the same one. The zero value
// is ready; a Pin is safe for concurrent use.
type Pin struct {
	mu          sync.Mutex
	fingerprint string
}

// Fingerprint is the pinned certificate's Fingerprint, empty before the
// first handshake.
func (p *Pin) Fingerprint() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fingerprint
}

// ClientConfig is a TLS 1.3 client configuration that accepts the wall's
// self-signed certificate (there is no CA to check it against, and no name
// on a link-local link) and holds it to the pin.
func (p *Pin) ClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Verification is VerifyConnection's, against the pin; the offer
		// check then binds the pin to the node that signs the invoices.
		InsecureSkipVerify: true,
		VerifyConnection:   p.verify,
	}
}

func (p *Pin) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("linktls: the wall presented no certificate")
	}
	// The handshake proved that the peer holds this certificate's key.
	fp := Fingerprint(cs.PeerCertificates[0].Raw)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.fingerprint {
	case "":
		p.fingerprint = fp
		return nil
	case fp:
		return nil
	}
	return fmt.Errorf("linktls: %w within the session: sha256 %s, pinned %s", ErrPinMismatch, fp, p.fingerprint)
}
