package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"satwatt/internal/subcmd"
	"satwatt/internal/wallstore"
)

// historyRow is one session as the history prints it, for people and
// machines alike.
type historyRow struct {
	ID             string `json:"id"`
	Started        string `json:"started"`
	Ended          string `json:"ended"`
	State          string `json:"state"`
	EndReason      string `json:"end_reason"`
	PriceMsatPerWh int64  `json:"price_msat_per_wh"`
	EnergyWh       string `json:"energy_wh"`
	DeliveredMWh   int64  `json:"delivered_mwh"`
	PaidMsat       int64  `json:"paid_msat"`
	Sats           string `json:"sats"`
	Payments       int64  `json:"payments"`
	AfterEndMsat   int64  `json:"after_end_msat"`
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// wh and sats print integer mWh and msat exactly, with three decimals.
func milli(v int64) string {
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%d.%03d", sign, v/1000, v%1000)
}

func parseDate(flagName, s string, endOfDay bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		if endOfDay {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: --%s %q: use a date (2026-11-25) or an RFC 3339 time", subcmd.ErrUsage, flagName, s)
	}
	return t, nil
}

func runHistory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := subcmd.NewFlagSet("wallctl", "history", stderr)
	db := fs.String("db", "wall.db", "the wall's SQLite database")
	since := fs.String("since", "", "first day (2026-11-01) or time (RFC 3339), inclusive")
	until := fs.String("until", "", "last day, inclusive, or a time (exclusive)")
	asCSV := fs.Bool("csv", false, "print CSV")
	asJSON := fs.Bool("json", false, "print JSON")
	limit := fs.Int("limit", 0, "list at most this many sessions (totals still cover the whole range)")
	if err := subcmd.Parse(fs, args, 0); err != nil {
		return err
	}
	if *asCSV && *asJSON {
		return fmt.Errorf("%w: choose --csv or --json, not both", subcmd.ErrUsage)
	}
	q := wallstore.HistoryQuery{Limit: *limit}
	var err error
	if q.Since, err = parseDate("since", *since, false); err != nil {
		return err
	}
	if q.Until, err = parseDate("until", *until, true); err != nil {
		return err
	}
	st, err := wallstore.OpenReadOnly(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	list, tot, err := st.History(ctx, q)
	if err != nil {
		return err
	}
	rows := make([]historyRow, len(list))
	for i, s := range list {
		rows[i] = historyRow{ID: s.ID, Started: fmtTime(s.StartedAt), Ended: fmtTime(s.EndedAt), State: s.State,
			EndReason: s.EndReason, PriceMsatPerWh: s.PriceMsatPerWh, EnergyWh: milli(s.DeliveredMWh), DeliveredMWh: s.DeliveredMWh,
			PaidMsat: s.PaidMsat, Sats: milli(s.PaidMsat), Payments: s.Payments, AfterEndMsat: s.AfterEndMsat}
	}
	switch {
	case *asJSON:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"sessions": rows, "totals": map[string]any{
			"sessions": tot.Sessions, "delivered_mwh": tot.DeliveredMWh, "energy_wh": milli(tot.DeliveredMWh),
			"paid_msat": tot.PaidMsat, "sats": milli(tot.PaidMsat), "payments": tot.Payments}})
	case *asCSV:
		w := csv.NewWriter(stdout)
		w.Write([]string{"id", "started", "ended", "state", "end_reason", "price_msat_per_wh", "delivered_mwh", "paid_msat", "payments", "after_end_msat"})
		for _, r := range rows {
			w.Write([]string{r.ID, r.Started, r.Ended, r.State, r.EndReason, strconv.FormatInt(r.PriceMsatPerWh, 10),
				strconv.FormatInt(r.DeliveredMWh, 10), strconv.FormatInt(r.PaidMsat, 10), strconv.FormatInt(r.Payments, 10),
				strconv.FormatInt(r.AfterEndMsat, 10)})
		}
		w.Write([]string{"TOTAL " + strconv.FormatInt(tot.Sessions, 10) + " sessions", "", "", "", "", "",
			strconv.FormatInt(tot.DeliveredMWh, 10), strconv.FormatInt(tot.PaidMsat, 10), strconv.FormatInt(tot.Payments, 10), ""})
		w.Flush()
		return w.Error()
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "session\tstarted\tended\tstate\tend reason\tsat/kWh\tenergy Wh\tsats\tpayments\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t\n", r.ID, r.Started, r.Ended, r.State, r.EndReason,
			r.PriceMsatPerWh, r.EnergyWh, r.Sats, r.Payments)
	}
	fmt.Fprintf(tw, "total: %d sessions\t\t\t\t\t\t%s\t%s\t%d\t\n", tot.Sessions, milli(tot.DeliveredMWh), milli(tot.PaidMsat), tot.Payments)
	return tw.Flush()
}

func runSessionShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := subcmd.NewFlagSet("wallctl", "session show", stderr)
	db := fs.String("db", "wall.db", "the wall's SQLite database")
	asJSON := fs.Bool("json", false, "print JSON")
	// The id may come before or after the flags.
	var id string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		id, args = args[0], args[1:]
	}
	if err := subcmd.Parse(fs, args, 1); err != nil {
		return err
	}
	if id == "" && fs.NArg() == 1 {
		id = fs.Arg(0)
	}
	if id == "" {
		return fmt.Errorf("%w: which session? wallctl session show ID (ids are in wallctl history)", subcmd.ErrUsage)
	}
	st, err := wallstore.OpenReadOnly(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	rc, err := st.Receipt(ctx, id)
	if err != nil {
		return err
	}
	s := rc.Session
	if *asJSON {
		type pay struct {
			PaymentHash     string `json:"payment_hash"`
			Preimage        string `json:"preimage"`
			AmountAskedMsat int64  `json:"amount_asked_msat"`
			AmountPaidMsat  int64  `json:"amount_paid_msat"`
			SettledAt       string `json:"settled_at"`
			AfterEnd        bool   `json:"after_end"`
		}
		out := struct {
			ID             string `json:"id"`
			Started        string `json:"started"`
			Ended          string `json:"ended"`
			State          string `json:"state"`
			EndReason      string `json:"end_reason"`
			PriceMsatPerWh int64  `json:"price_msat_per_wh"`
			DeliveredMWh   int64  `json:"delivered_mwh"`
			PaidMsat       int64  `json:"paid_msat"`
			AfterEndMsat   int64  `json:"after_end_msat"`
			Payments       []pay  `json:"payments"`
		}{ID: s.ID, Started: fmtTime(s.StartedAt), Ended: fmtTime(s.EndedAt), State: s.State, EndReason: s.EndReason,
			PriceMsatPerWh: s.Offer.PriceMsatPerWh, DeliveredMWh: s.DeliveredMWh, PaidMsat: rc.PaidMsat, AfterEndMsat: rc.AfterEndMsat,
			Payments: []pay{}}
		for _, p := range rc.Payments {
			out.Payments = append(out.Payments, pay{p.PaymentHash, p.PreimageHex, p.AmountAskedMsat, p.AmountPaidMsat, fmtTime(p.SettledAt), p.AfterEnd})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(stdout, "Receipt for charging session %s\n\n", s.ID)
	fmt.Fprintf(stdout, "  started     %s\n  ended       %s\n  end reason  %s\n", fmtTime(s.StartedAt), orDash(fmtTime(s.EndedAt)), orDash(s.EndReason))
	fmt.Fprintf(stdout, "  price       %d msat/Wh (%d sat/kWh)\n", s.Offer.PriceMsatPerWh, s.Offer.PriceMsatPerWh)
	fmt.Fprintf(stdout, "  energy      %s Wh\n  paid        %s sat in %d payments\n", milli(s.DeliveredMWh), milli(rc.PaidMsat), len(rc.Payments))
	if rc.AfterEndMsat > 0 {
		fmt.Fprintf(stdout, "  after end   %s sat arrived after the session ended\n", milli(rc.AfterEndMsat))
	}
	fmt.Fprintf(stdout, "  wall node   %s\n\n", s.Offer.WallNodeKey)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  settled\tsats\tpayment hash\tpreimage (proof of payment)")
	for _, p := range rc.Payments {
		late := ""
		if p.AfterEnd {
			late = " (after end)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s%s\n", fmtTime(p.SettledAt), milli(p.AmountPaidMsat), p.PaymentHash, p.PreimageHex, late)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
