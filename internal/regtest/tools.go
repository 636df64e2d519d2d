//go:build tools

// This file is never compiled into anything. Its blank imports keep the
// daemons the regtest harness runs (lnd, lncli, btcd, btcctl) in go.mod and
// go.sum, so scripts/lnd-bins.sh can build them from this module's own graph:
// `go install pkg@version` refuses lnd because of its replace directives.
package regtest

import (
	_ "github.com/btcsuite/btcd"
	_ "github.com/btcsuite/btcd/cmd/btcctl"
	_ "github.com/lightningnetwork/lnd/cmd/lncli"
	_ "github.com/lightningnetwork/lnd/cmd/lnd"
)
