//go:build vcan

package vcanvm

// These tests run only where vcan0 exists (inside the harness's VM, or on a
// host with vcan); they prove that the harness gives a working SocketCAN
// stack and working can-utils.

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.einride.tech/can"
	"go.einride.tech/can/pkg/socketcan"
)

func dialVCAN(ctx context.Context, t *testing.T) net.Conn {
	t.Helper()
	conn, err := socketcan.DialContext(ctx, "can", "vcan0")
	if err != nil {
		t.Fatalf("dial vcan0: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	// A read past the test's deadline fails rather than hanging.
	if d, ok := ctx.Deadline(); ok {
		if err := conn.SetReadDeadline(d); err != nil {
			t.Fatal(err)
		}
	}
	return conn
}

// receiveFrame returns the next frame on conn with the given ID, skipping
// others in case another test's traffic is still in flight.
func receiveFrame(t *testing.T, conn net.Conn, id uint32) can.Frame {
	t.Helper()
	rx := socketcan.NewReceiver(conn)
	for rx.Receive() {
		if f := rx.Frame(); f.ID == id {
			return f
		}
	}
	t.Fatalf("receive 0x%X: %v", id, rx.Err())
	return can.Frame{}
}

func testFrame(id uint32, data ...byte) can.Frame {
	f := can.Frame{ID: id, Length: uint8(len(data))}
	copy(f.Data[:], data)
	return f
}

func TestSmokeEinrideToEinride(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	txConn := dialVCAN(ctx, t)
	rxConn := dialVCAN(ctx, t)
	want := testFrame(0x123, 0xDE, 0xAD, 0xBE, 0xEF)
	if err := socketcan.NewTransmitter(txConn).TransmitFrame(ctx, want); err != nil {
		t.Fatalf("transmit: %v", err)
	}
	if got := receiveFrame(t, rxConn, want.ID); got != want {
		t.Fatalf("received %v, want %v", got, want)
	}
}

func TestSmokeCansendToEinride(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rxConn := dialVCAN(ctx, t)
	out, err := exec.CommandContext(ctx, "cansend", "vcan0", "5A0#0102030405060708").CombinedOutput()
	if err != nil {
		t.Fatalf("cansend: %v: %s", err, out)
	}
	want := testFrame(0x5A0, 1, 2, 3, 4, 5, 6, 7, 8)
	if got := receiveFrame(t, rxConn, want.ID); got != want {
		t.Fatalf("received %v, want %v", got, want)
	}
}

func TestSmokeEinrideToCandump(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	before := rawReceivers(t, "vcan0")
	cmd := exec.CommandContext(ctx, "candump", "-L", "vcan0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start candump: %v", err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()

	// candump says nothing when it is listening; a frame sent before it
	// has bound its socket would be lost, so wait for its receiver to
	// appear in the kernel's list.
	for rawReceivers(t, "vcan0") <= before {
		select {
		case <-ctx.Done():
			t.Fatal("candump never opened a socket on vcan0")
		case <-time.After(10 * time.Millisecond):
		}
	}

	txConn := dialVCAN(ctx, t)
	if err := socketcan.NewTransmitter(txConn).TransmitFrame(ctx, testFrame(0x7E8, 0x02, 0x41, 0x0D)); err != nil {
		t.Fatalf("transmit: %v", err)
	}
	var got string
	select {
	case got = <-lines:
	case <-ctx.Done():
		t.Fatal("candump printed nothing")
	}
	// -L prints "(seconds.micros) iface ID#DATA".
	if f := strings.Fields(got); len(f) != 3 || !strings.HasPrefix(f[0], "(") ||
		f[1] != "vcan0" || f[2] != "7E8#02410D" {
		t.Fatalf("candump printed %q, want \"(time) vcan0 7E8#02410D\"", got)
	}

	// Nothing else may follow: stop candump and read what is left.
	_ = cmd.Process.Kill()
	for extra := range lines {
		t.Errorf("candump printed an extra line %q", extra)
	}
}

// rawReceivers counts the unfiltered CAN receivers the kernel lists for
// dev; candump without filters registers exactly one.
func rawReceivers(t *testing.T, dev string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/can/rcvlist_all")
	if err != nil {
		t.Fatalf("read the CAN receiver list: %v", err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == dev {
			n++
		}
	}
	return n
}
