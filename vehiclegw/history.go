package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"satwatt/internal/carstore"
	"satwatt/internal/historycli"
)

const (
	carDBDefault = "car.db"
	carDBUsage   = "the car's SQLite ledger"
)

// permille prints a state of charge in per cent with one decimal, or ""
// when the car could not read it.
func permille(v int64) string {
	if v == carstore.SoCUnknown {
		return ""
	}
	return fmt.Sprintf("%d.%d", v/10, v%10)
}

// socText is a state of charge for the receipt.
func socText(v int64) string {
	if v == carstore.SoCUnknown {
		return "not known"
	}
	return permille(v) + " %"
}

// socJSON is a state of charge for JSON: null when not known.
func socJSON(v int64) any {
	if v == carstore.SoCUnknown {
		return nil
	}
	return v
}

// historyColumns are vehiclegw history's columns, in wallctl history's
// style: the table shows energy in Wh and money in sat, CSV the raw
// integers, JSON both. delivered is what the wall reported, measured what
// the car measured on CAN; sats reached the wall, fees went to routing
// nodes. pending counts payments whose outcome is not known: possibly paid.
var historyColumns = []historycli.Column[carstore.SessionSummary]{
	{Head: "session", Key: "id", CSV: true, Value: func(s carstore.SessionSummary) any { return s.ID }},
	{Head: "started", Key: "started", CSV: true, Value: func(s carstore.SessionSummary) any { return historycli.Time(s.StartedAt) }},
	{Head: "ended", Key: "ended", CSV: true, Value: func(s carstore.SessionSummary) any { return historycli.Time(s.EndedAt) }},
	{Head: "end reason", Key: "end_reason", CSV: true, Value: func(s carstore.SessionSummary) any { return s.EndReason }},
	{Head: "wall", Key: "wall_url", CSV: true, Value: func(s carstore.SessionSummary) any { return s.WallURL }},
	{Key: "wall_node_key", CSV: true, Value: func(s carstore.SessionSummary) any { return s.WallNodeKey }},
	// 1 msat/Wh is 1 sat/kWh.
	{Head: "sat/kWh", Key: "price_msat_per_wh", CSV: true, Value: func(s carstore.SessionSummary) any { return s.PriceMsatPerWh }},
	{Head: "SoC %", Value: func(s carstore.SessionSummary) any {
		if s.SoCStartPermille == carstore.SoCUnknown && s.SoCEndPermille == carstore.SoCUnknown {
			return ""
		}
		return historycli.OrDash(permille(s.SoCStartPermille)) + "→" + historycli.OrDash(permille(s.SoCEndPermille))
	}},
	{Key: "soc_start_permille", CSV: true, Value: func(s carstore.SessionSummary) any { return socJSON(s.SoCStartPermille) }},
	{Key: "soc_end_permille", CSV: true, Value: func(s carstore.SessionSummary) any { return socJSON(s.SoCEndPermille) }},
	{Head: "delivered Wh", Key: "energy_wh", Total: true, Value: func(s carstore.SessionSummary) any { return historycli.Milli(s.DeliveredMWh) }},
	{Key: "delivered_mwh", CSV: true, Total: true, Value: func(s carstore.SessionSummary) any { return s.DeliveredMWh }},
	{Head: "measured Wh", Key: "measured_wh", Total: true, Value: func(s carstore.SessionSummary) any { return historycli.Milli(s.MeasuredMWh) }},
	{Key: "measured_mwh", CSV: true, Total: true, Value: func(s carstore.SessionSummary) any { return s.MeasuredMWh }},
	{Key: "paid_msat", CSV: true, Total: true, Value: func(s carstore.SessionSummary) any { return s.PaidMsat }},
	{Head: "sats", Key: "sats", Total: true, Value: func(s carstore.SessionSummary) any { return historycli.Milli(s.PaidMsat) }},
	{Key: "fee_msat", CSV: true, Total: true, Value: func(s carstore.SessionSummary) any { return s.FeeMsat }},
	{Head: "fee sats", Key: "fee_sats", Total: true, Value: func(s carstore.SessionSummary) any { return historycli.Milli(s.FeeMsat) }},
	{Head: "payments", Key: "payments", CSV: true, Total: true, Value: func(s carstore.SessionSummary) any { return s.Payments }},
	{Head: "failed", Key: "failed", CSV: true, Value: func(s carstore.SessionSummary) any { return s.Failed }},
	{Head: "pending", Key: "pending", CSV: true, Value: func(s carstore.SessionSummary) any { return s.Pending }},
	{Head: "refused", Key: "refusals", CSV: true, Value: func(s carstore.SessionSummary) any { return s.Refusals }},
}

