package pcapng

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"satwatt/internal/fuzzcheck"
	"satwatt/internal/vehicledata"
)

// readHex loads a testdata file written as annotated hex: whitespace is
// ignored and '#' starts a comment, so the test inputs stay reviewable.
func readHex(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var digits strings.Builder
	for line := range strings.Lines(string(raw)) {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		digits.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(digits.String())
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

func TestReadAll(t *testing.T) {
	tsNano := time.Date(2024, 4, 20, 15, 3, 6, 954784123, time.UTC)
	tsMicro := time.Date(2024, 4, 20, 15, 3, 6, 954784000, time.UTC)
	tests := []struct {
		file string
		want []Packet
	}{
		{"little-endian.hex", []Packet{
			{Offset: 60, Interface: 0, LinkType: LinkTypeEthernet, Timestamp: tsNano, OriginalLength: 60, Data: []byte("hello")},
			{Offset: 116, Interface: 0, LinkType: LinkTypeEthernet, OriginalLength: 3, Data: []byte("abc")},
		}},
		{"big-endian.hex", []Packet{
			{Offset: 48, Interface: 0, LinkType: LinkTypeRaw, Timestamp: tsMicro, OriginalLength: 4, Data: []byte{0xde, 0xad, 0xbe, 0xef}},
		}},
		{"two-sections.hex", []Packet{
			{Offset: 48, LinkType: LinkTypeEthernet, Timestamp: time.Unix(0, 0).UTC(), OriginalLength: 1, Data: []byte{0xaa}},
			{Offset: 84 + 48, LinkType: LinkTypeRaw, Timestamp: time.Unix(0, 0).UTC(), OriginalLength: 1, Data: []byte{0xbb}},
		}},
		{"snaplen-spb.hex", []Packet{
			{Offset: 48, LinkType: LinkTypeEthernet, OriginalLength: 3, Data: []byte("ab")},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ReadAll(bytes.NewReader(readHex(t, tt.file)))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d packets, want %d: %+v", len(got), len(tt.want), got)
			}
			for i, w := range tt.want {
				g := got[i]
				if g.Offset != w.Offset || g.Interface != w.Interface || g.LinkType != w.LinkType ||
					!g.Timestamp.Equal(w.Timestamp) || g.OriginalLength != w.OriginalLength || !bytes.Equal(g.Data, w.Data) {
					t.Errorf("packet %d:\n got %+v\nwant %+v", i, g, w)
				}
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	tests := []struct {
		file      string
		offset    int64
		msg       string // part of the message
		truncated bool   // wraps io.ErrUnexpectedEOF
	}{
		{"empty.hex", 0, "empty file", true},
		{"not-pcapng.hex", 0, "not a pcapng file", false},
		{"bad-magic.hex", 8, "byte-order magic", false},
		{"major-2.hex", 12, "major version 2", false},
		{"cut-header.hex", 28, "block header cut after 4 of 8 bytes", true},
		{"cut-body.hex", 48, "block of 40 bytes cut after 20", true},
		{"trailer-mismatch.hex", 44, "trailing block length 24 differs from leading 20", false},
		{"odd-length.hex", 32, "not a multiple of 4", false},
		{"huge-length.hex", 32, "implausibly large", false},
		{"unknown-interface.hex", 56, "interface 1 but the section describes 1", false},
		{"caplen-overrun.hex", 68, "captured length 200", false},
		{"spb-first.hex", 28, "before any interface", false},
		{"bad-option.hex", 44, "option 9 of 64 bytes", false},
		// Found by FuzzReadAll's seeds: a 64-bit count of seconds came
		// back as a time before 1970.
		{"timestamp-overflow.hex", 72, "timestamp of 18446744073709551615 units of 1/1 s is after the year 9999", false},
		// A block claiming the largest length, in a short file: refused
		// as cut short, without allocating 16 MiB first.
		{"max-length.hex", 28, "block of 16777216 bytes cut after 16", true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := ReadAll(bytes.NewReader(readHex(t, tt.file)))
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FormatError", err)
			}
			if fe.Offset != tt.offset || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q at offset %d, want offset %d and %q", err, fe.Offset, tt.offset, tt.msg)
			}
			if got := errors.Is(err, io.ErrUnexpectedEOF); got != tt.truncated {
				t.Errorf("errors.Is(err, io.ErrUnexpectedEOF) = %v, want %v", got, tt.truncated)
			}
		})
	}
}

// Found by FuzzReadAll: the reader allocated a block's whole length before
// reading it, 16 MiB for a 44-byte file. It grows the buffer as bytes come.
func TestReadDoesNotTrustBlockLength(t *testing.T) {
	in := readHex(t, "max-length.hex")
	fuzzcheck.Alloc(t, "ReadAll", len(in), 32, 64<<10, func() { _, _ = ReadAll(bytes.NewReader(in)) })
}

// A reader error that is not an early end is passed through, wrapped.
func TestReadPassesIOErrors(t *testing.T) {
	boom := errors.New("disk on fire")
	r := io.MultiReader(bytes.NewReader(readHex(t, "little-endian.hex")[:40]), iotestErr{boom})
	_, err := ReadAll(r)
	if !errors.Is(err, boom) {
		t.Fatalf("error %v does not wrap the reader's error", err)
	}
}

type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }

func TestTimestampResolutions(t *testing.T) {
	tests := []struct {
		resol byte
		ts    uint64
		want  time.Time
	}{
		{6, 1_500_000, time.Unix(1, 500_000_000)},
		{9, 1_000_000_001, time.Unix(1, 1)},
		{0, 7, time.Unix(7, 0)},
		{19, 10_000_000_000_000_000_000 - 1, time.Unix(0, 999_999_999)}, // 0.99999..., truncated
		{0x80 | 10, 1024 + 512, time.Unix(1, 500_000_000)},              // 2^-10 s units
		{0x80 | 63, 1 << 62, time.Unix(0, 500_000_000)},
	}
	for _, tt := range tests {
		ups, ok := unitsPerSecond(tt.resol)
		if !ok {
			t.Fatalf("resolution 0x%02x refused", tt.resol)
		}
		if got := timestamp(tt.ts, ups); !got.Equal(tt.want) {
			t.Errorf("resolution 0x%02x, ts %d: got %v, want %v", tt.resol, tt.ts, got, tt.want)
		}
	}
	for _, bad := range []byte{20, 0x80 | 64} {
		if _, ok := unitsPerSecond(bad); ok {
			t.Errorf("resolution 0x%02x accepted", bad)
		}
	}
}

// The real Model Y capture: every frame is Ethernet, and exactly two UDP
// datagrams use port 15118 (the SDP request and response).
func TestRealCapture(t *testing.T) {
	path := vehicledata.Require(t, "modely-slac-sdp-v2g.pcapng")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pkts, err := ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) != 589 {
		t.Errorf("%d packets, want 589", len(pkts))
	}
	var sdp int
	for _, p := range pkts {
		if p.LinkType != LinkTypeEthernet {
			t.Fatalf("packet at %d has link type %d", p.Offset, p.LinkType)
		}
		u, err := DecodeUDP(p.LinkType, p.Data)
		if errors.Is(err, ErrNotUDP) {
			continue
		}
		if err != nil {
			t.Fatalf("packet at %d: %v", p.Offset, err)
		}
		if u.Src.Port() == 15118 || u.Dst.Port() == 15118 {
			sdp++
		}
	}
	if sdp != 2 {
		t.Errorf("%d datagrams on port 15118, want 2", sdp)
	}
	want := time.Date(2024, 4, 20, 15, 1, 55, 0, time.UTC)
	if first := pkts[0].Timestamp; first.Before(want) || first.After(want.Add(time.Minute)) {
		t.Errorf("first packet at %v, want shortly after %v", first, want)
	}
}
