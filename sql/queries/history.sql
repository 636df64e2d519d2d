-- History: the history commands and the web page read these. Ranges are
-- half open, [since, until) in unix ms on the session's start; for "no
-- bound" pass the smallest and largest integers, so that the index on
-- sessions.started serves every range. In the shell:
--   .param set :since 0
--   .param set :until 9223372036854775807
--   .param set :limit 20

-- name: history
-- Newest first; :limit -1 means all.
SELECT id, started_ms, ended_ms, state, end_reason, price_msat_per_wh,
       delivered_mwh, paid_msat, payments, after_end_msat
FROM session_summary
WHERE started_ms >= :since AND started_ms < :until
ORDER BY started_ms DESC, id DESC
LIMIT :limit;

-- name: history_totals
SELECT count(*), coalesce(sum(delivered_mwh), 0), coalesce(sum(paid_msat), 0),
       coalesce(sum(payments), 0)
FROM session_summary
WHERE started_ms >= :since AND started_ms < :until;

-- name: daily_totals
-- Local days from :first to :last inclusive, as 'YYYY-MM-DD'.
SELECT day, sessions, delivered_mwh, paid_msat, payments
FROM daily_totals
WHERE day >= :first AND day <= :last
ORDER BY day;

-- name: monthly_totals
-- Local months from :first to :last inclusive, as 'YYYY-MM'.
SELECT month, sessions, delivered_mwh, paid_msat, payments
FROM monthly_totals
WHERE month >= :first AND month <= :last
ORDER BY month;

-- name: history_rollup_totals
-- Whole UTC days [:first, :last), from the rollup the triggers keep.
SELECT coalesce(sum(sessions), 0), coalesce(sum(delivered_mwh), 0), coalesce(sum(paid_msat), 0),
       coalesce(sum(payments), 0)
FROM history_rollup
WHERE day >= :first AND day < :last;
