package lndclient

import (
	"errors"
	"fmt"
	"net"
	"strconv"
)

// DefaultRPCAddr is lnd's gRPC address when none is given.
const DefaultRPCAddr = "127.0.0.1:10009"

// Flags are the two ways a command is told where its lnd is: an lndconnect
// URI (a flag, or an environment variable that keeps the macaroon out of
// the process list), or an address with paths to lnd's certificate and a
// macaroon.
type Flags struct {
	RPCAddr, TLSCertPath, MacaroonPath string
	LndConnect                         string
}

// Resolve checks the flags before anything starts, taking the URI from
// env (read with getenv) when no flag says where lnd is, and filling in
// DefaultRPCAddr. Flags win over the environment, as a command line
// should. Each error names the flag or variable at fault and never quotes
// a URI's macaroon.
func (f *Flags) Resolve(getenv func(string) string, env string) error {
	paths := f.RPCAddr != "" || f.TLSCertPath != "" || f.MacaroonPath != ""
	from := "--lndconnect"
	if f.LndConnect == "" && !paths {
		f.LndConnect, from = getenv(env), "$"+env
	}
	if f.LndConnect != "" {
		if paths {
			return fmt.Errorf("%s and --lnd-rpc, --lnd-tlscert or --lnd-macaroon are both given: give one or the other", from)
		}
		if err := CheckLndConnect(f.LndConnect); err != nil {
			return fmt.Errorf("%s: %w", from, err)
		}
		return nil
	}
	if f.RPCAddr == "" {
		f.RPCAddr = DefaultRPCAddr
	}
	if err := CheckHostPort(f.RPCAddr); err != nil {
		return fmt.Errorf("--lnd-rpc %q: want HOST:PORT of lnd's gRPC: %w", f.RPCAddr, err)
	}
	switch {
	case f.TLSCertPath == "":
		return fmt.Errorf("--lnd-tlscert is required (lnd's tls.cert), or give --lndconnect or $%s", env)
	case f.MacaroonPath == "":
		return fmt.Errorf("--lnd-macaroon is required, or give --lndconnect or $%s", env)
	}
	return nil
}

// CheckHostPort checks a HOST:PORT address to dial: a host, and a port
// from 1 to 65535.
func CheckHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("no host")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("port %q is not 1 to 65535", port)
	}
	return nil
}
