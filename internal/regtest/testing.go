package regtest

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"satwatt/internal/prereq"
)

// StartForTest starts a network for t and closes it when t ends. The harness
// logs to the test's output. Missing binaries that cannot be built skip the
// test, or fail it under CI=true; any other error fails it.
func StartForTest(t testing.TB, cfg Config) *Network {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	// t.Context ends before cleanups run, which would SIGTERM every daemon
	// at once; Close below stops them in order instead.
	n, err := Start(context.WithoutCancel(t.Context()), cfg)
	if err != nil {
		FailOrSkip(t, err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return n
}

// FailOrSkip ends t over err: a skip naming the build command when only the
// binaries are missing outside CI, a failure otherwise.
func FailOrSkip(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrNoBinaries) {
		prereq.Missing(t, "%v", err)
	}
	t.Fatal(err)
}
