// Package prereq decides what a test does when something it needs is not
// installed: under CI=true every prerequisite must be there, so the test
// fails; elsewhere it skips, saying what is missing.
package prereq

import (
	"fmt"
	"os"
	"testing"
)

// Missing ends t over a missing prerequisite. The message should name the
// command that installs it.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// InCI reports whether the tests run under CI=true.
func InCI() bool { return os.Getenv("CI") == "true" }
