package rapi

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// cs appends the XOR checksum to a line body, for table rows whose
// checksum is not the point.
func cs(body string) string { return fmt.Sprintf("%s^%02X", body, Checksum([]byte(body))) }

// Examples printed in the firmware's RAPI documentation (rapi_proc.h).
func TestChecksumMatchesFirmwareExamples(t *testing.T) {
	for _, line := range []string{
		"$FE^27", "$GS^30", "$GG^24", "$GU^36", "$GV^35", "$G0^53", "$GE^26",
		"$GC^20", "$F0 1^43", "$F0 0^42", "$SK 0^2C", "$ST 0 0 0 0^23",
		"$OK^20", "$NK^21",
	} {
		i := strings.IndexByte(line, '^')
		f, err := ParseCommandLine([]byte(line))
		if err != nil {
			t.Errorf("%s: %v", line, err)
			continue
		}
		got, err := f.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := line + "\r"; string(got) != want {
			t.Errorf("Append(%s) = %q, want %q", line[:i], got, want)
		}
	}
}

func TestFrameAppend(t *testing.T) {
	tests := []struct {
		f       Frame
		want    string
		wantErr string
	}{
		{f: Frame{Name: "FE"}, want: "$FE^27\r"},
		{f: Frame{Name: "SC", Fields: []string{"16", "V"}}, want: cs("$SC 16 V") + "\r"},
		{f: Frame{Name: "GS", Seq: 0x0A}, want: cs("$GS :0A") + "\r"},
		{f: Frame{Name: "SY", Fields: []string{"30", "6"}, Seq: 0xFF}, want: cs("$SY 30 6 :FF") + "\r"},
		{f: Frame{Name: "fe"}, wantErr: "bad frame name"},
		{f: Frame{Name: "FEE"}, wantErr: "bad frame name"},
		{f: Frame{Name: "SC", Fields: []string{"1 6"}}, wantErr: "holds byte 0x20"},
		{f: Frame{Name: "SC", Fields: []string{""}}, wantErr: "empty field"},
		{f: Frame{Name: "SC", Fields: []string{"1^2"}}, wantErr: "framing character"},
		{f: Frame{Name: "SC", Fields: []string{":01"}}, wantErr: "sequence id"},
		{f: Frame{Name: "FP", Fields: []string{strings.Repeat("x", 70)}}, wantErr: "longer than 64"},
	}
	for _, tt := range tests {
		got, err := tt.f.Append([]byte("keep"))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%+v: err %v, want %q", tt.f, err, tt.wantErr)
			}
			if string(got) != "keep" {
				t.Errorf("%+v: dst changed to %q on error", tt.f, got)
			}
			continue
		}
		if err != nil || string(got) != "keep"+tt.want {
			t.Errorf("%+v: got %q, %v; want %q", tt.f, got, err, tt.want)
		}
	}
}

