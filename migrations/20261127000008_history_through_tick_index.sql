-- Run history without an index of its own. runs_history (ingestion_id, queued_at desc) took a new
-- entry at every insert, claim and outcome of every run (each writes a new row version). Instead:
-- * a scheduled run's place in the history is its tick, already indexed by runs_one_per_tick
--   (ingestion_id, scheduled_for);
-- * an active (QUEUED or RUNNING) run is in runs_one_active_per_ingestion, at most one per
--   ingestion;
-- * only finished manual runs, which have no tick, need an index for their trigger time: one
--   entry each, written by the outcome.
create index runs_manual_history on runs (ingestion_id, queued_at desc, id desc)
    where scheduled_for is null and status not in ('QUEUED', 'RUNNING');
drop index runs_history;
