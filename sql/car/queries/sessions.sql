-- Sessions and meter samples. Times are unix ms UTC.

-- name: session_insert
INSERT INTO sessions (
    id, wall_url, payee, network,
    price_msat_per_wh, increment_wh, first_multiple, grace_wh, max_power_w,
    offer_valid_until, metadata, started, soc_start_permille, updated
) VALUES (
    :id, :wall_url, :payee, :network,
    :price_msat_per_wh, :increment_wh, :first_multiple, :grace_wh, :max_power_w,
    :offer_valid_until, :metadata, :started, :soc_start_permille, :started
);

-- name: session_get
SELECT id, wall_url, payee, network,
       price_msat_per_wh, increment_wh, first_multiple, grace_wh, max_power_w,
       offer_valid_until, metadata, started, ended, end_reason,
       soc_start_permille, soc_end_permille, delivered_mwh, measured_mwh, updated
FROM sessions
WHERE id = :id;

-- name: sessions_open
-- Sessions never ended: after a restart, the car follows up their payments
-- and ends them.
SELECT id, wall_url, payee, network,
       price_msat_per_wh, increment_wh, first_multiple, grace_wh, max_power_w,
       offer_valid_until, metadata, started, ended, end_reason,
       soc_start_permille, soc_end_permille, delivered_mwh, measured_mwh, updated
FROM sessions
WHERE ended IS NULL
ORDER BY started, id;

-- name: session_ended
-- Whether a session exists (a row) and has ended (1) or not (0).
SELECT ended IS NOT NULL FROM sessions WHERE id = :id;

-- name: session_meter
UPDATE sessions
SET delivered_mwh = :delivered_mwh, measured_mwh = :measured_mwh, updated = :at
WHERE id = :id AND ended IS NULL;

-- name: meter_sample_insert
INSERT INTO meter_samples (session_id, at, delivered_mwh, measured_mwh)
VALUES (:session_id, :at, :delivered_mwh, :measured_mwh);

-- name: session_end
-- Only the first end counts: its time, reason, state of charge and energy stay.
UPDATE sessions
SET ended = :at, end_reason = :reason, soc_end_permille = :soc_end_permille,
    delivered_mwh = :delivered_mwh, measured_mwh = :measured_mwh, updated = :at
WHERE id = :id AND ended IS NULL;
