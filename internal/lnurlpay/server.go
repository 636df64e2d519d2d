// Package lnurlpay speaks LNURL-pay (LUD-06, with LUD-09 success actions,
// LUD-12 comments and LUD-21 verify) between the car and the wall. The
// wall side builds response values and parses callback queries; routing
// them is the caller's job. The car side is a Client that fetches the
// offer and asks for an invoice; it neither decodes nor pays invoices.
package lnurlpay

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"unicode/utf8"

	lnurl "github.com/fiatjaf/go-lnurl"

	"satwatt/internal/offer"
)

// Tag is the LUD-06 tag of a pay request.
const Tag = "payRequest"

// MaxCommentAllowed bounds commentAllowed: LUD-12 notes the whole GET URL
// should stay near 2000 characters.
const MaxCommentAllowed = 1000

// MaxSuccessText is LUD-09's limit on a success message or description.
const MaxSuccessText = 144

// MaxAESCiphertext is LUD-10's limit on an aes action's ciphertext, in
// bytes.
const MaxAESCiphertext = 4096

// ErrBadRequest is wrapped by ParseCallbackRequest's errors, whose text is
// meant to be sent back as the LUD-06 error reason.
var ErrBadRequest = errors.New("bad pay request")

// InvoiceResponse is the callback's answer (LUD-06 step 5), with LUD-09
// successAction and LUD-21 verify. The client fills Status and Reason
// only from an error answer, which it returns as a *RemoteError instead.
type InvoiceResponse struct {
	lnurl.LNURLResponse
	PR            string               `json:"pr"`
	Routes        []any                `json:"routes"`
	SuccessAction *lnurl.SuccessAction `json:"successAction,omitempty"`
	Verify        string               `json:"verify,omitempty"`
}

// VerifyResult is the LUD-21 verify answer. Preimage is hex, nil until
// settled.
type VerifyResult struct {
	lnurl.LNURLResponse
	Settled  bool    `json:"settled"`
	Preimage *string `json:"preimage"`
	PR       string  `json:"pr"`
}

// PayRequest builds the first response: the pay request carrying the
// offer metadata. EncodedMetadata is set because go-lnurl serialises only
// that field; metadata must be the exact string the invoices will hash.
func PayRequest(callbackURL string, minMsat, maxMsat int64, metadata string, commentAllowed int) (lnurl.LNURLPayParams, error) {
	if _, err := absHTTPURL(callbackURL); err != nil {
		return lnurl.LNURLPayParams{}, fmt.Errorf("lnurlpay: pay request callback: %w", err)
	}
	if minMsat < 1 || minMsat > maxMsat {
		return lnurl.LNURLPayParams{}, fmt.Errorf("lnurlpay: pay request: sendable range %d..%d msat must have 1 <= min <= max", minMsat, maxMsat)
	}
	if _, _, err := offer.ParseMetadata(metadata); err != nil {
		return lnurl.LNURLPayParams{}, fmt.Errorf("lnurlpay: pay request: %w", err)
	}
	if commentAllowed < 0 || commentAllowed > MaxCommentAllowed {
		return lnurl.LNURLPayParams{}, fmt.Errorf("lnurlpay: pay request: commentAllowed %d outside 0..%d", commentAllowed, MaxCommentAllowed)
	}
	return lnurl.LNURLPayParams{
		Tag:             Tag,
		Callback:        callbackURL,
		MinSendable:     minMsat,
		MaxSendable:     maxMsat,
		EncodedMetadata: metadata,
		CommentAllowed:  int64(commentAllowed),
	}, nil
}

