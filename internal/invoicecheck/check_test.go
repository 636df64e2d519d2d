package invoicecheck

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcutil/bech32"
	"github.com/btcsuite/btcd/chaincfg"

	"satwatt/internal/fuzzcheck"
	"satwatt/internal/invoicecheck/invoicetest"
	"satwatt/internal/offer"
)

var t0 = time.Unix(1_700_000_000, 0).UTC()

var (
	key    = invoicetest.Key
	pubHex = invoicetest.PubHex
)

// invoiceSpec describes a test invoice; zero fields take the defaults of
// a good invoice for the test offer.
type invoiceSpec struct {
	net       *chaincfg.Params
	signer    *btcec.PrivateKey
	amount    int64 // -1: no amount
	descHash  *[32]byte
	plainDesc bool // a description instead of a hash
	created   time.Time
	expiry    time.Duration
}

// encode builds and signs a real BOLT11 invoice.
func encode(t testing.TB, s invoiceSpec) string {
	t.Helper()
	spec := invoicetest.Spec{Net: s.net, Signer: s.signer, AmountMsat: s.amount, Hash: sha256.Sum256([]byte("preimage")),
		Created: s.created, Expiry: s.expiry}
	if !s.plainDesc {
		spec.DescHash = s.descHash
	}
	str, err := invoicetest.Sign(spec)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return str
}

type fixture struct {
	wall     *btcec.PrivateKey
	offer    offer.Offer
	metadata string
	exp      Expect
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	wall := key("wall")
	o := offer.Offer{
		SessionID:      "sess-1",
		PriceMsatPerWh: 250,
		IncrementWh:    100,
		FirstMultiple:  3,
		GraceWh:        20,
		MaxPowerW:      11000,
		WallNodeKey:    pubHex(wall),
		ValidUntil:     t0.Add(10 * time.Minute),
		Network:        "regtest",
	}
	md, err := offer.Metadata(o, "Charge at wall 1")
	if err != nil {
		t.Fatal(err)
	}
	return fixture{wall: wall, offer: o, metadata: md, exp: Expect{
		AmountMsat:        75000,
		Metadata:          md,
		Offer:             o,
		Now:               t0.Add(10 * time.Second),
		MaxPaymentMsat:    100000,
		MaxPriceMsatPerWh: 300,
	}}
}

// good returns the spec of an invoice the car should pay.
func (f fixture) good() invoiceSpec {
	h := offer.DescriptionHash(f.metadata)
	return invoiceSpec{
		net: &chaincfg.RegressionNetParams, signer: f.wall, amount: 75000,
		descHash: &h, created: t0, expiry: 5 * time.Minute,
	}
}

func TestCheck(t *testing.T) {
	f := newFixture(t)
	otherHash := sha256.Sum256([]byte("other metadata"))
	tests := []struct {
		name   string
		spec   func(*invoiceSpec)
		expect func(*Expect)
		want   Reason // 0: pay
		detail string // substring of the refusal
	}{
		{"accept", nil, nil, 0, ""},
		{"accept at cap", nil, func(e *Expect) { e.MaxPaymentMsat = 75000 }, 0, ""},
		{"accept at price limit", nil, func(e *Expect) { e.MaxPriceMsatPerWh = 250 }, 0, ""},
		{"wrong network", nil, func(e *Expect) {
			o := f.offer
			o.Network = "signet"
			e.Offer = o
			e.Metadata = mustMetadata(t, o)
		}, WrongNetwork, "offer is for signet, invoice is for regtest"},
		{"payee mismatch", func(s *invoiceSpec) { s.signer = key("mallory") }, nil, PayeeMismatch, "invoice pays " + pubHex(key("mallory"))},
		{"no description hash", func(s *invoiceSpec) { s.plainDesc = true }, nil, DescriptionHashMismatch, "invoice has none"},
		{"other description hash", func(s *invoiceSpec) { s.descHash = &otherHash }, nil, DescriptionHashMismatch, hex.EncodeToString(otherHash[:])},
		{"missing amount", func(s *invoiceSpec) { s.amount = -1 }, nil, MissingAmount, "asked for 75000 msat, invoice names no amount"},
		{"amount higher", func(s *invoiceSpec) { s.amount = 75001 }, nil, AmountMismatch, "asked for 75000 msat, invoice asks 75001 msat"},
		{"amount lower", func(s *invoiceSpec) { s.amount = 1000 }, nil, AmountMismatch, "invoice asks 1000 msat"},
		{"above cap", nil, func(e *Expect) { e.MaxPaymentMsat = 74999 }, AboveCap, "cap is 74999 msat"},
		{"price above limit", nil, func(e *Expect) { e.MaxPriceMsatPerWh = 249 }, PriceAboveLimit, "limit is 249 msat/Wh, the offer asks 250"},
		{"offer expired", nil, func(e *Expect) { e.Now = f.offer.ValidUntil }, OfferExpired, "valid until"},
		{"invoice expired", nil, func(e *Expect) { e.Now = t0.Add(5 * time.Minute) }, Expired, "expired at"},
		{"zero expiry", func(s *invoiceSpec) { s.expiry = 0 }, nil, Expired, ""},
		// Several faults: the first in the documented order wins.
		{"payee before amount", func(s *invoiceSpec) { s.signer, s.amount = key("mallory"), 1 }, nil, PayeeMismatch, ""},
		{"amount before expiry", func(s *invoiceSpec) { s.amount = 1 }, func(e *Expect) { e.Now = t0.Add(time.Hour) }, AmountMismatch, ""},
		{"cap before price", nil, func(e *Expect) { e.MaxPaymentMsat, e.MaxPriceMsatPerWh = 1, 1 }, AboveCap, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := f.good()
			if tt.spec != nil {
				tt.spec(&spec)
			}
			exp := f.exp
			if tt.expect != nil {
				tt.expect(&exp)
			}
			inv, err := Decode(encode(t, spec), "regtest")
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			err = Check(inv, exp)
			if tt.want == 0 {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			var r *Refusal
			if !errors.As(err, &r) || r.Reason != tt.want || !strings.Contains(r.Detail, tt.detail) {
				t.Fatalf("Check = %v, want %v refusal containing %q", err, tt.want, tt.detail)
			}
			if got, ok := ReasonOf(err); !ok || got != tt.want {
				t.Fatalf("ReasonOf = %v, %v", got, ok)
			}
		})
	}
}

