-- What came back about sent mail: bounce and complaint reports received by
-- the inbound SMTP listener or a provider's webhook, each recorded once
-- (a webhook delivered twice, the same DSN received again), with what it
-- did; the soft bounces of each address in a row; and the webhook
-- endpoints each organisation gave its providers.

-- The id the provider's relay gave the message in its 250 answer: what a
-- webhook that names only its own id (SES, SendGrid, Postmark) goes by.
ALTER TABLE mail_messages ADD COLUMN provider_message_id TEXT;
CREATE INDEX mail_messages_message_id ON mail_messages(message_id);
CREATE INDEX mail_messages_provider_message_id ON mail_messages(provider_message_id)
    WHERE provider_message_id IS NOT NULL;

CREATE TABLE mail_reports (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    -- Identifies the report for deduplication (source, message or
    -- recipient, kind, status, time).
    report_key TEXT NOT NULL,
    -- The outbox message it is about, when it could be told.
    mail_id TEXT,
    recipient TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT,
    diagnostic TEXT,
    -- "inbound", "ses", "sendgrid", "postmark", "mailgun".
    source TEXT NOT NULL,
    reported_at_us BIGINT NOT NULL,
    received_at_us BIGINT NOT NULL,
    -- The suppression reason this report added, if it added one.
    suppressed TEXT,
    -- Soft bounces of the recipient in a row, this one included.
    soft_in_a_row BIGINT,
    -- 1 while the event log has not yet been told.
    log_pending BIGINT NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX mail_reports_key ON mail_reports(org_id, report_key);
CREATE INDEX mail_reports_mail ON mail_reports(mail_id) WHERE mail_id IS NOT NULL;
CREATE INDEX mail_reports_org ON mail_reports(org_id, received_at_us, id);
CREATE INDEX mail_reports_log_pending ON mail_reports(log_pending) WHERE log_pending = 1;

-- Reset by a delivery report; at `[mail] soft_bounce_limit` the address is
-- suppressed.
CREATE TABLE mail_soft_bounces (
    org_id TEXT NOT NULL,
    email TEXT NOT NULL,
    in_a_row BIGINT NOT NULL,
    last_at_us BIGINT NOT NULL,
    PRIMARY KEY (org_id, email)
);

CREATE TABLE mail_webhooks (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    -- "ses", "sendgrid", "postmark", "mailgun".
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    -- SHA-256 of the secret in the webhook's URL (shown once).
    token_hash TEXT NOT NULL,
    -- Mailgun's webhook signing key, sealed with the secrets key.
    signing_key_sealed TEXT,
    -- An SNS subscription waiting to be confirmed: the URL to open.
    subscribe_url TEXT,
    reports_received BIGINT NOT NULL DEFAULT 0,
    last_received_at_us BIGINT,
    created_at_us BIGINT NOT NULL
);
CREATE UNIQUE INDEX mail_webhooks_name ON mail_webhooks(org_id, name);
