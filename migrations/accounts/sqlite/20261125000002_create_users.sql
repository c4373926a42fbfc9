-- Users and failed logins. Usernames and emails are unique case-insensitively through their
-- lower-cased `*_key` columns (computed by the component, the same on both engines); the
-- unique constraints, not a read before the write, decide between concurrent registrations.
-- Timestamps are RFC 3339 UTC text with microseconds, fixed width, so that text order is
-- time order.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL,
    username_key  TEXT    NOT NULL,
    email         TEXT    NOT NULL,
    email_key     TEXT    NOT NULL,
    -- Argon2id, as a PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
    password_hash TEXT    NOT NULL,
    first_name    TEXT    NOT NULL DEFAULT '',
    last_name     TEXT    NOT NULL DEFAULT '',
    phone_number  TEXT    NOT NULL DEFAULT '',
    address       TEXT    NOT NULL DEFAULT '',
    is_staff      INTEGER NOT NULL DEFAULT 0 CHECK (is_staff IN (0, 1)),
    date_joined   TEXT    NOT NULL,
    CONSTRAINT users_username_key_unique UNIQUE (username_key),
    CONSTRAINT users_email_key_unique UNIQUE (email_key)
);

-- One row per failed login (and per login in progress), by lower-cased username; rows older
-- than the throttling window are pruned as new ones are written.
CREATE TABLE login_failures (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    username_key TEXT    NOT NULL,
    failed_at    TEXT    NOT NULL
);

CREATE INDEX login_failures_username_key ON login_failures (username_key, failed_at);
CREATE INDEX login_failures_failed_at ON login_failures (failed_at);
