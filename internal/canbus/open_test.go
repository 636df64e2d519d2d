package canbus

import (
	"context"
	"strings"
	"testing"

	"satwatt/internal/canlog"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		spec string
		want Spec
		err  string
	}{
		{spec: "can0", want: Spec{Kind: KindSocketCAN, Iface: "can0"}},
		{spec: "vcan0", want: Spec{Kind: KindSocketCAN, Iface: "vcan0"}},
		{spec: "socketcan:can1", want: Spec{Kind: KindSocketCAN, Iface: "can1"}},
		{spec: "candump:rec/x.txt", want: Spec{Kind: KindReplay, Path: "rec/x.txt", Format: canlog.Candump}},
		{spec: "gvret:x.txt", want: Spec{Kind: KindReplay, Path: "x.txt", Format: canlog.GVRET}},
		{spec: "logs/drive.log", want: Spec{Kind: KindReplay, Path: "logs/drive.log", Format: canlog.Candump}},
		{spec: "drive.LOG", want: Spec{Kind: KindReplay, Path: "drive.LOG", Format: canlog.Candump}},
		{spec: "../rec/drive.csv", want: Spec{Kind: KindReplay, Path: "../rec/drive.csv", Format: canlog.GVRET}},
		{spec: "socketcand://127.0.0.1:29536/vcan0", want: Spec{Kind: KindSocketcand, Addr: "127.0.0.1:29536", Bus: "vcan0"}},
		{spec: "socketcand://carpc/can0", want: Spec{Kind: KindSocketcand, Addr: "carpc:29536", Bus: "can0"}},
		{spec: "socketcand://[::1]:4000/can0", want: Spec{Kind: KindSocketcand, Addr: "[::1]:4000", Bus: "can0"}},

		{spec: "", err: "empty"},
		{spec: "socketcan:", err: "missing interface name"},
		{spec: "socketcan:averyveryverylongname", err: "longer than 15"},
		{spec: "candump:", err: "missing path"},
		{spec: "socketcand://host:1/", err: "one bus name"},
		{spec: "socketcand://host:1/a/b", err: "one bus name"},
		{spec: "socketcand://:1/can0", err: "missing host"},
		{spec: "socketcand://host:99999/can0", err: "bad port"},
		{spec: "http://example/can0", err: "unknown kind"},
		{spec: "rec/drive.txt", err: "unknown kind"},
		{spec: "can 0", err: "blank"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := ParseSpec(tt.spec)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				if !strings.Contains(err.Error(), "socketcand://HOST:PORT/BUS") {
					t.Errorf("error %q does not list the accepted forms", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		open func() error
		want string
	}{
		{"unknown spec", func() error { _, err := Open(ctx, "ftp://x", Options{}); return err }, "accepted forms"},
		{"replay as bus", func() error {
			_, err := OpenBus(ctx, "testdata/paced.candump.log", Options{})
			return err
		}, "a replay cannot transmit"},
		{"missing file", func() error { _, err := Open(ctx, "testdata/absent.log", Options{}); return err }, "no such file"},
		{"negative speed", func() error {
			_, err := Open(ctx, "testdata/paced.candump.log", Options{Speed: -1})
			return err
		}, "speed"},
		{"socketcand refused", func() error {
			_, err := Open(ctx, "socketcand://127.0.0.1:1/vcan0", Options{})
			return err
		}, "dial 127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.open(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
