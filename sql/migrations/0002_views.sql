-- 0002_views: readable history, for people at the sqlite3 shell and for the
-- history commands. For example:
--   sqlite3 wall.db 'SELECT * FROM daily_totals'
--   sqlite3 -box wall.db 'SELECT * FROM session_summary ORDER BY started_ms DESC LIMIT 20'
--
-- Readable columns come first: times as local time text, energy in Wh and
-- money in sat as exact decimal text (mWh and msat shown with three
-- decimals, never through floating point). The raw integers follow, for
-- sums and for programs. A session counts on the local day (and month) it
-- started, and its payments count with it, including any that arrived
-- after it ended. "Local" is the time zone of the process reading the view.

CREATE VIEW session_summary AS
SELECT
    id,
    strftime('%Y-%m-%d %H:%M:%S', started_ms / 1000, 'unixepoch', 'localtime') AS started,
    strftime('%Y-%m-%d %H:%M:%S', ended_ms / 1000, 'unixepoch', 'localtime') AS ended,
    state,
    end_reason,
    price_msat_per_wh,
    printf('%d.%03d', delivered_mwh / 1000, delivered_mwh % 1000) AS energy_wh,
    printf('%d.%03d', paid_msat / 1000, paid_msat % 1000) AS sats,
    payments,
    delivered_mwh,
    paid_msat,
    after_end_msat,
    started_ms,
    ended_ms
FROM (
    -- The invoices_by_session index answers each of these without reading
    -- the invoices table; a filter on started_ms uses sessions_by_started.
    SELECT
        s.id,
        s.started AS started_ms,
        s.ended AS ended_ms,
        s.state,
        s.end_reason,
        s.price_msat_per_wh,
        s.delivered_mwh,
        (SELECT coalesce(sum(i.amount_paid_msat), 0) FROM invoices AS i
          WHERE i.session_id = s.id AND i.state = 'settled') AS paid_msat,
        (SELECT count(*) FROM invoices AS i
          WHERE i.session_id = s.id AND i.state = 'settled') AS payments,
        (SELECT coalesce(sum(i.amount_paid_msat), 0) FROM invoices AS i
          WHERE i.session_id = s.id AND i.state = 'settled' AND i.after_end = 1) AS after_end_msat
    FROM sessions AS s
);

CREATE VIEW daily_totals AS
SELECT
    day,
    sessions,
    printf('%d.%03d', delivered_mwh / 1000, delivered_mwh % 1000) AS energy_wh,
    printf('%d.%03d', paid_msat / 1000, paid_msat % 1000) AS sats,
    payments,
    delivered_mwh,
    paid_msat
FROM (
    SELECT
        date(started_ms / 1000, 'unixepoch', 'localtime') AS day,
        count(*) AS sessions,
        sum(delivered_mwh) AS delivered_mwh,
        sum(paid_msat) AS paid_msat,
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
    printf('%d.%03d', paid_msat / 1000, paid_msat % 1000) AS sats,
    payments,
    delivered_mwh,
    paid_msat
FROM (
    SELECT
        strftime('%Y-%m', started_ms / 1000, 'unixepoch', 'localtime') AS month,
        count(*) AS sessions,
        sum(delivered_mwh) AS delivered_mwh,
        sum(paid_msat) AS paid_msat,
        sum(payments) AS payments
    FROM session_summary
    GROUP BY month
)
ORDER BY month;
