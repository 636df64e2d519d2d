-- Events.

-- name: event_insert
INSERT INTO events (session_id, at, kind, detail)
VALUES (:session_id, :at, :kind, :detail);
