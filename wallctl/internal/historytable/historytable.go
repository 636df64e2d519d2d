// Package historytable is the one definition of the wall's history listing:
// `wallctl history` prints it and the page's CSV download serves it, so the
// two cannot drift apart.
package historytable

import (
	"io"

	"satwatt/internal/historycli"
	"satwatt/internal/wallstore"
)

// Columns are the listing's columns. The table shows energy in Wh and money
// in sat; CSV the raw integers; JSON both. Scripts parse these names:
// change them only with care.
var Columns = []historycli.Column[wallstore.SessionSummary]{
	{Head: "session", Key: "id", CSV: true, Value: func(s wallstore.SessionSummary) any { return s.ID }},
	{Head: "started", Key: "started", CSV: true, Value: func(s wallstore.SessionSummary) any { return historycli.Time(s.StartedAt) }},
	{Head: "ended", Key: "ended", CSV: true, Value: func(s wallstore.SessionSummary) any { return historycli.Time(s.EndedAt) }},
	{Head: "state", Key: "state", CSV: true, Value: func(s wallstore.SessionSummary) any { return s.State }},
	{Head: "end reason", Key: "end_reason", CSV: true, Value: func(s wallstore.SessionSummary) any { return s.EndReason }},
	// 1 msat/Wh is 1 sat/kWh.
	{Head: "sat/kWh", Key: "price_msat_per_wh", CSV: true, Value: func(s wallstore.SessionSummary) any { return s.PriceMsatPerWh }},
	{Head: "energy Wh", Key: "energy_wh", Total: true, Value: func(s wallstore.SessionSummary) any { return historycli.Milli(s.DeliveredMWh) }},
	{Key: "delivered_mwh", CSV: true, Total: true, Value: func(s wallstore.SessionSummary) any { return s.DeliveredMWh }},
	{Key: "paid_msat", CSV: true, Total: true, Value: func(s wallstore.SessionSummary) any { return s.PaidMsat }},
	{Head: "sats", Key: "sats", Total: true, Value: func(s wallstore.SessionSummary) any { return historycli.Milli(s.PaidMsat) }},
	{Head: "payments", Key: "payments", CSV: true, Total: true, Value: func(s wallstore.SessionSummary) any { return s.Payments }},
	{Key: "after_end_msat", CSV: true, Value: func(s wallstore.SessionSummary) any { return s.AfterEndMsat }},
}

// Write prints sessions and their totals in format f.
func Write(w io.Writer, f historycli.Format, list []wallstore.SessionSummary, tot wallstore.Totals) error {
	sums := wallstore.SessionSummary{DeliveredMWh: tot.DeliveredMWh, PaidMsat: tot.PaidMsat, Payments: tot.Payments}
	return historycli.Write(w, f, Columns, list, tot.Sessions, sums)
}
