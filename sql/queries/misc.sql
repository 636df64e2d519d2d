-- Settings and events.

-- name: setting_get
SELECT value FROM settings WHERE key = :key;

-- name: setting_set
INSERT INTO settings (key, value, updated) VALUES (:key, :value, :at)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated = excluded.updated;

-- name: event_insert
INSERT INTO events (session_id, at, kind, detail)
VALUES (:session_id, :at, :kind, :detail);
