// Package dbc loads DBC files at run time and encodes and decodes CAN frames
// with them. einride's parser reads the file; this package compiles what it
// read into descriptors (einride's own compiler is internal to its module),
// adds an ID index so unknown frames cost one map look-up, and does the
// physical-value arithmetic itself so that decoding never clamps a value
// silently and encoding rounds to the nearest raw value and refuses values out
// of range.
package dbc

import (
	"embed"
	"time"

	"go.einride.tech/can/pkg/descriptor"
)

// Builtin holds the DBC files and vehicle profiles that ship in the binary.
// Profiles name them as "builtin:NAME".
//
//go:embed *.dbc profiles/*.toml
var Builtin embed.FS

// Database is a compiled DBC file.
type Database struct {
	// Source is the file name the database was read from, used in errors.
	Source string
	// Desc is the compiled einride descriptor database.
	Desc *descriptor.Database
	// Messages sorted by ID.
	Messages []*Message
	// Warnings are problems that do not stop the file from being used (for
	// example a signal that does not fit in its message's declared length).
	// Each names the file and line.
	Warnings []Warning

	byID   map[uint32]*Message // key: ID, with bit 31 set for extended IDs
	byName map[string]*Message
}

// Warning is a non-fatal problem in a DBC file.
type Warning struct {
	Pos string // "file:line:column"
	Msg string
}

func (w Warning) String() string { return w.Pos + ": " + w.Msg }

// Message is one compiled message.
type Message struct {
	Desc      *descriptor.Message
	Name      string
	ID        uint32
	Extended  bool
	Length    uint8 // declared length in bytes
	CycleTime time.Duration
	Signals   []*Signal
	// Mux is the multiplexor signal, nil when the message is not multiplexed.
	Mux *Signal

	byName map[string]*Signal
}

// Signal is one compiled signal.
type Signal struct {
	Desc    *descriptor.Signal
	Name    string
	Unit    string
	Message *Message
	// Pos is where the signal is defined ("file:line").
	Pos string

	// Copies of the layout and arithmetic, flattened so that Decode reads
	// one struct and does nothing but the bounds check and the extraction.
	start, length     uint8
	bigEndian, signed bool
	isFloat           bool // IEEE 754 single precision (SIG_VALTYPE_ 1)
	factor, offset    float64
	min, max          float64
	needBytes         uint8 // highest byte index the bits touch, plus one
	multiplexed       bool
	muxValue          uint64
	valueNames        map[int64]string
	valueRaws         map[string]int64
}
