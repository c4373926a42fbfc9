-- Money is stored as integer minor units (cents); timestamps as RFC 3339 UTC text with
-- microseconds, fixed width, so that text order is time order.
CREATE TABLE products (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
    stock       INTEGER NOT NULL CHECK (stock >= 0),
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL
);

CREATE INDEX products_price ON products (price_cents);
CREATE INDEX products_created_at ON products (created_at);
