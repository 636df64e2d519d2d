package dbc

import (
	"cmp"
	"fmt"
	"io/fs"
	"math"
	"os"
	"slices"
	"strings"
	"text/scanner"
	"time"

	dbcfile "go.einride.tech/can/pkg/dbc"
	"go.einride.tech/can/pkg/descriptor"
)

// maxClassicLength is the payload of a classic CAN frame; CAN FD is out of
// scope because the bus library has no CAN FD support.
const maxClassicLength = 8

// extendedFlag marks extended IDs in the index key, as DBC files do.
const extendedFlag = 1 << 31

// Parse compiles DBC text. source names the file in errors and warnings.
// A syntax error or an invalid definition is returned as *FileError.
func Parse(source string, data []byte) (*Database, error) {
	p := dbcfile.NewParser(source, data)
	if perr := p.Parse(); perr != nil {
		fe := fileErrorAt(source, perr.Position(), "syntax error: %s", perr.Reason())
		fe.cause = perr
		return nil, fe
	}
	c := &compiler{
		file: source,
		db: &Database{
			Source: source,
			Desc:   &descriptor.Database{SourceFile: source},
			byID:   map[uint32]*Message{},
			byName: map[string]*Message{},
		},
		msgLine:   map[uint32]int{},
		attrTypes: map[dbcfile.Identifier]dbcfile.AttributeValueType{},
	}
	if err := c.compile(p.Defs()); err != nil {
		return nil, err
	}
	return c.db, nil
}

// LoadFile reads and compiles a DBC file from disk.
func LoadFile(path string) (*Database, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading DBC file: %w", err)
	}
	return Parse(path, data)
}

// LoadBuiltin compiles one of the embedded DBC files by name ("satwatt.dbc").
// Errors and warnings name it "builtin:NAME", the way profiles refer to it.
func LoadBuiltin(name string) (*Database, error) {
	names, err := fs.Glob(Builtin, "*.dbc")
	if err != nil {
		return nil, err
	}
	// Only the listed names are accepted so that a name cannot reach the
	// profiles or anything else embedded beside the DBC files.
	if !slices.Contains(names, name) {
		return nil, fmt.Errorf("no built-in DBC named %q (available: %s)", name, strings.Join(names, ", "))
	}
	data, err := Builtin.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return Parse("builtin:"+name, data)
}

type compiler struct {
	file string
	db   *Database
	// msgLine remembers where each ID was defined so that a duplicate can
	// point at both definitions.
	msgLine   map[uint32]int
	attrTypes map[dbcfile.Identifier]dbcfile.AttributeValueType
	// Defaults from BA_DEF_DEF_, applied to messages without their own BA_.
	defaultCycle, defaultDelay time.Duration
	hasCycle, hasDelay         map[*Message]bool
	// warnAt is where each of db.Warnings is, to sort them.
	warnAt []scanner.Position
}

func (c *compiler) warn(pos scanner.Position, format string, a ...any) {
	c.db.Warnings = append(c.db.Warnings, Warning{Pos: posString(c.file, pos), Msg: fmt.Sprintf(format, a...)})
	c.warnAt = append(c.warnAt, pos)
}

// sortWarnings puts the warnings in the order of the file, whatever pass
// found them.
func (c *compiler) sortWarnings() {
	idx := make([]int, len(c.db.Warnings))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		pa, pb := c.warnAt[a], c.warnAt[b]
		return cmp.Or(cmp.Compare(pa.Line, pb.Line), cmp.Compare(pa.Column, pb.Column))
	})
	sorted := make([]Warning, len(idx))
	for i, j := range idx {
		sorted[i] = c.db.Warnings[j]
	}
	c.db.Warnings = sorted
}

func (c *compiler) errorf(pos scanner.Position, format string, a ...any) error {
	return fileErrorAt(c.file, pos, format, a...)
}

