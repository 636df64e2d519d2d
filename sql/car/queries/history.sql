-- History: vehiclegw history reads these. Ranges are half open,
-- [since, until) in unix ms on the session's start; for "no bound" pass
-- the smallest and largest integers, so that the index on sessions.started
-- serves every range. In the shell:
--   .param set :since 0
--   .param set :until 9223372036854775807
--   .param set :limit 20

-- name: history
-- Newest first; :limit -1 means all.
SELECT id, started_ms, ended_ms, end_reason, wall_url, payee, price_msat_per_wh,
       soc_start_permille, soc_end_permille, delivered_mwh, measured_mwh,
       paid_msat, fee_msat, payments, failed, pending, refusals
FROM session_summary
WHERE started_ms >= :since AND started_ms < :until
ORDER BY started_ms DESC, id DESC
LIMIT :limit;

-- name: history_totals
SELECT count(*), coalesce(sum(delivered_mwh), 0), coalesce(sum(measured_mwh), 0),
       coalesce(sum(paid_msat), 0), coalesce(sum(fee_msat), 0), coalesce(sum(payments), 0)
FROM session_summary
WHERE started_ms >= :since AND started_ms < :until;
