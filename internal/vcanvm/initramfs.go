package vcanvm

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Paths inside the VM. They are the guest's, never the host's.
const (
	guestModules = "/lib/satwatt"
	guestTests   = "/run/tests"
)

// Markers the init script prints on the console; Run parses them back.
const (
	markerReady     = "SATWATT-VCAN-READY"
	markerSetupFail = "SATWATT-VCAN-SETUP-FAILED"
	markerStart     = "SATWATT-VCAN-START"
	markerExit      = "SATWATT-VCAN-EXIT"
	markerDone      = "SATWATT-VCAN-DONE"
)

// Modules are the CAN modules in the order they must be loaded: each one
// needs the symbols of those before it, and busybox insmod does not resolve
// dependencies.
var Modules = []string{"can", "can-raw", "can-dev", "vcan"}

// NetModules drive the guest's network card (qemu's e1000), loaded only
// when the run has a Network.
var NetModules = []string{"e1000"}

// member is one file of the initramfs, taken from the host or generated.
type member struct {
	hostPath string
	data     []byte
	perm     uint32
}

// image collects the initramfs contents keyed by guest path, so a library
// that several tools need is added once.
type image struct {
	files map[string]member
}

func newImage() *image { return &image{files: map[string]member{}} }

func (im *image) addHost(guest, host string, perm uint32) {
	im.files[guest] = member{hostPath: host, perm: perm}
}

func (im *image) addData(guest string, data []byte, perm uint32) {
	im.files[guest] = member{data: data, perm: perm}
}

// size is the uncompressed payload, used to give the guest enough memory
// to hold the unpacked initramfs.
func (im *image) size() (int64, error) {
	var n int64
	for _, m := range im.files {
		if m.hostPath == "" {
			n += int64(len(m.data))
			continue
		}
		st, err := os.Stat(m.hostPath)
		if err != nil {
			return 0, err
		}
		n += st.Size()
	}
	return n, nil
}

// write emits the archive with every parent folder before its contents, as
// the kernel creates entries in archive order.
func (im *image) write(w io.Writer) error {
	dirs := map[string]bool{"/dev": true, "/proc": true, "/sys": true, "/tmp": true,
		"/bin": true, "/sbin": true, "/usr/bin": true, "/usr/sbin": true}
	for p := range im.files {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for d := range dirs {
		for p := path.Dir(d); p != "/"; p = path.Dir(p) {
			dirs[p] = true
		}
	}
	type item struct {
		name string
		dir  bool
	}
	var items []item
	for d := range dirs {
		items = append(items, item{d, true})
	}
	for f := range im.files {
		items = append(items, item{f, false})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].name < items[j].name })

	c := &newcWriter{w: w}
	for _, it := range items {
		if it.dir {
			if err := c.dir(it.name); err != nil {
				return err
			}
			if it.name == "/dev" {
				// The kernel opens /dev/console for init's stdio before
				// init can mount devtmpfs; without it the tests' output
				// would vanish.
				if err := c.charDev("/dev/console", 0o600, 5, 1); err != nil {
					return err
				}
			}
			continue
		}
		m := im.files[it.name]
		var err error
		if m.hostPath != "" {
			err = c.file(it.name, m.perm, m.hostPath)
		} else {
			err = c.bytes(it.name, m.perm, m.data)
		}
		if err != nil {
			return fmt.Errorf("initramfs %s: %w", it.name, err)
		}
	}
	return c.close()
}

// writeGzip stores the archive gzip-compressed at dst. BestSpeed because
// the archive is rebuilt on every run and the size hardly matters.
func (im *image) writeGzip(dst string) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	zw, err := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	if err != nil {
		f.Close()
		return err
	}
	err = im.write(zw)
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// addDynamic copies a dynamically linked host program and every shared
// library ldd names (the loader included) to the same paths in the guest.
func (im *image) addDynamic(prog string) error {
	im.addHost(prog, prog, 0o755)
	return im.addLibs(prog)
}

