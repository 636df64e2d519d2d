package offer

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"satwatt/internal/fuzzcheck"
)

const testKey = "02" + "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"

func validOffer() Offer {
	return Offer{
		SessionID:      "s-2024_01",
		PriceMsatPerWh: 250,
		IncrementWh:    100,
		FirstMultiple:  3,
		GraceWh:        20,
		MaxPowerW:      11000,
		WallNodeKey:    testKey,
		ValidUntil:     time.Unix(1_700_000_600, 0).UTC(),
		Network:        "regtest",
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Offer)
		want   string // substring of the error; "" for valid
	}{
		{"valid", func(*Offer) {}, ""},
		{"zero grace ok", func(o *Offer) { o.GraceWh = 0 }, ""},
		{"03 key ok", func(o *Offer) { o.WallNodeKey = "03" + testKey[2:] }, ""},
		{"empty session", func(o *Offer) { o.SessionID = "" }, "session id is 0 bytes"},
		{"long session", func(o *Offer) { o.SessionID = strings.Repeat("a", 65) }, "session id is 65 bytes"},
		{"session 64 ok", func(o *Offer) { o.SessionID = strings.Repeat("a", 64) }, ""},
		{"session bad char", func(o *Offer) { o.SessionID = "a b" }, "want [A-Za-z0-9_-]"},
		{"session unicode", func(o *Offer) { o.SessionID = "é" }, "want [A-Za-z0-9_-]"},
		{"zero price", func(o *Offer) { o.PriceMsatPerWh = 0 }, "price 0 msat/Wh must be positive"},
		{"negative price", func(o *Offer) { o.PriceMsatPerWh = -1 }, "price -1"},
		{"zero increment", func(o *Offer) { o.IncrementWh = 0 }, "increment 0 Wh"},
		{"zero multiple", func(o *Offer) { o.FirstMultiple = 0 }, "multiple 0 must be at least 1"},
		{"negative grace", func(o *Offer) { o.GraceWh = -1 }, "grace -1 Wh"},
		{"zero power", func(o *Offer) { o.MaxPowerW = 0 }, "maximum power 0 W"},
		{"short key", func(o *Offer) { o.WallNodeKey = testKey[:64] }, "64 hex digits, want 66"},
		{"upper-case key", func(o *Offer) { o.WallNodeKey = strings.ToUpper(testKey) }, "lower-case hex"},
		{"non-hex key", func(o *Offer) { o.WallNodeKey = "02" + strings.Repeat("g", 64) }, "lower-case hex"},
		{"uncompressed prefix", func(o *Offer) { o.WallNodeKey = "04" + testKey[2:] }, "starts with 04"},
		{"no valid-until", func(o *Offer) { o.ValidUntil = time.Time{} }, "valid-until"},
		{"unknown network", func(o *Offer) { o.Network = "bitcoin" }, `network "bitcoin"`},
		{"multiple overflows", func(o *Offer) { o.IncrementWh, o.FirstMultiple = math.MaxInt64/2, 3 }, "overflows"},
		{"first cost overflows", func(o *Offer) { o.PriceMsatPerWh = math.MaxInt64 / 100 }, "overflows"},
		{"certificate hash ok", func(o *Offer) { o.TLSCertSHA256 = testCertHash }, ""},
		{"short certificate hash", func(o *Offer) { o.TLSCertSHA256 = testCertHash[:63] }, "63 hex digits, want 64"},
		{"upper-case certificate hash", func(o *Offer) { o.TLSCertSHA256 = strings.ToUpper(testCertHash) }, "lower-case hex"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := validOffer()
			tt.mutate(&o)
			err := o.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate = %v, want ErrInvalid containing %q", err, tt.want)
			}
		})
	}
}

func TestCostMsat(t *testing.T) {
	tests := []struct {
		price, wh int64
		want      int64
		ok        bool
	}{
		{250, 0, 0, true},
		{250, 100, 25000, true},
		{1, math.MaxInt64, math.MaxInt64, true},
		{math.MaxInt64, 1, math.MaxInt64, true},
		{2, math.MaxInt64/2 + 1, 0, false},
		{math.MaxInt64/10 + 1, 10, 0, false},
		{250, -1, 0, false},
		{0, 10, 0, false},
	}
	for _, tt := range tests {
		o := Offer{PriceMsatPerWh: tt.price}
		got, err := o.CostMsat(tt.wh)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("CostMsat(%d Wh at %d) = %d, %v; want %d, ok=%v", tt.wh, tt.price, got, err, tt.want, tt.ok)
		}
	}
}

