package dbc

import (
	"fmt"
	"text/scanner"
)

// FileError is a DBC file that cannot be used: it names where the problem is
// so that the user can fix the file without guessing.
type FileError struct {
	File   string
	Line   int // 0 when the problem concerns the whole file
	Column int
	Reason string

	cause error // the parser's own error, when it found the problem
}

// Unwrap gives access to the parser's error (a go.einride.tech/can/pkg/dbc
// Error) for syntax errors.
func (e *FileError) Unwrap() error { return e.cause }

func (e *FileError) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Reason
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Reason)
}

// fileErrorAt builds a FileError at a parser position. The file name comes
// from the caller rather than the position so that every error names the
// source the caller asked for, whatever the parser recorded.
func fileErrorAt(file string, pos scanner.Position, format string, a ...any) *FileError {
	return &FileError{File: file, Line: pos.Line, Column: pos.Column, Reason: fmt.Sprintf(format, a...)}
}

func posString(file string, pos scanner.Position) string {
	return fmt.Sprintf("%s:%d:%d", file, pos.Line, pos.Column)
}
