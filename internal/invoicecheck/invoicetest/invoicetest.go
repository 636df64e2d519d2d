// Package invoicetest signs real BOLT 11 invoices with throw-away keys, for
// tests of the code that decodes and checks them (and of walls that serve
// them, honest or not). The invoices are genuine: any decoder accepts them.
package invoicetest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/ecdsa"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/zpay32"
)

// Key makes a deterministic signing key from a seed, so failures reproduce.
func Key(seed string) *btcec.PrivateKey {
	h := sha256.Sum256([]byte(seed))
	k, _ := btcec.PrivKeyFromBytes(h[:])
	return k
}

// PubHex is a key's compressed public key in lower-case hex, as offers
// name the wall's node.
func PubHex(k *btcec.PrivateKey) string {
	return hex.EncodeToString(k.PubKey().SerializeCompressed())
}

// Spec describes an invoice.
type Spec struct {
	Net        *chaincfg.Params // nil: regtest
	Signer     *btcec.PrivateKey
	AmountMsat int64     // negative: no amount
	DescHash   *[32]byte // nil: a plain description instead
	Hash       [32]byte  // the payment hash
	Created    time.Time
	Expiry     time.Duration
}

// Sign builds and signs the invoice.
func Sign(s Spec) (string, error) {
	net := s.Net
	if net == nil {
		net = &chaincfg.RegressionNetParams
	}
	if s.Signer == nil {
		return "", fmt.Errorf("invoicetest: no signer")
	}
	var opts []func(*zpay32.Invoice)
	if s.AmountMsat >= 0 {
		opts = append(opts, zpay32.Amount(lnwire.MilliSatoshi(s.AmountMsat)))
	}
	if s.DescHash != nil {
		opts = append(opts, zpay32.DescriptionHash(*s.DescHash))
	} else {
		opts = append(opts, zpay32.Description("energy"))
	}
	opts = append(opts, zpay32.Expiry(s.Expiry))
	inv, err := zpay32.NewInvoice(net, s.Hash, s.Created, opts...)
	if err != nil {
		return "", fmt.Errorf("invoicetest: %w", err)
	}
	return inv.Encode(zpay32.MessageSigner{SignCompact: func(msg []byte) ([]byte, error) {
		return ecdsa.SignCompact(s.Signer, chainhash.HashB(msg), true), nil
	}})
}
