package offer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// offerJSON is the wire form of an Offer inside the metadata. Integers
// only: money and energy never pass through floats.
type offerJSON struct {
	SessionID      string `json:"session_id"`
	PriceMsatPerWh int64  `json:"price_msat_per_wh"`
	IncrementWh    int64  `json:"increment_wh"`
	FirstMultiple  int64  `json:"first_multiple"`
	GraceWh        int64  `json:"grace_wh"`
	MaxPowerW      int64  `json:"max_power_w"`
	WallNodeKey    string `json:"wall_node_key"`
	ValidUntil     int64  `json:"valid_until"` // unix seconds
	Network        string `json:"network"`
	TLSCertSHA256  string `json:"tls_cert_sha256,omitempty"`
}

// Metadata builds the LUD-06 metadata string for o: a JSON array with one
// text/plain description and one offer entry. ValidUntil is truncated to
// whole seconds. The string returned is what the wall must serve and hash,
// byte for byte.
func Metadata(o Offer, description string) (string, error) {
	if err := o.Validate(); err != nil {
		return "", fmt.Errorf("offer metadata: %w", err)
	}
	if description == "" || !utf8.ValidString(description) {
		return "", fmt.Errorf("offer metadata: description must be non-empty UTF-8")
	}
	inner, err := json.Marshal(offerJSON{
		SessionID:      o.SessionID,
		PriceMsatPerWh: o.PriceMsatPerWh,
		IncrementWh:    o.IncrementWh,
		FirstMultiple:  o.FirstMultiple,
		GraceWh:        o.GraceWh,
		MaxPowerW:      o.MaxPowerW,
		WallNodeKey:    o.WallNodeKey,
		ValidUntil:     o.ValidUntil.Unix(),
		Network:        o.Network,
		TLSCertSHA256:  o.TLSCertSHA256,
	})
	if err != nil {
		return "", fmt.Errorf("offer metadata: encoding offer: %w", err)
	}
	outer, err := json.Marshal([][2]string{{"text/plain", description}, {MimeType, string(inner)}})
	if err != nil {
		return "", fmt.Errorf("offer metadata: encoding array: %w", err)
	}
	if len(outer) > MaxMetadataBytes {
		return "", fmt.Errorf("offer metadata: %d bytes, limit %d (description too long)", len(outer), MaxMetadataBytes)
	}
	return string(outer), nil
}

// ParseMetadata reads metadata built by Metadata, strictly: a JSON array of
// [string, string] pairs with exactly one text/plain entry and exactly one
// offer entry (other pairs, such as text/long-desc, are allowed and
// ignored); in the offer every field present once, no unknown fields,
// integers only; tls_cert_sha256 is the one optional field. The offer
// returned has passed Validate.
func ParseMetadata(s string) (Offer, string, error) {
	if len(s) > MaxMetadataBytes {
		return Offer{}, "", fmt.Errorf("%w: %d bytes, limit %d", ErrMetadata, len(s), MaxMetadataBytes)
	}
	if !utf8.ValidString(s) {
		// encoding/json would silently replace bad bytes, and the hash is
		// over the raw bytes.
		return Offer{}, "", fmt.Errorf("%w: not valid UTF-8", ErrMetadata)
	}
	if t := strings.TrimLeft(s, " \t\r\n"); !strings.HasPrefix(t, "[") {
		return Offer{}, "", fmt.Errorf("%w: not a JSON array", ErrMetadata)
	}
	var entries []json.RawMessage
	if err := json.Unmarshal([]byte(s), &entries); err != nil {
		return Offer{}, "", fmt.Errorf("%w: not a JSON array: %w", ErrMetadata, atOffset(err))
	}
	var desc, raw string
	var nDesc, nOffer int
	for i, e := range entries {
		k, v, err := parsePair(e)
		if err != nil {
			return Offer{}, "", fmt.Errorf("%w: entry %d: %w", ErrMetadata, i, err)
		}
		switch k {
		case "text/plain":
			nDesc++
			desc = v
		case MimeType:
			nOffer++
			raw = v
		}
	}
	if nDesc != 1 {
		return Offer{}, "", fmt.Errorf("%w: %d text/plain entries, want exactly 1", ErrMetadata, nDesc)
	}
	if nOffer != 1 {
		return Offer{}, "", fmt.Errorf("%w: %d %s entries, want exactly 1", ErrMetadata, nOffer, MimeType)
	}
	o, err := parseOffer(raw)
	if err != nil {
		return Offer{}, "", fmt.Errorf("%w: offer entry: %w", ErrMetadata, err)
	}
	if err := o.Validate(); err != nil {
		return Offer{}, "", fmt.Errorf("%w: %w", ErrMetadata, err)
	}
	return o, desc, nil
}

