package linktls

import (
	"os"
	"path/filepath"
	"testing"

	"satwatt/internal/fuzzcheck"
)

// FuzzLoad: whatever sits in the certificate file, LoadOrCreate never
// panics, never replaces the file, and a refusal names the file.
func FuzzLoad(f *testing.F) {
	good := filepath.Join(f.TempDir(), "good.pem")
	if _, _, err := LoadOrCreate(good, now); err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Add([]byte{})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "plc.pem")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var fp string
		fuzzcheck.Alloc(t, "LoadOrCreate", len(data), 16, 64<<10, func() { _, fp, err = LoadOrCreate(path, now) })
		if after, _ := os.ReadFile(path); string(after) != string(data) {
			t.Fatalf("the file changed")
		}
		if err != nil {
			fuzzcheck.ErrorSays(t, err, "linktls: ", path)
			return
		}
		if len(fp) != 64 {
			t.Fatalf("fingerprint %q", fp)
		}
	})
}
