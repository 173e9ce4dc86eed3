-- The one durable job queue (cohort-jobs). A job is a row from enqueue until
-- it succeeds (then it is deleted) or runs out of attempts (then it stays as
-- `dead` until an operator retries or deletes it). `running` rows carry a
-- lease: a worker that dies leaves its job to be claimed again once
-- `lease_until_us` has passed.
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    dedupe_key TEXT,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'dead')),
    priority INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at_us BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until_us BIGINT,
    last_error TEXT,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL
);
-- Claims: the due jobs of a queue, most urgent first.
CREATE INDEX jobs_due ON jobs (queue, status, priority, run_at_us);
-- A job with a dedupe key is queued at most once: asking again while one
-- waits adds nothing (a running one may still be followed by a new one).
CREATE UNIQUE INDEX jobs_dedupe ON jobs (kind, dedupe_key) WHERE dedupe_key IS NOT NULL AND status = 'queued';
