-- 0003_history_rollup: totals per UTC day of the sessions' start, kept by
-- triggers in the same transactions that change sessions and invoices, so
-- that the history's totals over a long range read one row per day
-- instead of every session and its invoices (at a million sessions, 1.6 s
-- became milliseconds). The history commands add the part of a range
-- that does not cover whole UTC days from the sessions themselves.
--   sqlite3 wall.db 'SELECT date(day * 86400, ''unixepoch'') AS utc_day, * FROM history_rollup ORDER BY day DESC LIMIT 7'

CREATE TABLE history_rollup (
    day           INTEGER PRIMARY KEY,  -- whole days since 1970-01-01 UTC: started / 86400000
    sessions      INTEGER NOT NULL DEFAULT 0,
    delivered_mwh INTEGER NOT NULL DEFAULT 0,
    paid_msat     INTEGER NOT NULL DEFAULT 0,  -- settled invoices, late ones included
    payments      INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TRIGGER history_rollup_session AFTER INSERT ON sessions
BEGIN
    INSERT INTO history_rollup (day, sessions, delivered_mwh)
    VALUES (NEW.started / 86400000, 1, NEW.delivered_mwh)
    ON CONFLICT (day) DO UPDATE SET sessions = sessions + 1,
                                    delivered_mwh = delivered_mwh + excluded.delivered_mwh;
END;

CREATE TRIGGER history_rollup_energy AFTER UPDATE OF delivered_mwh ON sessions
WHEN NEW.delivered_mwh <> OLD.delivered_mwh
BEGIN
    UPDATE history_rollup SET delivered_mwh = delivered_mwh + NEW.delivered_mwh - OLD.delivered_mwh
    WHERE day = NEW.started / 86400000;
END;

CREATE TRIGGER history_rollup_settled AFTER UPDATE OF state ON invoices
WHEN NEW.state = 'settled' AND OLD.state <> 'settled'
BEGIN
    UPDATE history_rollup SET paid_msat = paid_msat + NEW.amount_paid_msat, payments = payments + 1
    WHERE day = (SELECT started FROM sessions WHERE id = NEW.session_id) / 86400000;
END;

CREATE TRIGGER history_rollup_settled_insert AFTER INSERT ON invoices
WHEN NEW.state = 'settled'
BEGIN
    UPDATE history_rollup SET paid_msat = paid_msat + NEW.amount_paid_msat, payments = payments + 1
    WHERE day = (SELECT started FROM sessions WHERE id = NEW.session_id) / 86400000;
END;

-- What a wall recorded before this migration.
INSERT INTO history_rollup (day, sessions, delivered_mwh, paid_msat, payments)
SELECT s.started / 86400000, count(*), sum(s.delivered_mwh),
       coalesce(sum(p.paid_msat), 0), coalesce(sum(p.payments), 0)
FROM sessions AS s
LEFT JOIN (SELECT session_id, sum(amount_paid_msat) AS paid_msat, count(*) AS payments
           FROM invoices WHERE state = 'settled' GROUP BY session_id) AS p ON p.session_id = s.id
GROUP BY s.started / 86400000;