func mustMetadata(t *testing.T, o offer.Offer) string {
	t.Helper()
	md, err := offer.Metadata(o, "x")
	if err != nil {
		t.Fatal(err)
	}
	return md
}

// TestCheckBadExpect covers caller bugs: plain errors, never a refusal
// the car might show as the wall's fault.
func TestCheckBadExpect(t *testing.T) {
	f := newFixture(t)
	inv, err := Decode(encode(t, f.good()), "regtest")
	if err != nil {
		t.Fatal(err)
	}
	other := f.offer
	other.PriceMsatPerWh = 1
	tests := []struct {
		name   string
		expect func(*Expect)
		want   string
	}{
		{"no amount", func(e *Expect) { e.AmountMsat = 0 }, "expected amount 0"},
		{"no cap", func(e *Expect) { e.MaxPaymentMsat = 0 }, "payment cap 0"},
		{"no price limit", func(e *Expect) { e.MaxPriceMsatPerWh = -1 }, "price limit -1"},
		{"no time", func(e *Expect) { e.Now = time.Time{} }, "current time"},
		{"bad metadata", func(e *Expect) { e.Metadata = "[]" }, "expected metadata"},
		{"offer not from metadata", func(e *Expect) { e.Offer = other }, "not the one in the metadata"},
	}
	for _, tt := range tests {
		exp := f.exp
		tt.expect(&exp)
		err := Check(inv, exp)
		if _, refused := ReasonOf(err); err == nil || refused || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Check = %v, want a plain error containing %q", tt.name, err, tt.want)
		}
	}
}

func TestDecode(t *testing.T) {
	f := newFixture(t)
	good := f.good()
	regtest := encode(t, good)
	mainSpec := good
	mainSpec.net = &chaincfg.MainNetParams
	mainnet := encode(t, mainSpec)
	signetSpec := good
	signetSpec.net = &chaincfg.SigNetParams
	signet := encode(t, signetSpec)
	testSpec := good
	testSpec.net = &chaincfg.TestNet3Params
	testnet := encode(t, testSpec)

	tests := []struct {
		name    string
		in      string
		network string
		refusal bool   // a WrongNetwork refusal
		wantErr string // substring of a plain error
	}{
		{"regtest", regtest, "regtest", false, ""},
		{"upper case", strings.ToUpper(regtest), "regtest", false, ""},
		{"mainnet", mainnet, "mainnet", false, ""},
		{"signet", signet, "signet", false, ""},
		{"testnet", testnet, "testnet", false, ""},
		{"testnet4 shares tb", testnet, "testnet4", false, ""},
		{"mainnet on regtest", mainnet, "regtest", true, ""},
		{"regtest on mainnet", regtest, "mainnet", true, ""},
		{"signet on testnet", signet, "testnet", true, ""},
		{"testnet on signet", testnet, "signet", true, ""},
		{"unknown network", regtest, "bitcoin", false, `unknown network "bitcoin"`},
		{"garbage", "hello", "regtest", false, "not a valid BOLT11"},
		{"empty", "", "regtest", false, "not a valid BOLT11"},
		{"bad checksum", regtest[:len(regtest)-1] + flip(regtest[len(regtest)-1]), "regtest", false, "not a valid BOLT11"},
		{"truncated", regtest[:40], "regtest", false, "not a valid BOLT11"},
		{"bitcoin address", "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080", "regtest", false, "not a valid BOLT11"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := Decode(tt.in, tt.network)
			switch {
			case tt.refusal:
				if r, ok := ReasonOf(err); !ok || r != WrongNetwork {
					t.Fatalf("Decode = %v, want a WrongNetwork refusal", err)
				}
			case tt.wantErr != "":
				if _, refused := ReasonOf(err); err == nil || refused || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Decode = %v, want a plain error containing %q", err, tt.wantErr)
				}
			default:
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				want := offer.DescriptionHash(f.metadata)
				if inv.AmountMsat != 75000 || inv.Payee != pubHex(f.wall) || inv.DescriptionHash == nil ||
					*inv.DescriptionHash != want || !inv.Timestamp.Equal(t0) || inv.Expiry != 5*time.Minute ||
					inv.Network != tt.network || inv.PaymentHash != sha256.Sum256([]byte("preimage")) {
					t.Fatalf("Decode = %+v", inv)
				}
			}
		})
	}
}

