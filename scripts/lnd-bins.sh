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
echo "lnd-bins: building $names"
# One go build for all four: their compiles and links share the cores,
# where four builds in a row would each wait for the last link. Built
# into a fresh folder and renamed, so an interrupted build never leaves a
# truncated binary that looks fresh. The tags select lnd's sub-servers;
# btcd has no files they choose.
tmp=$(mktemp -d "$bin/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
go build -tags "$tags" -o "$tmp/" \
	github.com/lightningnetwork/lnd/cmd/lnd \
	github.com/lightningnetwork/lnd/cmd/lncli \
	github.com/btcsuite/btcd \
	github.com/btcsuite/btcd/cmd/btcctl
for n in $names; do
	mv -f "$tmp/$n" "$bin/$n"
done
echo "lnd-bins: built $names into $bin in $(($(date +%s) - start)) s"
