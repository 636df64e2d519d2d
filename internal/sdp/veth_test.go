package sdp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"satwatt/internal/prereq"
)

// needs fails under CI=true, where the test is expected to run, and skips
// elsewhere, saying what is missing either way.
func needs(t *testing.T, what string) {
	t.Helper()
	prereq.Missing(t, "this test needs %s", what)
}

func ipCmd(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func writeSysctl(t *testing.T, iface, key, val string) {
	t.Helper()
	p := fmt.Sprintf("/proc/sys/net/ipv6/conf/%s/%s", iface, key)
	if err := os.WriteFile(p, []byte(val), 0o644); err != nil {
		t.Fatalf("set %s: %v", p, err)
	}
}

// vethPair creates two connected interfaces with usable IPv6 link-local
// addresses and deletes them when the test ends.
func vethPair(t *testing.T) (wall, car string) {
	t.Helper()
	if os.Geteuid() != 0 {
		needs(t, "root, to create a veth pair (multicast does not work on lo)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		needs(t, "the ip command (iproute2 or busybox) to create a veth pair")
	}
	// Interface names are at most 15 bytes; the pid keeps parallel test
	// binaries apart. With -count=N the same names are re-created, which
	// is what a replugged modem does: Discover must not address the
	// deleted interface.
	wall = fmt.Sprintf("swsdp%dw", os.Getpid()%100000)
	car = fmt.Sprintf("swsdp%dc", os.Getpid()%100000)
	ipCmd(t, "link", "add", wall, "type", "veth", "peer", "name", car)
	t.Cleanup(func() {
		// Deleting one end deletes the pair.
		if out, err := exec.Command("ip", "link", "del", wall).CombinedOutput(); err != nil {
			t.Errorf("ip link del %s: %v: %s", wall, err, out)
		}
	})
	for _, ifc := range []string{wall, car} {
		writeSysctl(t, ifc, "disable_ipv6", "0")
		// Without duplicate address detection the link-local address is
		// usable at once instead of after a second or two of "tentative".
		writeSysctl(t, ifc, "accept_dad", "0")
		ipCmd(t, "link", "set", ifc, "up")
	}
	deadline := time.Now().Add(hangGuard)
	for _, ifc := range []string{wall, car} {
		for {
			out := ipCmd(t, "-6", "addr", "show", "dev", ifc, "scope", "link")
			if strings.Contains(out, "fe80::") && !strings.Contains(out, "tentative") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s has no usable link-local address: %s", ifc, out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return wall, car
}

// The real thing: the car multicasts to [ff02::1%car]:port, the wall
// answers by unicast with its own link-local address.
func TestMulticastOverVeth(t *testing.T) {
	wall, car := vethPair(t)
	wallAddr, err := LinkLocalAddr(wall)
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	r, err := NewResponder(ResponderConfig{
		Iface: wall, Port: port, ServerPort: 53537,
		Security: SecurityNone, Transport: TransportTCP, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, r)

	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	res, err := Discover(ctx, Config{
		Iface: car, Port: port, Security: SecurityNone, Transport: TransportTCP, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Seen from the car, the wall's address lives on the car's interface.
	carIf, err := net.InterfaceByName(car)
	if err != nil {
		t.Fatal(err)
	}
	onCar := wallAddr.WithZone(strconv.Itoa(carIf.Index))
	want := Response{Addr: onCar, Port: 53537, Security: SecurityNone, Transport: TransportTCP}
	if res.Response != want {
		t.Errorf("response %+v, want %+v", res.Response, want)
	}
	if res.From != netip.AddrPortFrom(onCar, port) {
		t.Errorf("answer from %v, want [%v]:%d", res.From, onCar, port)
	}
	// The responder counts an answer after sending it, so the car can hold
	// the answer before the count moves: wait for it rather than race it.
	deadline := time.Now().Add(hangGuard)
	for r.Stats().Answered < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s := r.Stats(); s.Answered < 1 || s.Malformed != 0 {
		t.Errorf("responder stats %+v", s)
	}
}
