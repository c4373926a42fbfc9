-- A checkout in progress, at most one per user: a second placement of the same cart waits for
-- the first and then finds the cart emptied, so one cart makes at most one order. The row is
-- written before any stock is reserved and deleted once the order is written and the cart
-- cleared; one older than the checkout expiry belongs to a request that died, and the next
-- checkout or order list settles it (gives its reservation back, or clears the cart of the
-- order it made). `abandoned`: being settled, no order may be written under it any more.
CREATE TABLE checkouts (
    user_id    BIGINT    PRIMARY KEY,
    order_key  TEXT      NOT NULL,
    state      TEXT      NOT NULL CHECK (state IN ('placing', 'abandoned')),
    started_at TIMESTAMP NOT NULL
);

CREATE INDEX checkouts_started_at ON checkouts (started_at);
