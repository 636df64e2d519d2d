package lndclient

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lightningnetwork/lnd/lnrpc"
	"google.golang.org/protobuf/proto"
	"gopkg.in/macaroon.v2"
)

// A macaroon's permissions are written in its identifier, which the holder
// can read without asking lnd: lnd's bakery identifiers are a version byte
// followed by a protobuf MacaroonId listing entity:action pairs. Reading
// them at start lets a command warn that it was given more power than it
// uses, before a stolen car gateway can spend or move on-chain funds.

// bakeryIDVersion is the identifier version lnd's macaroon bakery writes.
const bakeryIDVersion = 3

// maxMacaroonBytes bounds what MacaroonPermissions reads: lnd's own
// macaroons are a few hundred bytes; caveats add tens each.
const maxMacaroonBytes = 64 << 10

// ErrMacaroon: a macaroon could not be read.
var ErrMacaroon = errors.New("macaroon unreadable")

// Permissions are what a command's calls need, as lnd names them:
// entity:action pairs, and uri:<gRPC method> for macaroons baked per method.
type Permissions struct {
	Perms []string
	URIs  []string
}

// PayerPermissions: the car pays invoices and reads what it can spend.
var PayerPermissions = Permissions{
	Perms: []string{"info:read", "offchain:read", "offchain:write"},
	URIs: []string{
		"/lnrpc.Lightning/GetInfo",
		"/lnrpc.Lightning/DecodePayReq",
		"/lnrpc.Lightning/ListChannels",
		"/routerrpc.Router/SendPaymentV2",
		"/routerrpc.Router/TrackPaymentV2",
	},
}

// PayeePermissions: the wall creates, watches and cancels invoices.
var PayeePermissions = Permissions{
	Perms: []string{"info:read", "invoices:read", "invoices:write"},
	URIs: []string{
		"/lnrpc.Lightning/GetInfo",
		"/lnrpc.Lightning/AddInvoice",
		"/lnrpc.Lightning/LookupInvoice",
		"/lnrpc.Lightning/SubscribeInvoices",
		"/invoicesrpc.Invoices/CancelInvoice",
	},
}

// MacaroonPermissions lists the permissions a binary macaroon grants, as
// "entity:action" strings ("uri:/pkg.Service/Method" for per-method ones),
// sorted. It reads the macaroon only; whether lnd accepts it is Dial's
// business.
func MacaroonPermissions(mac []byte) ([]string, error) {
	if len(mac) > maxMacaroonBytes {
		return nil, fmt.Errorf("lndclient: %w: %d bytes, limit %d", ErrMacaroon, len(mac), maxMacaroonBytes)
	}
	var m macaroon.Macaroon
	if err := m.UnmarshalBinary(mac); err != nil {
		return nil, fmt.Errorf("lndclient: %w: not a binary macaroon: %w", ErrMacaroon, err)
	}
	id := m.Id()
	if len(id) == 0 || id[0] != bakeryIDVersion {
		return nil, fmt.Errorf("lndclient: %w: identifier is not lnd's (version byte %s, want %d)",
			ErrMacaroon, firstByte(id), bakeryIDVersion)
	}
	var mid lnrpc.MacaroonId
	if err := proto.Unmarshal(id[1:], &mid); err != nil {
		return nil, fmt.Errorf("lndclient: %w: identifier: %w", ErrMacaroon, err)
	}
	var perms []string
	for _, op := range mid.Ops {
		for _, a := range op.Actions {
			perms = append(perms, op.Entity+":"+a)
		}
	}
	slices.Sort(perms)
	return slices.Compact(perms), nil
}

func firstByte(b []byte) string {
	if len(b) == 0 {
		return "missing"
	}
	return fmt.Sprint(b[0])
}

// Excess returns the granted permissions that need does not use, sorted.
// lnd's "*" wildcards (an entity or action of "*") always count as excess
// unless need holds exactly that pair.
func Excess(granted []string, need Permissions) []string {
	var extra []string
	for _, g := range granted {
		if uri, ok := strings.CutPrefix(g, "uri:"); ok {
			if slices.Contains(need.URIs, uri) {
				continue
			}
		} else if slices.Contains(need.Perms, g) {
			continue
		}
		extra = append(extra, g)
	}
	return extra
}
