-- The admin UI. Times are UTC microseconds (BIGINT).

-- Failed sign-ins, kept in the database so that the limit holds across
-- nodes. key_digest is the SHA-256 of "email|<address>" or "ip|<address>":
-- no email or address is stored in clear. Rows older than the window are
-- deleted as new ones are written.
CREATE TABLE signin_failures (
    key_digest TEXT NOT NULL,
    at_us BIGINT NOT NULL
);
CREATE INDEX signin_failures_key ON signin_failures(key_digest, at_us);

-- The overview's events-per-hour chart and per-source counts read events
-- by arrival time.
CREATE INDEX events_org_received ON events(org_id, received_at_us);
