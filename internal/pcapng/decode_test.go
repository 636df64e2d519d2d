package pcapng

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
)

var (
	ll  = netip.MustParseAddr("fe80::9aed:5cff:feda:d998")
	all = netip.MustParseAddr("ff02::1")
	v4a = netip.MustParseAddr("169.254.1.2")
	v4b = netip.MustParseAddr("169.254.255.255")
)

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func eth(etherType uint16) []byte {
	b := []byte{0x33, 0x33, 0, 0, 0, 1, 0x98, 0xed, 0x5c, 0xda, 0xd9, 0x98, 0, 0}
	binary.BigEndian.PutUint16(b[12:], etherType)
	return b
}

func ipv6(next byte, plen int, src, dst netip.Addr) []byte {
	b := make([]byte, 40)
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(plen))
	b[6], b[7] = next, 255
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return b
}

func ipv4(proto byte, total int, frag uint16, src, dst netip.Addr) []byte {
	b := make([]byte, 20)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(total))
	binary.BigEndian.PutUint16(b[6:], frag)
	b[8], b[9] = 64, proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	return b
}

func udp(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	return append(b, payload...)
}

func TestDecodeUDP(t *testing.T) {
	sdpReq := []byte{0x01, 0xfe, 0x90, 0x00, 0, 0, 0, 2, 0x10, 0x00}
	u := udp(49153, 15118, sdpReq)
	hopByHop := []byte{17, 0, 1, 4, 0, 0, 0, 0} // next UDP, 8 bytes, PadN
	tests := []struct {
		name     string
		lt       LinkType
		frame    []byte
		src, dst netip.AddrPort
		payload  []byte
	}{
		{"ethernet ipv6", LinkTypeEthernet, cat(eth(0x86dd), ipv6(17, len(u), ll, all), u),
			netip.AddrPortFrom(ll, 49153), netip.AddrPortFrom(all, 15118), sdpReq},
		{"ethernet padding ignored", LinkTypeEthernet, cat(eth(0x86dd), ipv6(17, len(u), ll, all), u, make([]byte, 6)),
			netip.AddrPortFrom(ll, 49153), netip.AddrPortFrom(all, 15118), sdpReq},
		{"vlan tag", LinkTypeEthernet, cat(eth(0x8100)[:14], []byte{0, 5, 0x86, 0xdd}, ipv6(17, len(u), ll, all), u),
			netip.AddrPortFrom(ll, 49153), netip.AddrPortFrom(all, 15118), sdpReq},
		{"hop-by-hop header", LinkTypeEthernet, cat(eth(0x86dd), ipv6(0, 8+len(u), ll, all), hopByHop, u),
			netip.AddrPortFrom(ll, 49153), netip.AddrPortFrom(all, 15118), sdpReq},
		{"ipv4", LinkTypeEthernet, cat(eth(0x0800), ipv4(17, 20+len(u), 0x4000, v4a, v4b), u),
			netip.AddrPortFrom(v4a, 49153), netip.AddrPortFrom(v4b, 15118), sdpReq},
		{"raw ipv6", LinkTypeRaw, cat(ipv6(17, len(u), ll, all), u),
			netip.AddrPortFrom(ll, 49153), netip.AddrPortFrom(all, 15118), sdpReq},
		{"raw ipv4", LinkTypeRaw, cat(ipv4(17, 20+len(u), 0, v4a, v4b), u),
			netip.AddrPortFrom(v4a, 49153), netip.AddrPortFrom(v4b, 15118), sdpReq},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeUDP(tt.lt, tt.frame)
			if err != nil {
				t.Fatal(err)
			}
			if got.Src != tt.src || got.Dst != tt.dst || !bytes.Equal(got.Payload, tt.payload) {
				t.Errorf("got %v -> %v % x, want %v -> %v % x", got.Src, got.Dst, got.Payload, tt.src, tt.dst, tt.payload)
			}
		})
	}
}

func TestDecodeUDPErrors(t *testing.T) {
	u := udp(1, 2, []byte("x"))
	badLen := udp(1, 2, []byte("x"))
	binary.BigEndian.PutUint16(badLen[4:], 50)
	frag := []byte{17, 0, 0, 1, 0, 0, 0, 1}
	tests := []struct {
		name   string
		lt     LinkType
		frame  []byte
		msg    string
		notUDP bool
		short  bool
	}{
		{"homeplug", LinkTypeEthernet, cat(eth(0x88e1), make([]byte, 46)), "byte 12: ethertype 0x88e1", true, false},
		{"tcp", LinkTypeEthernet, cat(eth(0x86dd), ipv6(6, 20, ll, all), make([]byte, 20)), "byte 54: IPv6 next header 6", true, false},
		{"icmpv4", LinkTypeEthernet, cat(eth(0x0800), ipv4(1, 28, 0, v4a, v4b), make([]byte, 8)), "byte 23: IP protocol 1", true, false},
		{"unknown link type", LinkType(147), u, "link type 147", true, false},
		{"raw ip version 5", LinkTypeRaw, []byte{0x50}, "IP version 5", true, false},
		{"short ethernet", LinkTypeEthernet, []byte{1, 2, 3}, "byte 12: ethernet header cut short", false, true},
		{"short ipv6 header", LinkTypeEthernet, cat(eth(0x86dd), make([]byte, 10)), "byte 14: IPv6 header cut short", false, true},
		{"ipv6 payload cut", LinkTypeEthernet, cat(eth(0x86dd), ipv6(17, 100, ll, all), u), "IPv6 packet cut short", false, true},
		{"ipv6 fragment", LinkTypeEthernet, cat(eth(0x86dd), ipv6(44, 8+len(u), ll, all), frag, u), "byte 54: IPv6 fragment", false, false},
		{"ipv4 fragment", LinkTypeEthernet, cat(eth(0x0800), ipv4(17, 20+len(u), 0x2000, v4a, v4b), u), "byte 20: IPv4 fragment", false, false},
		{"udp length too long", LinkTypeEthernet, cat(eth(0x86dd), ipv6(17, len(badLen), ll, all), badLen), "byte 58: UDP length 50", false, false},
		{"udp header cut", LinkTypeEthernet, cat(eth(0x86dd), ipv6(17, 4, ll, all), u[:4]), "byte 54: UDP header cut short", false, true},
		{"jumbogram", LinkTypeEthernet, cat(eth(0x86dd), ipv6(17, 0, ll, all), u), "jumbogram", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeUDP(tt.lt, tt.frame)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
			if got := errors.Is(err, ErrNotUDP); got != tt.notUDP {
				t.Errorf("errors.Is(err, ErrNotUDP) = %v, want %v (%v)", got, tt.notUDP, err)
			}
			if got := errors.Is(err, io.ErrUnexpectedEOF); got != tt.short {
				t.Errorf("errors.Is(err, io.ErrUnexpectedEOF) = %v, want %v (%v)", got, tt.short, err)
			}
		})
	}
}
