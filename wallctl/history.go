package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"satwatt/internal/historycli"
	"satwatt/internal/wallstore"
	"satwatt/wallctl/internal/historytable"
)

const (
	dbDefault = "wall.db"
	dbUsage   = "the wall's SQLite database"
)

func runHistory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := historycli.ParseHistoryFlags("wallctl", dbDefault, dbUsage, args, stderr)
	if err != nil {
		return err
	}
	st, err := wallstore.OpenReadOnly(ctx, o.DB)
	if err != nil {
		return err
	}
	defer st.Close()
	list, tot, err := st.History(ctx, wallstore.HistoryQuery{Since: o.Since, Until: o.Until, Limit: o.Limit})
	if err != nil {
		return err
	}
	return historytable.Write(stdout, o.Format, list, tot)
}

func runSessionShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := historycli.ParseShowFlags("wallctl", dbDefault, dbUsage, args, stderr)
	if err != nil {
		return err
	}
	st, err := wallstore.OpenReadOnly(ctx, o.DB)
	if err != nil {
		return err
	}
	defer st.Close()
	rc, err := st.Receipt(ctx, o.ID)
	if err != nil {
		return err
	}
	s := rc.Session
	if o.JSON {
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
			Connector      int    `json:"connector"`
			Started        string `json:"started"`
			Ended          string `json:"ended"`
			State          string `json:"state"`
			EndReason      string `json:"end_reason"`
			PriceMsatPerWh int64  `json:"price_msat_per_wh"`
			DeliveredMWh   int64  `json:"delivered_mwh"`
			PaidMsat       int64  `json:"paid_msat"`
			AfterEndMsat   int64  `json:"after_end_msat"`
			Payments       []pay  `json:"payments"`
		}{ID: s.ID, Connector: s.Connector, Started: historycli.Time(s.StartedAt), Ended: historycli.Time(s.EndedAt), State: s.State, EndReason: s.EndReason,
			PriceMsatPerWh: s.Offer.PriceMsatPerWh, DeliveredMWh: s.DeliveredMWh, PaidMsat: rc.PaidMsat, AfterEndMsat: rc.AfterEndMsat,
			Payments: []pay{}}
		for _, p := range rc.Payments {
			out.Payments = append(out.Payments, pay{p.PaymentHash, p.PreimageHex, p.AmountAskedMsat, p.AmountPaidMsat, historycli.Time(p.SettledAt), p.AfterEnd})
		}
		return historycli.WriteJSON(stdout, out)
	}
	milli, tm, dash := historycli.Milli, historycli.Time, historycli.OrDash
	fmt.Fprintf(stdout, "Receipt for charging session %s\n\n", s.ID)
	fmt.Fprintf(stdout, "  connector   %d\n", s.Connector)
	fmt.Fprintf(stdout, "  started     %s\n  ended       %s\n  end reason  %s\n", tm(s.StartedAt), dash(tm(s.EndedAt)), dash(s.EndReason))
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
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s%s\n", tm(p.SettledAt), milli(p.AmountPaidMsat), p.PaymentHash, p.PreimageHex, late)
	}
	return tw.Flush()
}
