// Package offer is the wall's priced offer to the car and its encoding in
// LNURL-pay metadata. Every invoice's description hash is sha256 of that
// metadata, so each payment commits to the price and terms it was made at.
// The package is pure: no HTTP, no Lightning.
package offer

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"
)

// MimeType names the offer entry in the LNURL-pay metadata array.
const MimeType = "application/vnd.satwatt.offer+json"

// MaxMetadataBytes bounds the metadata string. Wallets cap LUD-06 metadata,
// and a hostile wall must not make the car parse megabytes.
const MaxMetadataBytes = 64 << 10

// MaxSessionIDLen is the longest session id accepted.
const MaxSessionIDLen = 64

// ErrInvalid is wrapped by every Validate failure.
var ErrInvalid = errors.New("invalid offer")

// ErrMetadata is wrapped by every metadata parse failure.
var ErrMetadata = errors.New("bad offer metadata")

// Offer is what the wall sells in one session and on what terms.
type Offer struct {
	SessionID      string
	PriceMsatPerWh int64
	IncrementWh    int64 // energy bought by one normal payment
	FirstMultiple  int64 // the first payment buys FirstMultiple increments
	GraceWh        int64 // delivered beyond paid before the wall suspends
	MaxPowerW      int64
	WallNodeKey    string    // 66 lower-case hex digits, compressed secp256k1 public key
	ValidUntil     time.Time // carried in whole unix seconds
	Network        string    // one of Networks
	// TLSCertSHA256 is the SHA-256 of the certificate the wall serves the
	// car with over TLS (64 lower-case hex digits), empty over plain HTTP.
	// Every invoice's description hash covers it, and the wall's node
	// signs the invoice, so the car's checks bind the TLS channel to the
	// node it pays.
	TLSCertSHA256 string
}

// networks are the names an offer may carry; testnet is testnet3.
var networks = []string{"mainnet", "testnet", "testnet4", "signet", "regtest", "simnet"}

// Networks returns the network names an offer may carry.
func Networks() []string { return append([]string(nil), networks...) }

// ValidNetwork reports whether name is one of Networks.
func ValidNetwork(name string) bool {
	for _, n := range networks {
		if n == name {
			return true
		}
	}
	return false
}

// Validate checks every field, so that a caller holding a valid Offer can
// compute costs without further checks.
func (o Offer) Validate() error {
	if err := validSessionID(o.SessionID); err != nil {
		return err
	}
	if o.PriceMsatPerWh <= 0 {
		return fmt.Errorf("%w: price %d msat/Wh must be positive", ErrInvalid, o.PriceMsatPerWh)
	}
	if o.IncrementWh <= 0 {
		return fmt.Errorf("%w: increment %d Wh must be positive", ErrInvalid, o.IncrementWh)
	}
	if o.FirstMultiple < 1 {
		return fmt.Errorf("%w: first-payment multiple %d must be at least 1", ErrInvalid, o.FirstMultiple)
	}
	if o.GraceWh < 0 {
		return fmt.Errorf("%w: grace %d Wh must not be negative", ErrInvalid, o.GraceWh)
	}
	if o.MaxPowerW <= 0 {
		return fmt.Errorf("%w: maximum power %d W must be positive", ErrInvalid, o.MaxPowerW)
	}
	if err := validNodeKey(o.WallNodeKey); err != nil {
		return err
	}
	if o.ValidUntil.IsZero() || o.ValidUntil.Unix() <= 0 {
		return fmt.Errorf("%w: valid-until time %v is not set", ErrInvalid, o.ValidUntil)
	}
	if !ValidNetwork(o.Network) {
		return fmt.Errorf("%w: network %q is not one of %v", ErrInvalid, clip(o.Network), networks)
	}
	if err := validCertHash(o.TLSCertSHA256); err != nil {
		return err
	}
	// The first payment must be priceable: a car multiplying these out
	// must never overflow.
	wh, err := o.FirstPaymentWh()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if _, err := o.CostMsat(wh); err != nil {
		return fmt.Errorf("%w: first payment: %w", ErrInvalid, err)
	}
	return nil
}

