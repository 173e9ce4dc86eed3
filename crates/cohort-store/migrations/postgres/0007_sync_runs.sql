-- Sync runs (connect.md §2): a store sending its products, customers and
-- orders in numbered batches. A batch is counted once, by (run, resource,
-- seq), so a batch sent again after a crash or a lost answer changes
-- nothing; a run started again for the same command resumes.
CREATE TABLE connect_sync_runs (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organisations(id),
    installation_id TEXT COLLATE "C" NOT NULL,
    command_id TEXT,
    -- JSON array of products, customers, guests, orders
    resources TEXT NOT NULL,
    -- running, completed
    status TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT,
    -- the counts the plugin reported on completion (JSON)
    reported_counts TEXT
);
CREATE INDEX connect_sync_runs_installation ON connect_sync_runs(org_id, installation_id, started_at);

CREATE TABLE connect_sync_batches (
    run_id TEXT COLLATE "C" NOT NULL,
    resource TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL,
    received BIGINT NOT NULL,
    accepted BIGINT NOT NULL,
    rejected BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, resource, seq)
);
