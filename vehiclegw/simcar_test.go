package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"satwatt/internal/simcar"
)

// buildGateway compiles this command once per test binary run.
func buildGateway(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vehiclegw")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestMonitorFollowsSimulatedCarAcrossProcesses runs the simulated car in
// one process (hosting a socketcand server, as on a machine without
// SocketCAN) and the monitor in another, and checks the monitor sees the
// state of charge rise while power is applied. At speed 600 a real second is
// ten simulated minutes: 11 kW at 92 % into 60 kWh adds about 2.8 % a second.
func TestMonitorFollowsSimulatedCarAcrossProcesses(t *testing.T) {
	bin := buildGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	car := exec.CommandContext(ctx, bin, "simcar", "--serve", "127.0.0.1:0", "--plug", "--supply-w", "11000", "--speed", "600", "--soc", "20", "--target", "90")
	carOut, err := car.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	car.Stderr = os.Stderr
	if err := car.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = car.Process.Kill(); _ = car.Wait() }()
	first, err := bufio.NewReader(carOut).ReadString('\n')
	if err != nil {
		t.Fatalf("simulated car printed no address: %v", err)
	}
	url := strings.TrimSpace(strings.TrimPrefix(first, "simulated car on "))
	if !strings.HasPrefix(url, "socketcand://127.0.0.1:") {
		t.Fatalf("simulated car printed %q", first)
	}

	mon := exec.CommandContext(ctx, bin, "monitor", "--can", url, "--json", "--interval", "200ms")
	monOut, err := mon.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	mon.Stderr = os.Stderr
	if err := mon.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = mon.Process.Kill(); _ = mon.Wait() }()

	sc := bufio.NewScanner(monOut)
	var firstSOC, lastSOC float64
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("monitor printed %q", sc.Text())
		}
		soc, ok := m["soc_pct"].(float64)
		if m["type"] != "state" || !ok || m["charging"] != "charging" {
			continue
		}
		if firstSOC == 0 {
			firstSOC = soc
			if m["cable"] != "latched" || m["port_door"] != "open" {
				t.Errorf("while charging: cable %v door %v", m["cable"], m["port_door"])
			}
			if p, _ := m["charge_power_w"].(float64); p != 11000 {
				t.Errorf("charge power %v W, want 11000", m["charge_power_w"])
			}
		}
		lastSOC = soc
		if lastSOC >= firstSOC+2 {
			break
		}
	}
	if lastSOC < firstSOC+2 {
		t.Fatalf("state of charge went from %v to %v; want a rise of 2 %% (scanner: %v)", firstSOC, lastSOC, sc.Err())
	}
}

type fakeCar struct {
	plugged bool
	offered int64
}

func (f *fakeCar) Plug()         { f.plugged = true }
func (f *fakeCar) Unplug()       { f.plugged = false }
func (f *fakeCar) Offer(w int64) { f.offered = w }
func (f *fakeCar) State() simcar.State {
	return simcar.State{Plugged: f.plugged, OfferedW: f.offered}
}

func TestControlAPINeedsToken(t *testing.T) {
	const token = "0123456789abcdef-test"
	car := &fakeCar{}
	srv := httptest.NewServer(controlHandler(car, token, slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()
	tests := []struct {
		method, path, token string
		code                int
	}{
		{"GET", "/state", "", 200},
		{"POST", "/plug", "", 401},
		{"POST", "/plug", "wrong-token-wrong-token", 401},
		{"POST", "/plug", token, 200},
		{"POST", "/offer?w=7400", token, 200},
		{"POST", "/offer?w=-1", token, 400},
		{"POST", "/offer?w=lots", token, 400},
		{"POST", "/offer?w=7400", "", 401},
		{"GET", "/plug", token, 405},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s %s with token %q: %d, want %d", tc.method, tc.path, tc.token, resp.StatusCode, tc.code)
		}
	}
	if !car.plugged || car.offered != 7400 {
		t.Errorf("car plugged %v offered %d, want true and 7400", car.plugged, car.offered)
	}
}
