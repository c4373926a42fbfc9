-- Stock held for orders, one row per product of an order, keyed by the order's key (the
-- saga's idempotency key): the primary key makes a second reservation under one key fail
-- instead of taking stock twice. `name` and `price_cents` are the product's at reservation
-- time (the order's price snapshot); `line_number` keeps the order of the lines as asked.
-- `released` rows gave their stock back. No foreign key to `products`: a product may be
-- deleted while units of it are held, and the order keeps its snapshot.
CREATE TABLE reservations (
    order_key   TEXT    NOT NULL,
    product_id  INTEGER NOT NULL,
    line_number INTEGER NOT NULL,
    quantity    INTEGER NOT NULL CHECK (quantity >= 1),
    name        TEXT    NOT NULL,
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
    released    INTEGER NOT NULL DEFAULT 0 CHECK (released IN (0, 1)),
    created_at  TEXT    NOT NULL,
    PRIMARY KEY (order_key, product_id)
);
