-- Import jobs belong to the process that received them until it stops renewing its lease: a
-- process that starts takes over only jobs nobody holds (a running job is also guarded by its
-- advisory lock), so an upload still arriving at another process, or a job queued behind
-- another, is never taken over. Jobs stored before this migration have no owner: anyone may
-- take them over, as before.
ALTER TABLE imports ADD COLUMN owner uuid, ADD COLUMN lease_until timestamptz;
