-- Device registries: one row per device (module_id '') or module. Device and
-- module ids are case-sensitive, and SQLite's BINARY collation compares them
-- bytewise, as List's order and keyset paging need. The primary key's index
-- serves lookups, paging and the per-device deletes; hub is the leading
-- column so a hub's registry is one contiguous range.
-- devices_enabled is a covering index for Count over devices alone (a query
-- must repeat its WHERE term for SQLite to use it).
-- Times are Unix microseconds.

CREATE TABLE devices (
    hub        TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    module_id  TEXT NOT NULL,
    enabled    INTEGER NOT NULL,
    identity   TEXT,
    twin       TEXT,
    etag       TEXT NOT NULL,
    twin_etag  TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (hub, device_id, module_id)
);
CREATE INDEX devices_enabled ON devices (hub, enabled) WHERE module_id = '';
