package socketcand

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"go.einride.tech/can"
)

func TestElementReader(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		want   []string // element text, or "!reason" for an error
	}{
		{"plain", "< hi >< ok >", []string{"hi", "ok"}},
		{"blanks and newlines between", "< hi >\r\n  < frame 123 1.000000 AB >\n", []string{"hi", "frame 123 1.000000 AB"}},
		{"split across reads", "<    ok   >", []string{"ok"}},
		{"junk before", "xyz< ok >", []string{"!unexpected text outside < >", "ok"}},
		{"unclosed", "< frame 12< ok >", []string{"!element not closed", "ok"}},
		{"overlong then recovers", "< " + strings.Repeat("a", 300) + " >< ok >", []string{"!" + errTooLong.Error(), "ok"}},
		{"exactly 256 bytes", "<" + strings.Repeat("a", 254) + ">", []string{strings.Repeat("a", 254)}},
		{"257 bytes", "<" + strings.Repeat("a", 255) + ">< ok >", []string{"!" + errTooLong.Error(), "ok"}},
		{"endless junk", strings.Repeat("z", 300), []string{"!" + errTooLong.Error()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			er := elementReader{r: bufio.NewReaderSize(&oneByteReader{s: tt.stream}, 16)}
			var got []string
			for {
				el, err := er.next()
				if err == io.EOF {
					break
				}
				if err != nil {
					got = append(got, "!"+err.Error())
					continue
				}
				got = append(got, string(el))
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			for i := range got {
				if strings.HasPrefix(tt.want[i], "!") {
					if !strings.Contains(got[i], tt.want[i][1:]) {
						t.Errorf("element %d = %q, want an error with %q", i, got[i], tt.want[i][1:])
					}
				} else if got[i] != tt.want[i] {
					t.Errorf("element %d = %q, want %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// oneByteReader hands out one byte per Read, so every element arrives in
// pieces.
type oneByteReader struct{ s string }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.s) == 0 {
		return 0, io.EOF
	}
	p[0] = r.s[0]
	r.s = r.s[1:]
	return 1, nil
}

func TestFrameElementRoundTrip(t *testing.T) {
	ts := time.Unix(1600000018, 846853000)
	tests := []struct {
		name string
		f    can.Frame
		text string
	}{
		{"standard", can.Frame{ID: 0x123, Length: 4, Data: can.Data{0xDE, 0xAD, 0xBE, 0xEF}},
			"< frame 123 1600000018.846853 DEADBEEF >"},
		{"extended", can.Frame{ID: 0x1F334455, IsExtended: true, Length: 1, Data: can.Data{0x01}},
			"< frame 1F334455 1600000018.846853 01 >"},
		{"extended small ID", can.Frame{ID: 0x5, IsExtended: true},
			"< frame 00000005 1600000018.846853  >"},
		{"remote", can.Frame{ID: 0x7FF, IsRemote: true, Length: 8},
			"< rtr 7FF 1600000018.846853 8 >"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := string(appendFrameElement(nil, &tt.f, ts))
			if text != tt.text {
				t.Fatalf("formatted %q, want %q", text, tt.text)
			}
			er := elementReader{r: bufio.NewReader(strings.NewReader(text))}
			el, err := er.next()
			if err != nil {
				t.Fatal(err)
			}
			var fs [16][]byte
			var got can.Frame
			var gotTS time.Time
			if tt.f.IsRemote {
				gotTS, err = parseRTRElement(el, fields(el, fs[:0]), &got)
			} else {
				gotTS, err = parseFrameElement(el, fields(el, fs[:0]), &got)
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.f || !gotTS.Equal(ts) {
				t.Errorf("parsed %v at %v, want %v at %v", got, gotTS, tt.f, ts)
			}
		})
	}
}

func TestParseFrameElementErrors(t *testing.T) {
	tests := []struct {
		el     string
		reason string
	}{
		{"frame 123", "needs an ID and a timestamp"},
		{"frame 1G3 1.0 00", "bad hex digit in CAN ID"},
		{"frame 800 1.0 00", "exceeds 0x7FF"},
		{"frame 123 x.0 00", "bad timestamp"},
		{"frame 123 1.0 0", "odd number"},
		{"frame 123 1.0 001122334455667788", "longer than 8 bytes"},
		{"frame 123 1.0 0Z", "bad hex digit in frame data"},
		{"frame 123456789 1.0 00", "1 to 8 hex digits"},
	}
	for _, tt := range tests {
		t.Run(tt.el, func(t *testing.T) {
			var fs [16][]byte
			var f can.Frame
			_, err := parseFrameElement([]byte(tt.el), fields([]byte(tt.el), fs[:0]), &f)
			var pe *ProtocolError
			if !errors.As(err, &pe) || !strings.Contains(pe.Reason, tt.reason) {
				t.Errorf("err = %v, want a ProtocolError with %q", err, tt.reason)
			}
		})
	}
}

func TestSendElement(t *testing.T) {
	tests := []struct {
		f    can.Frame
		want string
	}{
		{can.Frame{ID: 0x123, Length: 2, Data: can.Data{0x01, 0xF1}}, "< send 123 2 01 F1 >"},
		{can.Frame{ID: 0x1AAAAAAA, IsExtended: true}, "< send 1AAAAAAA 0 >"},
		{can.Frame{ID: 0x123, IsRemote: true, Length: 2}, "< sendrtr 123 2 >"},
	}
	for _, tt := range tests {
		if got := string(appendSendElement(nil, &tt.f)); got != tt.want {
			t.Errorf("appendSendElement(%v) = %q, want %q", tt.f, got, tt.want)
		}
	}
}
