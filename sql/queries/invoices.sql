-- Invoices and payments. An invoice is inserted before it is handed out; a
-- settled invoice is a payment, and its preimage is the proof.

-- name: invoice_insert
INSERT INTO invoices (payment_hash, session_id, amount_asked_msat, bolt11, created, expires)
VALUES (:hash, :session_id, :amount_msat, :bolt11, :created, :expires);

-- name: invoice_get
-- The invoice and whether its session has ended.
SELECT i.payment_hash, i.session_id, i.amount_asked_msat, i.bolt11, i.created, i.expires,
       i.state, i.amount_paid_msat, i.preimage, i.after_end,
       s.ended IS NOT NULL AS session_ended
FROM invoices AS i
JOIN sessions AS s ON s.id = i.session_id
WHERE i.payment_hash = :hash;

-- name: invoice_settle
-- Money is a fact: a settlement also overrides a "canceled" or "expired"
-- the wall wrote while lnd was settling.
UPDATE invoices
SET state = 'settled', amount_paid_msat = :paid_msat, preimage = :preimage,
    settled = :at, after_end = :after_end
WHERE payment_hash = :hash AND state <> 'settled';

-- name: invoice_close
-- Never overwrites a settled invoice, nor an earlier cancel or expiry.
UPDATE invoices
SET state = :state, closed = :at
WHERE payment_hash = :hash AND state = 'open';

-- name: invoices_open
-- One connector's invoices still open, for it to reconcile with lnd.
SELECT i.payment_hash, i.session_id, i.amount_asked_msat, i.bolt11, i.created, i.expires
FROM invoices AS i
JOIN sessions AS s ON s.id = i.session_id
WHERE i.state = 'open' AND s.connector = :connector
ORDER BY i.created, i.payment_hash;

-- name: session_paid
-- A row only if the session exists.
SELECT (SELECT coalesce(sum(amount_paid_msat), 0) FROM invoices
         WHERE session_id = s.id AND state = 'settled')
FROM sessions AS s
WHERE s.id = :id;

-- name: receipt_payments
SELECT payment_hash, amount_asked_msat, amount_paid_msat, created, expires,
       settled, preimage, bolt11, after_end
FROM invoices
WHERE session_id = :id AND state = 'settled'
ORDER BY settled, payment_hash;
