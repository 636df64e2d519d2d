//go:build vcan

package canbus

// These tests need a kernel with SocketCAN: they run inside the qemu VM,
// where vcan0 is up, can-utils' cansend and candump are on PATH, and
// busybox ip can delete and re-create vcan0. They use real time, with
// generous deadlines, and poll rather than sleep.

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.einride.tech/can"

	"satwatt/internal/clock"
)

const vcan = "vcan0"

func vcanOptions() Options {
	return Options{Clock: clock.Real{}, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
}

func requireVCAN(t *testing.T) {
	t.Helper()
	if _, err := net.InterfaceByName(vcan); err != nil {
		t.Fatalf("%s is missing (these tests run only inside the vcan VM): %v", vcan, err)
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

func TestVCANReceivesCansend(t *testing.T) {
	requireVCAN(t)
	src, err := Open(timeout(t), vcan, vcanOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	tests := []struct {
		arg  string
		want can.Frame
	}{
		{"123#DEADBEEF", can.Frame{ID: 0x123, Length: 4, Data: can.Data{0xDE, 0xAD, 0xBE, 0xEF}}},
		{"1F334455#0102030405060708", can.Frame{ID: 0x1F334455, IsExtended: true, Length: 8, Data: can.Data{1, 2, 3, 4, 5, 6, 7, 8}}},
		{"7FF#", can.Frame{ID: 0x7FF}},
	}
	for _, tt := range tests {
		t.Run(tt.arg, func(t *testing.T) {
			before := time.Now()
			run(t, "cansend", vcan, tt.arg)
			var f Frame
			if err := src.Receive(timeout(t), &f); err != nil {
				t.Fatal(err)
			}
			if f.Frame != tt.want {
				t.Errorf("got %v, want %v", f.Frame, tt.want)
			}
			if f.Time.Before(before) {
				t.Errorf("frame time %v is before the send at %v", f.Time, before)
			}
		})
	}
}

// candump runs `candump -L vcan0` and passes its lines on until the test
// ends.
func candump(t *testing.T) <-chan string {
	t.Helper()
	cmd := exec.Command("candump", "-L", vcan)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return lines
}

func TestVCANSendSeenByCandump(t *testing.T) {
	requireVCAN(t)
	bus, err := OpenBus(timeout(t), "socketcan:"+vcan, vcanOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	lines := candump(t)
	frame := can.Frame{ID: 0x1AB, Length: 3, Data: can.Data{0xC0, 0xFF, 0xEE}}
	want := vcan + " 1AB#C0FFEE"
	// candump may not have bound its socket yet: send again until it
	// prints the frame.
	ctx := timeout(t)
	for {
		if err := bus.Send(ctx, frame); err != nil {
			t.Fatalf("send: %v", err)
		}
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("candump exited")
			}
			if strings.HasSuffix(line, want) {
				return
			}
			t.Fatalf("candump printed %q, want a line ending in %q", line, want)
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("candump never printed the frame")
		}
	}
}

func TestVCANReconnectsAfterInterfaceDeleted(t *testing.T) {
	requireVCAN(t)
	t.Cleanup(func() {
		// Leave vcan0 up for whatever runs next, even if this failed.
		if _, err := net.InterfaceByName(vcan); err != nil {
			_ = exec.Command("ip", "link", "add", "dev", vcan, "type", "vcan").Run()
		}
		_ = exec.Command("ip", "link", "set", "up", vcan).Run()
	})
	bus, err := OpenBus(timeout(t), vcan, vcanOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	run(t, "cansend", vcan, "100#01")
	var f Frame
	if err := bus.Receive(ctx, &f); err != nil || f.ID != 0x100 {
		t.Fatalf("before deleting: %v %v", f.Frame, err)
	}

	run(t, "ip", "link", "del", vcan)
	waitFor(t, "Send to fail with ErrBusDown", func() bool {
		err := bus.Send(ctx, can.Frame{ID: 0x200})
		return errors.Is(err, ErrBusDown)
	})

	run(t, "ip", "link", "add", "dev", vcan, "type", "vcan")
	run(t, "ip", "link", "set", "up", vcan)
	// The backoff tops out at 5 s, so the bus is back within that of the
	// interface returning.
	deadline := time.Now().Add(30 * time.Second)
	for bus.Send(ctx, can.Frame{ID: 0x201}) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the bus did not come back after vcan0 was re-created")
		}
		time.Sleep(20 * time.Millisecond)
	}

	run(t, "cansend", vcan, "300#0A0B")
	rctx, rcancel := context.WithTimeout(ctx, testTimeout)
	defer rcancel()
	if err := bus.Receive(rctx, &f); err != nil {
		t.Fatalf("after re-creating %s: %v", vcan, err)
	}
	want := can.Frame{ID: 0x300, Length: 2, Data: can.Data{0x0A, 0x0B}}
	if f.Frame != want {
		t.Errorf("after re-creating: got %v, want %v", f.Frame, want)
	}
	if st := bus.(StatsSource).Stats(); st.Reconnects < 1 {
		t.Errorf("stats %+v, want a reconnect", st)
	}
}
