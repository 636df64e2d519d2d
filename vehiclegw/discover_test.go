package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"strings"
	"testing"

	"satwatt/internal/sdp"
)

// fakeWall answers SDP requests on [::1] the way a charger does, after
// sending a garbage datagram first; it stands in for wallctl's responder,
// which needs a link-local interface.
func fakeWall(t *testing.T, port uint16, security byte) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Fatalf("no IPv6 loopback (the SDP tests need ::1): %v", err)
	}
	t.Cleanup(func() { c.Close() })
	resp, err := sdp.AppendResponse(nil, sdp.Response{Addr: netip.MustParseAddr("fe80::1:2:3:4"), Port: port,
		Security: security, Transport: sdp.TransportTCP})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if _, err := sdp.ParseRequest(buf[:n]); err != nil {
				continue
			}
			c.WriteToUDPAddrPort([]byte{0x01, 0xfe, 0x90}, from) // truncated: must be skipped
			c.WriteToUDPAddrPort(resp, from)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestDiscoverCommand(t *testing.T) {
	wall := fakeWall(t, 51111, sdp.SecurityNone)
	tlsWall := fakeWall(t, 51112, sdp.SecurityTLS)
	silent, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	cases := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"finds the wall and prints it", []string{"--target", wall.String()}, 0,
			[]string{"fe80::1:2:3:4", "51111", "security   none", "transport  tcp", "1 malformed", "http://[fe80::1:2:3:4]:51111/"}},
		{"a wall serving TLS: an https URL", []string{"--target", tlsWall.String()}, 0,
			[]string{"security   tls", "https://[fe80::1:2:3:4]:51112/"}},
		{"nothing answers", []string{"--target", silent.LocalAddr().String(), "--attempts", "3", "--interval", "10ms"}, 1,
			[]string{"no wall answered: 3 SDP requests"}},
		{"needs an interface or a target", nil, 2, []string{"--iface"}},
		{"target must be IPv6", []string{"--target", "127.0.0.1:15118"}, 2, []string{"IPv6"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), append([]string{"discover"}, tc.args...), &out, &errb)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tc.code, out.String(), errb.String())
			}
			all := out.String() + errb.String()
			for _, want := range tc.contains {
				if !strings.Contains(all, want) {
					t.Errorf("output lacks %q:\n%s", want, all)
				}
			}
		})
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"discover", "--target", wall.String(), "--json"}, &out, &errb); code != 0 {
		t.Fatalf("--json: exit %d: %s", code, errb.String())
	}
	var got discoverResult
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.Port != 51111 || got.URL != "http://[fe80::1:2:3:4]:51111/" {
		t.Errorf("--json: %+v %v", got, err)
	}
}
