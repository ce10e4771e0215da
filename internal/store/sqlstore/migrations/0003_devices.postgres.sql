-- Device registries: one row per device (module_id '') or module. Device and
-- module ids are case-sensitive and listed in bytewise order with keyset
-- paging, hence COLLATE "C" on the key columns. The primary key's index
-- serves lookups, paging and the per-device deletes; hub is the leading
-- column so a hub's registry is one contiguous range.
-- devices_enabled lets Count over devices alone run as an index-only scan;
-- queries repeat its WHERE term so generic plans can prove they may use it.
-- Times are Unix microseconds.

CREATE TABLE devices (
    hub        TEXT COLLATE "C" NOT NULL,
    device_id  TEXT COLLATE "C" NOT NULL,
    module_id  TEXT COLLATE "C" NOT NULL,
    enabled    INTEGER NOT NULL,
    identity   TEXT,
    twin       TEXT,
    etag       TEXT NOT NULL,
    twin_etag  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT devices_key PRIMARY KEY (hub, device_id, module_id)
);
CREATE INDEX devices_enabled ON devices (hub, enabled) WHERE module_id = '';
