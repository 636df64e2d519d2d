package lndclient

import (
	"strings"
	"testing"
)

func TestFlagsResolve(t *testing.T) {
	const uri = "lndconnect://h:10009?macaroon=AgEDbG5kAvgBAwoQ"
	for _, tc := range []struct {
		name     string
		f        Flags
		env      string
		want     string // error text; "" for accepted
		wantAddr string
	}{
		{"the three flags", Flags{TLSCertPath: "tls.cert", MacaroonPath: "m"}, "", "", DefaultRPCAddr},
		{"an address of one's own", Flags{RPCAddr: "[::1]:10010", TLSCertPath: "c", MacaroonPath: "m"}, "", "", "[::1]:10010"},
		{"a URI", Flags{LndConnect: uri}, "", "", ""},
		{"a URI from the environment", Flags{}, uri, "", ""},
		{"the flag's URI before the environment's", Flags{LndConnect: uri}, "garbage", "", ""},
		{"a URI and a path", Flags{LndConnect: uri, MacaroonPath: "m"}, "", "--lndconnect and --lnd-rpc", ""},
		{"the flags before the environment's URI", Flags{TLSCertPath: "c", MacaroonPath: "m"}, uri, "", DefaultRPCAddr},
		{"the flags before the environment's URI, one missing", Flags{TLSCertPath: "c"}, uri, "--lnd-macaroon is required", ""},
		{"a URI without a macaroon", Flags{LndConnect: "lndconnect://h:1"}, "", "--lndconnect: lndconnect URI: no macaroon", ""},
		{"no certificate", Flags{MacaroonPath: "m"}, "", "--lnd-tlscert is required", ""},
		{"no macaroon", Flags{TLSCertPath: "c"}, "", "--lnd-macaroon is required", ""},
		{"an address without a port", Flags{RPCAddr: "127.0.0.1", TLSCertPath: "c", MacaroonPath: "m"}, "", `--lnd-rpc "127.0.0.1"`, ""},
		{"port 0", Flags{RPCAddr: "h:0", TLSCertPath: "c", MacaroonPath: "m"}, "", `port "0" is not 1 to 65535`, ""},
		{"no host", Flags{RPCAddr: ":10009", TLSCertPath: "c", MacaroonPath: "m"}, "", "no host", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			err := f.Resolve(func(k string) string {
				if k == "LND_URI" {
					return tc.env
				}
				return ""
			}, "LND_URI")
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want one saying %q", err, tc.want)
				}
				if strings.Contains(err.Error(), "AgEDbG5k") {
					t.Errorf("the error quotes the macaroon: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.RPCAddr != tc.wantAddr {
				t.Errorf("address %q, want %q", f.RPCAddr, tc.wantAddr)
			}
		})
	}
}
