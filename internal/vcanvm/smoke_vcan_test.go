//go:build vcan

package vcanvm

// These tests run only where vcan0 exists (inside the harness's VM, or on a
// host with vcan); they prove that the harness gives a working SocketCAN
// stack and working can-utils.

import (
	"context"
	"net"
	"testing"
	"time"

	"go.einride.tech/can"
	"go.einride.tech/can/pkg/socketcan"

	"satwatt/internal/canutils"
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

func TestVCANSmokeEinrideToEinride(t *testing.T) {
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

func TestVCANSmokeCansendToEinride(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rxConn := dialVCAN(ctx, t)
	if err := canutils.Send(ctx, "vcan0", "5A0#0102030405060708"); err != nil {
		t.Fatal(err)
	}
	want := testFrame(0x5A0, 1, 2, 3, 4, 5, 6, 7, 8)
	if got := receiveFrame(t, rxConn, want.ID); got != want {
		t.Fatalf("received %v, want %v", got, want)
	}
}

func TestVCANSmokeEinrideToCandump(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dump, err := canutils.StartCandump(ctx, "vcan0")
	if err != nil {
		t.Fatal(err)
	}
	defer dump.Stop()

	txConn := dialVCAN(ctx, t)
	if err := socketcan.NewTransmitter(txConn).TransmitFrame(ctx, testFrame(0x7E8, 0x02, 0x41, 0x0D)); err != nil {
		t.Fatalf("transmit: %v", err)
	}
	var got string
	select {
	case got = <-dump.Lines:
	case <-ctx.Done():
		t.Fatal("candump printed nothing")
	}
	if iface, frame, ok := canutils.Frame(got); !ok || iface != "vcan0" || frame != "7E8#02410D" {
		t.Fatalf("candump printed %q, want \"(time) vcan0 7E8#02410D\"", got)
	}

	// Nothing else may follow: stop candump and read what is left.
	dump.Stop()
	for extra := range dump.Lines {
		t.Errorf("candump printed an extra line %q", extra)
	}
}
