-- The addresses an organisation must not mail, one row per address and
-- reason (a hard bounce and an unsubscribe are different facts: the first
-- stops transactional mail too). Addresses are stored lower-cased.
CREATE TABLE suppressions (
    org_id TEXT NOT NULL,
    email TEXT NOT NULL,
    reason TEXT NOT NULL,
    -- What happened: the SMTP answer, the merchant's note, the import's name.
    detail TEXT,
    -- Where it came from: a message id, "api", "cli", "ui", "import".
    source TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    PRIMARY KEY (org_id, email, reason)
);
CREATE INDEX suppressions_recent ON suppressions(org_id, created_at_us);

-- Every addition and removal, kept after a removal: who was suppressed,
-- why, and who lifted it with what reason.
CREATE TABLE suppression_log (
    org_id TEXT NOT NULL,
    email TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT,
    source TEXT NOT NULL,
    at_us BIGINT NOT NULL
);
CREATE INDEX suppression_log_email ON suppression_log(org_id, email, at_us);
