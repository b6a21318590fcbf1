-- Statistics: registrations counted exactly (deltas appended in the write transaction, folded in
-- the background), resolutions counted in process and flushed every few seconds.

-- One row per write transaction and (prefix, day): appended, never updated, so concurrent writers
-- never queue behind a shared counter row. Folded into stats_registrations and deleted.
CREATE TABLE stats_registration_deltas (
  id       bigserial PRIMARY KEY,
  prefix   text COLLATE "C" NOT NULL,
  day      date NOT NULL,
  creates  integer NOT NULL DEFAULT 0,
  updates  integer NOT NULL DEFAULT 0,
  deletes  integer NOT NULL DEFAULT 0
);

-- Rollups per prefix and for the whole node (prefix '*', which no real prefix can be), at grains
-- 'd' (bucket = the day), 'm', 'q', 'y' (bucket = first day of the month, quarter, year) and 't'
-- (all time, bucket 1970-01-01). Days are calendar days in STATS_TIME_ZONE.
CREATE TABLE stats_registrations (
  grain    char(1) NOT NULL CHECK (grain IN ('d', 'm', 'q', 'y', 't')),
  prefix   text COLLATE "C" NOT NULL,
  bucket   date NOT NULL,
  creates  bigint NOT NULL DEFAULT 0,
  updates  bigint NOT NULL DEFAULT 0,
  deletes  bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (grain, prefix, bucket)
);

CREATE TABLE stats_resolutions (
  grain      char(1) NOT NULL CHECK (grain IN ('d', 'm', 'q', 'y', 't')),
  prefix     text COLLATE "C" NOT NULL,
  bucket     date NOT NULL,
  found      bigint NOT NULL DEFAULT 0,
  not_found  bigint NOT NULL DEFAULT 0,
  cached     bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (grain, prefix, bucket)
);

-- Node-wide reads of a period across every prefix (reports, top lists) scan by bucket.
CREATE INDEX stats_registrations_by_bucket ON stats_registrations (grain, bucket);
CREATE INDEX stats_resolutions_by_bucket ON stats_resolutions (grain, bucket);
CREATE INDEX stats_registration_deltas_by_day ON stats_registration_deltas (day);

-- Identifiers stored before statistics existed count as created on their creation day (Asia/Shanghai,
-- the default STATS_TIME_ZONE), so "identifiers stored" equals the table from the start.
INSERT INTO stats_registration_deltas (prefix, day, creates)
SELECT prefix, (created_at AT TIME ZONE 'Asia/Shanghai')::date, count(*)
FROM identifiers GROUP BY 1, 2;
