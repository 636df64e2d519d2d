//go:build !linux

package rapi

import (
	"errors"
	"os"
)

var errNoSerial = errors.New("rapi: serial ports are supported on Linux only")

func openSerial(path string, baud int) (*os.File, error) { return nil, errNoSerial }
