package lndclient

import (
	"errors"
	"slices"
	"testing"

	"github.com/lightningnetwork/lnd/lnrpc"
	"google.golang.org/protobuf/proto"
	"gopkg.in/macaroon.v2"

	"satwatt/internal/fuzzcheck"
)

// lndMacaroon builds a macaroon the way lnd's bakery lays out its
// identifier, granting ops; the root key does not matter to a reader.
func lndMacaroon(t testing.TB, version byte, ops map[string][]string) []byte {
	t.Helper()
	id := &lnrpc.MacaroonId{Nonce: []byte("0123456789abcdef"), StorageId: []byte("0")}
	for _, entity := range slices.Sorted(func(yield func(string) bool) {
		for e := range ops {
			if !yield(e) {
				return
			}
		}
	}) {
		id.Ops = append(id.Ops, &lnrpc.Op{Entity: entity, Actions: ops[entity]})
	}
	raw, err := proto.Marshal(id)
	if err != nil {
		t.Fatal(err)
	}
	m, err := macaroon.New(make([]byte, 32), append([]byte{version}, raw...), "lnd", macaroon.LatestVersion)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AddFirstPartyCaveat([]byte("time-before 2030-01-01T00:00:00Z")); err != nil {
		t.Fatal(err)
	}
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMacaroonPermissions(t *testing.T) {
	admin := map[string][]string{
		"address": {"read", "write"}, "info": {"read", "write"}, "invoices": {"read", "write"},
		"macaroon": {"generate", "read", "write"}, "message": {"read", "write"},
		"offchain": {"read", "write"}, "onchain": {"read", "write"}, "peers": {"read", "write"},
		"signer": {"generate", "read"},
	}
	tests := []struct {
		name      string
		mac       []byte
		need      Permissions
		wantExtra []string
		wantErr   string
	}{
		{"pay-only for the car", lndMacaroon(t, 3, map[string][]string{
			"info": {"read"}, "offchain": {"read", "write"}}), PayerPermissions, nil, ""},
		{"admin for the car", lndMacaroon(t, 3, admin), PayerPermissions, []string{
			"address:read", "address:write", "info:write", "invoices:read", "invoices:write",
			"macaroon:generate", "macaroon:read", "macaroon:write", "message:read", "message:write",
			"onchain:read", "onchain:write", "peers:read", "peers:write", "signer:generate", "signer:read"}, ""},
		{"invoice macaroon for the wall", lndMacaroon(t, 3, map[string][]string{
			"address": {"read", "write"}, "invoices": {"read", "write"}, "onchain": {"read"}}),
			PayeePermissions, []string{"address:read", "address:write", "onchain:read"}, ""},
		{"per-method macaroon for the car", lndMacaroon(t, 3, map[string][]string{
			"uri": {"/routerrpc.Router/SendPaymentV2", "/lnrpc.Lightning/GetInfo"}}), PayerPermissions, nil, ""},
		{"per-method macaroon with one method too many", lndMacaroon(t, 3, map[string][]string{
			"uri": {"/routerrpc.Router/SendPaymentV2", "/lnrpc.Lightning/SendCoins"}}),
			PayerPermissions, []string{"uri:/lnrpc.Lightning/SendCoins"}, ""},
		{"wildcard", lndMacaroon(t, 3, map[string][]string{"*": {"*"}}), PayerPermissions, []string{"*:*"}, ""},
		{"not lnd's identifier", lndMacaroon(t, 2, nil), PayerPermissions, nil, "version byte 2, want 3"},
		{"hex text, not binary", []byte("0201036c6e64"), PayerPermissions, nil, "not a binary macaroon"},
		{"empty", nil, PayerPermissions, nil, "not a binary macaroon"},
		{"huge", make([]byte, maxMacaroonBytes+1), PayerPermissions, nil, "limit 65536"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			perms, err := MacaroonPermissions(tt.mac)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrMacaroon) {
					t.Fatalf("err = %v, want ErrMacaroon", err)
				}
				fuzzcheck.ErrorSays(t, err, "lndclient: macaroon unreadable", tt.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := Excess(perms, tt.need); !slices.Equal(got, tt.wantExtra) {
				t.Fatalf("Excess(%v) = %v, want %v", perms, got, tt.wantExtra)
			}
		})
	}
}

// FuzzMacaroonPermissions: the macaroon is configuration read from a file
// or an lndconnect URI, so its reader must refuse garbage cleanly.
func FuzzMacaroonPermissions(f *testing.F) {
	f.Add(lndMacaroon(f, 3, map[string][]string{"info": {"read"}, "offchain": {"read", "write"}}))
	f.Add(lndMacaroon(f, 3, map[string][]string{"uri": {"/lnrpc.Lightning/GetInfo"}}))
	f.Add(lndMacaroon(f, 2, nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, mac []byte) {
		var perms []string
		var err error
		fuzzcheck.Alloc(t, "MacaroonPermissions", len(mac), 64, 64<<10, func() {
			perms, err = MacaroonPermissions(mac)
		})
		if err != nil {
			fuzzcheck.ErrorSays(t, err, "lndclient: macaroon unreadable")
			return
		}
		if !slices.IsSorted(perms) {
			t.Fatalf("permissions not sorted: %v", perms)
		}
		if extra := Excess(perms, Permissions{}); len(extra) != len(perms) {
			t.Fatalf("Excess with no need = %v, want all of %v", extra, perms)
		}
	})
}
