-- What segment rules read besides profiles, tags and the log: a purchase's
-- exact net total and time on its order row, its lines for "bought product"
-- and "bought category", and RFM scores (filled by issue 18's scoring).
-- Projections of the log: existing rows get them from `cohort reproject`.

-- 1 when the order counts as a purchase (paid, not since cancelled,
-- failed or deleted).
ALTER TABLE orders ADD COLUMN purchased BIGINT NOT NULL DEFAULT 0;
-- When it was paid (else created), for purchases.
ALTER TABLE orders ADD COLUMN purchased_at_us BIGINT;
-- Total net of refunds in ten-thousandths of the currency unit: exact sums
-- and comparisons on both backends (SQLite has no decimal type).
ALTER TABLE orders ADD COLUMN net_total_e4 BIGINT NOT NULL DEFAULT 0;
CREATE INDEX orders_purchases ON orders(org_id, purchased, profile_id);

-- The lines of purchases.
CREATE TABLE order_lines (
    org_id TEXT NOT NULL,
    order_key TEXT NOT NULL,
    line_no BIGINT NOT NULL,
    profile_id TEXT NOT NULL,
    product_id TEXT,
    sku TEXT,
    category TEXT,
    purchased_at_us BIGINT NOT NULL,
    PRIMARY KEY (org_id, order_key, line_no)
);
CREATE INDEX order_lines_product ON order_lines(org_id, product_id);
CREATE INDEX order_lines_sku ON order_lines(org_id, sku);
CREATE INDEX order_lines_category ON order_lines(org_id, category);
CREATE INDEX order_lines_profile ON order_lines(org_id, profile_id);

-- RFM scores (1-3) and group per profile.
CREATE TABLE profile_rfm (
    org_id TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    recency BIGINT NOT NULL,
    frequency BIGINT NOT NULL,
    monetary BIGINT NOT NULL,
    rfm_group TEXT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    PRIMARY KEY (org_id, profile_id)
);

-- Behaviour rules read an event name in a time window, grouped by profile.
CREATE INDEX events_org_event_time ON events(org_id, event, timestamp_us) WHERE event IS NOT NULL;
