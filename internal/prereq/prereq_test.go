package prereq

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMissing runs a child test that calls Missing, once as CI and once
// not, and checks it failed or skipped with the message.
func TestMissing(t *testing.T) {
	if os.Getenv("PREREQ_CHILD") == "1" {
		Missing(t, "no %s; install with: %s", "frobnicator", "apt-get install frob")
		return
	}
	tests := []struct {
		ci       string
		wantFail bool
		want     string
	}{
		{"true", true, "--- FAIL: TestMissing"},
		{"", false, "--- SKIP: TestMissing"},
	}
	for _, tt := range tests {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestMissing$", "-test.v")
		cmd.Env = append(os.Environ(), "PREREQ_CHILD=1", "CI="+tt.ci)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tt.wantFail || !strings.Contains(string(out), tt.want) ||
			!strings.Contains(string(out), "no frobnicator; install with: apt-get install frob") {
			t.Errorf("CI=%q: err %v, output:\n%s", tt.ci, err, out)
		}
	}
}
