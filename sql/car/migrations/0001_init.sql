-- 0001_init: the car's ledger: what it paid, to which wall, for how much
-- energy. It mirrors the wall's (sql/migrations/0001_init.sql) so that the
-- two can be read side by side, from the car's point of view.
--
-- Conventions, so that the file reads the same in the sqlite3 shell:
--   * times are INTEGER unix milliseconds, UTC (columns without a suffix:
--     started, ended, at, ...); the views show them as local time text;
--   * money is INTEGER msat (*_msat), energy INTEGER mWh (*_mwh) or Wh
--     (*_wh), state of charge INTEGER permille (*_permille, 0 to 1000): no
--     REAL anywhere, and STRICT tables refuse one by mistake;
--   * hashes and preimages are 64 lower-case hex digits.
-- Rows are never deleted: a session, an invoice or a payment is history.

-- One charging session, under the id the wall gave it, with the offer's
-- terms as the car accepted them. delivered_mwh is what the wall reported
-- delivering and measured_mwh what the car measured going into its battery
-- on CAN: the two side by side show whether the wall meters honestly.
CREATE TABLE sessions (
    id                 TEXT PRIMARY KEY CHECK (id <> ''), -- the wall's session id
    wall_url           TEXT NOT NULL CHECK (wall_url <> ''), -- where the car found the offer
    payee              TEXT NOT NULL
                       CHECK (length(payee) = 66 AND payee NOT GLOB '*[^0-9a-f]*'), -- the wall's node key
    network            TEXT NOT NULL,
    price_msat_per_wh  INTEGER NOT NULL CHECK (price_msat_per_wh > 0),
    increment_wh       INTEGER NOT NULL CHECK (increment_wh > 0),
    first_multiple     INTEGER NOT NULL CHECK (first_multiple >= 1),
    grace_wh           INTEGER NOT NULL CHECK (grace_wh >= 0),
    max_power_w        INTEGER NOT NULL CHECK (max_power_w > 0),
    offer_valid_until  INTEGER NOT NULL,  -- unix ms
    metadata           TEXT NOT NULL,     -- LNURL metadata: every invoice commits to its sha256
    started            INTEGER NOT NULL,
    ended              INTEGER,
    end_reason         TEXT CHECK (end_reason <> ''),
    soc_start_permille INTEGER CHECK (soc_start_permille BETWEEN 0 AND 1000), -- NULL: not known
    soc_end_permille   INTEGER CHECK (soc_end_permille BETWEEN 0 AND 1000),
    delivered_mwh      INTEGER NOT NULL DEFAULT 0 CHECK (delivered_mwh >= 0), -- as the wall reported it
    measured_mwh       INTEGER NOT NULL DEFAULT 0 CHECK (measured_mwh >= 0),  -- as the car measured it
    updated            INTEGER NOT NULL,  -- time of the last meter sample
    CHECK ((ended IS NULL) = (end_reason IS NULL)),
    CHECK (ended IS NOT NULL OR soc_end_permille IS NULL)
) STRICT;

-- History is newest first, ties broken by id: the index gives that order.
CREATE INDEX sessions_by_started ON sessions (started, id);
-- Sessions a crash left open; the partial index stays tiny.
CREATE INDEX sessions_open ON sessions (started) WHERE ended IS NULL;