func (c *compiler) compile(defs []dbcfile.Def) error {
	c.hasCycle = map[*Message]bool{}
	c.hasDelay = map[*Message]bool{}
	// Messages and attribute definitions first: comments, value tables and
	// attribute values refer to them and may come earlier in odd files.
	for _, def := range defs {
		switch d := def.(type) {
		case *dbcfile.VersionDef:
			c.db.Desc.Version = d.Version
		case *dbcfile.NodesDef:
			for _, n := range d.NodeNames {
				c.db.Desc.Nodes = append(c.db.Desc.Nodes, &descriptor.Node{Name: string(n)})
			}
		case *dbcfile.MessageDef:
			if dbcfile.IsIndependentSignalsMessage(d) {
				continue
			}
			if err := c.message(d); err != nil {
				return err
			}
		case *dbcfile.AttributeDef:
			c.attrTypes[d.Name] = d.Type
		}
	}
	if len(c.db.Messages) == 0 {
		return &FileError{File: c.file, Reason: "no messages"}
	}
	// Value types before value tables, which are checked against the
	// signal's raw range unless it is a float.
	for _, def := range defs {
		if d, ok := def.(*dbcfile.SignalValueTypeDef); ok {
			if err := c.signalValueType(d); err != nil {
				return err
			}
		}
	}
	for _, def := range defs {
		switch d := def.(type) {
		case *dbcfile.AttributeDefaultValueDef:
			c.attributeDefault(d)
		case *dbcfile.AttributeValueForObjectDef:
			c.attribute(d)
		case *dbcfile.CommentDef:
			c.comment(d)
		case *dbcfile.ValueDescriptionsDef:
			c.valueDescriptions(d)
		}
	}
	for _, m := range c.db.Messages {
		if !c.hasCycle[m] {
			m.CycleTime = c.defaultCycle
			m.Desc.CycleTime = c.defaultCycle
		}
		if !c.hasDelay[m] {
			m.Desc.DelayTime = c.defaultDelay
		}
	}
	slices.SortFunc(c.db.Messages, func(a, b *Message) int {
		return cmp.Compare(key(a.ID, a.Extended), key(b.ID, b.Extended))
	})
	for _, m := range c.db.Messages {
		c.db.Desc.Messages = append(c.db.Desc.Messages, m.Desc)
	}
	c.sortWarnings()
	return nil
}

func key(id uint32, extended bool) uint32 {
	if extended {
		return id | extendedFlag
	}
	return id
}

func (c *compiler) message(d *dbcfile.MessageDef) error {
	name := string(d.Name)
	if d.Size > maxClassicLength {
		return c.errorf(d.Pos, "message %s: CAN FD messages (size %d) are not supported", name, d.Size)
	}
	k := uint32(d.MessageID)
	if other, dup := c.db.byID[k]; dup {
		return c.errorf(d.Pos, "message %s: duplicate ID %d (0x%X), already used by %s at line %d",
			name, d.MessageID.ToCAN(), d.MessageID.ToCAN(), other.Name, c.msgLine[k])
	}
	if other, dup := c.db.byName[name]; dup {
		return c.errorf(d.Pos, "message %s: duplicate name, already used by ID %d at line %d",
			name, other.ID, c.msgLine[key(other.ID, other.Extended)])
	}
	m := &Message{
		Name:     name,
		ID:       d.MessageID.ToCAN(),
		Extended: d.MessageID.IsExtended(),
		Length:   uint8(d.Size),
		byName:   map[string]*Signal{},
	}
	m.Desc = &descriptor.Message{
		Name:       name,
		ID:         m.ID,
		IsExtended: m.Extended,
		Length:     m.Length,
		SenderNode: string(d.Transmitter),
	}
	var firstMuxed *dbcfile.SignalDef
	for i := range d.Signals {
		sd := &d.Signals[i]
		s, err := c.signal(m, sd)
		if err != nil {
			return err
		}
		if _, dup := m.byName[s.Name]; dup {
			return c.errorf(sd.Pos, "message %s: duplicate signal name %s", name, s.Name)
		}
		if sd.IsMultiplexerSwitch {
			if m.Mux != nil {
				return c.errorf(sd.Pos, "message %s: more than one multiplexor (%s and %s)", name, m.Mux.Name, s.Name)
			}
			m.Mux = s
		}
		if sd.IsMultiplexed && firstMuxed == nil {
			firstMuxed = sd
		}
		m.byName[s.Name] = s
		m.Signals = append(m.Signals, s)
		m.Desc.Signals = append(m.Desc.Signals, s.Desc)
	}
	if firstMuxed != nil && m.Mux == nil {
		return c.errorf(firstMuxed.Pos, "message %s: signal %s is multiplexed (m%d) but the message has no multiplexor (M)",
			name, firstMuxed.Name, firstMuxed.MultiplexerSwitch)
	}
	if m.Mux != nil {
		limit := uint64(1)<<m.Mux.length - 1
		if m.Mux.length == 64 {
			limit = math.MaxUint64
		}
		for i, s := range m.Signals {
			if s.multiplexed && s.muxValue > limit {
				c.warn(d.Signals[i].Pos, "signal %s: multiplexor value %d does not fit in %s's %d bits, so it never decodes",
					s.Name, s.muxValue, m.Mux.Name, m.Mux.length)
			}
		}
	}
	c.db.byID[k] = m
	c.db.byName[name] = m
	c.msgLine[k] = d.Pos.Line
	c.db.Messages = append(c.db.Messages, m)
	return nil
}

