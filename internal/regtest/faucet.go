package regtest

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"sync"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"
)

// faucet owns the key btcd mines to, and pays nodes from its coinbases.
//
// Mining to a node's own address needs that node's wallet before btcd starts,
// so btcd has to restart with --miningaddr once lnd is up. Tried with lnd
// 0.21: walletbalance then shows the coinbases but every send fails with
// "insufficient funds". With its own key the harness never restarts btcd,
// and mines while the nodes start.
type faucet struct {
	key      *btcec.PrivateKey
	addr     btcutil.Address
	pkScript []byte

	mu   sync.Mutex
	next int64 // lowest block height whose coinbase may still be unspent
}

var netParams = &chaincfg.RegressionNetParams

// coinbaseMaturity is the depth at which the faucet spends a coinbase; one
// more than the consensus rule, so the spend is valid in the next block
// whatever btcd's mempool thinks the next height is.
var coinbaseMaturity = int64(netParams.CoinbaseMaturity) + 1

func newFaucet() (*faucet, error) {
	key, err := btcec.NewPrivateKey()
	if err != nil {
		return nil, fmt.Errorf("faucet key: %w", err)
	}
	addr, err := btcutil.NewAddressPubKeyHash(btcutil.Hash160(key.PubKey().SerializeCompressed()), netParams)
	if err != nil {
		return nil, fmt.Errorf("faucet address: %w", err)
	}
	script, err := txscript.PayToAddrScript(addr)
	if err != nil {
		return nil, fmt.Errorf("faucet script: %w", err)
	}
	return &faucet{key: key, addr: addr, pkScript: script, next: 1}, nil
}

// send pays amounts (satoshis by address) in one transaction from mature
// coinbases and returns its txid. The change goes back to the faucet's
// address as a plain output it does not track: the chain mines a fresh
// coinbase every block.
func (f *faucet) send(ctx context.Context, b *Btcd, amounts map[string]int64) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tx := wire.NewMsgTx(2)
	var want int64
	// Sorted, so the transaction does not depend on map order.
	addrs := make([]string, 0, len(amounts))
	for a := range amounts {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	for _, a := range addrs {
		addr, err := btcutil.DecodeAddress(a, netParams)
		if err != nil {
			return "", fmt.Errorf("faucet: address %q: %w", a, err)
		}
		script, err := txscript.PayToAddrScript(addr)
		if err != nil {
			return "", fmt.Errorf("faucet: address %q: %w", a, err)
		}
		tx.AddTxOut(wire.NewTxOut(amounts[a], script))
		want += amounts[a]
	}
	tip, err := b.height(ctx)
	if err != nil {
		return "", err
	}
	var have int64
	for h := f.next; ; h++ {
		// 2 sat/vB over a generous size: P2PKH inputs, wide outputs, change.
		fee := 2 * int64(10+148*(len(tx.TxIn)+1)+43*(len(tx.TxOut)+1))
		if have >= want+fee {
			if change := have - want - fee; change > 1000 {
				tx.AddTxOut(wire.NewTxOut(change, f.pkScript))
			}
			f.next = h
			break
		}
		if tip-h+1 < coinbaseMaturity {
			return "", fmt.Errorf("faucet: mature coinbases hold %d sat, %d needed; mine more blocks", have, want+fee)
		}
		op, value, err := coinbaseOutput(ctx, b, h)
		if err != nil {
			return "", err
		}
		if value == 0 { // spent by an earlier send
			continue
		}
		tx.AddTxIn(wire.NewTxIn(op, nil, nil))
		have += value
	}
	for i := range tx.TxIn {
		sig, err := txscript.SignatureScript(tx, i, f.pkScript, txscript.SigHashAll, f.key, true)
		if err != nil {
			return "", fmt.Errorf("faucet: sign: %w", err)
		}
		tx.TxIn[i].SignatureScript = sig
	}
	var raw bytes.Buffer
	if err := tx.Serialize(&raw); err != nil {
		return "", fmt.Errorf("faucet: %w", err)
	}
	if _, err := b.call(ctx, "sendrawtransaction", hex.EncodeToString(raw.Bytes())); err != nil {
		return "", fmt.Errorf("faucet: %w", err)
	}
	return tx.TxHash().String(), nil
}

// coinbaseOutput returns the coinbase output of the block at height and its
// value, zero when it is already spent.
func coinbaseOutput(ctx context.Context, b *Btcd, height int64) (*wire.OutPoint, int64, error) {
	res, err := b.call(ctx, "getblockhash", height)
	if err != nil {
		return nil, 0, err
	}
	var hash string
	if err := json.Unmarshal(res, &hash); err != nil {
		return nil, 0, fmt.Errorf("getblockhash %d: %w", height, err)
	}
	res, err = b.call(ctx, "getblock", hash, 1)
	if err != nil {
		return nil, 0, err
	}
	var block struct {
		Tx []string `json:"tx"`
	}
	if err := json.Unmarshal(res, &block); err != nil || len(block.Tx) == 0 {
		return nil, 0, fmt.Errorf("getblock %s: %s: %v", hash, res, err)
	}
	txid, err := chainhash.NewHashFromStr(block.Tx[0])
	if err != nil {
		return nil, 0, fmt.Errorf("coinbase txid %q: %w", block.Tx[0], err)
	}
	res, err = b.call(ctx, "gettxout", block.Tx[0], 0, false)
	if err != nil {
		return nil, 0, err
	}
	var out *struct {
		Value float64 `json:"value"`
	}
	if err := json.Unmarshal(res, &out); err != nil {
		return nil, 0, fmt.Errorf("gettxout %s:0: %s: %w", block.Tx[0], res, err)
	}
	if out == nil {
		return nil, 0, nil
	}
	return wire.NewOutPoint(txid, 0), int64(math.Round(out.Value * btcutil.SatoshiPerBitcoin)), nil
}
