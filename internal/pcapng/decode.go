package pcapng

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// ErrNotUDP marks a frame that is well formed as far as it was read but
// carries something other than a UDP datagram (ARP, HomePlug, TCP...), so a
// caller looking for UDP can skip it.
var ErrNotUDP = errors.New("not a UDP datagram")

// UDPDatagram is a UDP datagram taken out of a captured frame. Payload
// aliases the frame.
type UDPDatagram struct {
	Src, Dst netip.AddrPort
	Payload  []byte
}

const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86DD
	etherTypeVLAN = 0x8100
	etherTypeQinQ = 0x88A8
	protoUDP      = 17
)

// DecodeUDP finds the UDP datagram in a frame of the given link type:
// Ethernet (with any 802.1Q tags) or raw IP, then IPv4 or IPv6 (skipping
// IPv6 hop-by-hop, routing and destination option headers), then UDP.
// Fragments are reported as errors, not reassembled. Offsets in errors are
// from the start of the frame.
func DecodeUDP(lt LinkType, frame []byte) (UDPDatagram, error) {
	var off int
	switch lt {
	case LinkTypeEthernet:
		off = 12
		for {
			if len(frame) < off+2 {
				return UDPDatagram{}, truncated("ethernet header", off, len(frame))
			}
			et := binary.BigEndian.Uint16(frame[off:])
			off += 2
			switch et {
			case etherTypeVLAN, etherTypeQinQ:
				off += 2 // tag control; the next EtherType follows
				continue
			case etherTypeIPv4:
				return decodeIPv4(frame, off)
			case etherTypeIPv6:
				return decodeIPv6(frame, off)
			}
			return UDPDatagram{}, fmt.Errorf("pcapng: byte %d: ethertype 0x%04x: %w", off-2, et, ErrNotUDP)
		}
	case LinkTypeRaw:
		if len(frame) < 1 {
			return UDPDatagram{}, truncated("IP header", 0, 0)
		}
		switch frame[0] >> 4 {
		case 4:
			return decodeIPv4(frame, 0)
		case 6:
			return decodeIPv6(frame, 0)
		}
		return UDPDatagram{}, fmt.Errorf("pcapng: byte 0: IP version %d: %w", frame[0]>>4, ErrNotUDP)
	}
	return UDPDatagram{}, fmt.Errorf("pcapng: link type %d is not supported: %w", lt, ErrNotUDP)
}

func truncated(what string, at, have int) error {
	return fmt.Errorf("pcapng: byte %d: %s cut short (frame has %d bytes): %w", at, what, have, io.ErrUnexpectedEOF)
}

func decodeIPv4(frame []byte, off int) (UDPDatagram, error) {
	b := frame[off:]
	if len(b) < 20 {
		return UDPDatagram{}, truncated("IPv4 header", off, len(frame))
	}
	if v := b[0] >> 4; v != 4 {
		return UDPDatagram{}, fmt.Errorf("pcapng: byte %d: IP version %d in an IPv4 frame", off, v)
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	if ihl < 20 || total < ihl {
		return UDPDatagram{}, fmt.Errorf("pcapng: byte %d: IPv4 header length %d, total length %d", off, ihl, total)
	}
	if total > len(b) {
		return UDPDatagram{}, truncated("IPv4 packet", off+len(b), len(frame))
	}
	if frag := binary.BigEndian.Uint16(b[6:]); frag&0x3fff != 0 {
		return UDPDatagram{}, fmt.Errorf("pcapng: byte %d: IPv4 fragment, not reassembled", off+6)
	}
	if b[9] != protoUDP {
		return UDPDatagram{}, fmt.Errorf("pcapng: byte %d: IP protocol %d: %w", off+9, b[9], ErrNotUDP)
	}
	src := netip.AddrFrom4([4]byte(b[12:16]))
	dst := netip.AddrFrom4([4]byte(b[16:20]))
	return decodeUDP(frame, off+ihl, off+total, src, dst)
}

func decodeIPv6(frame []byte, off int) (UDPDatagram, error) {
	b := frame[off:]
	if len(b) < 40 {
		return UDPDatagram{}, truncated("IPv6 header", off, len(frame))
	}
	if v := b[0] >> 4; v != 6 {
		return UDPDatagram{}, fmt.Errorf("pcapng: byte %d: IP version %d in an IPv6 frame", off, v)
	}
	plen := int(binary.BigEndian.Uint16(b[4:]))
	if plen == 0 {
		return UDPDatagram{}, fmt.Errorf("pcapng: byte %d: IPv6 payload length 0 (jumbogram) is not supported", off+4)
	}
	end := off + 40 + plen
	if end > len(frame) {
		return UDPDatagram{}, truncated("IPv6 packet", len(frame), len(frame))
	}
	src := netip.AddrFrom16([16]byte(b[8:24]))
	dst := netip.AddrFrom16([16]byte(b[24:40]))
	next := b[6]
	at := off + 40
	for {
		switch next {
		case protoUDP:
			return decodeUDP(frame, at, end, src, dst)
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if end-at < 8 {
				return UDPDatagram{}, truncated("IPv6 extension header", at, len(frame))
			}
			n := (int(frame[at+1]) + 1) * 8
			if end-at < n {
				return UDPDatagram{}, truncated("IPv6 extension header", at, len(frame))
			}
			next = frame[at]
			at += n
		case 44:
			return UDPDatagram{}, fmt.Errorf("pcapng: byte %d: IPv6 fragment, not reassembled", at)
		default:
			return UDPDatagram{}, fmt.Errorf("pcapng: byte %d: IPv6 next header %d: %w", at, next, ErrNotUDP)
		}
	}
}

// decodeUDP reads the UDP header at frame[at:] within an IP payload ending
// at end (Ethernet padding may follow it).
func decodeUDP(frame []byte, at, end int, src, dst netip.Addr) (UDPDatagram, error) {
	if end-at < 8 {
		return UDPDatagram{}, truncated("UDP header", at, len(frame))
	}
	u := frame[at:end]
	n := int(binary.BigEndian.Uint16(u[4:]))
	if n < 8 || n > len(u) {
		return UDPDatagram{}, fmt.Errorf("pcapng: byte %d: UDP length %d, the IP payload holds %d bytes", at+4, n, len(u))
	}
	return UDPDatagram{
		Src:     netip.AddrPortFrom(src, binary.BigEndian.Uint16(u[0:])),
		Dst:     netip.AddrPortFrom(dst, binary.BigEndian.Uint16(u[2:])),
		Payload: u[8:n],
	}, nil
}