func TestParseLineGood(t *testing.T) {
	tests := []struct {
		line string
		want Frame
	}{
		{"$OK^20", Frame{Name: "OK"}},
		{"$OK^20\r", Frame{Name: "OK"}},
		{"$NK^21\r\n", Frame{Name: "NK"}},
		{cs("$OK 03 1234 03 0140"), Frame{Name: "OK", Fields: []string{"03", "1234", "03", "0140"}}},
		{cs("$OK 32000 240000 :2A"), Frame{Name: "OK", Fields: []string{"32000", "240000"}, Seq: 0x2A}},
		{cs("$NK 6 :ff"), Frame{Name: "NK", Fields: []string{"6"}, Seq: 0xFF}},
		{cs("$OK :01"), Frame{Name: "OK", Seq: 1}},
		{cs("$AT 03 03 32 0140"), Frame{Name: "AT", Fields: []string{"03", "03", "32", "0140"}}},
		{cs("$AB 00 D9.0.0"), Frame{Name: "AB", Fields: []string{"00", "D9.0.0"}}},
		{cs("$ST fe"), Frame{Name: "ST", Fields: []string{"fe"}}},
		// Lower-case checksum digits: the firmware reads both cases.
		{"$GL^2f", Frame{Name: "GL"}},
	}
	for _, tt := range tests {
		got, err := ParseLine([]byte(tt.line))
		if err != nil {
			t.Errorf("ParseLine(%q): %v", tt.line, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseLine(%q) = %#v, want %#v", tt.line, got, tt.want)
		}
	}
}

func TestParseLineBad(t *testing.T) {
	long := cs("$OK " + strings.Repeat("9", 70))
	tests := []struct {
		name   string
		line   string
		kind   error
		detail string
	}{
		{"checksum off by one", "$OK^21", ErrChecksum, "line says 21, computed 20"},
		{"checksum of other line", "$OK 1^20", ErrChecksum, "computed"},
		{"no checksum", "$OK 3 0", ErrNoChecksum, "no '^XX'"},
		{"additive checksum", "$FE*AF", ErrMalformed, "additive"},
		{"one checksum digit", "$OK^2", ErrTruncated, "1 hex digits"},
		{"no checksum digit", "$OK^", ErrTruncated, "0 hex digits"},
		{"checksum not hex", "$OK^2G", ErrMalformed, "not two hex digits"},
		{"checksum not at end", "$OK^20 1", ErrMalformed, "not two hex digits"},
		{"garbage", "hello world", ErrMalformed, "does not start with '$'"},
		{"empty", "", ErrMalformed, "empty line"},
		{"only CR", "\r", ErrMalformed, "empty line"},
		{"control byte", "$OK\x00 1^20", ErrMalformed, "byte 0x00 at offset 3"},
		{"high byte", "$OK \xff^20", ErrMalformed, "byte 0xFF at offset 4"},
		{"too long", long, ErrTooLong, "at most 64"},
		{"name too short", cs("$O"), ErrMalformed, "two-character name"},
		{"lower-case name", cs("$ok"), ErrMalformed, "two-character name"},
		{"name run on", cs("$OKAY"), ErrMalformed, "not followed by a space"},
		{"double space", cs("$OK 1  2"), ErrMalformed, "field 2 is empty"},
		{"trailing space", cs("$OK 1 "), ErrMalformed, "field 2 is empty"},
		{"seq zero", cs("$OK 1 :00"), ErrMalformed, "sequence id \":00\""},
		{"seq not hex", cs("$OK :G1"), ErrMalformed, "sequence id"},
		{"seq too long", cs("$OK :123"), ErrMalformed, "sequence id"},
		// Found by FuzzParseLine: these parsed into frames that Append
		// refuses, and the firmware reads them differently (a '$' starts
		// a new command, the first '^' or '*' is the checksum).
		{"dollar inside", cs("$OK fe 2 02$01"), ErrMalformed, "framing character '$' at offset 11"},
		{"two lines run together", "$OK^20$NK^21", ErrMalformed, "framing character"},
		{"caret inside", cs("$OK 1^2"), ErrMalformed, "framing character '^' at offset 5"},
		{"star inside", cs("$OK 1*2"), ErrMalformed, "framing character '*'"},
		{"seq not last", cs("$OK :01 5"), ErrMalformed, "field 1 \":01\" starts with ':'"},
		{"two seqs", cs("$OK :01 :02"), ErrMalformed, "only the last field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseLine([]byte(tt.line))
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("ParseLine(%q) = %v, want a *LineError", tt.line, err)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("error %q is not %v", err, tt.kind)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.detail) {
				t.Errorf("error %q does not say %q", msg, tt.detail)
			}
			// The line is named, quoted and clipped.
			quoted := fmt.Sprintf("%q", strings.TrimRight(tt.line, "\r\n"))
			if len(tt.line) > clipLen {
				quoted = fmt.Sprintf("%q... (%d bytes)", tt.line[:clipLen], len(tt.line))
			}
			if !strings.Contains(msg, quoted) {
				t.Errorf("error %q does not quote the line as %s", msg, quoted)
			}
		})
	}
}

