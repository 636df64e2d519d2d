package linktls

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 12, 3, 2, 0, 0, 0, time.UTC)

func TestLoadOrCreate(t *testing.T) {
	cases := []struct {
		name    string
		prepare func(t *testing.T, path string) // nil: no file
		want    string                          // error text; "" for success
	}{
		{name: "no file: a new certificate"},
		{name: "garbage", prepare: write([]byte("not pem at all\n")), want: "not a certificate and its key in PEM"},
		{name: "certificate without key", prepare: func(t *testing.T, path string) {
			other := filepath.Join(t.TempDir(), "other.pem")
			if _, _, err := LoadOrCreate(other, now); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(other)
			i := bytes.Index(b, []byte("-----BEGIN PRIVATE KEY"))
			write(b[:i])(t, path)
		}, want: "not a certificate and its key in PEM"},
		{name: "oversized", prepare: write(bytes.Repeat([]byte("A"), maxFile+10)), want: "over 65536 bytes"},
		{name: "a directory", prepare: func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, want: "is a directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "plc.pem")
			var before []byte
			if tc.prepare != nil {
				tc.prepare(t, path)
				before, _ = os.ReadFile(path)
			}
			cert, fp, err := LoadOrCreate(path, now)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
					t.Fatalf("err = %v, want one naming %s and saying %q", err, path, tc.want)
				}
				// A file the wall cannot use is the owner's to look at:
				// never replaced.
				if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
					t.Errorf("the file changed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(fp) != 64 || fp != Fingerprint(cert.Certificate[0]) {
				t.Errorf("fingerprint %q", fp)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600 (it holds the key)", st.Mode().Perm())
			}
			// A restart keeps the certificate, so a pin survives it.
			_, fp2, err := LoadOrCreate(path, now.Add(time.Hour))
			if err != nil || fp2 != fp {
				t.Errorf("reloaded: %q, %v; want %q", fp2, err, fp)
			}
			if m, _ := filepath.Glob(path + ".new-*"); len(m) != 0 {
				t.Errorf("left behind: %v", m)
			}
		})
	}
}

func write(b []byte) func(*testing.T, string) {
	return func(t *testing.T, path string) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPin: real handshakes over loopback. The first pins; the same
// certificate passes; another certificate is refused.
func TestPin(t *testing.T) {
	certs := make([]tls.Certificate, 2)
	fps := make([]string, 2)
	for i := range certs {
		var err error
		certs[i], fps[i], err = LoadOrCreate(filepath.Join(t.TempDir(), "c.pem"), now)
		if err != nil {
			t.Fatal(err)
		}
	}
	serve := func(cert tls.Certificate) string {
		l, err := tls.Listen("tcp", "127.0.0.1:0", ServerConfig(cert))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				// The handshake's outcome is the client's to judge.
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}
		}()
		return l.Addr().String()
	}
	a, b := serve(certs[0]), serve(certs[1])
	var p Pin
	steps := []struct {
		addr     string
		mismatch bool
	}{{a, false}, {a, false}, {b, true}, {a, false}}
	for i, s := range steps {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.addr, p.ClientConfig())
		if c != nil {
			c.Close()
		}
		if s.mismatch != errors.Is(err, ErrPinMismatch) {
			t.Fatalf("step %d: err = %v, want mismatch %v", i, err, s.mismatch)
		}
		if s.mismatch && (!strings.Contains(err.Error(), fps[1]) || !strings.Contains(err.Error(), fps[0])) {
			t.Errorf("step %d: the error should name both certificates: %v", i, err)
		}
		if got := p.Fingerprint(); got != fps[0] {
			t.Fatalf("step %d: pinned %q, want %q", i, got, fps[0])
		}
	}
}
