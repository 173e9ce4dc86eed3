-- Destinations: where an organisation's events are forwarded (signed
-- webhooks, Everflow postbacks), and the delivery log. Times are UTC
-- microseconds (BIGINT).

-- One destination. filters: JSON {"events":[names],"types":[types]}, an
-- empty list matching everything. settings: JSON without secrets. secrets:
-- JSON encrypted with ChaCha20-Poly1305 under the server's destinations key
-- (base64 of nonce || ciphertext). cursor_seq: the last event seq this
-- destination has enqueued; each destination reads the log from its own.
CREATE TABLE destinations (
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organisations(id),
    id TEXT COLLATE "C" NOT NULL,
    -- webhook, everflow
    kind TEXT COLLATE "C" NOT NULL,
    name TEXT NOT NULL,
    -- 1 enabled, 0 paused
    enabled BIGINT NOT NULL,
    filters TEXT NOT NULL,
    settings TEXT NOT NULL,
    secrets TEXT NOT NULL,
    cursor_seq BIGINT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX destinations_id ON destinations(id);

-- One event to deliver to one destination. The primary key is what makes
-- "at most one delivery per (destination, messageId)".
CREATE TABLE deliveries (
    org_id TEXT COLLATE "C" NOT NULL,
    destination_id TEXT COLLATE "C" NOT NULL,
    message_id TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL,
    event TEXT COLLATE "C",
    -- pending, retrying, delivered, failed, skipped
    status TEXT COLLATE "C" NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at_us BIGINT,
    -- The last request, secrets masked.
    request TEXT,
    response_status BIGINT,
    response_excerpt TEXT,
    reason TEXT,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    PRIMARY KEY (org_id, destination_id, message_id)
);
-- The dispatcher's queue: due deliveries.
CREATE INDEX deliveries_due ON deliveries(next_attempt_at_us) WHERE status IN ('pending', 'retrying');
-- The delivery log of one destination, newest first.
CREATE INDEX deliveries_log ON deliveries(org_id, destination_id, seq);
