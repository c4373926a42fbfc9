-- One cart per user (made on first use) and its lines. No money is stored here: names and
-- prices are the catalogue's current ones, read at every answer. `user_id` is the accounts
-- service's id (no foreign key crosses services). The unique keys make concurrent first uses
-- and concurrent adds of one product meet in one row. Timestamps are RFC 3339 UTC text with
-- microseconds, fixed width, so that text order is time order.
CREATE TABLE carts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL,
    CONSTRAINT carts_user_id_unique UNIQUE (user_id)
);

CREATE TABLE cart_items (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    cart_id    INTEGER NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    product_id INTEGER NOT NULL,
    quantity   INTEGER NOT NULL CHECK (quantity >= 1),
    created_at TEXT    NOT NULL,
    CONSTRAINT cart_items_cart_product_unique UNIQUE (cart_id, product_id)
);
