-- Saved segments and their live membership (issue 17). Membership is
-- kept by the membership worker: the projector marks the profiles a batch
-- touched (`segment_dirty`), time windows schedule their next crossing per
-- profile (`segment_checks`), and every entry and exit is appended to the
-- ordered feed `segment_changes` in the same transaction as the member row.

CREATE TABLE segments (
    org_id TEXT NOT NULL,
    segment_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    -- The canonical text form (`print(ast)`) and the JSON AST.
    rule TEXT NOT NULL,
    ast TEXT NOT NULL,
    -- Kept with every membership write, so lists need no COUNT(*).
    member_count BIGINT NOT NULL DEFAULT 0,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    PRIMARY KEY (org_id, segment_id)
);
CREATE UNIQUE INDEX segments_name ON segments(org_id, name);

CREATE TABLE segment_members (
    org_id TEXT NOT NULL,
    segment_id TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    entered_at_us BIGINT NOT NULL,
    PRIMARY KEY (org_id, segment_id, profile_id)
);
CREATE INDEX segment_members_profile ON segment_members(org_id, profile_id);

-- The durable, ordered feed of entries and exits: written only under the
-- membership lock, so `seq` order is commit order on both backends.
CREATE TABLE segment_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id TEXT NOT NULL,
    segment_id TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    change TEXT NOT NULL CHECK (change IN ('entered', 'exited')),
    at_us BIGINT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX segment_changes_segment ON segment_changes(org_id, segment_id, at_us);
CREATE INDEX segment_changes_profile ON segment_changes(org_id, profile_id, seq);

-- Profiles a projection batch touched, with what touched them
-- (`track:<event>`, `identify`, `resource`, `any`): re-evaluated against
-- the segments that can depend on it, then deleted.
CREATE TABLE segment_dirty (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    cause TEXT NOT NULL
);

-- The next instant a window can change a profile's membership of a segment
-- without a new event.
CREATE TABLE segment_checks (
    org_id TEXT NOT NULL,
    segment_id TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    due_us BIGINT NOT NULL,
    PRIMARY KEY (org_id, segment_id, profile_id)
);
CREATE INDEX segment_checks_due ON segment_checks(due_us);

-- One row every membership write locks first: definitions, recomputes and
-- the worker's rounds run one at a time, across processes and nodes.
CREATE TABLE segment_membership_lock (
    name TEXT PRIMARY KEY,
    updated_at_us BIGINT NOT NULL
);
INSERT INTO segment_membership_lock (name, updated_at_us) VALUES ('membership', 0);

-- When each organisation's RFM scores (profile_rfm) were last computed.
CREATE TABLE rfm_runs (
    org_id TEXT PRIMARY KEY,
    computed_at_us BIGINT NOT NULL,
    customers BIGINT NOT NULL
);

-- Organisations whose ready-made segments were installed (once, when a
-- store first connects, or by `cohort segment install-defaults`).
CREATE TABLE segment_defaults (
    org_id TEXT PRIMARY KEY,
    installed_at_us BIGINT NOT NULL
);