func validSessionID(id string) error {
	if len(id) == 0 || len(id) > MaxSessionIDLen {
		return fmt.Errorf("%w: session id is %d bytes, want 1..%d", ErrInvalid, len(id), MaxSessionIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("%w: session id %q has byte %q at %d, want [A-Za-z0-9_-]", ErrInvalid, id, c, i)
		}
	}
	return nil
}

func validNodeKey(k string) error {
	if len(k) != 66 {
		return fmt.Errorf("%w: wall node key is %d hex digits, want 66", ErrInvalid, len(k))
	}
	for i := 0; i < len(k); i++ {
		// Lower case only, so that keys compare as plain strings.
		if c := k[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("%w: wall node key has %q at %d, want lower-case hex", ErrInvalid, c, i)
		}
	}
	b, err := hex.DecodeString(k)
	if err != nil {
		return fmt.Errorf("%w: wall node key %q is not hex: %w", ErrInvalid, k, err)
	}
	if b[0] != 0x02 && b[0] != 0x03 {
		return fmt.Errorf("%w: wall node key starts with %02x, want 02 or 03 (compressed)", ErrInvalid, b[0])
	}
	return nil
}

func validCertHash(h string) error {
	if h == "" {
		return nil
	}
	if len(h) != 64 {
		return fmt.Errorf("%w: TLS certificate hash is %d hex digits, want 64", ErrInvalid, len(h))
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("%w: TLS certificate hash has %q at %d, want lower-case hex", ErrInvalid, c, i)
		}
	}
	return nil
}

// CostMsat is the price of wh watt-hours at this offer's price.
func (o Offer) CostMsat(wh int64) (int64, error) {
	if wh < 0 {
		return 0, fmt.Errorf("offer: cost of %d Wh: energy must not be negative", wh)
	}
	if o.PriceMsatPerWh <= 0 {
		return 0, fmt.Errorf("offer: cost of %d Wh: price %d msat/Wh must be positive", wh, o.PriceMsatPerWh)
	}
	if wh != 0 && o.PriceMsatPerWh > math.MaxInt64/wh {
		return 0, fmt.Errorf("offer: cost of %d Wh at %d msat/Wh overflows int64 msat", wh, o.PriceMsatPerWh)
	}
	return o.PriceMsatPerWh * wh, nil
}

// FirstPaymentWh is the energy the first payment buys.
func (o Offer) FirstPaymentWh() (int64, error) {
	if o.IncrementWh <= 0 || o.FirstMultiple < 1 {
		return 0, fmt.Errorf("offer: first payment: increment %d Wh and multiple %d must be positive", o.IncrementWh, o.FirstMultiple)
	}
	if o.IncrementWh > math.MaxInt64/o.FirstMultiple {
		return 0, fmt.Errorf("offer: first payment: %d x %d Wh overflows int64", o.FirstMultiple, o.IncrementWh)
	}
	return o.IncrementWh * o.FirstMultiple, nil
}

// Equal reports whether two offers carry the same terms as metadata would
// carry them (ValidUntil in whole seconds).
func (o Offer) Equal(p Offer) bool {
	return o.SessionID == p.SessionID &&
		o.PriceMsatPerWh == p.PriceMsatPerWh &&
		o.IncrementWh == p.IncrementWh &&
		o.FirstMultiple == p.FirstMultiple &&
		o.GraceWh == p.GraceWh &&
		o.MaxPowerW == p.MaxPowerW &&
		o.WallNodeKey == p.WallNodeKey &&
		o.ValidUntil.Unix() == p.ValidUntil.Unix() &&
		o.Network == p.Network &&
		o.TLSCertSHA256 == p.TLSCertSHA256
}

// DescriptionHash is what a BOLT11 invoice for this metadata must carry:
// sha256 of the exact metadata string, byte for byte as served.
func DescriptionHash(metadata string) [32]byte {
	return sha256.Sum256([]byte(metadata))
}
