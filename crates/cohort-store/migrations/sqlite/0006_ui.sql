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

-- Events per organisation, source and hour of arrival, for the overview's
-- chart and per-source counts (counting the log on every view would read
-- every event of the last week). Folded from the log when the overview is
-- shown, up to event_counts_cursor.last_seq (dashboard.rs); no index is
-- added to the hot events table for it. Erasure keeps events, so counts stay.
CREATE TABLE event_counts_hourly (
    org_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    hour_us BIGINT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (org_id, source_id, hour_us)
);
CREATE TABLE event_counts_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq BIGINT NOT NULL
);
INSERT INTO event_counts_cursor (id, last_seq) VALUES (1, 0);
