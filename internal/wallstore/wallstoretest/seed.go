// Package wallstoretest fills a wall database with years of history, for
// benchmarks of the history queries and of wallctl history. It writes
// through the same named queries the store uses, in one transaction, so
// that seeding 100,000 sessions takes seconds rather than the hours
// durable one-by-one commits would.
package wallstoretest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	schema "satwatt/sql"
)

// Seed writes n ended sessions into db (whose schema is in place), one
// every 10 minutes back from end, each with two settled payments (7,500
// and 7,501 msat) and one expired invoice; then it folds the write-ahead
// log into the file, as the autocheckpoint would have over years of use.
func Seed(ctx context.Context, db *sql.DB, n int, end time.Time) error {
	q, err := schema.Queries()
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var firstErr error
	stmt := func(name string) func(args ...any) {
		st, err := tx.PrepareContext(ctx, q[name])
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("prepare %s: %w", name, err)
		}
		return func(args ...any) {
			if firstErr != nil {
				return
			}
			if _, err := st.ExecContext(ctx, args...); err != nil {
				firstErr = fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	insSession, insInvoice := stmt("session_insert"), stmt("invoice_insert")
	endSession, settle, closeInv := stmt("session_end"), stmt("invoice_settle"), stmt("invoice_close")
	if firstErr != nil {
		return firstErr
	}
	arg := sql.Named
	payee := "02" + strings.Repeat("ab", 32)
	for i := range n {
		id := fmt.Sprintf("s%07d", i)
		st := end.Add(-time.Duration(i) * 10 * time.Minute).UnixMilli()
		insSession(arg("id", id), arg("connector", int64(1)), arg("started", st), arg("state", "energising"),
			arg("price_msat_per_wh", int64(250)), arg("increment_wh", int64(10)),
			arg("first_multiple", int64(3)), arg("grace_wh", int64(2)),
			arg("max_power_w", int64(7400)), arg("payee", payee),
			arg("network", "regtest"), arg("offer_valid_until", st+600_000),
			arg("metadata", `[["text/plain","satwatt `+id+`"],["application/vnd.satwatt.offer+json","{}"]]`),
			arg("evse_start_mwh", int64(i)*40_000))
		for k := range 3 {
			seed := sha256.Sum256([]byte(fmt.Sprint(id, k)))
			h := sha256.Sum256(seed[:])
			hash := hex.EncodeToString(h[:])
			at := st + int64(k)*60_000
			insInvoice(arg("hash", hash), arg("session_id", id), arg("amount_msat", int64(7500)),
				arg("bolt11", Bolt11Like(hash)), arg("created", at), arg("expires", at+600_000))
			if k == 2 {
				closeInv(arg("hash", hash), arg("state", "expired"), arg("at", at+600_000))
				continue
			}
			settle(arg("hash", hash), arg("paid_msat", int64(7500+k)), arg("preimage", hex.EncodeToString(seed[:])),
				arg("at", at+1_000), arg("after_end", false))
		}
		endSession(arg("id", id), arg("at", st+3_600_000), arg("reason", "unplugged"),
			arg("delivered_mwh", int64(30_000+i%1000)))
		if firstErr != nil {
			return firstErr
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	return err
}

// Bolt11Like is a string as long as a real regtest invoice with a
// description hash, so that seeded rows have their real size.
func Bolt11Like(hash string) string {
	return "lnbcrt25n1p" + strings.Repeat(hash, 5)[:320]
}

// Grow makes the history Seed wrote factor times as long: factor-1 copies
// of every session and invoice, each copy earlier by the whole seeded span,
// written by SQLite itself in one transaction (seeding a million sessions
// through Go would take minutes). A copy's ids and payment hashes are the
// original's with a copy number worked in, so they stay unique and well
// formed; its preimages no longer hash to its payment hashes, which no
// history query reads.
func Grow(ctx context.Context, db *sql.DB, factor int) error {
	if factor < 2 {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n, lo, hi int64
	if err := tx.QueryRowContext(ctx, `SELECT count(*), min(started), max(started) FROM sessions`).Scan(&n, &lo, &hi); err != nil {
		return fmt.Errorf("grow: %w", err)
	}
	span := hi - lo + 10*60_000
	for k := 1; k < factor; k++ {
		shift := int64(k) * span
		if _, err := tx.ExecContext(ctx, `
INSERT INTO sessions (id, started, ended, state, end_reason, price_msat_per_wh, increment_wh, first_multiple,
                      grace_wh, max_power_w, payee, network, offer_valid_until, metadata, delivered_mwh,
                      evse_start_mwh, updated, connector)
SELECT id || '-' || :k, started - :shift, ended - :shift, state, end_reason, price_msat_per_wh, increment_wh,
       first_multiple, grace_wh, max_power_w, payee, network, offer_valid_until - :shift, metadata,
       delivered_mwh, evse_start_mwh, updated - :shift, connector
FROM sessions WHERE instr(id, '-') = 0`, sql.Named("k", k), sql.Named("shift", shift)); err != nil {
			return fmt.Errorf("grow: copy %d of the sessions: %w", k, err)
		}
		if _, err := tx.ExecContext(ctx, `
INSERT INTO invoices (payment_hash, session_id, amount_asked_msat, amount_paid_msat, state, created, expires,
                      settled, closed, preimage, bolt11, after_end)
SELECT substr(i.payment_hash, 3) || printf('%02x', :k), i.session_id || '-' || :k, i.amount_asked_msat,
       i.amount_paid_msat, i.state, i.created - :shift, i.expires - :shift, i.settled - :shift, i.closed - :shift,
       CASE WHEN i.preimage IS NULL THEN NULL ELSE substr(i.preimage, 3) || printf('%02x', :k) END,
       i.bolt11, i.after_end
FROM invoices i WHERE instr(i.session_id, '-') = 0`, sql.Named("k", k), sql.Named("shift", shift)); err != nil {
			return fmt.Errorf("grow: copy %d of the invoices: %w", k, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	return err
}
