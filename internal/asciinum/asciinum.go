// Package asciinum parses unsigned decimal and hexadecimal numbers from byte
// slices without allocating, for the log and protocol parsers on the CAN hot
// path. strconv would need a string, and converting each field to one would
// allocate per line.
package asciinum

// Decimal reads an unsigned decimal number. It reports false on an empty
// field, a byte that is not a digit, or a value above limit. limit is checked
// after every digit, so a limit under math.MaxUint64/10 also stops overflow.
func Decimal(b []byte, limit uint64) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
		if v > limit {
			return 0, false
		}
	}
	return v, true
}

// HexDigit is the value of one hex digit, either case; for any other byte
// ok is false and v is 0xff.
func HexDigit(c byte) (v byte, ok bool) {
	// ok is derived from the sentinel rather than returned per case: that
	// compiles to one compare at the call site, and the GVRET parser measured
	// about 10% slower the other way.
	switch {
	case c >= '0' && c <= '9':
		v = c - '0'
	case c >= 'A' && c <= 'F':
		v = c - 'A' + 10
	case c >= 'a' && c <= 'f':
		v = c - 'a' + 10
	default:
		v = 0xff
	}
	return v, v != 0xff
}
