-- Destination health (overview, destinations list, destination page) counts
-- each destination's deliveries by status and reads the newest per status;
-- the delivery log filtered by status reads one status newest first. Both
-- were walks over every delivery of the destination; with these indexes they
-- read only the rows of the status they ask about: newest by time for
-- health, newest by seq for the log.
CREATE INDEX deliveries_status_time ON deliveries(org_id, destination_id, status, updated_at_us);
CREATE INDEX deliveries_status_log ON deliveries(org_id, destination_id, status, seq);

-- The newest event of a name (a destination's field-mapping preview, the
-- test conversion) is read newest first. On SQLite the (org_id, event) index
-- already ends in the rowid, which is seq; here it must say so, or the
-- newest of a common event meant sorting all of them.
DROP INDEX events_org_event;
CREATE INDEX events_org_event ON events(org_id, event, seq) WHERE event IS NOT NULL;