func (c *compiler) signal(m *Message, sd *dbcfile.SignalDef) (*Signal, error) {
	name := string(sd.Name)
	switch {
	case sd.Size == 0 || sd.Size > 64:
		return nil, c.errorf(sd.Pos, "signal %s: size %d bits is outside 1..64", name, sd.Size)
	case sd.StartBit > 63:
		return nil, c.errorf(sd.Pos, "signal %s: start bit %d is beyond bit 63 of an 8-byte frame", name, sd.StartBit)
	case sd.Factor == 0:
		return nil, c.errorf(sd.Pos, "signal %s: factor (scale) is 0", name)
	case math.IsNaN(sd.Factor) || math.IsInf(sd.Factor, 0) || math.IsNaN(sd.Offset) || math.IsInf(sd.Offset, 0):
		return nil, c.errorf(sd.Pos, "signal %s: factor and offset must be finite numbers", name)
	}
	start, size := uint8(sd.StartBit), uint8(sd.Size)
	var need uint8
	if sd.IsBigEndian {
		// Motorola: the start bit is the most significant bit in DBC's
		// sawtooth numbering; in the frame read as one big-endian 64-bit
		// word that bit sits at (7-byte)*8+bit, and the rest follow below it.
		msb := (7-start/8)*8 + start%8
		if size > msb+1 {
			return nil, c.errorf(sd.Pos, "signal %s: %d big-endian bits from start bit %d run past the end of an 8-byte frame",
				name, size, start)
		}
		lsb := msb - size + 1
		need = 8 - lsb/8
	} else {
		last := uint16(start) + uint16(size) - 1
		if last > 63 {
			return nil, c.errorf(sd.Pos, "signal %s: bits %d..%d run past bit 63 of an 8-byte frame", name, start, last)
		}
		need = uint8(last/8) + 1
	}
	if need > m.Length {
		// A warning, not an error: the community Tesla DBC has such a signal
		// and must still load; Decode reports it unknown for short frames.
		c.warn(sd.Pos, "signal %s needs %d bytes but message %s declares %d", name, need, m.Name, m.Length)
	}
	s := &Signal{
		Name:        name,
		Unit:        sd.Unit,
		Message:     m,
		Pos:         fmt.Sprintf("%s:%d", c.file, sd.Pos.Line),
		start:       start,
		length:      size,
		bigEndian:   sd.IsBigEndian,
		signed:      sd.IsSigned,
		factor:      sd.Factor,
		offset:      sd.Offset,
		min:         sd.Minimum,
		max:         sd.Maximum,
		needBytes:   need,
		multiplexed: sd.IsMultiplexed,
		muxValue:    sd.MultiplexerSwitch,
	}
	s.Desc = &descriptor.Signal{
		Name:             name,
		Start:            start,
		Length:           size,
		IsBigEndian:      sd.IsBigEndian,
		IsSigned:         sd.IsSigned,
		IsMultiplexer:    sd.IsMultiplexerSwitch,
		IsMultiplexed:    sd.IsMultiplexed,
		MultiplexerValue: uint(sd.MultiplexerSwitch),
		Offset:           sd.Offset,
		Scale:            sd.Factor,
		Min:              sd.Minimum,
		Max:              sd.Maximum,
		Unit:             sd.Unit,
	}
	for _, r := range sd.Receivers {
		s.Desc.ReceiverNodes = append(s.Desc.ReceiverNodes, string(r))
	}
	return s, nil
}

