-- Invoices, the payments that pay them, and the invoices the car refused.
-- An invoice is inserted before it is paid, so that no payment can leave
-- the car unrecorded.

-- name: invoice_insert
INSERT INTO invoices (payment_hash, session_id, amount_msat, bolt11, requested)
VALUES (:hash, :session_id, :amount_msat, :bolt11, :requested);

-- name: invoice_get
SELECT payment_hash, session_id, amount_msat, bolt11, requested,
       status, paid_msat, fee_msat, preimage, failure_reason, sent, resolved
FROM invoices
WHERE payment_hash = :hash;

-- name: payment_update
-- The store decides the new state (RecordPayment); sent keeps its first value.
UPDATE invoices
SET status = :status, paid_msat = :paid_msat, fee_msat = :fee_msat,
    preimage = :preimage, failure_reason = :failure_reason,
    sent = coalesce(sent, :at), resolved = :resolved
WHERE payment_hash = :hash;

-- name: invoice_refuse
-- Only an invoice nothing was recorded for yet: a payment outcome stands.
UPDATE invoices SET status = 'refused'
WHERE payment_hash = :hash AND status = 'requested';

-- name: invoices_pending
-- Payments whose outcome only lnd knows: in flight, or requested and
-- perhaps sent just before a crash. Oldest first.
SELECT payment_hash, session_id, amount_msat, bolt11, requested,
       status, paid_msat, fee_msat, preimage, failure_reason, sent, resolved
FROM invoices
WHERE status IN ('requested', 'in_flight')
ORDER BY requested, payment_hash;

-- name: paid_since
-- What left the car in succeeded payments (amount and fees) since :since.
SELECT coalesce(sum(paid_msat), 0) + coalesce(sum(fee_msat), 0)
FROM invoices
WHERE status = 'succeeded' AND resolved >= :since;

-- name: receipt_invoices
SELECT payment_hash, session_id, amount_msat, bolt11, requested,
       status, paid_msat, fee_msat, preimage, failure_reason, sent, resolved
FROM invoices
WHERE session_id = :id
ORDER BY requested, payment_hash;

-- name: refusal_insert
INSERT INTO refusals (session_id, at, payment_hash, amount_msat, bolt11, reason, detail)
VALUES (:session_id, :at, :hash, :amount_msat, :bolt11, :reason, :detail);

-- name: receipt_refusals
SELECT at, payment_hash, amount_msat, bolt11, reason, detail
FROM refusals
WHERE session_id = :id
ORDER BY at, id;