// testCertHash is a TLS certificate's SHA-256 as an offer carries it.
const testCertHash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func TestMetadataRoundTrip(t *testing.T) {
	for _, hash := range []string{"", testCertHash} {
		o := validOffer()
		o.TLSCertSHA256 = hash
		roundTrip(t, o)
	}
}

func roundTrip(t *testing.T, o Offer) {
	t.Helper()
	o.ValidUntil = o.ValidUntil.Add(700 * time.Millisecond) // truncated on the wire
	descs := []string{"Charge at wall 1", `quotes " and <tags> & "unicode" ⚡`, strings.Repeat("x", 1000)}
	for _, d := range descs {
		md, err := Metadata(o, d)
		if err != nil {
			t.Fatalf("Metadata(%q): %v", d, err)
		}
		got, gotDesc, err := ParseMetadata(md)
		if err != nil {
			t.Fatalf("ParseMetadata(%s): %v", md, err)
		}
		if !got.Equal(o) || gotDesc != d {
			t.Errorf("round trip = %+v, %q; want %+v, %q", got, gotDesc, o, d)
		}
		if got.ValidUntil.Nanosecond() != 0 {
			t.Errorf("ValidUntil %v not whole seconds", got.ValidUntil)
		}
	}
}

func TestMetadataRefuses(t *testing.T) {
	bad := validOffer()
	bad.PriceMsatPerWh = 0
	tests := []struct {
		name string
		o    Offer
		desc string
	}{
		{"invalid offer", bad, "d"},
		{"empty description", validOffer(), ""},
		{"bad utf-8", validOffer(), "\xff"},
		{"too long", validOffer(), strings.Repeat("x", MaxMetadataBytes)},
	}
	for _, tt := range tests {
		if md, err := Metadata(tt.o, tt.desc); err == nil {
			t.Errorf("%s: Metadata = %.80q, want an error", tt.name, md)
		}
	}
}

// offerWire is a valid offer entry value, to splice into hand-made metadata.
const offerWire = `{"session_id":"s1","price_msat_per_wh":250,"increment_wh":100,"first_multiple":3,"grace_wh":20,"max_power_w":11000,"wall_node_key":"` + testKey + `","valid_until":1700000600,"network":"regtest"}`

// md builds a metadata array around entries given as raw JSON.
func md(entries ...string) string { return "[" + strings.Join(entries, ",") + "]" }