func runHistory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := historycli.ParseHistoryFlags("vehiclegw", carDBDefault, carDBUsage, args, stderr)
	if err != nil {
		return err
	}
	st, err := carstore.OpenReadOnly(ctx, o.DB)
	if err != nil {
		return err
	}
	defer st.Close()
	list, tot, err := st.History(ctx, carstore.HistoryQuery{Since: o.Since, Until: o.Until, Limit: o.Limit})
	if err != nil {
		return err
	}
	sums := carstore.SessionSummary{DeliveredMWh: tot.DeliveredMWh, MeasuredMWh: tot.MeasuredMWh,
		PaidMsat: tot.PaidMsat, FeeMsat: tot.FeeMsat, Payments: tot.Payments}
	return historycli.Write(stdout, o.Format, historyColumns, list, tot.Sessions, sums)
}

// receiptJSON is vehiclegw session show --json.
type receiptJSON struct {
	ID               string `json:"id"`
	WallURL          string `json:"wall_url"`
	WallNodeKey      string `json:"wall_node_key"`
	Network          string `json:"network"`
	Started          string `json:"started"`
	Ended            string `json:"ended"`
	EndReason        string `json:"end_reason"`
	PriceMsatPerWh   int64  `json:"price_msat_per_wh"`
	SoCStartPermille any    `json:"soc_start_permille"` // null: not known
	SoCEndPermille   any    `json:"soc_end_permille"`
	DeliveredMWh     int64  `json:"delivered_mwh"` // as the wall reported it
	MeasuredMWh      int64  `json:"measured_mwh"`  // as the car measured it
	PaidMsat         int64  `json:"paid_msat"`
	FeeMsat          int64  `json:"fee_msat"`
	// The offer's LNURL metadata: every invoice's description hash is its
	// sha256, so it proves the terms each payment was made at.
	Metadata string        `json:"metadata"`
	Payments []paymentJSON `json:"payments"`
	Refusals []refusalJSON `json:"refusals"`
}

type paymentJSON struct {
	PaymentHash   string `json:"payment_hash"`
	Status        string `json:"status"`
	AmountMsat    int64  `json:"amount_msat"` // asked
	PaidMsat      int64  `json:"paid_msat"`
	FeeMsat       int64  `json:"fee_msat"`
	Preimage      string `json:"preimage"`
	FailureReason string `json:"failure_reason"`
	RequestedAt   string `json:"requested_at"`
	ResolvedAt    string `json:"resolved_at"`
	Bolt11        string `json:"bolt11"`
}

type refusalJSON struct {
	At          string `json:"at"`
	PaymentHash string `json:"payment_hash"`
	AmountMsat  int64  `json:"amount_msat"`
	Reason      string `json:"reason"`
	Detail      string `json:"detail"`
	Bolt11      string `json:"bolt11"`
}

func runSessionShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := historycli.ParseShowFlags("vehiclegw", carDBDefault, carDBUsage, args, stderr)
	if err != nil {
		return err
	}
	st, err := carstore.OpenReadOnly(ctx, o.DB)
	if err != nil {
		return err
	}
	defer st.Close()
	rc, err := st.Receipt(ctx, o.ID)
	if err != nil {
		return err
	}
	s := rc.Session
	tm, milli, dash := historycli.Time, historycli.Milli, historycli.OrDash
	if o.JSON {
		out := receiptJSON{ID: s.ID, WallURL: s.WallURL, WallNodeKey: s.Offer.WallNodeKey, Network: s.Offer.Network,
			Started: tm(s.StartedAt), Ended: tm(s.EndedAt), EndReason: s.EndReason, PriceMsatPerWh: s.Offer.PriceMsatPerWh,
			SoCStartPermille: socJSON(s.SoCStartPermille), SoCEndPermille: socJSON(s.SoCEndPermille),
			DeliveredMWh: s.DeliveredMWh, MeasuredMWh: s.MeasuredMWh, PaidMsat: rc.PaidMsat, FeeMsat: rc.FeeMsat,
			Metadata: s.Metadata, Payments: []paymentJSON{}, Refusals: []refusalJSON{}}
		for _, p := range rc.Payments {
			out.Payments = append(out.Payments, paymentJSON{PaymentHash: p.PaymentHash, Status: p.Status, AmountMsat: p.AmountMsat,
				PaidMsat: p.PaidMsat, FeeMsat: p.FeeMsat, Preimage: p.PreimageHex, FailureReason: p.FailureReason,
				RequestedAt: tm(p.RequestedAt), ResolvedAt: tm(p.ResolvedAt), Bolt11: p.Bolt11})
		}
		for _, r := range rc.Refusals {
			out.Refusals = append(out.Refusals, refusalJSON{At: tm(r.At), PaymentHash: r.PaymentHash, AmountMsat: r.AmountMsat,
				Reason: r.Reason, Detail: r.Detail, Bolt11: r.Bolt11})
		}
		return historycli.WriteJSON(stdout, out)
	}

	fmt.Fprintf(stdout, "Receipt for charging session %s\n\n", s.ID)
	fmt.Fprintf(stdout, "  wall        %s\n  wall node   %s (%s)\n", s.WallURL, s.Offer.WallNodeKey, s.Offer.Network)
	fmt.Fprintf(stdout, "  started     %s\n  ended       %s\n  end reason  %s\n", tm(s.StartedAt), dash(tm(s.EndedAt)), dash(s.EndReason))
	fmt.Fprintf(stdout, "  price       %d msat/Wh (%d sat/kWh)\n", s.Offer.PriceMsatPerWh, s.Offer.PriceMsatPerWh)
	fmt.Fprintf(stdout, "  charge      %s → %s\n", socText(s.SoCStartPermille), socText(s.SoCEndPermille))
	fmt.Fprintf(stdout, "  energy      %s Wh delivered (the wall's meter), %s Wh measured (the car's)\n", milli(s.DeliveredMWh), milli(s.MeasuredMWh))
	fmt.Fprintf(stdout, "  paid        %s sat in %d payments, and %s sat in routing fees\n", milli(rc.PaidMsat), rc.Paid, milli(rc.FeeMsat))
	if pending := countPending(rc.Payments); pending > 0 {
		fmt.Fprintf(stdout, "  pending     %d payments with no known outcome: possibly paid\n", pending)
	}
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  requested\tstatus\tasked sat\tpaid sat\tfee sat\tpayment hash\tpreimage (proof of payment) or failure")
	for _, p := range rc.Payments {
		paid, fee, proof := "-", "-", p.PreimageHex
		switch p.Status {
		case carstore.StatusSucceeded:
			paid, fee = milli(p.PaidMsat), milli(p.FeeMsat)
		case carstore.StatusFailed:
			proof = p.FailureReason
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", tm(p.RequestedAt), p.Status, milli(p.AmountMsat), paid, fee, p.PaymentHash, dash(proof))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rc.Refusals) == 0 {
		return nil
	}
	fmt.Fprintf(stdout, "\n  Refused invoices (not paid):\n")
	tw = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  at\treason\tsats\tpayment hash\tdetail")
	for _, r := range rc.Refusals {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", tm(r.At), r.Reason, milli(r.AmountMsat), dash(r.PaymentHash), r.Detail)
	}
	return tw.Flush()
}

func countPending(ps []carstore.Payment) int {
	n := 0
	for _, p := range ps {
		if p.Status == carstore.StatusRequested || p.Status == carstore.StatusInFlight {
			n++
		}
	}
	return n
}