// CallbackResponse builds the answer carrying the invoice. A non-empty
// successURL makes a LUD-09 url action described by successText; else a
// non-empty successText makes a message action; else there is none.
// verifyURL, if not empty, is the LUD-21 verify address.
func CallbackResponse(invoice, successURL, successText, verifyURL string) (InvoiceResponse, error) {
	if invoice == "" {
		return InvoiceResponse{}, errors.New("lnurlpay: callback response: empty invoice")
	}
	if n := utf8.RuneCountInString(successText); n > MaxSuccessText {
		return InvoiceResponse{}, fmt.Errorf("lnurlpay: callback response: success text is %d characters, LUD-09 allows %d", n, MaxSuccessText)
	}
	r := InvoiceResponse{
		LNURLResponse: lnurl.OkResponse(),
		PR:            invoice,
		Routes:        []any{},
		Verify:        verifyURL,
	}
	if successURL != "" {
		if _, err := absHTTPURL(successURL); err != nil {
			return InvoiceResponse{}, fmt.Errorf("lnurlpay: callback response: success url: %w", err)
		}
	}
	if successURL != "" || successText != "" {
		r.SuccessAction = lnurl.Action(successText, successURL)
	}
	if verifyURL != "" {
		if _, err := absHTTPURL(verifyURL); err != nil {
			return InvoiceResponse{}, fmt.Errorf("lnurlpay: callback response: verify url: %w", err)
		}
	}
	return r, nil
}

// VerifyResponse builds a LUD-21 verify answer for invoice pr.
func VerifyResponse(pr string, settled bool, preimageHex string) VerifyResult {
	r := VerifyResult{LNURLResponse: lnurl.OkResponse(), Settled: settled, PR: pr}
	if settled {
		r.Preimage = &preimageHex
	}
	return r
}

// ErrorResponse is the LUD-06 error answer {"status":"ERROR","reason":...}.
func ErrorResponse(reason string) lnurl.LNURLErrorResponse {
	return lnurl.ErrorResponse(reason)
}

// ParseCallbackRequest reads the car's callback query: exactly one amount,
// a plain decimal msat count within [minMsat, maxMsat], and an optional
// comment of at most commentAllowed characters (LUD-12).
func ParseCallbackRequest(q url.Values, minMsat, maxMsat int64, commentAllowed int) (int64, string, error) {
	amounts := q["amount"]
	if len(amounts) != 1 {
		return 0, "", fmt.Errorf("%w: want one amount parameter, got %d", ErrBadRequest, len(amounts))
	}
	a := amounts[0]
	if !allDigits(a) {
		return 0, "", fmt.Errorf("%w: amount %q is not a whole number of millisatoshis", ErrBadRequest, clip(a))
	}
	msat, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return 0, "", fmt.Errorf("%w: amount %q is too large", ErrBadRequest, clip(a))
	}
	if msat < minMsat || msat > maxMsat {
		return 0, "", fmt.Errorf("%w: amount %d msat outside %d..%d msat", ErrBadRequest, msat, minMsat, maxMsat)
	}
	comments := q["comment"]
	if len(comments) > 1 {
		return 0, "", fmt.Errorf("%w: %d comment parameters, want at most one", ErrBadRequest, len(comments))
	}
	var comment string
	if len(comments) == 1 {
		comment = comments[0]
	}
	if !utf8.ValidString(comment) {
		return 0, "", fmt.Errorf("%w: comment is not UTF-8", ErrBadRequest)
	}
	if n := utf8.RuneCountInString(comment); n > commentAllowed {
		return 0, "", fmt.Errorf("%w: comment is %d characters, at most %d allowed", ErrBadRequest, n, commentAllowed)
	}
	return msat, comment, nil
}

// allDigits is stricter than ParseInt, which takes a sign.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func absHTTPURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		// The *url.Error would repeat s whole.
		return nil, fmt.Errorf("%q is not a URL: %w", clip(s), urlErr(err))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", clip(s))
	}
	if u.User != nil {
		return nil, fmt.Errorf("%q carries user info", clip(s))
	}
	return u, nil
}

// clip shortens an untrusted string for an error message.
func clip(s string) string { return clipN(s, 64) }

// clipN keeps at most n bytes of s, cut at a character boundary.
func clipN(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
