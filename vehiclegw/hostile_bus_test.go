package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.einride.tech/can"

	"satwatt/internal/socketcand"
	vp "satwatt/internal/vehicleprofile"
)

// TestHostileBusFlood: the gateway's bus reader (vehiclegw monitor, the
// same path vehiclegw run reads through) on a bus flooded for 5 s at 8,000
// frames a second, about what a 500 kbit/s bus carries when full: random
// IDs (the profile's own among them), lengths and bytes, frames of the
// gateway's own status messages from another node, and the honest car's
// state of charge ten times a second. The gateway must keep reading, spend
// well under a core, count the spoofed status frames, and never show a
// state of charge outside 0..100 %.
func TestHostileBusFlood(t *testing.T) {
	bin := buildGateway(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	srv := socketcand.NewServer(socketcand.ServerOptions{QueueLen: 16384})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ctx, ln)
	port, err := srv.Attach("bus0")
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()

	mon := exec.CommandContext(ctx, bin, "monitor", "--profile", "generic", "--can", "socketcand://"+ln.Addr().String()+"/bus0",
		"--json", "--interval", "500ms")
	out, err := mon.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	mon.Stderr = os.Stderr
	if err := mon.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { mon.Process.Kill(); mon.Wait() }()
	lines := make(chan map[string]any, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines <- m
			}
		}
	}()

	b, err := vp.LoadBinding("generic", "")
	if err != nil {
		t.Fatal(err)
	}
	soc, err := b.DB.MessageByName("EV_BatteryStatus").Encode(map[string]float64{"EV_StateOfCharge": 48.3, "EV_PackVoltage": 372.25, "EV_PackCurrent": -12.5})
	if err != nil {
		t.Fatal(err)
	}
	// The reader is connected once it shows the honest frame.
	for connected, deadline := false, time.Now().Add(30*time.Second); !connected; {
		port.Send(ctx, soc)
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatal("vehiclegw monitor ended")
			}
			connected = m["type"] == "state" && m["soc_pct"] != nil
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("vehiclegw monitor never showed the state of charge")
		}
	}
	cpu0 := cpuTicks(t, mon.Process.Pid)
	seed := uint64(0x2545F4914F6CDD1D)
	next := func() uint64 { seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17; return seed }
	var ids []uint32
	for _, m := range b.DB.Messages {
		ids = append(ids, m.ID)
	}
	const rate, seconds = 8000, 5
	sent, spoofs := 0, 0
	start := time.Now()
	for ms := 0; ms < seconds*1000; ms++ {
		for range rate / 1000 {
			r := next()
			f := can.Frame{ID: uint32(r % 0x800), Length: uint8(r >> 11 % 9)}
			if r>>20%4 == 0 {
				f.ID = ids[int(r>>24)%len(ids)]
			}
			for j := range f.Data[:f.Length] {
				f.Data[j] = byte(next())
			}
			for _, m := range b.StatusMessages {
				if f.ID == m.ID {
					spoofs++
				}
			}
			port.Send(ctx, f)
			sent++
		}
		if ms%100 == 0 {
			port.Send(ctx, soc)
		}
		// Pace to the millisecond on average; a late start catches up.
		if d := time.Until(start.Add(time.Duration(ms+1) * time.Millisecond)); d > 0 {
			time.Sleep(d)
		}
	}
	elapsed := time.Since(start)
	port.Send(ctx, soc)
	cpu := float64(cpuTicks(t, mon.Process.Pid)-cpu0) / 100 // USER_HZ
	// Drain the state lines the flood produced: every shown state of
	// charge must be a percentage.
	time.Sleep(time.Second) // one more print interval, for the last honest frame
	mon.Process.Signal(syscall.SIGTERM)
	var shown, last float64
	var foreign float64 = -1
	for m := range lines {
		if m["type"] == "summary" {
			foreign, _ = m["foreign_status_frames"].(float64)
		}
		if v, ok := m["soc_pct"].(float64); ok {
			shown++
			last = v
			if v < 0 || v > 100 {
				t.Errorf("the gateway showed a state of charge of %v %%", v)
			}
		}
	}
	share := 100 * cpu / elapsed.Seconds()
	t.Logf("flood: %d frames in %s (%.0f/s), %d of the gateway's own status IDs (%v counted); vehiclegw used %.2f s of CPU (%.1f %% of one core); hub drops for it: %d; %v states shown, last state of charge %v %%",
		sent, elapsed.Round(time.Millisecond), float64(sent)/elapsed.Seconds(), spoofs, foreign, cpu, share, srv.Drops(), shown, last)
	if share > 50 {
		t.Errorf("vehiclegw used %.1f %% of a core reading a full bus; the budget is a few per cent", share)
	}
	// The hub may drop frames for a reader that falls behind; what
	// arrives of the spoofs is counted, and nothing else is.
	if spoofs == 0 || foreign <= 0 || foreign > float64(spoofs) {
		t.Errorf("the gateway counted %v frames of its own status IDs from another node; %d were sent", foreign, spoofs)
	}
}

// cpuTicks is a process's user plus system time, in clock ticks.
func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) in ")".
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime + stime
}
