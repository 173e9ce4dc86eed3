-- Mail: the SMTP providers of each organisation with their shared rate
-- buckets, its sending domains with their DKIM keys, and the durable
-- outbox: every message is a row before any SMTP attempt, with each
-- attempt and the answer it got.

CREATE TABLE mail_providers (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    host TEXT NOT NULL,
    port BIGINT NOT NULL,
    tls TEXT NOT NULL,
    username TEXT,
    -- Sealed with the secrets key, bound to (org, id); NULL without one.
    password_sealed TEXT,
    max_connections BIGINT NOT NULL,
    rate_per_second BIGINT,
    rate_per_hour BIGINT,
    is_default BIGINT NOT NULL DEFAULT 0,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL
);
CREATE UNIQUE INDEX mail_providers_name ON mail_providers(org_id, name);
CREATE UNIQUE INDEX mail_providers_one_default ON mail_providers(org_id) WHERE is_default = 1;

-- A provider's token buckets as GCRA instants, shared by every node; a
-- throttling answer pauses the provider and slows it.
CREATE TABLE mail_provider_buckets (
    provider_key TEXT PRIMARY KEY,
    second_tat_us BIGINT NOT NULL DEFAULT 0,
    hour_tat_us BIGINT NOT NULL DEFAULT 0,
    slowdown BIGINT NOT NULL DEFAULT 1,
    paused_until_us BIGINT NOT NULL DEFAULT 0,
    accepted_in_row BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE mail_domains (
    org_id TEXT NOT NULL,
    domain TEXT NOT NULL,
    dkim_selector TEXT NOT NULL,
    -- The RSA private key (PKCS#8 PEM), sealed with the secrets key.
    dkim_key_sealed TEXT NOT NULL,
    dkim_record TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    PRIMARY KEY (org_id, domain)
);

CREATE TABLE mail_messages (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT NOT NULL,
    -- What the message is for ("campaign:cmp_1", "flow:…", "test:…"): with
    -- the recipient, the idempotency key of an enqueue.
    send_key TEXT NOT NULL,
    recipient TEXT NOT NULL,
    purpose TEXT NOT NULL,
    message_id TEXT NOT NULL,
    from_address TEXT NOT NULL,
    subject TEXT NOT NULL,
    html TEXT NOT NULL,
    text_body TEXT NOT NULL,
    unsubscribe_https TEXT,
    unsubscribe_mailto TEXT,
    profile_id TEXT,
    user_id TEXT,
    campaign_id TEXT,
    flow_id TEXT,
    provider_id TEXT,
    state TEXT NOT NULL,
    -- Attempts spent (a throttled one is not).
    attempts BIGINT NOT NULL DEFAULT 0,
    -- Attempt rows so far, throttled and interrupted ones included.
    tries BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    next_attempt_at_us BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until_us BIGINT,
    last_error TEXT,
    -- 1 while the log has not yet been told what became of the message.
    log_pending BIGINT NOT NULL DEFAULT 0,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    sent_at_us BIGINT
);
CREATE UNIQUE INDEX mail_messages_send_key ON mail_messages(org_id, send_key, recipient);
CREATE INDEX mail_messages_due ON mail_messages(state, next_attempt_at_us);
CREATE INDEX mail_messages_org ON mail_messages(org_id, created_at_us, id);
CREATE INDEX mail_messages_recipient ON mail_messages(org_id, recipient);
CREATE INDEX mail_messages_campaign ON mail_messages(org_id, campaign_id) WHERE campaign_id IS NOT NULL;
CREATE INDEX mail_messages_flow ON mail_messages(org_id, flow_id) WHERE flow_id IS NOT NULL;
CREATE INDEX mail_messages_log_pending ON mail_messages(log_pending) WHERE log_pending = 1;

CREATE TABLE mail_attempts (
    message_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    org_id TEXT NOT NULL,
    -- The provider id, "outbox-folder" or "smtp-config".
    provider TEXT NOT NULL,
    started_at_us BIGINT NOT NULL,
    finished_at_us BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    answer TEXT,
    PRIMARY KEY (message_id, attempt)
);
