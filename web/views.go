package web

import "time"

// Nav names the page being shown, for the navigation bar.
type Nav string

// The pages.
const (
	NavLive     Nav = "live"
	NavHistory  Nav = "history"
	NavSettings Nav = "settings"
	NavReceipt  Nav = "receipt"
)

// Common is on every page.
type Common struct {
	Title string
	Nav   Nav
	// Now is the wall's clock when the page was rendered (times are shown
	// in the wall's local zone, time.Local).
	Now time.Time
}

// LiveView is the connector as it is when the page is rendered; the page's
// script then follows GET /api/status/stream (server-sent events, event
// "status", data: the status JSON) and GET /api/sessions/{id}/series.
type LiveView struct {
	Common
	// Connector in words: idle, awaiting_payment, energising, suspended,
	// ended, fault; Why says why.
	Connector, Why string
	EVSE           EVSEView
	LNConnected    bool
	// NextPriceMsatPerWh applies to the next session.
	NextPriceMsatPerWh int64
	// Session is the plugged-in vehicle's session, or nil; Last the most
	// recent one after its vehicle left, or nil.
	Session, Last *SessionView
	// ConnectorName labels the page on a wall with several connectors
	// ("Connector 2"); StreamURL is its status stream.
	ConnectorName, StreamURL string
}

// EVSEView is the charger as last read.
type EVSEView struct {
	Reachable       bool
	Error           string
	Pilot           string
	ContactorClosed bool
	PowerW          int64
	Fault           string
}

// SessionView is one session's live numbers.
type SessionView struct {
	ID, State, EndReason string
	PriceMsatPerWh       int64
	IncrementWh, GraceWh int64
	DeliveredMWh         int64
	PaidMsat             int64 // sats received = PaidMsat/1000
	PaidEnergyMWh        int64
	CreditMsat           int64 // negative within the grace
	CreditMWh            int64
	PowerW               int64
	Payments             int
	// SoCPermille is the car's state of charge in tenths of a percent if
	// the car shared it, -1 if not.
	SoCPermille int64
	StartedAt   time.Time
	EndedAt     time.Time // zero while it runs
	// LastPayments newest last.
	LastPayments []PaymentView
}

// PaymentView is one settled payment.
type PaymentView struct {
	At          time.Time
	AmountMsat  int64
	PaymentHash string // 64 hex digits
	AfterEnd    bool
}

// HistoryView is the history page: sessions newest first in the range
// [Since, Until) (zero: open), and the totals over the whole range.
type HistoryView struct {
	Common
	Since, Until time.Time
	// Query is the page's query string without "?" ("since=...&until=..."),
	// to build the CSV link so it exports exactly what is shown.
	Query    string
	Sessions []HistoryRow
	// Truncated is set when more sessions matched than are listed.
	Truncated bool
	Total     Totals
	Days      []PeriodRow // oldest first
	Months    []PeriodRow // oldest first
	// Error, if set, is shown instead of the table (a bad date, say).
	Error string
}

// HistoryRow is one session in the history.
type HistoryRow struct {
	ID                 string
	StartedAt, EndedAt time.Time // EndedAt zero while it runs
	State, EndReason   string
	PriceMsatPerWh     int64
	DeliveredMWh       int64
	PaidMsat           int64
	Payments           int64
}

// Totals sum sessions.
type Totals struct {
	Sessions     int64
	DeliveredMWh int64
	PaidMsat     int64
	Payments     int64
}

// PeriodRow is one local day ("2026-11-25") or month ("2026-11").
type PeriodRow struct {
	Period string
	Totals
}

// ReceiptView is one session's receipt.
type ReceiptView struct {
	Common
	ID                   string
	StartedAt, EndedAt   time.Time // EndedAt zero while it runs
	State, EndReason     string
	PriceMsatPerWh       int64
	IncrementWh, GraceWh int64
	Payee, Network       string
	DeliveredMWh         int64
	Payments             []ReceiptPayment // in settlement order
	AskedMsat, PaidMsat  int64
	AfterEndMsat         int64 // part of PaidMsat that arrived after the end
}

// ReceiptPayment is one payment with its proof.
type ReceiptPayment struct {
	SettledAt       time.Time
	AmountAskedMsat int64
	AmountPaidMsat  int64
	PaymentHash     string
	Preimage        string // hex; sha256(preimage) = PaymentHash
	AfterEnd        bool
}

// SettingsView is the owner's settings form. The form posts to
// /settings with fields token, csrf, price_msat_per_wh, increment_wh,
// grace_wh; the token is the owner's and is never echoed back.
type SettingsView struct {
	Common
	PriceMsatPerWh, IncrementWh, GraceWh int64
	// CSRF is a per-render value the form sends back in field csrf.
	CSRF string
	// Saved, if set, confirms the last change; Error explains a refusal.
	Saved, Error string
}

// ErrorView is a page that explains why a request failed.
type ErrorView struct {
	Common
	// Status is the HTTP status code the handler answers with.
	Status  int
	Message string
}
