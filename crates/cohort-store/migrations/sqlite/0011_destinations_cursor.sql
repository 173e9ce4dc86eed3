-- Every destination's enqueue now reads the log through one shared cursor
-- (projection_cursor row 'destinations') instead of one cursor per
-- destination; destinations.cursor_seq stays as the event a destination was
-- created at (it gets the later ones). The shared cursor starts where the
-- least advanced destination stood, so no event is skipped; events that one
-- destination had already passed are filtered out by its cursor_seq, and a
-- delivery already created is not created twice (its unique key).
INSERT INTO projection_cursor (name, last_seq, updated_at_us)
SELECT 'destinations',
       COALESCE((SELECT MIN(cursor_seq) FROM destinations), (SELECT MAX(seq) FROM events), 0),
       0;