-- Every invoice the car asked the wall for, written before it is paid, and
-- what became of the payment:
--   requested  asked for and recorded; no payment recorded yet. After a
--              crash the car may have sent it all the same: lnd knows.
--   in_flight  handed to lnd, outcome unknown: possibly paid.
--   succeeded  paid; the preimage is the proof.
--   failed     lnd gave up; failure_reason says why.
--   refused    the car's checks refused it and it was not sent (the
--              refusals table says why).
-- paid_msat is what reached the wall, fee_msat the routing fees on top.
CREATE TABLE invoices (
    payment_hash   TEXT PRIMARY KEY
                   CHECK (length(payment_hash) = 64 AND payment_hash NOT GLOB '*[^0-9a-f]*'),
    session_id     TEXT NOT NULL REFERENCES sessions (id),
    amount_msat    INTEGER NOT NULL CHECK (amount_msat > 0), -- asked
    bolt11         TEXT NOT NULL CHECK (bolt11 <> ''),
    requested      INTEGER NOT NULL,
    status         TEXT NOT NULL DEFAULT 'requested'
                   CHECK (status IN ('requested', 'in_flight', 'succeeded', 'failed', 'refused')),
    paid_msat      INTEGER NOT NULL DEFAULT 0 CHECK (paid_msat >= 0),
    fee_msat       INTEGER NOT NULL DEFAULT 0 CHECK (fee_msat >= 0),
    preimage       TEXT
                   CHECK (preimage IS NULL OR (length(preimage) = 64 AND preimage NOT GLOB '*[^0-9a-f]*')),
    failure_reason TEXT CHECK (failure_reason <> ''),
    sent           INTEGER,  -- when a payment was first recorded
    resolved       INTEGER,  -- when it succeeded or failed
    CHECK ((status = 'succeeded') = (preimage IS NOT NULL)),
    CHECK (status <> 'succeeded' OR paid_msat > 0),
    CHECK ((status = 'failed') = (failure_reason IS NOT NULL)),
    CHECK ((status IN ('succeeded', 'failed')) = (resolved IS NOT NULL)),
    CHECK ((status IN ('requested', 'refused')) = (sent IS NULL))
) STRICT;

-- Covers the per-session sums (paid, fees, counts) without touching the table.
CREATE INDEX invoices_by_session ON invoices (session_id, status, paid_msat, fee_msat);
-- Payments whose outcome the car must learn from lnd after a restart.
CREATE INDEX invoices_pending ON invoices (requested) WHERE status IN ('requested', 'in_flight');
-- The daily budget: what succeeded since a time.
CREATE INDEX invoices_succeeded ON invoices (resolved, paid_msat, fee_msat) WHERE status = 'succeeded';

-- Every invoice the car refused to pay, with the check that refused it.
-- payment_hash is NULL when the invoice did not even decode; an invoice
-- refused here need not be in the invoices table.
CREATE TABLE refusals (
    id           INTEGER PRIMARY KEY,
    session_id   TEXT NOT NULL REFERENCES sessions (id),
    at           INTEGER NOT NULL,
    payment_hash TEXT
                 CHECK (payment_hash IS NULL OR (length(payment_hash) = 64 AND payment_hash NOT GLOB '*[^0-9a-f]*')),
    amount_msat  INTEGER NOT NULL DEFAULT 0 CHECK (amount_msat >= 0), -- asked; 0 when none or not known
    bolt11       TEXT NOT NULL DEFAULT '',
    reason       TEXT NOT NULL CHECK (reason <> ''),
    detail       TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX refusals_by_session ON refusals (session_id, at);

-- The two meters, about once a second while a session runs; both count
-- from the session's start.
CREATE TABLE meter_samples (
    id            INTEGER PRIMARY KEY,
    session_id    TEXT NOT NULL REFERENCES sessions (id),
    at            INTEGER NOT NULL,
    delivered_mwh INTEGER NOT NULL CHECK (delivered_mwh >= 0), -- the wall's report
    measured_mwh  INTEGER NOT NULL CHECK (measured_mwh >= 0)   -- the car's CAN
) STRICT;

CREATE INDEX meter_samples_by_session ON meter_samples (session_id, at);

-- What happened, for people: decisions, faults, recovery after a restart.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY,
    session_id TEXT REFERENCES sessions (id), -- NULL: about the car, not a session
    at         INTEGER NOT NULL,
    kind       TEXT NOT NULL CHECK (kind <> ''),
    detail     TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX events_by_at ON events (at);
CREATE INDEX events_by_session ON events (session_id, at) WHERE session_id IS NOT NULL;
