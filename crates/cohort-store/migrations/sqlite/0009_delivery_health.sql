-- Destination health (overview, destinations list, destination page) counts
-- each destination's deliveries by status and reads the newest per status;
-- the delivery log filtered by status reads one status newest first. Both
-- were walks over every delivery of the destination; with these indexes they
-- read only the rows of the status they ask about: newest by time for
-- health, newest by seq for the log.
CREATE INDEX deliveries_status_time ON deliveries(org_id, destination_id, status, updated_at_us);
CREATE INDEX deliveries_status_log ON deliveries(org_id, destination_id, status, seq);
