package chargepoint

import (
	"crypto/rand"
	"errors"
	"time"

	"satwatt/internal/metering"
)

// ErrNotBuyer is returned when a stop request does not prove it comes from
// the buyer.
var ErrNotBuyer = errors.New("not the buyer of this session")

var randRead = rand.Read

// Status is everything the status endpoint and the page show.
type Status struct {
	At time.Time `json:"at"`
	// ConnectorNumber tells which of the wall's connectors this is, from 1.
	ConnectorNumber int `json:"connector_number"`
	// Connector in words: idle, awaiting_payment, energising, suspended,
	// ended (the vehicle is still plugged in), fault.
	Connector string         `json:"connector"`
	Why       string         `json:"why,omitempty"`
	Session   *SessionStatus `json:"session,omitempty"`
	// Last is the most recent session after its vehicle left.
	Last      *SessionStatus `json:"last,omitempty"`
	EVSE      EVSEStatus     `json:"evse"`
	Lightning struct {
		Connected bool `json:"connected"`
	} `json:"lightning"`
	NextPriceMsatPerWh int64  `json:"next_price_msat_per_wh"`
	Fault              string `json:"fault,omitempty"`
	Ready              bool   `json:"ready"`
}

// SessionStatus is one session's numbers.
type SessionStatus struct {
	ID               string    `json:"id"`
	State            string    `json:"state"`
	EndReason        string    `json:"end_reason,omitempty"`
	PriceMsatPerWh   int64     `json:"price_msat_per_wh"`
	IncrementWh      int64     `json:"increment_wh"`
	FirstPaymentMsat int64     `json:"first_payment_msat"`
	GraceWh          int64     `json:"grace_wh"`
	DeliveredMWh     int64     `json:"delivered_mwh"`
	PaidMsat         int64     `json:"paid_msat"`
	PaidEnergyMWh    int64     `json:"paid_energy_mwh"`
	CreditMsat       int64     `json:"credit_msat"`
	CreditMWh        int64     `json:"credit_mwh"`
	PowerW           int64     `json:"power_w"`
	SoCPermille      int64     `json:"soc_permille"` // the car's, -1 if not shared
	Payments         int       `json:"payments"`
	StartedAt        time.Time `json:"started_at"`
	EndedAt          time.Time `json:"ended_at,omitzero"`
	FirstEnergyAt    time.Time `json:"first_energy_at,omitzero"`
	LastPayments     []Payment `json:"last_payments"`
}

// EVSEStatus is the charger as last read.
type EVSEStatus struct {
	Reachable       bool   `json:"reachable"`
	Error           string `json:"error,omitempty"`
	Pilot           string `json:"pilot"`
	Enabled         bool   `json:"enabled"`
	ContactorClosed bool   `json:"contactor_closed"`
	PowerW          int64  `json:"power_w"`
	VoltageMV       int64  `json:"voltage_mv"`
	CurrentMA       int64  `json:"current_ma"`
	Fault           string `json:"fault,omitempty"`
}

// Metrics are counters since start.
type Metrics struct {
	SessionsOpened  int64
	SessionsEnded   int64
	InvoicesIssued  int64
	InvoicesRefused int64
	PaymentsSettled int64
	LatePayments    int64
	ReceivedMsat    int64
	Enables         int64
	EVSEErrors      int64
	StoreErrors     int64
	Faults          int64
}

func sessionStatus(s *session) *SessionStatus {
	if s == nil {
		return nil
	}
	snap := s.m.Snapshot()
	out := &SessionStatus{
		ID: snap.ID, State: snap.State.String(), PriceMsatPerWh: snap.Terms.PriceMsatPerWh,
		IncrementWh: snap.Terms.IncrementWh, FirstPaymentMsat: snap.Terms.FirstPaymentMsat(), GraceWh: snap.Terms.GraceWh,
		DeliveredMWh: snap.DeliveredMWh, PaidMsat: snap.PaidMsat, PaidEnergyMWh: snap.PaidEnergyMWh,
		CreditMsat: snap.CreditMsat, CreditMWh: snap.CreditEnergyMWh, PowerW: s.powerW, SoCPermille: s.socPermille, Payments: snap.Payments,
		StartedAt: snap.StartedAt, EndedAt: snap.EndedAt, FirstEnergyAt: snap.FirstEnergyAt,
		LastPayments: append([]Payment{}, s.payments...),
	}
	if snap.EndReason != metering.NotEnded {
		out.EndReason = snap.EndReason.String()
	}
	if snap.State != metering.Energising {
		out.PowerW = 0
	}
	return out
}

func (c *Controller) statusLocked() Status {
	st := Status{At: c.clk.Now(), ConnectorNumber: c.cfg.Connector, NextPriceMsatPerWh: c.terms.PriceMsatPerWh, Fault: c.fault, Ready: c.ready}
	st.Session = sessionStatus(c.cur)
	st.Last = sessionStatus(c.last)
	st.Lightning.Connected = c.watcher != nil && c.watcher.Connected()
	st.EVSE = EVSEStatus{Reachable: c.evseErr == nil, Pilot: c.evseSt.Pilot.String(), Enabled: c.evseSt.Enabled,
		ContactorClosed: c.evseSt.ContactorClosed, PowerW: c.evseSt.PowerW, VoltageMV: c.evseSt.VoltageMV,
		CurrentMA: c.evseSt.CurrentMA, Fault: c.evseSt.Fault}
	if c.evseErr != nil {
		st.EVSE.Error = c.evseErr.Error()
	}
	switch {
	case c.fault != "":
		st.Connector, st.Why = "fault", c.fault
	case c.cur == nil:
		st.Connector, st.Why = "idle", "no vehicle plugged in"
	default:
		snap := c.cur.m.Snapshot()
		st.Connector = snap.State.String()
		switch snap.State {
		case metering.AwaitingPayment:
			st.Why = "waiting for the first payment"
		case metering.Energising:
			st.Why = "paid ahead: delivering"
			if c.cur.lndDark {
				st.Why = "power withheld: the wall cannot see its Lightning node"
			}
			if c.stalledRecently(st.At) {
				st.Why = "power withheld: the wall's control loop stalled (database or charger slow to answer)"
			}
		case metering.Suspended:
			st.Why = "delivered energy passed paid energy plus the grace: waiting for payment"
		case metering.Ended:
			st.Why = "session over (" + snap.EndReason.String() + "); unplug to start a new one"
		}
	}
	return st
}

// Status returns the connector's status now.
func (c *Controller) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.statusLocked()
}

// Metrics returns the counters.
func (c *Controller) Metrics() Metrics {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.metrics
	return m
}

// OpenInvoices is the number of unpaid invoices outstanding.
func (c *Controller) OpenInvoices() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.open)
}

// Subscribe returns a channel that receives the status after every change
// (only the newest if the reader is slow) and a function to unsubscribe.
func (c *Controller) Subscribe() (<-chan Status, func()) {
	ch := make(chan Status, 1)
	c.mu.Lock()
	c.subs[ch] = struct{}{}
	ch <- c.statusLocked()
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		delete(c.subs, ch)
		c.mu.Unlock()
	}
}

// publish sends the status to every subscriber, replacing an unread one.
func (c *Controller) publish() {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.statusLocked()
	for ch := range c.subs {
		select {
		case <-ch:
		default:
		}
		ch <- st
	}
}
