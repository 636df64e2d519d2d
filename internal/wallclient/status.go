package wallclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"satwatt/internal/lnurlpay"
)

// WallStatus is what the car reads of the wall's status (GET /api/status
// and each event of /api/status/stream). The wall sends more; the rest is
// ignored. Money and energy are integers, as on the wire.
type WallStatus struct {
	// Connector in the wall's words: idle, awaiting_payment, energising,
	// suspended, ended, fault.
	Connector string `json:"connector"`
	Why       string `json:"why"`
	// Session is the open session, nil when there is none.
	Session *WallSession `json:"session"`
	// Last is the session that ended most recently, after its vehicle left.
	Last  *WallSession `json:"last"`
	Ready bool         `json:"ready"`
}

// WallSession is one session's numbers as the wall meters and books them.
type WallSession struct {
	ID               string `json:"id"`
	State            string `json:"state"`
	EndReason        string `json:"end_reason"`
	PriceMsatPerWh   int64  `json:"price_msat_per_wh"`
	IncrementWh      int64  `json:"increment_wh"`
	FirstPaymentMsat int64  `json:"first_payment_msat"`
	GraceWh          int64  `json:"grace_wh"`
	DeliveredMWh     int64  `json:"delivered_mwh"`
	PaidMsat         int64  `json:"paid_msat"`
	PaidEnergyMWh    int64  `json:"paid_energy_mwh"`
	CreditMsat       int64  `json:"credit_msat"` // negative within the grace
	CreditMWh        int64  `json:"credit_mwh"`  // negative within the grace
	PowerW           int64  `json:"power_w"`
	Payments         int    `json:"payments"`
}

// decodeStatus reads one status object strictly enough that the caller can
// use it without further checks: a JSON object with a connector, integers
// where the wall sends integers (1.5 and 1e3 are refused), and no negative
// meter readings, prices or payments.
func decodeStatus(b []byte) (WallStatus, error) {
	if !bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n"), []byte("{")) {
		return WallStatus{}, fmt.Errorf("%w: status is not a JSON object", ErrBadResponse)
	}
	var st WallStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return WallStatus{}, fmt.Errorf("%w: status: %w", ErrBadResponse, lnurlpay.JSONProblem(err))
	}
	if st.Connector == "" {
		return WallStatus{}, fmt.Errorf("%w: status has no connector", ErrBadResponse)
	}
	for _, s := range []struct {
		name string
		s    *WallSession
	}{{"session", st.Session}, {"last", st.Last}} {
		if s.s == nil {
			continue
		}
		if err := s.s.check(); err != nil {
			return WallStatus{}, fmt.Errorf("%w: status %s: %w", ErrBadResponse, s.name, err)
		}
	}
	return st, nil
}

func (s *WallSession) check() error {
	if s.ID == "" {
		return errors.New("has no id")
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"price_msat_per_wh", s.PriceMsatPerWh},
		{"increment_wh", s.IncrementWh},
		{"first_payment_msat", s.FirstPaymentMsat},
		{"grace_wh", s.GraceWh},
		{"delivered_mwh", s.DeliveredMWh},
		{"paid_msat", s.PaidMsat},
		{"paid_energy_mwh", s.PaidEnergyMWh},
		{"power_w", s.PowerW},
		{"payments", int64(s.Payments)},
	} {
		if f.v < 0 {
			return fmt.Errorf("%s is %d, must not be negative", f.name, f.v)
		}
	}
	return nil
}
