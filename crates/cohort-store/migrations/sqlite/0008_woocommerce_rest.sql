-- No-plugin mode (connect.md §6): a WooCommerce store connected through
-- WooCommerce's own REST API keys and webhooks. The installation itself is a
-- row of connect_installations with mode 'rest' (so Stores lists both
-- modes); this table holds what only REST connections have.
ALTER TABLE connect_installations ADD COLUMN mode TEXT NOT NULL DEFAULT 'plugin';

CREATE TABLE woocommerce_rest_connections (
    -- the installation id handed out when the connection is started
    installation_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organisations(id),
    store_url TEXT NOT NULL,
    -- the Cohort base URL the callback and webhook delivery URLs use
    cohort_url TEXT NOT NULL,
    -- SHA-256 of the one-time state sent as WooCommerce's user_id
    state_digest TEXT NOT NULL UNIQUE,
    state_expires_at BIGINT NOT NULL,
    state_used_at BIGINT,
    requested_by TEXT,
    created_at BIGINT NOT NULL,
    -- from the callback; the keys and the webhook secret are encrypted
    -- (ChaCha20-Poly1305 under the destinations key, bound to the row)
    key_id TEXT,
    key_permissions TEXT,
    consumer_key TEXT,
    consumer_secret TEXT,
    webhook_secret TEXT,
    connected_at BIGINT,
    -- JSON object topic -> WooCommerce webhook id
    webhook_ids TEXT,
    webhooks_registered_at BIGINT,
    -- the worker that holds this connection, until lease_until
    lease_owner TEXT,
    lease_until BIGINT,
    next_reconcile_at BIGINT,
    -- high-water marks: the latest date_modified_gmt seen (microseconds)
    hwm_products BIGINT,
    hwm_customers BIGINT,
    hwm_orders BIGINT,
    last_pull_at BIGINT,
    last_error TEXT
);
CREATE INDEX woocommerce_rest_connections_org ON woocommerce_rest_connections(org_id, created_at);
