-- Profiles, identities, orders, products and tags: projections of the
-- event log, rebuilt from it by `cohort reproject`.

-- Erased events stay in the log without their personal data, so that a
-- retried delivery of the same messageId is still recognised.
ALTER TABLE events ADD COLUMN erased_at_us BIGINT;

-- How far the projection has read the log. Its row is also the lock that
-- serialises projection batches, erasures and resets.
CREATE TABLE projection_cursor (
    name TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL
);
INSERT INTO projection_cursor (name, last_seq, updated_at_us) VALUES ('profiles', 0, 0);

-- A cluster: events linked by shared identities, folded together.
CREATE TABLE identity_clusters (
    org_id TEXT NOT NULL,
    cluster_id TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    PRIMARY KEY (org_id, cluster_id)
);

CREATE TABLE identities (
    org_id TEXT NOT NULL,
    identity TEXT NOT NULL,
    cluster_id TEXT NOT NULL,
    profile_id TEXT,
    PRIMARY KEY (org_id, identity)
);
CREATE INDEX identities_cluster ON identities(org_id, cluster_id);
CREATE INDEX identities_profile ON identities(org_id, profile_id);

CREATE TABLE cluster_events (
    org_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    cluster_id TEXT NOT NULL,
    profile_id TEXT,
    PRIMARY KEY (org_id, seq)
);
CREATE INDEX cluster_events_cluster ON cluster_events(org_id, cluster_id);
CREATE INDEX cluster_events_profile ON cluster_events(org_id, profile_id);

CREATE TABLE profiles (
    org_id TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    cluster_id TEXT NOT NULL,
    user_id TEXT,
    email TEXT,
    first_seen_us BIGINT NOT NULL,
    last_seen_us BIGINT NOT NULL,
    order_count BIGINT NOT NULL,
    last_order_us BIGINT,
    previously_erased BIGINT NOT NULL DEFAULT 0,
    doc TEXT NOT NULL,
    PRIMARY KEY (org_id, profile_id)
);
CREATE INDEX profiles_cluster ON profiles(org_id, cluster_id);
CREATE INDEX profiles_email ON profiles(org_id, email);
CREATE INDEX profiles_user ON profiles(org_id, user_id);

CREATE TABLE profile_tags (
    org_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    PRIMARY KEY (org_id, tag, profile_id)
);
CREATE INDEX profile_tags_profile ON profile_tags(org_id, profile_id);

CREATE TABLE profile_merges (
    org_id TEXT NOT NULL,
    from_profile TEXT NOT NULL,
    into_profile TEXT NOT NULL,
    cluster_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    identities TEXT NOT NULL,
    at_us BIGINT NOT NULL,
    PRIMARY KEY (org_id, from_profile)
);
CREATE INDEX profile_merges_cluster ON profile_merges(org_id, cluster_id);

CREATE TABLE orders (
    org_id TEXT NOT NULL,
    order_key TEXT NOT NULL,
    store TEXT NOT NULL,
    order_id TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    cluster_id TEXT NOT NULL,
    status TEXT NOT NULL,
    currency TEXT NOT NULL,
    total TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (org_id, order_key)
);
CREATE INDEX orders_created ON orders(org_id, created_at_us, order_key);
CREATE INDEX orders_profile ON orders(org_id, profile_id);
CREATE INDEX orders_cluster ON orders(org_id, cluster_id);

CREATE TABLE products (
    org_id TEXT NOT NULL,
    store TEXT NOT NULL,
    product_id TEXT NOT NULL,
    sku TEXT,
    name TEXT NOT NULL,
    price TEXT,
    currency TEXT,
    stock_status TEXT,
    deleted BIGINT NOT NULL,
    -- "<modified µs, 20 digits>|<timestamp µs>|<messageId>": the latest wins.
    version TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (org_id, store, product_id)
);

-- Erasure audit: what was erased and when, without personal data.
CREATE TABLE erasures (
    org_id TEXT NOT NULL,
    erasure_id TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    erased_at_us BIGINT NOT NULL,
    identities_count BIGINT NOT NULL,
    events_count BIGINT NOT NULL,
    PRIMARY KEY (org_id, erasure_id)
);
-- SHA-256 of each erased identity: a later profile with one is flagged.
CREATE TABLE erased_identities (
    org_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    erased_at_us BIGINT NOT NULL,
    PRIMARY KEY (org_id, digest)
);