func TestParseCommandLine(t *testing.T) {
	tests := []struct {
		line    string
		want    Frame
		wantErr error
	}{
		{"$FE^27", Frame{Name: "FE"}, nil},
		{"$FE", Frame{Name: "FE"}, nil}, // no checksum: firmware accepts, "for testing only"
		{"$FD*AE", Frame{Name: "FD"}, nil},
		{"$SL A*24", Frame{Name: "SL", Fields: []string{"A"}}, nil},
		{"$FB 7*03", Frame{Name: "FB", Fields: []string{"7"}}, nil},
		{"$FD*AF", Frame{}, ErrChecksum},
		{"$FE^26", Frame{}, ErrChecksum},
		{cs("$SC 16 V :05"), Frame{Name: "SC", Fields: []string{"16", "V"}, Seq: 5}, nil},
	}
	for _, tt := range tests {
		got, err := ParseCommandLine([]byte(tt.line))
		if !errors.Is(err, tt.wantErr) || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseCommandLine(%q) = %#v, %v; want %#v, %v", tt.line, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestSplitter(t *testing.T) {
	type out struct {
		line string
		kind error
	}
	tests := []struct {
		name   string
		chunks []string
		want   []out
	}{
		{"one line", []string{"$OK^20\r"}, []out{{"$OK^20", nil}}},
		{"split across reads", []string{"$O", "K^2", "0\r$N", "K^21\r"}, []out{{"$OK^20", nil}, {"$NK^21", nil}}},
		{"LF and empty lines skipped", []string{"\r\n\r$OK^20\r\n\n"}, []out{{"$OK^20", nil}}},
		{"lost CR", []string{"$OK 1 2$AT 01 01 32 0000^00\r"}, []out{{"$OK 1 2", ErrTruncated}, {"$AT 01 01 32 0000^00", nil}}},
		{"noise before $", []string{"xx\r$OK^20\r"}, []out{{"xx", nil}, {"$OK^20", nil}}},
		{"noise then $ without CR", []string{"zz$OK^20\r"}, []out{{"zz", ErrTruncated}, {"$OK^20", nil}}},
		{"over-long dropped to CR", []string{"$" + strings.Repeat("a", 100) + "\r$OK^20\r"},
			[]out{{"", ErrTooLong}, {"$OK^20", nil}}},
		{"over-long dropped to $", []string{"$" + strings.Repeat("a", 70), strings.Repeat("b", 70) + "$OK^20\r"},
			[]out{{"", ErrTooLong}, {"$OK^20", nil}}},
		{"unterminated tail waits", []string{"$OK^20\r$NK"}, []out{{"$OK^20", nil}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sp Splitter
			var got []out
			for _, c := range tt.chunks {
				sp.Feed([]byte(c), func(line []byte, err error) {
					o := out{line: string(line)}
					if err != nil {
						var le *LineError
						if !errors.As(err, &le) {
							t.Fatalf("error %v is not a *LineError", err)
						}
						o.kind = le.Kind
					}
					got = append(got, o)
				})
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func BenchmarkParseLine(b *testing.B) {
	for _, line := range []string{
		"$OK^20",
		cs("$OK 03 5231 03 0140 :2A"),
		cs("$AT 03 03 32 0140"),
	} {
		b.Run(line[:3+min(len(line)-3, 9)], func(b *testing.B) {
			in := []byte(line)
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if _, err := ParseLine(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSplitAndParse(b *testing.B) {
	stream := []byte(cs("$OK 03 5231 03 0140 :2A") + "\r" + cs("$AT 03 03 32 0140") + "\r" + cs("$OK 32000 240000 :2B") + "\r")
	var sp Splitter
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		sp.Feed(stream, func(line []byte, err error) {
			if err != nil {
				b.Fatal(err)
			}
			if _, err := ParseLine(line); err != nil {
				b.Fatal(err)
			}
		})
	}
}
