// Package fuzzcheck holds the checks that every fuzz target makes of a
// parser fed outside input, so that each target states them the same way:
// the parser's allocation stays proportional to its input, and a refusal
// says what is wrong and where.
package fuzzcheck

import (
	"flag"
	"runtime"
	"strings"
	"testing"
)

// Alloc runs parse once and fails t if it allocated more than perByte
// bytes for each of the input's n bytes plus fixed. A parser that trusts a
// length field from the wire shows up here long before it exhausts memory.
// The count is the whole process's, so a fuzz worker (one input at a time)
// measures the parser alone; the bound is generous for that reason.
func Alloc(t testing.TB, what string, n int, perByte, fixed uint64, parse func()) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	parse()
	runtime.ReadMemStats(&after)
	got := after.TotalAlloc - before.TotalAlloc
	if limit := perByte*uint64(n) + fixed; got > limit {
		t.Fatalf("%s: allocated %d bytes for %d bytes of input, limit %d", what, got, n, limit)
	}
}

// ErrorSays fails t unless err's message starts with prefix (the parser's
// name, so a log line says which parser refused) and contains every one of
// where (the field, line or offset it refused at).
func ErrorSays(t testing.TB, err error, prefix string, where ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("want an error, got none")
		return
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) {
		t.Fatalf("error %q does not start with %q", msg, prefix)
		return
	}
	for _, w := range where {
		if !strings.Contains(msg, w) {
			t.Fatalf("error %q does not say %q", msg, w)
		}
	}
}

// NamesFlag checks a command's refusal of a command line: it starts with
// "usage: " and names a flag of fs or one of vars (environment variables),
// or says which argument the flag package could not take.
func NamesFlag(t testing.TB, err error, fs *flag.FlagSet, vars ...string) {
	t.Helper()
	ErrorSays(t, err, "usage: ")
	msg := err.Error()
	named := strings.Contains(msg, "flag provided but not defined: -") || strings.Contains(msg, "bad flag syntax: ") ||
		strings.Contains(msg, "unexpected arguments: ")
	fs.VisitAll(func(fl *flag.Flag) {
		named = named || strings.Contains(msg, "-"+fl.Name)
	})
	for _, v := range vars {
		named = named || strings.Contains(msg, v)
	}
	if !named {
		t.Fatalf("error %q names no flag", err)
	}
}

// NoMacaroon checks that err quotes the macaroon of none of the lndconnect
// URIs.
func NoMacaroon(t testing.TB, err error, uris ...string) {
	t.Helper()
	for _, uri := range uris {
		_, q, ok := strings.Cut(uri, "macaroon=")
		q, _, _ = strings.Cut(q, "&")
		if ok && len(q) >= 8 && strings.Count(uri, q) == 1 && strings.Contains(err.Error(), q) {
			t.Fatalf("error %q quotes the macaroon", err)
		}
	}
}
