package main

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"satwatt/internal/subcmd"
)

func TestConnectorFlags(t *testing.T) {
	cases := []struct {
		args    []string
		n       int
		serials []string
		err     string // empty: accepted
	}{
		{nil, 1, []string{""}, ""},
		{[]string{"--connectors", "50"}, 50, nil, ""},
		{[]string{"--evse", "openevse", "--serial", "/dev/ttyUSB0"}, 1, []string{"/dev/ttyUSB0"}, ""},
		{[]string{"--evse", "openevse", "--serial", "/dev/ttyUSB0,/dev/ttyUSB1"}, 2, []string{"/dev/ttyUSB0", "/dev/ttyUSB1"}, ""},
		{[]string{"--evse", "openevse", "--serial", "/dev/ttyUSB0", "--connectors", "2"}, 0, nil, "one OpenEVSE per connector"},
		{[]string{"--connectors", "-1"}, 0, nil, "a wall has 1 to 256"},
		{[]string{"--connectors", "1000"}, 0, nil, "a wall has 1 to 256"},
		{[]string{"--connectors", "2", "--sdp-iface", "eth1"}, 0, nil, "one connector only"},
		{[]string{"--connectors", "2", "--sim-car", "http://127.0.0.1:1"}, 0, nil, "/c/N/api/sim/plug"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			fs, f := serveFlagSet(io.Discard)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			serials, err := connectorCount(f)
			if tc.err != "" {
				if !errors.Is(err, subcmd.ErrUsage) || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want a usage error about %q", err, tc.err)
				}
				return
			}
			if err != nil || f.connectors != tc.n || len(serials) != tc.n || (tc.serials != nil && !slices.Equal(serials, tc.serials)) {
				t.Errorf("%d connectors, serials %q, %v; want %d, %q", f.connectors, serials, err, tc.n, tc.serials)
			}
		})
	}
}
