-- 0001_init: the wall's ledger.
--
-- Conventions, so that the file reads the same in the sqlite3 shell:
--   * times are INTEGER unix milliseconds, UTC (columns without a suffix:
--     started, ended, at, ...); the views show them as local time text;
--   * money is INTEGER msat (*_msat), energy INTEGER mWh (*_mwh) or Wh
--     (*_wh): no REAL anywhere, and STRICT tables refuse one by mistake;
--   * hashes and preimages are 64 lower-case hex digits.
-- Rows are never deleted: a session, an invoice or a payment is history.

CREATE TABLE settings (
    key     TEXT PRIMARY KEY CHECK (key <> ''),
    value   TEXT NOT NULL,
    updated INTEGER NOT NULL
) STRICT;

-- One charging session, plug-in to unplug, with the offer's terms as they
-- were when it started: a later price change applies to later sessions.
CREATE TABLE sessions (
    id                TEXT PRIMARY KEY CHECK (id <> ''),
    started           INTEGER NOT NULL,
    ended             INTEGER,
    state             TEXT NOT NULL CHECK (state <> ''),
    end_reason        TEXT CHECK (end_reason <> ''),
    price_msat_per_wh INTEGER NOT NULL CHECK (price_msat_per_wh > 0),
    increment_wh      INTEGER NOT NULL CHECK (increment_wh > 0),
    first_multiple    INTEGER NOT NULL CHECK (first_multiple >= 1),
    grace_wh          INTEGER NOT NULL CHECK (grace_wh >= 0),
    max_power_w       INTEGER NOT NULL CHECK (max_power_w > 0),
    payee             TEXT NOT NULL,     -- the wall's node key the offer named
    network           TEXT NOT NULL,
    offer_valid_until INTEGER NOT NULL,  -- unix ms
    metadata          TEXT NOT NULL,     -- LNURL metadata: every invoice commits to its sha256
    delivered_mwh     INTEGER NOT NULL DEFAULT 0 CHECK (delivered_mwh >= 0),
    evse_start_mwh    INTEGER NOT NULL DEFAULT 0, -- the EVSE meter's reading at plug-in
    updated           INTEGER NOT NULL,  -- time of the last progress report
    CHECK ((ended IS NULL) = (end_reason IS NULL)),
    CHECK ((ended IS NULL) = (state <> 'ended'))
) STRICT;

-- History is newest first, ties broken by id: the index gives that order.
CREATE INDEX sessions_by_started ON sessions (started, id);
-- Sessions a crash left open; the partial index stays tiny.
CREATE INDEX sessions_open ON sessions (started) WHERE ended IS NULL;

-- Every invoice the wall handed out, written before it was handed out, and
-- its fate. A settled invoice is a payment; the preimage is its proof.
CREATE TABLE invoices (
    payment_hash      TEXT PRIMARY KEY
                      CHECK (length(payment_hash) = 64 AND payment_hash NOT GLOB '*[^0-9a-f]*'),
    session_id        TEXT NOT NULL REFERENCES sessions (id),
    amount_asked_msat INTEGER NOT NULL CHECK (amount_asked_msat > 0),
    amount_paid_msat  INTEGER NOT NULL DEFAULT 0 CHECK (amount_paid_msat >= 0),
    state             TEXT NOT NULL DEFAULT 'open'
                      CHECK (state IN ('open', 'settled', 'canceled', 'expired')),
    created           INTEGER NOT NULL,
    expires           INTEGER NOT NULL CHECK (expires > created),
    settled           INTEGER,
    closed            INTEGER,           -- when the wall gave up on it (canceled or expired)
    preimage          TEXT
                      CHECK (preimage IS NULL OR (length(preimage) = 64 AND preimage NOT GLOB '*[^0-9a-f]*')),
    bolt11            TEXT NOT NULL CHECK (bolt11 <> ''),
    -- 1 when the payment was recorded after its session had ended: money
    -- the car sent for energy it did not get.
    after_end         INTEGER NOT NULL DEFAULT 0 CHECK (after_end IN (0, 1)),
    CHECK ((state = 'settled') = (settled IS NOT NULL AND preimage IS NOT NULL AND amount_paid_msat > 0))
) STRICT;

-- Covers the per-session sums (paid, payments, late money) without
-- touching the table.
CREATE INDEX invoices_by_session ON invoices (session_id, state, amount_paid_msat, after_end);
CREATE INDEX invoices_open ON invoices (created) WHERE state = 'open';
CREATE INDEX invoices_by_settled ON invoices (settled) WHERE settled IS NOT NULL;

-- The wall's meter, about once a second while a session runs.
-- delivered_mwh counts from the session's start.
CREATE TABLE meter_samples (
    id            INTEGER PRIMARY KEY,
    session_id    TEXT NOT NULL REFERENCES sessions (id),
    at            INTEGER NOT NULL,
    power_w       INTEGER NOT NULL,
    delivered_mwh INTEGER NOT NULL CHECK (delivered_mwh >= 0)
) STRICT;

CREATE INDEX meter_samples_by_session ON meter_samples (session_id, at);

-- What happened, for people: state changes, faults, reconciliation.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY,
    session_id TEXT REFERENCES sessions (id), -- NULL: about the wall, not a session
    at         INTEGER NOT NULL,
    kind       TEXT NOT NULL CHECK (kind <> ''),
    detail     TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX events_by_at ON events (at);
CREATE INDEX events_by_session ON events (session_id, at) WHERE session_id IS NOT NULL;
