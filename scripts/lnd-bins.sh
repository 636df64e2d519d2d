#!/usr/bin/env bash
# Build lnd, lncli, btcd and btcctl for the regtest harness into CACHE_DIR/bin,
# from this module's own graph (go.mod pins them through
# internal/regtest/tools.go). Usage: lnd-bins.sh CACHE_DIR
#
# A second run is fast: it does nothing while every binary is newer than
# go.sum, and otherwise Go's build cache does the work.
set -euo pipefail

if [ "$#" -ne 1 ]; then
	echo "usage: $0 CACHE_DIR" >&2
	exit 2
fi
mkdir -p "$1/bin"
bin=$(cd "$1/bin" && pwd)
# The module is the repository this script lives in, wherever it is called from.
cd "$(dirname "$0")/.."

# The RPC sub-servers the project and its tests use; plain lnd leaves them out.
tags="signrpc walletrpc chainrpc invoicesrpc routerrpc peersrpc"
names="lnd lncli btcd btcctl"

fresh() {
	for n in $names; do
		[ -x "$bin/$n" ] && [ "$bin/$n" -nt go.sum ] || return 1
	done
}

# Parallel test packages may all ask for the binaries at once: build once.
exec 9>"$bin/.lock"
if command -v flock >/dev/null 2>&1; then
	flock 9
fi

if fresh; then
	echo "lnd-bins: $bin is up to date"
	exit 0
fi

start=$(date +%s)
build() { # output name, then go build arguments
	local out=$1
	shift
	echo "lnd-bins: building $out"
	# Build beside the target and rename, so an interrupted build never
	# leaves a truncated binary that looks fresh.
	go build -o "$bin/.$out.tmp" "$@"
	mv -f "$bin/.$out.tmp" "$bin/$out"
}
build lnd -tags "$tags" github.com/lightningnetwork/lnd/cmd/lnd
build lncli -tags "$tags" github.com/lightningnetwork/lnd/cmd/lncli
build btcd github.com/btcsuite/btcd
build btcctl github.com/btcsuite/btcd/cmd/btcctl
echo "lnd-bins: built $names into $bin in $(($(date +%s) - start)) s"
