-- 0004_connectors: a wall may have more than one connector (socket or
-- cable), each with its own EVSE and its own sessions. A restart resumes
-- or ends each connector's open sessions from that connector's EVSE, so
-- the session records which one it ran on. Sessions from before this
-- migration ran on the only connector there was, number 1.
--   sqlite3 wall.db 'SELECT connector, count(*) FROM sessions GROUP BY connector'

ALTER TABLE sessions ADD COLUMN connector INTEGER NOT NULL DEFAULT 1 CHECK (connector >= 1);
