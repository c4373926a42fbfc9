-- The changes staff make to products through the API (API.md, "History"), one row per change,
-- written in the transaction of the change. `changes` is a JSON object of the fields touched,
-- each `[before, after]` in the API's own form. No foreign key to `products`: the history of a
-- deleted product stays. Every service's history table has these columns
-- (shop_guest::history). Timestamps as the other tables keep them.
CREATE TABLE product_history (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    object_id      INTEGER NOT NULL,
    action         TEXT    NOT NULL CHECK (action IN ('create', 'update', 'delete')),
    changes        TEXT    NOT NULL,
    staff_id       INTEGER NOT NULL,
    staff_username TEXT    NOT NULL,
    at             TEXT    NOT NULL
);

CREATE INDEX product_history_object ON product_history (object_id, id);
