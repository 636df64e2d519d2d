package demo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// PLCIface is the PLC link's interface name inside both namespaces.
const PLCIface = "plc0"

// nsPrefix names every namespace the demo creates, with the creating
// process's pid, so a later run can remove what a killed one left.
const nsPrefix = "satwatt-"

// Namespaces is the demo's physical layer: the wall and the car each live
// in a network namespace, joined by a veth pair that carries only IPv6
// link-local addresses, as a PLC modem pair does (the car finds the wall
// by SDP multicast on it). Each namespace also has an uplink veth to the
// host's namespace, standing in for the wall's and the car's own network
// connection to their Lightning nodes and, for the simulated car, to the
// simulation that stands in for the car's wiring.
type Namespaces struct {
	Wall, Car string // namespace names
	// WallHost and CarHost are the host's ends of the uplinks; WallIP and
	// CarIP the namespaces' ends.
	WallHost, WallIP string
	CarHost, CarIP   string
}

// SetUpNamespaces creates both namespaces and their links. Subnet picks
// the uplinks' addresses, 10.213.<subnet>.0/24 split in two /30s, so two
// sets can exist at once. It needs root (CAP_NET_ADMIN) and iproute2.
func SetUpNamespaces(ctx context.Context, subnet int) (_ *Namespaces, err error) {
	if subnet < 0 || subnet > 255 {
		return nil, fmt.Errorf("demo: subnet %d out of 0..255", subnet)
	}
	RemoveStaleNamespaces(ctx)
	tag := fmt.Sprintf("%s%d-%d", nsPrefix, os.Getpid(), subnet)
	n := &Namespaces{
		Wall: tag + "-wall", Car: tag + "-car",
		WallHost: fmt.Sprintf("10.213.%d.1", subnet), WallIP: fmt.Sprintf("10.213.%d.2", subnet),
		CarHost: fmt.Sprintf("10.213.%d.5", subnet), CarIP: fmt.Sprintf("10.213.%d.6", subnet),
	}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	// Interface names are at most 15 bytes and live in the host's
	// namespace until moved: keep them short and unique per subnet.
	s := strconv.Itoa(subnet)
	steps := [][]string{
		{"netns", "add", n.Wall},
		{"netns", "add", n.Car},
		{"-n", n.Wall, "link", "set", "lo", "up"},
		{"-n", n.Car, "link", "set", "lo", "up"},
		// The PLC link, renamed plc0 on both sides as it moves in.
		{"link", "add", "swplcw" + s, "type", "veth", "peer", "name", "swplcc" + s},
		{"link", "set", "swplcw" + s, "netns", n.Wall, "name", PLCIface},
		{"link", "set", "swplcc" + s, "netns", n.Car, "name", PLCIface},
		{"-n", n.Wall, "link", "set", PLCIface, "up"},
		{"-n", n.Car, "link", "set", PLCIface, "up"},
		// The uplinks: IPv4 only, the host's end keeps its name.
		{"link", "add", "swupw" + s, "type", "veth", "peer", "name", "swupwn" + s},
		{"link", "set", "swupwn" + s, "netns", n.Wall, "name", "up0"},
		{"addr", "add", n.WallHost + "/30", "dev", "swupw" + s},
		{"link", "set", "swupw" + s, "up"},
		{"-n", n.Wall, "addr", "add", n.WallIP + "/30", "dev", "up0"},
		{"-n", n.Wall, "link", "set", "up0", "up"},
		{"link", "add", "swupc" + s, "type", "veth", "peer", "name", "swupcn" + s},
		{"link", "set", "swupcn" + s, "netns", n.Car, "name", "up0"},
		{"addr", "add", n.CarHost + "/30", "dev", "swupc" + s},
		{"link", "set", "swupc" + s, "up"},
		{"-n", n.Car, "addr", "add", n.CarIP + "/30", "dev", "up0"},
		{"-n", n.Car, "link", "set", "up0", "up"},
	}
	for _, st := range steps {
		if err := ip(ctx, st...); err != nil {
			return nil, err
		}
	}
	// SDP needs the link-local addresses past duplicate address detection.
	for _, ns := range []string{n.Wall, n.Car} {
		if err := waitLinkLocal(ctx, ns); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Command wraps a command line so that it runs inside namespace ns.
func Command(ns, bin string, args ...string) (string, []string) {
	return "ip", append([]string{"netns", "exec", ns, bin}, args...)
}

// SetPLC brings the PLC link down or up on the wall's side: a cut cable
// or a modem that lost its link.
func (n *Namespaces) SetPLC(ctx context.Context, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	if err := ip(ctx, "-n", n.Wall, "link", "set", PLCIface, state); err != nil {
		return err
	}
	if up {
		return waitLinkLocal(ctx, n.Wall)
	}
	return nil
}

// Close deletes both namespaces; their veth pairs go with them.
func (n *Namespaces) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, ns := range []string{n.Wall, n.Car} {
		if nsExists(ns) {
			errs = append(errs, ip(ctx, "netns", "del", ns))
		}
	}
	return errors.Join(errs...)
}

// RemoveStaleNamespaces deletes the namespaces of demo runs whose process
// is gone (killed before it could clean up).
func RemoveStaleNamespaces(ctx context.Context) {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), nsPrefix)
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(strings.SplitN(name, "-", 2)[0])
		if err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		_ = ip(ctx, "netns", "del", e.Name())
	}
}

func processAlive(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

func nsExists(ns string) bool {
	_, err := os.Stat("/run/netns/" + ns)
	return err == nil
}

func ip(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("demo: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func waitLinkLocal(ctx context.Context, ns string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := exec.CommandContext(ctx, "ip", "-n", ns, "-6", "addr", "show", "dev", PLCIface, "scope", "link").CombinedOutput()
		if err == nil && strings.Contains(string(out), "fe80::") && !strings.Contains(string(out), "tentative") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: %s in %s has no usable link-local address: %s", PLCIface, ns, out)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// CanUseNamespaces reports whether this process may create network
// namespaces: root with iproute2.
func CanUseNamespaces() error {
	if os.Geteuid() != 0 {
		return errors.New("not root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("no ip command (iproute2)")
	}
	return nil
}
