-- Principals of the tenant. name_key and resource_key hold store.Key of
-- name and resource_id, computed in Go like the resources table's keys, so
-- "case-insensitive" means the same ASCII folding in both databases (an
-- index on lower() would fold non-ASCII letters here but not in SQLite).
-- object_id is ordered and paged through, so it is bytewise (COLLATE "C");
-- the other keys are compared for equality only, where "C" is the cheapest.
-- An empty app_id means "none" (users), hence the partial unique index;
-- queries repeat the index's WHERE term so that generic plans of prepared
-- statements can prove they may use it.

CREATE TABLE principals (
    object_id    TEXT COLLATE "C" PRIMARY KEY,
    app_id       TEXT COLLATE "C" NOT NULL,
    kind         TEXT COLLATE "C" NOT NULL,
    name         TEXT NOT NULL,
    name_key     TEXT COLLATE "C" NOT NULL,
    resource_id  TEXT NOT NULL,
    resource_key TEXT COLLATE "C" NOT NULL,
    credentials  TEXT,
    etag         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX principals_app_id ON principals (app_id) WHERE app_id <> '';
CREATE UNIQUE INDEX principals_user_name ON principals (name_key) WHERE kind = 'User';
CREATE INDEX principals_resource ON principals (resource_key, object_id);
CREATE INDEX principals_kind ON principals (kind, object_id);
