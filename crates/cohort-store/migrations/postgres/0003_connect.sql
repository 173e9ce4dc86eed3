-- Connect: pairing a store plugin with Cohort, the installations that
-- result, the commands Cohort queues for them, and browser sessions.
-- Times are UTC microseconds (BIGINT). Secrets that Cohort only verifies
-- (poll secrets, installation tokens, session secrets) are stored as
-- SHA-256 digests; the signing secret is stored as is, because Cohort must
-- sign its own requests to the store with it (encryption at rest: later).

-- A pairing request made by a plugin, before and after the merchant decides.
-- It belongs to no organisation until approved: org_id is the one column
-- here that may be NULL (the merchant picks the organisation on approval).
CREATE TABLE connect_pairings (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" REFERENCES organisations(id),
    poll_secret_digest TEXT COLLATE "C" NOT NULL,
    user_code TEXT COLLATE "C" NOT NULL,
    store_url TEXT COLLATE "C" NOT NULL,
    site_name TEXT NOT NULL,
    platform TEXT COLLATE "C" NOT NULL,
    plugin_version TEXT NOT NULL,
    wp_version TEXT NOT NULL,
    wc_version TEXT,
    php_version TEXT NOT NULL,
    currency TEXT,
    timezone TEXT NOT NULL,
    return_url TEXT NOT NULL,
    -- pending, approved, denied, claimed
    status TEXT COLLATE "C" NOT NULL,
    installation_id TEXT COLLATE "C",
    decided_by TEXT COLLATE "C",
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    decided_at BIGINT,
    claimed_at BIGINT
);

CREATE TABLE connect_installations (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organisations(id),
    pairing_id TEXT COLLATE "C" NOT NULL,
    source_id TEXT COLLATE "C" NOT NULL,
    store_url TEXT COLLATE "C" NOT NULL,
    site_name TEXT NOT NULL,
    platform TEXT COLLATE "C" NOT NULL,
    plugin_version TEXT NOT NULL,
    wp_version TEXT NOT NULL,
    wc_version TEXT,
    php_version TEXT NOT NULL,
    currency TEXT,
    timezone TEXT NOT NULL,
    -- awaiting_plugin (approved, token not yet claimed), connected,
    -- disconnected (by the plugin), replaced (by a reconnect)
    status TEXT COLLATE "C" NOT NULL,
    token_id TEXT COLLATE "C" UNIQUE,
    token_digest TEXT COLLATE "C",
    signing_secret TEXT,
    approved_by TEXT COLLATE "C",
    replaced_by TEXT COLLATE "C",
    created_at BIGINT NOT NULL,
    connected_at BIGINT,
    disconnected_at BIGINT,
    last_heartbeat_at BIGINT,
    reported_store_url TEXT,
    outbox_depth BIGINT,
    failures_24h BIGINT,
    last_error TEXT
);
CREATE INDEX connect_installations_store ON connect_installations(org_id, store_url);

CREATE TABLE connect_commands (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organisations(id),
    installation_id TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    params TEXT NOT NULL,
    -- pending, done, failed, cancelled
    status TEXT COLLATE "C" NOT NULL,
    requested_at BIGINT NOT NULL,
    delivered_at BIGINT,
    acked_at BIGINT,
    started_at BIGINT,
    finished_at BIGINT,
    counts TEXT,
    error TEXT
);
CREATE INDEX connect_commands_installation ON connect_commands(org_id, installation_id, requested_at);

-- Signed-in browsers. A user may belong to several organisations, so a
-- session is the user's, not an organisation's (like the users table).
CREATE TABLE web_sessions (
    id TEXT COLLATE "C" PRIMARY KEY,
    user_id TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    secret_digest TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions(user_id);

-- At most one row: the first admin created from the authorize page of a
-- fresh server. Its primary key makes two simultaneous attempts produce
-- one account.
CREATE TABLE first_admin_claim (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    user_id TEXT COLLATE "C" NOT NULL,
    claimed_at BIGINT NOT NULL
);