// target finds the message and, when signal is not empty, the signal a
// definition refers to. A dangling reference is a warning, because real
// files carry them (left over after a message was deleted).
func (c *compiler) target(pos scanner.Position, what string, id dbcfile.MessageID, signal dbcfile.Identifier) (*Message, *Signal) {
	if id == dbcfile.IndependentSignalsMessageID {
		return nil, nil
	}
	m := c.db.byID[uint32(id)]
	if m == nil {
		c.warn(pos, "%s refers to unknown message ID %d (0x%X)", what, id.ToCAN(), id.ToCAN())
		return nil, nil
	}
	if signal == "" {
		return m, nil
	}
	s := m.byName[string(signal)]
	if s == nil {
		c.warn(pos, "%s refers to unknown signal %s in message %s", what, signal, m.Name)
		return nil, nil
	}
	return m, s
}

func (c *compiler) comment(d *dbcfile.CommentDef) {
	switch d.ObjectType {
	case dbcfile.ObjectTypeMessage:
		if m, _ := c.target(d.Pos, "CM_ BO_", d.MessageID, ""); m != nil {
			m.Desc.Description = d.Comment
		}
	case dbcfile.ObjectTypeSignal:
		if _, s := c.target(d.Pos, "CM_ SG_", d.MessageID, d.SignalName); s != nil {
			s.Desc.Description = d.Comment
		}
	case dbcfile.ObjectTypeNetworkNode:
		if n, ok := c.db.Desc.Node(string(d.NodeName)); ok {
			n.Description = d.Comment
		} else {
			c.warn(d.Pos, "CM_ BU_ refers to unknown node %s", d.NodeName)
		}
	}
}

func (c *compiler) valueDescriptions(d *dbcfile.ValueDescriptionsDef) {
	if d.ObjectType != dbcfile.ObjectTypeSignal {
		return
	}
	_, s := c.target(d.Pos, "VAL_", d.MessageID, d.SignalName)
	if s == nil {
		return
	}
	for _, vd := range d.ValueDescriptions {
		raw := int64(vd.Value)
		if float64(raw) != vd.Value {
			c.warn(vd.Pos, "VAL_ for %s: value %v is not an integer; ignored", s.Name, vd.Value)
			continue
		}
		// A name for a raw value the signal's bits cannot hold would never
		// decode, and encoding it (a status state, say) would fail.
		if lo, hi := s.rawRange(); !s.isFloat && (raw < lo || raw > hi) {
			c.warn(vd.Pos, "VAL_ for %s: value %d is outside the signal's raw range %d..%d; ignored", s.Name, raw, lo, hi)
			continue
		}
		if s.valueNames == nil {
			s.valueNames = map[int64]string{}
			s.valueRaws = map[string]int64{}
		}
		s.valueNames[raw] = vd.Description
		// The first raw value wins when two share a name, so that RawValue
		// is stable whatever order the file lists them in.
		if _, seen := s.valueRaws[vd.Description]; !seen {
			s.valueRaws[vd.Description] = raw
		}
		s.Desc.ValueDescriptions = append(s.Desc.ValueDescriptions,
			&descriptor.ValueDescription{Value: raw, Description: vd.Description})
	}
}

