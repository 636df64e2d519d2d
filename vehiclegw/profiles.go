package main

import (
	"context"
	"fmt"
	"io"

	vp "satwatt/internal/vehicleprofile"
)

func runProfiles(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("profiles", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	for _, name := range vp.Builtins() {
		p, err := vp.Load(name)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%-14s %s (DBC %s)\n", name, p.Description, p.DBC)
	}
	return nil
}
