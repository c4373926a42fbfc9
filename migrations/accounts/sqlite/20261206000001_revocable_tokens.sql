-- Timestamps are RFC 3339 UTC text, fixed width, as in the first migration.
-- Tokens that can be taken back (API.md, "Accounts"). Each user has a token version, carried
-- in every token as `ver` and bumped when the password changes, the user is deactivated or
-- loses staff: a token of an older version is refused. Refresh tokens are kept by `jti`, each
-- in the family of the login it descends from: a refresh spends the token sent and issues the
-- next of the family; a spent one sent again revokes the whole family; logout revokes all of
-- a user's.
-- No CHECK on the added column (unlike `is_staff`): SQLite verifies a CHECK added by ALTER TABLE
-- with `pragma_quick_check`, which the host's authorizer refuses; the component writes 0 or 1.
ALTER TABLE users ADD COLUMN is_active INTEGER NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0;

CREATE TABLE refresh_tokens (
    jti        TEXT      PRIMARY KEY,
    user_id    INTEGER   NOT NULL REFERENCES users (id),
    family     TEXT      NOT NULL,
    issued_at  TEXT      NOT NULL,
    expires_at TEXT      NOT NULL,
    -- When it was traded for the next one; a second trade is a reuse.
    spent_at   TEXT,
    revoked    INTEGER   NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
);

CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

-- The changes staff make to users through the API, written in the transaction of the change.
-- `changes` is a JSON object: {"field": [before, after], ...}.
CREATE TABLE user_history (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    object_id      INTEGER   NOT NULL,
    action         TEXT      NOT NULL,
    changes        TEXT      NOT NULL,
    staff_id       INTEGER   NOT NULL,
    staff_username TEXT      NOT NULL,
    at             TEXT      NOT NULL
);

CREATE INDEX user_history_object ON user_history (object_id, id);

-- One row per throttling scope (a client address), locked by the upsert that starts each
-- login's check: concurrent logins from one address take turns, with a row lock in accounts'
-- own table (no advisory lock, which any role of the server could take too).
CREATE TABLE login_throttle (
    scope      TEXT      PRIMARY KEY,
    touched_at TEXT      NOT NULL
);

CREATE INDEX login_throttle_touched_at ON login_throttle (touched_at);
