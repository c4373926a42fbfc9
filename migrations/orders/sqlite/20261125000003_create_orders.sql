-- Orders and their lines. Products live in another service's database, so an order keeps the
-- product's id and a snapshot of its name and unit price (no foreign key crosses services).
-- Money is stored as integer minor units (cents); timestamps as RFC 3339 UTC text with
-- microseconds, fixed width, so that text order is time order.
CREATE TABLE orders (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id          INTEGER NOT NULL,
    status           TEXT    NOT NULL
        CHECK (status IN ('pending', 'processing', 'shipped', 'delivered', 'cancelled')),
    total_cents      INTEGER NOT NULL CHECK (total_cents >= 0),
    shipping_address TEXT    NOT NULL,
    -- The key the order's stock reservation is held under in the products service:
    -- `u<user_id>:<Idempotency-Key>`, or a random key when the client sent none.
    order_key        TEXT    NOT NULL,
    -- The client's Idempotency-Key header, if any: a retry answers the order it made.
    idempotency_key  TEXT    NULL,
    -- Whether a cancelled order's stock went back; false while a release is still owed.
    stock_released   INTEGER NOT NULL DEFAULT 0 CHECK (stock_released IN (0, 1)),
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL,
    CONSTRAINT orders_order_key_unique UNIQUE (order_key),
    CONSTRAINT orders_user_idempotency_key_unique UNIQUE (user_id, idempotency_key)
);

CREATE INDEX orders_user_newest ON orders (user_id, created_at, id);
CREATE INDEX orders_status_newest ON orders (status, created_at, id);
CREATE INDEX orders_newest ON orders (created_at, id);

CREATE TABLE order_items (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id     INTEGER NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id   INTEGER NOT NULL,
    product_name TEXT    NOT NULL,
    quantity     INTEGER NOT NULL CHECK (quantity >= 1),
    -- The unit price when the order was placed.
    price_cents  INTEGER NOT NULL CHECK (price_cents >= 0)
);

CREATE INDEX order_items_order ON order_items (order_id, id);
