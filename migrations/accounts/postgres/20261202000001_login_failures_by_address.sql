-- Failed logins are counted per (username, client address) and per client address, as DRF's
-- throttle scopes do: someone else's guesses from another address can no longer lock the owner
-- out. Rows from before this migration have no address (''): they count for nobody's pair and
-- age out of the 15-minute window.
ALTER TABLE login_failures ADD COLUMN client_addr TEXT NOT NULL DEFAULT '';

CREATE INDEX login_failures_username_addr ON login_failures (username_key, client_addr, failed_at);
CREATE INDEX login_failures_addr ON login_failures (client_addr, failed_at);
