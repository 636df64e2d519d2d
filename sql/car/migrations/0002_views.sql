-- 0002_views: readable history of what the car paid, for people at the
-- sqlite3 shell and for vehiclegw history. For example:
--   sqlite3 car.db 'SELECT * FROM daily_totals'
--   sqlite3 -box car.db 'SELECT * FROM session_summary ORDER BY started_ms DESC LIMIT 20'
--
-- As in the wall's views: readable columns first (local time text; energy
-- in Wh and money in sat as exact decimal text, never through floating
-- point), then the raw integers, for sums and for programs. A session
-- counts on the local day (and month) it started, with all its payments.
-- energy_wh is what the wall reported delivering, measured_wh what the car
-- measured; sats is what reached the wall and fee_sats the routing fees on
-- top. "Local" is the time zone of the process reading the view.

CREATE VIEW session_summary AS
SELECT
    id,
    strftime('%Y-%m-%d %H:%M:%S', started_ms / 1000, 'unixepoch', 'localtime') AS started,
    strftime('%Y-%m-%d %H:%M:%S', ended_ms / 1000, 'unixepoch', 'localtime') AS ended,
    end_reason,
    wall_url,
    price_msat_per_wh,
    printf('%d.%03d', delivered_mwh / 1000, delivered_mwh % 1000) AS energy_wh,
    printf('%d.%03d', measured_mwh / 1000, measured_mwh % 1000) AS measured_wh,
    printf('%d.%03d', paid_msat / 1000, paid_msat % 1000) AS sats,
    printf('%d.%03d', fee_msat / 1000, fee_msat % 1000) AS fee_sats,
    payments,
    soc_start_permille,
    soc_end_permille,
    delivered_mwh,
    measured_mwh,
    paid_msat,
    fee_msat,
    failed,
    pending,
    refusals,
    payee,
    started_ms,
    ended_ms
FROM (
    -- The invoices_by_session and refusals_by_session indexes answer each
    -- of these without reading the tables; a filter on started_ms uses
    -- sessions_by_started.
    SELECT
        s.id,
        s.started AS started_ms,
        s.ended AS ended_ms,
        s.end_reason,
        s.wall_url,
        s.payee,
        s.price_msat_per_wh,
        s.delivered_mwh,
        s.measured_mwh,
        s.soc_start_permille,
        s.soc_end_permille,
        (SELECT coalesce(sum(i.paid_msat), 0) FROM invoices AS i
          WHERE i.session_id = s.id AND i.status = 'succeeded') AS paid_msat,
        (SELECT coalesce(sum(i.fee_msat), 0) FROM invoices AS i
          WHERE i.session_id = s.id AND i.status = 'succeeded') AS fee_msat,
        (SELECT count(*) FROM invoices AS i
          WHERE i.session_id = s.id AND i.status = 'succeeded') AS payments,
        (SELECT count(*) FROM invoices AS i
          WHERE i.session_id = s.id AND i.status = 'failed') AS failed,
        -- Outcome not known: possibly paid.
        (SELECT count(*) FROM invoices AS i
          WHERE i.session_id = s.id AND i.status IN ('requested', 'in_flight')) AS pending,
        (SELECT count(*) FROM refusals AS r WHERE r.session_id = s.id) AS refusals
    FROM sessions AS s
);

CREATE VIEW daily_totals AS
SELECT
    day,
    sessions,
    printf('%d.%03d', delivered_mwh / 1000, delivered_mwh % 1000) AS energy_wh,
    printf('%d.%03d', measured_mwh / 1000, measured_mwh % 1000) AS measured_wh,
    printf('%d.%03d', paid_msat / 1000, paid_msat % 1000) AS sats,
    printf('%d.%03d', fee_msat / 1000, fee_msat % 1000) AS fee_sats,
    payments,
    delivered_mwh,
    measured_mwh,
    paid_msat,
    fee_msat
FROM (
    SELECT
        date(started_ms / 1000, 'unixepoch', 'localtime') AS day,
        count(*) AS sessions,
        sum(delivered_mwh) AS delivered_mwh,
        sum(measured_mwh) AS measured_mwh,
        sum(paid_msat) AS paid_msat,
        sum(fee_msat) AS fee_msat,
        sum(payments) AS payments
    FROM session_summary
    GROUP BY day
)
ORDER BY day;

CREATE VIEW monthly_totals AS
SELECT
    month,
    sessions,
    printf('%d.%03d', delivered_mwh / 1000, delivered_mwh % 1000) AS energy_wh,
    printf('%d.%03d', measured_mwh / 1000, measured_mwh % 1000) AS measured_wh,
    printf('%d.%03d', paid_msat / 1000, paid_msat % 1000) AS sats,
    printf('%d.%03d', fee_msat / 1000, fee_msat % 1000) AS fee_sats,
    payments,
    delivered_mwh,
    measured_mwh,
    paid_msat,
    fee_msat
FROM (
    SELECT
        strftime('%Y-%m', started_ms / 1000, 'unixepoch', 'localtime') AS month,
        count(*) AS sessions,
        sum(delivered_mwh) AS delivered_mwh,
        sum(measured_mwh) AS measured_mwh,
        sum(paid_msat) AS paid_msat,
        sum(fee_msat) AS fee_msat,
        sum(payments) AS payments
    FROM session_summary
    GROUP BY month
)
ORDER BY month;
