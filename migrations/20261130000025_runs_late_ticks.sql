-- no-transaction
-- Built CONCURRENTLY, alone in its file and outside a transaction, so the engine's inserts and
-- updates of `runs` go on while it is built (docs/DEPLOYMENT.md, "Upgrades while workers run").
-- If a build is interrupted, PostgreSQL leaves an INVALID index of this name: drop it and run the
-- migrations again.

-- The loads written over a day after their tick: what the statistics read live below the fold
-- watermark. The predicate is false for every run the ticker or a claim writes on time, so the
-- engine's inserts and updates evaluate it and add nothing (BENCHMARKS.md, "Run statistics").
create index concurrently if not exists runs_late_ticks on runs (ingestion_id, scheduled_for)
    where queued_at - scheduled_for > interval '1 day';