func entry(typ, value string) string {
	return `["` + typ + `",` + quote(value) + `]`
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func withField(old, new string) string { return strings.Replace(offerWire, old, new, 1) }

func TestParseMetadata(t *testing.T) {
	desc := entry("text/plain", "wall 1")
	off := entry(MimeType, offerWire)
	tests := []struct {
		name string
		in   string
		want string // "" = accepted
	}{
		{"valid", md(desc, off), ""},
		{"valid other order", md(off, desc), ""},
		{"valid with long-desc", md(desc, entry("text/long-desc", "more"), off), ""},
		{"whitespace ok", " [ " + desc + " , " + off + " ] ", ""},
		{"empty", "", "not a JSON array"},
		{"null", "null", "not a JSON array"},
		{"object", `{"a":1}`, "not a JSON array"},
		{"string", `"x"`, "not a JSON array"},
		{"trailing data", md(desc, off) + "x", "not a JSON array"},
		{"entry not array", md(desc, off, `"x"`), "entry 2: not an array"},
		{"entry null", md(desc, off, `null`), "entry 2: not an array"},
		{"triple", md(desc, `["text/plain","a","b"]`), "3 items"},
		{"single", md(desc, `["text/plain"]`), "1 items"},
		{"number value", md(desc, off, `["x/y",1]`), `value of "x/y": not a JSON string`},
		{"null value", md(desc, off, `["x/y",null]`), "not a JSON string"},
		{"number type", md(desc, off, `[1,"a"]`), "type: not a JSON string"},
		{"no description", md(off), "0 text/plain"},
		{"two descriptions", md(desc, desc, off), "2 text/plain"},
		{"no offer", md(desc), "0 application/vnd.satwatt.offer+json"},
		{"two offers", md(desc, off, off), "2 application/vnd.satwatt.offer+json"},
		{"unknown field", md(desc, entry(MimeType, withField(`"grace_wh"`, `"bonus":1,"grace_wh"`))), `unknown field "bonus"`},
		{"duplicate field", md(desc, entry(MimeType, withField(`"grace_wh":20`, `"grace_wh":20,"grace_wh":0`))), `"grace_wh" given twice`},
		{"missing field", md(desc, entry(MimeType, withField(`"grace_wh":20,`, ``))), `"grace_wh" missing`},
		{"float price", md(desc, entry(MimeType, withField(`250`, `250.0`))), "not an int64"},
		{"exponent price", md(desc, entry(MimeType, withField(`250`, `2.5e2`))), "not an int64"},
		{"huge price", md(desc, entry(MimeType, withField(`250`, `99999999999999999999`))), "not an int64"},
		{"string price", md(desc, entry(MimeType, withField(`250`, `"250"`))), "want an integer"},
		{"null price", md(desc, entry(MimeType, withField(`250`, `null`))), "want an integer"},
		{"number network", md(desc, entry(MimeType, withField(`"regtest"`, `7`))), "want a string"},
		{"nested", md(desc, entry(MimeType, withField(`250`, `{"a":1}`))), "want an integer"},
		{"offer array", md(desc, entry(MimeType, `[1]`)), "not a JSON object"},
		{"offer trailing", md(desc, entry(MimeType, offerWire+`{}`)), "data after"},
		{"offer not JSON", md(desc, entry(MimeType, `{"session_id"`)), "offer entry"},
		{"offer invalid", md(desc, entry(MimeType, withField(`"price_msat_per_wh":250`, `"price_msat_per_wh":-5`))), "price -5"},
		{"bad utf-8", md(entry("text/plain", "\xff"), off), "not valid UTF-8"},
		{"too big", md(desc, off, entry("text/long-desc", strings.Repeat("x", MaxMetadataBytes))), "limit 65536"},
		{"certificate hash", md(desc, entry(MimeType, withField(`"network"`, `"tls_cert_sha256":"`+testCertHash+`","network"`))), ""},
		{"null certificate hash", md(desc, entry(MimeType, withField(`"network"`, `"tls_cert_sha256":null,"network"`))), "want a string"},
		{"bad certificate hash", md(desc, entry(MimeType, withField(`"network"`, `"tls_cert_sha256":"zz","network"`))), "TLS certificate hash is 2 hex digits"},
		{"two certificate hashes", md(desc, entry(MimeType, withField(`"network"`, `"tls_cert_sha256":"`+testCertHash+`","tls_cert_sha256":"","network"`))), "given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, d, err := ParseMetadata(tt.in)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("ParseMetadata: %v", err)
				}
				if d != "wall 1" || o.SessionID != "s1" || o.PriceMsatPerWh != 250 || o.ValidUntil.Unix() != 1700000600 {
					t.Fatalf("ParseMetadata = %+v, %q", o, d)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrMetadata) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseMetadata = %v, want ErrMetadata containing %q", err, tt.want)
			}
		})
	}
}

func TestDescriptionHash(t *testing.T) {
	// sha256("abc"), FIPS 180-2 test vector: the hash is over the exact bytes.
	h := DescriptionHash("abc")
	if got := hex.EncodeToString(h[:]); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("DescriptionHash(abc) = %s", got)
	}
	a, b := DescriptionHash(`[["text/plain","a"]]`), DescriptionHash(`[["text/plain", "a"]]`)
	if a == b {
		t.Error("hash ignores whitespace; it must cover the exact string")
	}
}

