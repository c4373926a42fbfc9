-- The status changes and cancellations staff make to orders through the API (API.md,
-- "History"), one row per change, written in the transaction of the change: `changes` is
-- `{"status": [before, after]}` as JSON. Every service's history table has these columns
-- (shop_guest::history). Timestamps as the other tables keep them.
CREATE TABLE order_history (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    object_id      INTEGER NOT NULL,
    action         TEXT    NOT NULL CHECK (action IN ('status')),
    changes        TEXT    NOT NULL,
    staff_id       INTEGER NOT NULL,
    staff_username TEXT    NOT NULL,
    at             TEXT    NOT NULL
);

CREATE INDEX order_history_object ON order_history (object_id, id);
