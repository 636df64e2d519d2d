package invoicecheck

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/btcsuite/btcd/chaincfg"
	"github.com/lightningnetwork/lnd/zpay32"
)

// ErrDecode is wrapped by every failure to read a string as a BOLT11
// invoice (as opposed to a well-formed invoice that is refused).
var ErrDecode = errors.New("not a valid BOLT11 invoice")

// netParams maps offer network names to chain parameters.
var netParams = map[string]*chaincfg.Params{
	"mainnet":  &chaincfg.MainNetParams,
	"testnet":  &chaincfg.TestNet3Params,
	"testnet4": &chaincfg.TestNet4Params,
	"signet":   &chaincfg.SigNetParams,
	"regtest":  &chaincfg.RegressionNetParams,
	"simnet":   &chaincfg.SimNetParams,
}

// hrpPrefixes are the BOLT11 prefixes after "ln", longest first so that
// "bcrt" is not read as "bc". testnet and testnet4 share "tb": an invoice
// cannot tell them apart.
var hrpPrefixes = []struct{ prefix, network string }{
	{"bcrt", "regtest"},
	{"bc", "mainnet"},
	{"tbs", "signet"},
	{"tb", "testnet"},
	{"sb", "simnet"},
}

func hrpPrefix(network string) string {
	for _, p := range hrpPrefixes {
		if p.network == network || (network == "testnet4" && p.network == "testnet") {
			return p.prefix
		}
	}
	return ""
}

// Decode reads a BOLT11 invoice for network (an offer network name) and
// verifies its signature. An invoice for another network is a
// *Refusal with Reason WrongNetwork; anything that is not an invoice wraps
// ErrDecode.
func Decode(bolt11 string, network string) (Invoice, error) {
	params, ok := netParams[network]
	if !ok {
		return Invoice{}, fmt.Errorf("invoicecheck: decode: unknown network %s", clip(network))
	}
	if got, ok := invoiceNetwork(bolt11); ok && hrpPrefix(got) != hrpPrefix(network) {
		return Invoice{}, refuse(WrongNetwork, "want an invoice for %s (ln%s), got one for %s", network, hrpPrefix(network), got)
	}
	inv, err := zpay32.Decode(bolt11, params)
	if err != nil {
		// zpay32 may quote the invoice's amount or feature bits whole.
		return Invoice{}, fmt.Errorf("invoicecheck: decode %s: %w: %w", clip(bolt11), ErrDecode, &clippedError{err})
	}
	out := Invoice{
		PaymentHash: *inv.PaymentHash,
		Payee:       hex.EncodeToString(inv.Destination.SerializeCompressed()),
		Timestamp:   inv.Timestamp,
		Expiry:      inv.Expiry(),
		Network:     network,
	}
	if inv.MilliSat != nil {
		if uint64(*inv.MilliSat) > math.MaxInt64 {
			return Invoice{}, fmt.Errorf("invoicecheck: decode %s: %w: amount %d msat does not fit int64", clip(bolt11), ErrDecode, uint64(*inv.MilliSat))
		}
		out.AmountMsat = int64(*inv.MilliSat)
	}
	if inv.DescriptionHash != nil {
		h := *inv.DescriptionHash
		out.DescriptionHash = &h
	}
	return out, nil
}

// invoiceNetwork reads the network from the human-readable part, so that
// an invoice for another network is told apart from garbage.
func invoiceNetwork(s string) (string, bool) {
	s = strings.ToLower(s)
	i := strings.LastIndexByte(s, '1')
	if i < 0 || !strings.HasPrefix(s, "ln") {
		return "", false
	}
	rest := s[2:i]
	for _, p := range hrpPrefixes {
		if !strings.HasPrefix(rest, p.prefix) {
			continue
		}
		// What follows the prefix is an amount, which starts with a digit.
		if amt := rest[len(p.prefix):]; amt == "" || amt[0] >= '0' && amt[0] <= '9' {
			return p.network, true
		}
	}
	return "", false
}

// clip shortens an untrusted string for an error message.
func clip(s string) string {
	const n = 24
	if len(s) > n {
		return fmt.Sprintf("%q...", s[:n])
	}
	return fmt.Sprintf("%q", s)
}

// clippedError is err with its message shortened to what a log line
// should carry of an untrusted invoice.
type clippedError struct{ err error }

func (e *clippedError) Error() string {
	const n = 200
	msg := e.err.Error()
	if len(msg) <= n {
		return msg
	}
	i := n
	for i > 0 && !utf8.RuneStart(msg[i]) {
		i--
	}
	return msg[:i] + "..."
}

func (e *clippedError) Unwrap() error { return e.err }
