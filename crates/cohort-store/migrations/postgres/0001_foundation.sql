-- Organisations, sources, people, tokens and the event log.
-- Times are UTC microseconds since the Unix epoch (BIGINT) on both backends.

CREATE TABLE organisations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE sources (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organisations(id),
    name TEXT NOT NULL,
    write_key TEXT NOT NULL UNIQUE,
    disabled_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX sources_org ON sources(org_id);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE memberships (
    org_id TEXT NOT NULL REFERENCES organisations(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organisations(id),
    name TEXT NOT NULL,
    secret_digest TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX api_tokens_org ON api_tokens(org_id);

CREATE TABLE setup_links (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organisations(id),
    secret_digest TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

-- The identifying columns compare byte by byte (COLLATE "C"): the log only
-- looks them up by equality, and under a language collation every index
-- comparison of an insert went through strcoll.
CREATE TABLE events (
    seq BIGSERIAL NOT NULL,
    org_id TEXT COLLATE "C" NOT NULL,
    source_id TEXT COLLATE "C" NOT NULL,
    message_id TEXT COLLATE "C" NOT NULL,
    type TEXT COLLATE "C" NOT NULL,
    event TEXT COLLATE "C",
    user_id TEXT COLLATE "C",
    anonymous_id TEXT COLLATE "C",
    email TEXT COLLATE "C",
    timestamp_us BIGINT NOT NULL,
    received_at_us BIGINT NOT NULL,
    payload TEXT NOT NULL,
    notes TEXT,
    -- Every read is scoped to an organisation and ordered by seq: this key
    -- is that index. seq comes from its sequence only, so a key on seq alone
    -- would be one more index to maintain per event for no read.
    PRIMARY KEY (org_id, seq)
);
CREATE UNIQUE INDEX events_dedupe ON events(org_id, message_id);
CREATE INDEX events_org_user ON events(org_id, user_id) WHERE user_id IS NOT NULL;
CREATE INDEX events_org_anonymous ON events(org_id, anonymous_id) WHERE anonymous_id IS NOT NULL;
CREATE INDEX events_org_event ON events(org_id, event) WHERE event IS NOT NULL;
