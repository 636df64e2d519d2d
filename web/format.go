package web

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The formatters below are integer-only on purpose: money and energy are
// integers on the wire and a float would show 0.1 sat as 0.09999. The page's
// script (static/live.js) mirrors them exactly; change both together.

// magnitude splits v into its sign and absolute value; uint64 keeps
// math.MinInt64 exact.
func magnitude(v int64) (neg bool, u uint64) {
	if v < 0 {
		return true, -uint64(v)
	}
	return false, uint64(v)
}

// group writes u with a comma every three digits: 1234567 -> "1,234,567".
func group(u uint64) string {
	s := strconv.FormatUint(u, 10)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	head := len(s) % 3
	if head > 0 {
		b.WriteString(s[:head])
	}
	for i := head; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// signed prefixes "-" unless the shown figure rounded to zero, so a tiny
// negative never reads "-0 Wh".
func signed(neg bool, zero bool, s string) string {
	if neg && !zero {
		return "-" + s
	}
	return s
}

// FormatSat shows millisatoshis as sats with up to three decimals and
// thousands separators: 1234000 -> "1,234 sat", 12345 -> "12.345 sat",
// 1500 -> "1.5 sat".
func FormatSat(msat int64) string {
	neg, u := magnitude(msat)
	s := group(u / 1000)
	if frac := u % 1000; frac != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%03d", frac), "0")
	}
	return signed(neg, u == 0, s) + " sat"
}

// FormatEnergy shows milliwatt-hours as whole Wh below 1 kWh and as kWh
// with two decimals from there on, rounding half away from zero:
// 950000 -> "950 Wh", 12345000 -> "12.35 kWh".
func FormatEnergy(mWh int64) string {
	neg, u := magnitude(mWh)
	if wh := (u + 500) / 1000; wh < 1000 {
		return signed(neg, wh == 0, strconv.FormatUint(wh, 10)) + " Wh"
	}
	c := (u + 5000) / 10000 // hundredths of a kWh
	return signed(neg, false, fmt.Sprintf("%s.%02d", group(c/100), c%100)) + " kWh"
}

// FormatPower shows watts as W below 1 kW and as kW with two decimals from
// there on: 950 -> "950 W", 7360 -> "7.36 kW".
func FormatPower(w int64) string {
	neg, u := magnitude(w)
	if u < 1000 {
		return signed(neg, u == 0, strconv.FormatUint(u, 10)) + " W"
	}
	c := (u + 5) / 10 // hundredths of a kW
	return signed(neg, false, fmt.Sprintf("%s.%02d", group(c/100), c%100)) + " kW"
}

// FormatPrice shows a price in msat per Wh, which is the same number as
// sat per kWh: 300 -> "300 sat/kWh".
func FormatPrice(msatPerWh int64) string {
	neg, u := magnitude(msatPerWh)
	return signed(neg, u == 0, group(u)) + " sat/kWh"
}

// SoCUnknown is what FormatSoC shows when the car did not share its state
// of charge (a negative permille).
const SoCUnknown = "not shared by the car"

// FormatSoC shows a state of charge in permille as a percentage with one
// decimal: 593 -> "59.3 %"; negative means the car did not share it.
func FormatSoC(permille int64) string {
	if permille < 0 {
		return SoCUnknown
	}
	return fmt.Sprintf("%d.%d %%", permille/10, permille%10)
}

// FormatDuration shows whole seconds as "1 h 02 min 07 s", "2 min 07 s" or
// "7 s"; a negative duration (a clock step) shows as "0 s".
func FormatDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	h, m, sec := s/3600, s/60%60, s%60
	switch {
	case h > 0:
		return fmt.Sprintf("%d h %02d min %02d s", h, m, sec)
	case m > 0:
		return fmt.Sprintf("%d min %02d s", m, sec)
	default:
		return fmt.Sprintf("%d s", sec)
	}
}

// TimeLayout is how times are shown, in the wall's zone (time.Local).
const TimeLayout = "2006-01-02 15:04:05"

// FormatTime shows t in the wall's zone, or "—" for the zero time.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(time.Local).Format(TimeLayout)
}

// connectorWords are the connector states as a person says them.
var connectorWords = map[string]string{
	"idle":             "idle",
	"awaiting_payment": "awaiting payment",
	"energising":       "charging",
	"suspended":        "suspended for non-payment",
	"ended":            "ended",
	"fault":            "fault",
}

// ConnectorWords turns the wall's connector state into words; an unknown
// state is shown as it came, with spaces for underscores.
func ConnectorWords(state string) string {
	if w, ok := connectorWords[state]; ok {
		return w
	}
	if state == "" {
		return "unknown"
	}
	return strings.ReplaceAll(state, "_", " ")
}

// evseLine sums the charger up in one line; live.js builds the same one.
func evseLine(e EVSEView) string {
	var parts []string
	if !e.Reachable {
		parts = append(parts, "unreachable")
	} else {
		pilot := e.Pilot
		if pilot == "" {
			pilot = "?"
		}
		contactor := "open"
		if e.ContactorClosed {
			contactor = "closed"
		}
		parts = append(parts, "reachable", "pilot "+pilot, "contactor "+contactor)
		if e.Fault != "" {
			parts = append(parts, "fault: "+e.Fault)
		} else {
			parts = append(parts, "no fault")
		}
	}
	if e.Error != "" {
		parts = append(parts, "error: "+e.Error)
	}
	return strings.Join(parts, ", ")
}

// lightningWords says whether the wall's Lightning node answers.
func lightningWords(ok bool) string {
	if ok {
		return "connected"
	}
	return "not connected"
}

// shortHash keeps a payment hash's ends, enough to match it by eye; the
// page puts the whole hash in a title attribute.
func shortHash(h string) string {
	if len(h) <= 20 {
		return h
	}
	return h[:8] + "…" + h[len(h)-8:]
}
