-- Key columns use COLLATE "C": the default collation of most databases does
-- not order punctuation bytewise, and both ORDER BY/After paging and the
-- subtree range scans in resources.go need bytewise order to match Go's.
-- Times are Unix microseconds, PostgreSQL's own precision.

CREATE TABLE resources (
    id_key             TEXT COLLATE "C" PRIMARY KEY,
    id                 TEXT NOT NULL,
    type               TEXT NOT NULL,
    type_key           TEXT COLLATE "C" NOT NULL,
    subscription       TEXT NOT NULL,
    subscription_key   TEXT COLLATE "C" NOT NULL,
    resource_group     TEXT NOT NULL,
    resource_group_key TEXT COLLATE "C" NOT NULL,
    parent_id          TEXT NOT NULL,
    parent_key         TEXT COLLATE "C" NOT NULL,
    name               TEXT NOT NULL,
    body               TEXT,
    etag               TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX resources_scope ON resources (subscription_key, resource_group_key, id_key);
CREATE INDEX resources_parent ON resources (parent_key, id_key);
CREATE INDEX resources_type ON resources (type_key, id_key);

CREATE TABLE operations (
    id          TEXT COLLATE "C" PRIMARY KEY,
    resource_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    terminal    INTEGER NOT NULL,
    error       TEXT,
    start_time  BIGINT NOT NULL,
    end_time    BIGINT NOT NULL,
    input       TEXT
);
CREATE INDEX operations_unfinished ON operations (start_time, id) WHERE terminal = 0;

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
