-- Long-running operations are run by one node at a time: owner is the node
-- holding the operation's lease and lease_until (Unix microseconds) when it
-- lapses unless renewed. An unfinished operation whose lease lapsed (its
-- node died) is taken over by another node.
ALTER TABLE operations ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE operations ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;