// flip changes one bech32 character to another valid one.
func flip(c byte) string {
	if c == 'q' {
		return "p"
	}
	return "q"
}

// FuzzDecode: the invoice string from the wall's callback, decoded before
// any check. Bounded allocation (a BOLT11 string is at most 7089
// characters, and zpay32 refuses longer ones first); a refusal that says
// so in bounded words; what decodes names a payee and no negative amount.
func FuzzDecode(f *testing.F) {
	fx := newFixture(f)
	good := fx.good()
	f.Add(encode(f, good), "regtest")
	noAmount := good
	noAmount.amount = -1
	f.Add(encode(f, noAmount), "regtest")
	main := good
	main.net = &chaincfg.MainNetParams
	f.Add(encode(f, main), "mainnet")
	f.Add(encode(f, main), "regtest")
	// As a wall's lnd makes them: the description hash of the wall's
	// metadata, a short expiry; and for the other networks an offer names.
	for _, net := range []*chaincfg.Params{&chaincfg.RegressionNetParams, &chaincfg.TestNet3Params, &chaincfg.SigNetParams, &chaincfg.SimNetParams} {
		h := offer.DescriptionHash(fx.metadata)
		inv, err := invoicetest.Sign(invoicetest.Spec{Net: net, Signer: fx.wall, AmountMsat: 10_000, DescHash: &h,
			Hash: sha256.Sum256([]byte("wall preimage")), Created: t0, Expiry: 2 * time.Minute})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(inv, "regtest")
		f.Add(strings.ToUpper(inv), "signet")
	}
	plain := good
	plain.plainDesc = true
	f.Add(encode(f, plain), "regtest")
	f.Add("lnbcrt1", "regtest")
	f.Add("lnbcrt"+strings.Repeat("9", 40)+"1qqqqqq", "regtest")
	f.Add("", "signet")
	f.Fuzz(func(t *testing.T, s, network string) {
		var inv Invoice
		var err error
		fuzzcheck.Alloc(t, "Decode", len(s)+len(network), 64, 256<<10, func() { inv, err = Decode(s, network) })
		if err != nil {
			var r *Refusal
			if errors.As(err, &r) {
				fuzzcheck.ErrorSays(t, err, "invoice refused: wrong network: ", network)
			} else {
				fuzzcheck.ErrorSays(t, err, "invoicecheck: decode")
			}
			if len(err.Error()) > 512 {
				t.Fatalf("error is %d bytes: %.300q...", len(err.Error()), err)
			}
			return
		}
		if inv.Network != network || len(inv.Payee) != 66 || inv.AmountMsat < 0 {
			t.Fatalf("Decode(%q) = %+v", s, inv)
		}
	})
}

// TestDecodeErrorBounded: zpay32 quotes an invoice's amount whole, and a
// hostile wall can checksum any string; the car's log gets a clip.
func TestDecodeErrorBounded(t *testing.T) {
	s, err := bech32.Encode("lnbcrt"+strings.Repeat("9", 3000)+"p", make([]byte, 10))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Decode(s, "regtest")
	if !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), "strconv.ParseUint") || len(err.Error()) > 512 {
		t.Fatalf("err = %.600v (%d bytes), want a clipped ErrDecode", err, len(fmt.Sprint(err)))
	}
	if _, err := Decode(s, strings.Repeat("n", 3000)); err == nil || len(err.Error()) > 512 {
		t.Fatalf("unknown network: %.600v", err)
	}
}
