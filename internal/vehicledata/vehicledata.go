// Package vehicledata finds the shared recordings of real cars and chargers
// (the shared/vehicle-data folder beside the project) for tests. The files
// are read where they are, never copied into the project.
package vehicledata

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the shared vehicle-data folder: the first "shared/vehicle-data"
// found walking up from the working directory, or $SATWATT_VEHICLE_DATA.
func Dir() (string, error) {
	if d := os.Getenv("SATWATT_VEHICLE_DATA"); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		candidate := filepath.Join(dir, "shared", "vehicle-data")
		if st, err := os.Stat(candidate); err == nil && st.IsDir() {
			return candidate, nil
		}
		if filepath.Dir(dir) == dir {
			return "", errors.New("no shared/vehicle-data folder above the working directory (set SATWATT_VEHICLE_DATA to its path)")
		}
	}
}

// Require returns the path of a file in the shared folder. When it is
// missing the test fails under CI=true and is skipped otherwise, saying what
// is missing either way.
func Require(t testing.TB, name string) string {
	t.Helper()
	dir, err := Dir()
	if err == nil {
		p := filepath.Join(dir, name)
		if _, err = os.Stat(p); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("shared vehicle data %s is missing: %v", name, err)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