func parsePair(e json.RawMessage) (string, string, error) {
	if !bytes.HasPrefix(bytes.TrimLeft(e, " \t\r\n"), []byte("[")) {
		return "", "", errors.New("not an array")
	}
	var pair []json.RawMessage
	if err := json.Unmarshal(e, &pair); err != nil {
		return "", "", err
	}
	if len(pair) != 2 {
		return "", "", fmt.Errorf("%d items, want a [type, value] pair", len(pair))
	}
	k, err := jsonString(pair[0])
	if err != nil {
		return "", "", fmt.Errorf("type: %w", err)
	}
	v, err := jsonString(pair[1])
	if err != nil {
		return "", "", fmt.Errorf("value of %q: %w", clip(k), err)
	}
	return k, v, nil
}

// jsonString decodes a JSON string and nothing else; json.Unmarshal alone
// would accept null as "".
func jsonString(r json.RawMessage) (string, error) {
	if !bytes.HasPrefix(bytes.TrimLeft(r, " \t\r\n"), []byte(`"`)) {
		return "", errors.New("not a JSON string")
	}
	var s string
	if err := json.Unmarshal(r, &s); err != nil {
		return "", err
	}
	return s, nil
}

// certHashField is optional: a wall serving plain HTTP leaves it out.
const certHashField = "tls_cert_sha256"

// fieldOrder names the required offer fields in the order errors report them.
var fieldOrder = []string{
	"session_id", "price_msat_per_wh", "increment_wh", "first_multiple",
	"grace_wh", "max_power_w", "wall_node_key", "valid_until", "network",
}

// parseOffer walks the offer object token by token, because
// json.Unmarshal takes the last of duplicate keys, accepts null for any
// field and turns 1e3 into an integer only with help.
func parseOffer(s string) (Offer, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return Offer{}, atOffset(err)
	}
	if tok != json.Delim('{') {
		return Offer{}, errors.New("not a JSON object")
	}
	var w offerJSON
	ints := map[string]*int64{
		"price_msat_per_wh": &w.PriceMsatPerWh,
		"increment_wh":      &w.IncrementWh,
		"first_multiple":    &w.FirstMultiple,
		"grace_wh":          &w.GraceWh,
		"max_power_w":       &w.MaxPowerW,
		"valid_until":       &w.ValidUntil,
	}
	strs := map[string]*string{
		"session_id":    &w.SessionID,
		"wall_node_key": &w.WallNodeKey,
		"network":       &w.Network,
		certHashField:   &w.TLSCertSHA256,
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Offer{}, atOffset(err)
		}
		key, _ := tok.(string)
		if seen[key] {
			return Offer{}, fmt.Errorf("field %q given twice", clip(key))
		}
		seen[key] = true
		val, err := dec.Token()
		if err != nil {
			return Offer{}, fmt.Errorf("field %q: %w", clip(key), atOffset(err))
		}
		if p, ok := ints[key]; ok {
			n, ok := val.(json.Number)
			if !ok {
				return Offer{}, fmt.Errorf("field %q is %s, want an integer", key, describe(val))
			}
			// ParseInt refuses fractions and exponents.
			v, err := strconv.ParseInt(string(n), 10, 64)
			if err != nil {
				return Offer{}, fmt.Errorf("field %q = %s is not an int64", key, clip(string(n)))
			}
			*p = v
			continue
		}
		if p, ok := strs[key]; ok {
			v, ok := val.(string)
			if !ok {
				return Offer{}, fmt.Errorf("field %q is %s, want a string", key, describe(val))
			}
			*p = v
			continue
		}
		return Offer{}, fmt.Errorf("unknown field %q", clip(key))
	}
	if tok, err := dec.Token(); err != nil {
		return Offer{}, fmt.Errorf("object not closed: %w", atOffset(err))
	} else if tok != json.Delim('}') {
		return Offer{}, errors.New("object not closed")
	}
	if _, err := dec.Token(); err != io.EOF {
		return Offer{}, errors.New("data after the offer object")
	}
	for _, k := range fieldOrder {
		if !seen[k] {
			return Offer{}, fmt.Errorf("field %q missing", k)
		}
	}
	return Offer{
		SessionID:      w.SessionID,
		PriceMsatPerWh: w.PriceMsatPerWh,
		IncrementWh:    w.IncrementWh,
		FirstMultiple:  w.FirstMultiple,
		GraceWh:        w.GraceWh,
		MaxPowerW:      w.MaxPowerW,
		WallNodeKey:    w.WallNodeKey,
		ValidUntil:     time.Unix(w.ValidUntil, 0).UTC(),
		Network:        w.Network,
		TLSCertSHA256:  w.TLSCertSHA256,
	}, nil
}

// describe names a JSON token for a message, quoting at most a clip of
// a string.
func describe(tok json.Token) string {
	switch v := tok.(type) {
	case string:
		return fmt.Sprintf("the string %q", clip(v))
	case json.Delim:
		if v == '{' {
			return "an object"
		}
		return "an array"
	case nil:
		return "null"
	case bool:
		return fmt.Sprintf("%v", v)
	case json.Number:
		return "the number " + clip(string(v))
	}
	return fmt.Sprintf("%T", tok)
}

// atOffset says where in the JSON a syntax error is.
func atOffset(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("near byte %d: %w", se.Offset, err)
	}
	return err
}

// clip shortens a string from the wire for an error message, at a
// character boundary.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}