// addLibs copies the shared libraries a host program needs (none for a
// static one) to the same paths in the guest.
func (im *image) addLibs(prog string) error {
	out, err := exec.Command("ldd", prog).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "not a dynamic executable") {
			return nil
		}
		return fmt.Errorf("ldd %s: %v: %s", prog, err, out)
	}
	libs, err := parseLdd(string(out))
	if err != nil {
		return fmt.Errorf("ldd %s: %w", prog, err)
	}
	for _, l := range libs {
		im.addHost(l, l, 0o755)
	}
	return nil
}

// parseLdd returns the absolute paths in ldd's output; the vDSO has none
// and lives in the kernel.
func parseLdd(out string) ([]string, error) {
	var libs []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("missing library: %s", line)
		}
		p := line
		if _, after, ok := strings.Cut(line, "=>"); ok {
			p = strings.TrimSpace(after)
		}
		if f := strings.Fields(p); len(f) > 0 && strings.HasPrefix(f[0], "/") {
			libs = append(libs, f[0])
		}
	}
	return libs, nil
}

// addTree copies the regular files under host to guest, keeping the
// relative layout; tests open their testdata by relative path.
func (im *image) addTree(guest, host string) error {
	return filepath.WalkDir(host, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(host, p)
		if err != nil {
			return err
		}
		target := path.Join(guest, filepath.ToSlash(rel))
		info, err := os.Stat(p)
		if err != nil {
			return err
		}
		if info.IsDir() {
			return nil
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		im.addHost(target, p, uint32(info.Mode().Perm()))
		return nil
	})
}

// shellQuote quotes s for the init script's sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// initScript is /init: it brings up a minimal system with vcan0, runs each
// test binary with its exit code printed in a marker line, and powers off.
func initScript(env map[string]string, bins []TestBinary, testTimeout string, network bool) []byte {
	var b bytes.Buffer
	b.WriteString(`#!/bin/busybox sh
# Generated by satwatt/internal/vcanvm.
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp TMPDIR=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
fail() {
	echo "` + markerSetupFail + ` $*"
	poweroff -f
	exit 1
}
`)
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(env[k]))
	}
	for _, m := range Modules {
		fmt.Fprintf(&b, "insmod %s/%s.ko || fail insmod %s\n", guestModules, m, m)
	}
	b.WriteString("ip link set up lo || fail ip link set up lo\n")
	if network {
		for _, m := range NetModules {
			fmt.Fprintf(&b, "insmod %s/%s.ko || fail insmod %s\n", guestModules, m, m)
		}
		b.WriteString("ip link set up eth0 || fail ip link set up eth0\n")
		fmt.Fprintf(&b, "ip addr add %s/24 dev eth0 || fail ip addr add\n", GuestIP)
		fmt.Fprintf(&b, "ip route add default via %s || fail ip route add\n", HostFromGuest)
	}
	b.WriteString("ip link add dev vcan0 type vcan || fail ip link add vcan0\n")
	b.WriteString("ip link set up vcan0 || fail ip link set up vcan0\n")
	b.WriteString(`echo "` + markerReady + ` kernel=$(uname -r)"` + "\n")
	for _, bin := range bins {
		dir := path.Join(guestTests, bin.Name)
		args := []string{shellQuote(path.Join(dir, bin.Name+".test")), "-test.v"}
		if testTimeout != "" && !hasTimeoutArg(bin.Args) {
			args = append(args, "-test.timeout="+testTimeout)
		}
		for _, a := range bin.Args {
			args = append(args, shellQuote(a))
		}
		fmt.Fprintf(&b, "cd %s\n", shellQuote(dir))
		fmt.Fprintf(&b, "echo '%s name=%s'\n", markerStart, bin.Name)
		fmt.Fprintf(&b, "%s 2>&1\n", strings.Join(args, " "))
		fmt.Fprintf(&b, "echo \"%s name=%s code=$?\"\n", markerExit, bin.Name)
	}
	b.WriteString("cd /\necho " + markerDone + "\nsync\npoweroff -f\n")
	return b.Bytes()
}

func hasTimeoutArg(args []string) bool {
	for _, a := range args {
		if strings.HasPrefix(a, "-test.timeout") || strings.HasPrefix(a, "--test.timeout") {
			return true
		}
	}
	return false
}
