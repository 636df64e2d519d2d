-- Sessions and meter samples. Times are unix ms UTC.

-- name: session_insert
INSERT INTO sessions (
    id, connector, started, state,
    price_msat_per_wh, increment_wh, first_multiple, grace_wh, max_power_w,
    payee, network, offer_valid_until, metadata,
    delivered_mwh, evse_start_mwh, updated
) VALUES (
    :id, :connector, :started, :state,
    :price_msat_per_wh, :increment_wh, :first_multiple, :grace_wh, :max_power_w,
    :payee, :network, :offer_valid_until, :metadata,
    0, :evse_start_mwh, :started
);

-- name: session_get
SELECT id, started, ended, state, end_reason,
       price_msat_per_wh, increment_wh, first_multiple, grace_wh, max_power_w,
       payee, network, offer_valid_until, metadata,
       delivered_mwh, evse_start_mwh, updated, connector
FROM sessions
WHERE id = :id;

-- name: sessions_open
-- One connector's sessions never ended: after a crash, the wall resumes
-- or ends them (and settles their accounts with lnd) before taking new
-- ones on that connector.
SELECT id, started, ended, state, end_reason,
       price_msat_per_wh, increment_wh, first_multiple, grace_wh, max_power_w,
       payee, network, offer_valid_until, metadata,
       delivered_mwh, evse_start_mwh, updated, connector
FROM sessions
WHERE ended IS NULL AND connector = :connector
ORDER BY started, id;

-- name: session_ended
-- Whether a session exists (a row) and has ended (1) or not (0).
SELECT ended IS NOT NULL FROM sessions WHERE id = :id;

-- name: session_progress
UPDATE sessions
SET state = :state, delivered_mwh = :delivered_mwh, updated = :at
WHERE id = :id AND ended IS NULL;

-- name: meter_sample_insert
INSERT INTO meter_samples (session_id, at, power_w, delivered_mwh)
VALUES (:session_id, :at, :power_w, :delivered_mwh);

-- name: session_end
-- Only the first end counts: its time, reason and energy stay.
UPDATE sessions
SET state = 'ended', ended = :at, end_reason = :reason,
    delivered_mwh = :delivered_mwh, updated = :at
WHERE id = :id AND ended IS NULL;

-- name: session_samples
-- A session's meter samples, oldest first, for the page's chart; :limit
-- bounds a session that ran for days.
SELECT at, power_w, delivered_mwh
FROM meter_samples
WHERE session_id = :id
ORDER BY at, id
LIMIT :limit;
