package lndclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/routerrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// PaymentStatus is where a payment stands. The zero value is InFlight: a
// payment whose outcome is unknown must be treated as possibly paid.
type PaymentStatus int

const (
	InFlight PaymentStatus = iota
	Succeeded
	Failed
)

func (s PaymentStatus) String() string {
	switch s {
	case InFlight:
		return "in flight"
	case Succeeded:
		return "succeeded"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("PaymentStatus(%d)", int(s))
}

// Reason says why a payment failed.
type Reason int

const (
	ReasonNone                Reason = iota // not failed
	ReasonTimeout                           // no route found before the payment timeout
	ReasonNoRoute                           // no path to the payee with enough capacity
	ReasonError                             // an error lnd could not classify, or one unknown to this package
	ReasonIncorrectDetails                  // the payee refused: unknown hash, wrong amount, expired or canceled invoice
	ReasonInsufficientBalance               // our channels cannot carry the amount plus fees
	ReasonCanceled                          // the payment was canceled before completing
)

func (r Reason) String() string {
	switch r {
	case ReasonNone:
		return "none"
	case ReasonTimeout:
		return "timeout"
	case ReasonNoRoute:
		return "no route"
	case ReasonError:
		return "error"
	case ReasonIncorrectDetails:
		return "incorrect payment details"
	case ReasonInsufficientBalance:
		return "insufficient balance"
	case ReasonCanceled:
		return "canceled"
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// reasonFromLnd maps lnd's failure reason. A value newer than this package
// becomes ReasonError, so a failure is never reported as no failure.
func reasonFromLnd(r lnrpc.PaymentFailureReason) Reason {
	switch r {
	case lnrpc.PaymentFailureReason_FAILURE_REASON_NONE:
		return ReasonNone
	case lnrpc.PaymentFailureReason_FAILURE_REASON_TIMEOUT:
		return ReasonTimeout
	case lnrpc.PaymentFailureReason_FAILURE_REASON_NO_ROUTE:
		return ReasonNoRoute
	case lnrpc.PaymentFailureReason_FAILURE_REASON_ERROR:
		return ReasonError
	case lnrpc.PaymentFailureReason_FAILURE_REASON_INCORRECT_PAYMENT_DETAILS:
		return ReasonIncorrectDetails
	case lnrpc.PaymentFailureReason_FAILURE_REASON_INSUFFICIENT_BALANCE:
		return ReasonInsufficientBalance
	case lnrpc.PaymentFailureReason_FAILURE_REASON_CANCELED:
		return ReasonCanceled
	}
	return ReasonError
}

// PayOptions bound one payment.
type PayOptions struct {
	// MaxFeeMsat is the most paid in routing fees. Zero allows only
	// fee-free routes, such as a direct channel to the payee.
	MaxFeeMsat int64
	// Timeout is how long lnd keeps looking for routes, rounded up to
	// whole seconds; zero means lnd's default of 60 s. HTLCs already sent
	// when it passes still complete or fail on their own.
	Timeout time.Duration
	// AmountMsat is what the caller expects to pay. Pay refuses an
	// invoice the node decodes to another amount; for an amount-less
	// invoice it is the amount paid.
	AmountMsat int64
}

// PaymentResult is a payment's outcome as far as it is known.
type PaymentResult struct {
	PaymentHash   [32]byte
	Status        PaymentStatus
	Preimage      [32]byte // proof of payment, when Succeeded
	AmountMsat    int64    // paid to the payee, fees excluded
	FeeMsat       int64
	FailureReason Reason // when Failed
}

// Pay pays a BOLT 11 invoice through routerrpc.SendPaymentV2 and follows it
// to a final state.
//
// Pay does not check the invoice beyond its amount: the caller must have
// decoded it offline and run every check (payee, description hash, expiry,
// price) before calling. As a second guard Pay asks the node to decode the
// invoice and refuses, paying nothing, when the node's amount differs from
// opts.AmountMsat (ErrAmountMismatch).
//
// Paying an invoice the node has already paid, or is paying, sends nothing
// more: Pay returns that earlier payment's result. A failed payment is
// Status Failed with a nil error. When ctx ends, or the connection drops,
// while the payment is under way, Pay returns Status InFlight and its
// PaymentHash; follow it with Track. An error with Status InFlight means the
// outcome is unknown, not that nothing was paid.
func (c *Client) Pay(ctx context.Context, bolt11 string, opts PayOptions) (PaymentResult, error) {
	switch {
	case bolt11 == "":
		return PaymentResult{}, errors.New("lndclient: Pay: empty payment request")
	case opts.AmountMsat <= 0:
		return PaymentResult{}, fmt.Errorf("lndclient: Pay: expected amount %d msat is not positive", opts.AmountMsat)
	case opts.MaxFeeMsat < 0:
		return PaymentResult{}, fmt.Errorf("lndclient: Pay: fee limit %d msat is negative", opts.MaxFeeMsat)
	case opts.Timeout < 0:
		return PaymentResult{}, fmt.Errorf("lndclient: Pay: timeout %v is negative", opts.Timeout)
	}

	dctx, cancel := c.unary(ctx)
	pr, err := c.ln.DecodePayReq(dctx, &lnrpc.PayReqString{PayReq: bolt11})
	err = c.wrap(dctx, "DecodePayReq", err)
	cancel()
	if err != nil {
		return PaymentResult{}, err
	}
	var hash [32]byte
	if b, err := hex.DecodeString(pr.PaymentHash); err != nil || hash32(&hash, b) != nil {
		return PaymentResult{}, fmt.Errorf("lndclient: DecodePayReq at %s: payment hash %q is not 32 hex bytes",
			c.addr, pr.PaymentHash)
	}
	req := &routerrpc.SendPaymentRequest{
		PaymentRequest: bolt11,
		FeeLimitMsat:   opts.MaxFeeMsat,
		TimeoutSeconds: int32((opts.Timeout + time.Second - 1) / time.Second),
	}
	switch pr.NumMsat {
	case 0:
		req.AmtMsat = opts.AmountMsat // amount-less: the payer sets it
	case opts.AmountMsat:
	default:
		return PaymentResult{}, fmt.Errorf("lndclient: Pay %x: %w: node decodes %d msat, caller expects %d msat",
			hash, ErrAmountMismatch, pr.NumMsat, opts.AmountMsat)
	}

	log := c.log.With("hash", fmt.Sprintf("%x", hash))
	log.Debug("paying", "amount_msat", opts.AmountMsat, "max_fee_msat", opts.MaxFeeMsat)
	// In-flight updates stay on (NoInflightUpdates false): lnd's first
	// update proves it took the payment on, which tells "in flight" from
	// "never started" if ctx ends early. The payment is not Cancelable, so
	// ending the stream does not abort it.
	stream, err := c.router.SendPaymentV2(ctx, req)
	if err != nil {
		return PaymentResult{Status: InFlight, PaymentHash: hash}, c.wrap(ctx, "SendPaymentV2", err)
	}
	res, err := c.follow(ctx, hash, "SendPaymentV2", stream)
	if errors.Is(err, errDuplicate) {
		log.Info("invoice already paid or being paid; returning that payment", "lnd", err)
		return c.Track(ctx, hash)
	}
	if err == nil {
		log.Info("payment done", "status", res.Status, "fee_msat", res.FeeMsat, "reason", res.FailureReason)
	}
	return res, err
}

// Track follows a payment this node started, until a final state or until
// ctx ends (then Status InFlight, nil error). A hash the node never paid
// gives ErrPaymentNotFound.
func (c *Client) Track(ctx context.Context, hash [32]byte) (PaymentResult, error) {
	stream, err := c.router.TrackPaymentV2(ctx, &routerrpc.TrackPaymentRequest{PaymentHash: hash[:]})
	if err != nil {
		return PaymentResult{Status: InFlight, PaymentHash: hash}, c.wrap(ctx, "TrackPaymentV2", err)
	}
	return c.follow(ctx, hash, "TrackPaymentV2", stream)
}

// errDuplicate marks lnd's AlreadyExists answer to SendPaymentV2: this
// node has paid, or is paying, this hash.
var errDuplicate = errors.New("payment for this hash exists")

// follow reads payment updates until a final one.
func (c *Client) follow(ctx context.Context, hash [32]byte, rpc string,
	stream interface {
		Recv() (*lnrpc.Payment, error)
	}) (PaymentResult, error) {
	res := PaymentResult{Status: InFlight, PaymentHash: hash}
	started := false
	for {
		p, err := stream.Recv()
		ended := err != nil && callerEnded(ctx, err)
		switch {
		case err == nil:
		case ended && started:
			return res, nil
		case ended:
			cerr := ctx.Err()
			if cerr == nil {
				cerr = context.DeadlineExceeded
			}
			return res, fmt.Errorf("lndclient: %s %x at %s: %w before lnd confirmed the payment; "+
				"follow it with Track", rpc, hash, c.addr, cerr)
		case status.Code(err) == codes.AlreadyExists:
			return res, fmt.Errorf("%w: %w", errDuplicate, err)
		case errors.Is(err, io.EOF):
			return res, fmt.Errorf("lndclient: %s %x at %s: stream ended without a final state; "+
				"follow it with Track", rpc, hash, c.addr)
		default:
			return res, c.wrap(ctx, rpc, err)
		}
		started = true
		r, err := paymentResult(p)
		if err != nil {
			return res, fmt.Errorf("lndclient: %s at %s: %w", rpc, c.addr, err)
		}
		if r.PaymentHash != hash {
			return res, fmt.Errorf("lndclient: %s at %s: update for payment %x, want %x", rpc, c.addr, r.PaymentHash, hash)
		}
		res = r
		if res.Status != InFlight {
			return res, nil
		}
	}
}

func paymentResult(p *lnrpc.Payment) (PaymentResult, error) {
	var r PaymentResult
	if b, err := hex.DecodeString(p.PaymentHash); err != nil || hash32(&r.PaymentHash, b) != nil {
		return r, fmt.Errorf("payment hash %q is not 32 hex bytes", p.PaymentHash)
	}
	r.AmountMsat = p.ValueMsat
	r.FeeMsat = p.FeeMsat
	switch p.Status {
	case lnrpc.Payment_SUCCEEDED:
		r.Status = Succeeded
		b, err := hex.DecodeString(p.PaymentPreimage)
		if err != nil || hash32(&r.Preimage, b) != nil {
			return r, fmt.Errorf("payment %x succeeded without a 32-byte preimage", r.PaymentHash)
		}
		// The preimage is the proof of payment the car keeps; make sure
		// it is one.
		if sum := sha256.Sum256(r.Preimage[:]); !bytes.Equal(sum[:], r.PaymentHash[:]) {
			return r, fmt.Errorf("payment %x succeeded with a preimage that does not hash to it", r.PaymentHash)
		}
	case lnrpc.Payment_FAILED:
		r.Status = Failed
		r.FailureReason = reasonFromLnd(p.FailureReason)
		if r.FailureReason == ReasonNone {
			r.FailureReason = ReasonError
		}
	default: // IN_FLIGHT, INITIATED, and the deprecated UNKNOWN
		r.Status = InFlight
	}
	return r, nil
}

// SpendableMsat estimates what this node can send now:
//
//	sum over active channels of max(0, local_balance − local chan_reserve_sat
//	                                  − the opener's fee buffer for one more HTLC)
//
// Pending outgoing HTLCs are not subtracted again: lnd's local_balance is
// the to-self output of the current commitment, from which HTLCs in flight
// are already taken out (lnd lists them apart as pending_htlcs and
// unsettled_balance). On channels this node opened, lnd keeps back the fee
// for the commitment with one more HTLC at twice today's fee rate
// (htlcFeeBuffer).
func (c *Client) SpendableMsat(ctx context.Context) (int64, error) {
	cctx, cancel := c.unary(ctx)
	defer cancel()
	resp, err := c.ln.ListChannels(cctx, &lnrpc.ListChannelsRequest{ActiveOnly: true})
	if err != nil {
		return 0, c.wrap(cctx, "ListChannels", err)
	}
	var total int64
	for _, ch := range resp.Channels {
		if !ch.Active {
			continue
		}
		reserve := ch.LocalChanReserveSat // deprecated field: for nodes without local_constraints
		if ch.LocalConstraints != nil {
			reserve = int64(ch.LocalConstraints.ChanReserveSat)
		}
		if s := (ch.LocalBalance - reserve - htlcFeeBuffer(ch.Initiator, ch.FeePerKw, ch.CommitWeight, ch.CommitFee)) * 1000; s > 0 {
			total += s
		}
	}
	return total, nil
}

// htlcWeight is what one more HTLC output adds to a commitment transaction.
const htlcWeight = 172

// htlcFeeBuffer is the commitment fee, in sat, that the channel's opener
// must still be able to pay on top of a new HTLC: lnd refuses a payment
// unless the opener covers the commitment with one more HTLC at twice the
// present fee rate (the fee spike buffer). The local balance already
// excludes today's fee. Found when the car's 20,000 sat channel failed its
// last payments with "insufficient balance" that this balance had promised.
func htlcFeeBuffer(initiator bool, feePerKw, commitWeight, commitFee int64) int64 {
	if !initiator || feePerKw <= 0 {
		return 0
	}
	return max(2*feePerKw*(commitWeight+htlcWeight)/1000-commitFee, 0)
}

// callerEnded reports whether a stream error is the caller's context
// ending. gRPC sends the deadline to lnd, which may cut the stream
// (DeadlineExceeded) a moment before the context here says it is done.
func callerEnded(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return true
	}
	_, hasDeadline := ctx.Deadline()
	return hasDeadline && status.Code(err) == codes.DeadlineExceeded
}
