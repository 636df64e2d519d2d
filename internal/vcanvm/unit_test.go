package vcanvm

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"satwatt/internal/prereq"
)

// TestArchiveExtracts checks the hand-written newc output against the
// system's cpio, an independent reader of the format.
func TestArchiveExtracts(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		missing(t, "no cpio to check the archive with (%s)", InstallCommand)
	}
	dir := t.TempDir()
	host := filepath.Join(dir, "host.bin")
	// Odd lengths exercise the padding after names and bodies.
	if err := os.WriteFile(host, []byte("abcde"), 0o644); err != nil {
		t.Fatal(err)
	}
	im := newImage()
	im.addHost("/usr/lib/x/host.bin", host, 0o755)
	im.addData("/init", []byte("#!/bin/sh\n"), 0o755)
	im.addData("/a/bc", []byte("xyz"), 0o600)
	var buf bytes.Buffer
	if err := im.write(&buf); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cpio", "-i", "-d") // names carry no leading slash
	cmd.Dir = out
	cmd.Stdin = &buf
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, msg)
	}
	for name, want := range map[string]string{"usr/lib/x/host.bin": "abcde", "init": "#!/bin/sh\n", "a/bc": "xyz"} {
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil || string(got) != want {
			t.Errorf("%s: got %q, %v; want %q", name, got, err, want)
		}
	}
	if st, err := os.Stat(filepath.Join(out, "init")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("init mode: %v, %v", st, err)
	}
	if st, err := os.Stat(filepath.Join(out, "dev")); err != nil || !st.IsDir() {
		t.Errorf("dev: %v, %v", st, err)
	}
}

func TestParseLdd(t *testing.T) {
	out := "\tlinux-vdso.so.1 (0x00007ffd)\n" +
		"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f69)\n" +
		"\t/lib64/ld-linux-x86-64.so.2 (0x00007f69)\n"
	got, err := parseLdd(out)
	want := []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, %v; want %v", got, err, want)
	}
	if _, err := parseLdd("\tlibfoo.so.1 => not found\n"); err == nil {
		t.Fatal("a missing library was not reported")
	}
}

func TestParseMarkers(t *testing.T) {
	console := "boot noise\n" + markerReady + " kernel=x\n" +
		markerStart + " name=a\n=== RUN T\nPASS\n" + markerExit + " name=a code=0\n" +
		markerStart + " name=b\n--- FAIL: T\n" + markerExit + " name=b code=1\n" +
		markerStart + " name=c\npanic: hung\n"
	res := Result{Binaries: []BinaryResult{{Name: "a"}, {Name: "b"}, {Name: "c"}, {Name: "d"}}}
	parseMarkers(console, &res)
	want := []BinaryResult{
		{Name: "a", Ran: true, Exited: true, ExitCode: 0, Output: "=== RUN T\nPASS\n"},
		{Name: "b", Ran: true, Exited: true, ExitCode: 1, Output: "--- FAIL: T\n"},
		{Name: "c", Ran: true, Output: "panic: hung\n"},
		{Name: "d"},
	}
	if !reflect.DeepEqual(res.Binaries, want) {
		t.Fatalf("got %+v\nwant %+v", res.Binaries, want)
	}
}

// TestInitScriptParses checks the generated /init is valid sh with the
// awkward values quoted, and that only a run with a network sets one up.
func TestInitScriptParses(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		missing(t, "no sh to check the init script with")
	}
	always := []string{
		`export ODD='it'\''s "x" $y'`,
		"insmod /lib/satwatt/can.ko",
		"'/run/tests/canbus/canbus.test' -test.v -test.timeout=4m30s '-test.run' 'Test A|B'",
		markerExit + " name=canbus code=$?",
		"poweroff -f",
	}
	netLines := []string{
		"insmod /lib/satwatt/e1000.ko",
		"ip addr add 10.0.2.15/24 dev eth0",
		"ip route add default via 10.0.2.2",
	}
	for _, network := range []bool{false, true} {
		script := string(initScript(map[string]string{"CI": "true", "ODD": `it's "x" $y`},
			[]TestBinary{{Name: "canbus", Args: []string{"-test.run", "Test A|B"}}}, "4m30s", network))
		cmd := exec.Command(sh, "-n")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("network %v: sh -n: %v\n%s\n%s", network, err, out, script)
		}
		for _, want := range always {
			if !strings.Contains(script, want) {
				t.Errorf("network %v: script lacks %q:\n%s", network, want, script)
			}
		}
		for _, line := range netLines {
			if strings.Contains(script, line) != network {
				t.Errorf("network %v: script has %q: %v\n%s", network, line, !network, script)
			}
		}
	}
}

func TestNetworkQEMUArgs(t *testing.T) {
	tests := []struct {
		name string
		net  *Network
		want string
	}{
		{"none", nil, "-nic none"},
		{"no forwards", &Network{}, "-netdev user,id=n0,net=10.0.2.0/24,host=10.0.2.2 -device e1000,netdev=n0,romfile="},
		{"forwards", &Network{Forward: []int{8080, 9090}},
			"-netdev user,id=n0,net=10.0.2.0/24,host=10.0.2.2,hostfwd=tcp:127.0.0.1:8080-10.0.2.15:8080,hostfwd=tcp:127.0.0.1:9090-10.0.2.15:9090 -device e1000,netdev=n0,romfile="},
	}
	for _, tt := range tests {
		if got := strings.Join(tt.net.qemuArgs(), " "); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestMentionsVCAN(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct {
		src  string
		want bool
	}{
		"plain_test.go": {"package p\n", false},
		"vcan_test.go":  {"//go:build vcan\n\npackage p\n", true},
		"and_test.go":   {"// Copyright\n\n//go:build linux && vcan\n\npackage p\n", true},
		"other_test.go": {"//go:build integration\n\npackage p\n", false},
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(c.src), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := mentionsVCAN(p); err != nil || got != c.want {
			t.Errorf("%s: got %v, %v; want %v", name, got, err, c.want)
		}
	}
}

func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	prereq.Missing(t, format, args...)
}