// wallMetadata is the metadata as wallctl's charge point builds it (see
// openSessionLocked in wallctl/internal/chargepoint): its description,
// its session ids, lnd's node key.
func wallMetadata(t testing.TB) string {
	t.Helper()
	o := Offer{SessionID: "20261125T020001Z-ad1023500c0f", PriceMsatPerWh: 100, IncrementWh: 50, FirstMultiple: 2,
		GraceWh: 10, MaxPowerW: 7360, WallNodeKey: "02" + strings.Repeat("11", 32),
		ValidUntil: time.Unix(1795658401, 0), Network: "regtest"}
	m, err := Metadata(o, fmt.Sprintf("satwatt charging session %s: %d msat per Wh", o.SessionID, o.PriceMsatPerWh))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// FuzzParseMetadata: the metadata a wall serves, which the car must parse
// strictly (its hash is what every invoice commits to). Bounded
// allocation; a refusal that says what and where in bounded words;
// whatever parses is a valid offer that encodes and parses back to the
// same terms.
func FuzzParseMetadata(f *testing.F) {
	valid, err := Metadata(validOffer(), "Charge at wall 1 ⚡")
	if err != nil {
		f.Fatal(err)
	}
	wall := wallMetadata(f)
	f.Add(valid)
	f.Add(wall)
	// As LNbits-like servers add entries: an identifier and an image.
	f.Add(strings.Replace(wall, "[[", `[["text/identifier","wall@example.com"],["image/png;base64","iVBORw0KGgo="],[`, 1))
	f.Add(md(entry("text/plain", "d"), entry(MimeType, offerWire)))
	f.Add(md(entry("text/plain", "d"), entry(MimeType, withField(`250`, `2.5e2`))))
	f.Add(md(entry("text/plain", "d"), entry(MimeType, withField(`"regtest"`, `"`+strings.Repeat("n", 200)+`"`))))
	f.Add(md(entry("text/plain", "d")))
	f.Add(`[[]]`)
	f.Add(`[`)
	f.Add(``)
	f.Fuzz(func(t *testing.T, s string) {
		var o Offer
		var d string
		var err error
		// A few copies of the input (entries, pairs, strings, tokens).
		fuzzcheck.Alloc(t, "ParseMetadata", len(s), 64, 64<<10, func() { o, d, err = ParseMetadata(s) })
		if err != nil {
			fuzzcheck.ErrorSays(t, err, ErrMetadata.Error()+": ")
			if !errors.Is(err, ErrMetadata) {
				t.Fatalf("error %q does not wrap ErrMetadata", err)
			}
			checkSays(t, err)
			return
		}
		// Whatever parses is a valid offer that encodes and parses back
		// to the same terms.
		if err := o.Validate(); err != nil {
			t.Fatalf("parsed offer invalid: %v", err)
		}
		again, err := Metadata(o, d)
		if err != nil {
			// Metadata refuses empty descriptions, and escaping may push a
			// long one over the size limit.
			if d == "" || 6*len(d) > MaxMetadataBytes-1024 {
				return
			}
			t.Fatalf("re-encoding %q: %v", s, err)
		}
		o2, d2, err := ParseMetadata(again)
		if err != nil || !o2.Equal(o) || d2 != d {
			t.Fatalf("re-parse = %+v, %q, %v; want %+v, %q", o2, d2, err, o, d)
		}
	})
}

// checkSays asserts that a metadata error says where it refused and
// quotes the input in bounded words.
func checkSays(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	if len(msg) > 1024 {
		t.Fatalf("error is %d bytes: %.300q...", len(msg), msg)
	}
	for _, w := range []string{"bytes", "UTF-8", "JSON array", "entry", "entries", "field", "invalid offer"} {
		if strings.Contains(msg, w) {
			return
		}
	}
	t.Fatalf("error %q does not say where", msg)
}

// TestMetadataErrorsBounded: the wall's strings are quoted clipped, so a
// hostile 60 KiB field cannot flood the car's log.
func TestMetadataErrorsBounded(t *testing.T) {
	long := strings.Repeat("x", 60<<10)
	desc := entry("text/plain", "d")
	tests := []struct {
		name, in, says string
	}{
		{"long network", md(desc, entry(MimeType, withField(`"regtest"`, quote(long)))), `network "xxx`},
		{"long unknown field", md(desc, entry(MimeType, withField(`"grace_wh"`, quote(long)+`:1,"grace_wh"`))), "unknown field"},
		{"long string for an integer", md(desc, entry(MimeType, withField(`250`, quote(long)))), `price_msat_per_wh" is the string`},
		{"long number", md(desc, entry(MimeType, withField(`250`, strings.Repeat("9", 60<<10)))), "not an int64"},
		{"long type with a bad value", md(desc, `["`+long+`",1]`), "not a JSON string"},
		{"syntax error says where", md(desc, entry(MimeType, `{"session_id":x}`)), "near byte 13"},
		{"array syntax error says where", `[["text/plain","d"],x]`, "near byte 21"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseMetadata(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("err = %v, want it to say %q", err, tt.says)
			}
			checkSays(t, err)
		})
	}
}