// rawRange is the range of the signal's raw integer values, as far as an
// int64 holds them.
func (s *Signal) rawRange() (lo, hi int64) {
	n := s.length
	if s.signed {
		return math.MinInt64 >> (64 - n), math.MaxInt64 >> (64 - n)
	}
	if n >= 63 {
		return 0, math.MaxInt64
	}
	return 0, 1<<n - 1
}

func (c *compiler) signalValueType(d *dbcfile.SignalValueTypeDef) error {
	_, s := c.target(d.Pos, "SIG_VALTYPE_", d.MessageID, d.SignalName)
	if s == nil {
		return nil
	}
	switch d.SignalValueType {
	case dbcfile.SignalValueTypeInt:
		s.isFloat = false
	case dbcfile.SignalValueTypeFloat32:
		if s.length != 32 {
			return c.errorf(d.Pos, "signal %s: IEEE float needs 32 bits, the signal has %d", s.Name, s.length)
		}
		if s == s.Message.Mux {
			return c.errorf(d.Pos, "signal %s: a multiplexor cannot be a float", s.Name)
		}
		s.isFloat = true
	default:
		return c.errorf(d.Pos, "signal %s: SIG_VALTYPE_ %d (IEEE double) is not supported",
			s.Name, d.SignalValueType)
	}
	s.Desc.IsFloat = s.isFloat
	return nil
}

// maxAttrDuration bounds GenMsgCycleTime and GenMsgDelayTime: no bus
// message repeats less often than hourly, and the bound keeps the
// millisecond count (an int64 or float64 in the file) far from overflowing
// time.Duration, also once the profile multiplies it into a staleness
// timeout.
const maxAttrDuration = time.Hour

// attrDuration reads a millisecond attribute value. When the value cannot be
// used it says why, for a warning.
func (c *compiler) attrDuration(name dbcfile.Identifier, i int64, f float64) (time.Duration, string) {
	ms := float64(i)
	if c.attrTypes[name] == dbcfile.AttributeValueTypeFloat {
		ms = f
	}
	switch {
	case math.IsNaN(ms):
		return 0, "is not a number"
	case ms < 0:
		return 0, fmt.Sprintf("%v ms is negative", ms)
	case ms > float64(maxAttrDuration/time.Millisecond):
		return 0, fmt.Sprintf("%v ms is over %s", ms, maxAttrDuration)
	}
	return time.Duration(ms * float64(time.Millisecond)), ""
}

func (c *compiler) attributeDefault(d *dbcfile.AttributeDefaultValueDef) {
	var dst *time.Duration
	switch d.AttributeName {
	case "GenMsgCycleTime":
		dst = &c.defaultCycle
	case "GenMsgDelayTime":
		dst = &c.defaultDelay
	default:
		return
	}
	v, bad := c.attrDuration(d.AttributeName, d.DefaultIntValue, d.DefaultFloatValue)
	if bad != "" {
		c.warn(d.Pos, "default %s %s; ignored", d.AttributeName, bad)
		return
	}
	*dst = v
}

func (c *compiler) attribute(d *dbcfile.AttributeValueForObjectDef) {
	if d.ObjectType != dbcfile.ObjectTypeMessage {
		return
	}
	if d.AttributeName != "GenMsgCycleTime" && d.AttributeName != "GenMsgDelayTime" && d.AttributeName != "GenMsgSendType" {
		return
	}
	m, _ := c.target(d.Pos, "BA_ "+string(d.AttributeName), d.MessageID, "")
	if m == nil {
		return
	}
	if d.AttributeName == "GenMsgSendType" {
		_ = m.Desc.SendType.UnmarshalString(d.StringValue)
		return
	}
	v, bad := c.attrDuration(d.AttributeName, d.IntValue, d.FloatValue)
	if bad != "" {
		c.warn(d.Pos, "%s of message %s: %s; ignored", d.AttributeName, m.Name, bad)
		return
	}
	if d.AttributeName == "GenMsgCycleTime" {
		m.CycleTime = v
		m.Desc.CycleTime = v
		c.hasCycle[m] = true
	} else {
		m.Desc.DelayTime = v
		c.hasDelay[m] = true
	}
}
