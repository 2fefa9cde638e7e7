-- Statistics reads bounded to about a day of live runs: finished loads older than that are folded
-- into their ingestion's run_stats hour buckets ahead of the retention, by a periodic fold in the
-- workers' retention sweep (autoloader::runs::fold), not on the engine's path.
--
-- Which loads are folded is a function of the row and one watermark per ingestion, so the read
-- and the fold agree on every run without a mark on it:
--
--     folded(r) <=> r.kind = 'load' and t(r) < folded_before(r.ingestion_id) and not late(r)
--     t(r)      =   coalesce(scheduled_for, queued_at)      (the instant a window holds it by)
--     late(r)   <=> queued_at - scheduled_for > 1 day        (a row written over a day after its tick)
--
-- The fold moves folded_before forward, to at most the hour a day and an hour before now and
-- never past the tick of the ingestion's queued or running load, adding exactly the loads that
-- thereby become folded to the buckets and the watermark in one transaction. Every such load is
-- finished (the active one holds the watermark back) and stays as it is: a finished run's status
-- is final (runs_status_transition) and the fields above are refused a change once it finished
-- (runs_history_fixed). A load written later for a tick before the watermark (a catch-up backlog,
-- a MISSED row of a dropped backlog, a psql INSERT) is written over a day after its tick: late,
-- never folded by the fold, read live through runs_late_ticks. The run retention deletes folded
-- runs as they are and folds the others it deletes, as before; a load is in runs unfolded, or in
-- a bucket, never both, never neither.
--
-- The fold and the retention take one advisory transaction lock (run_stats_lock()) before they
-- read the watermarks, so their bucket writes are serial and each sees the other's last commit.

create table run_stats_folds (
    ingestion_id  uuid primary key,
    tenant_id     uuid not null,
    -- The ingestion's loads whose t is before this instant (a UTC hour), and not late, are in
    -- run_stats, not counted live.
    folded_before timestamptz not null,
    folded_at     timestamptz not null default now(),
    foreign key (ingestion_id, tenant_id) references ingestions (id, tenant_id) on delete cascade
);

comment on table run_stats_folds is
    'Per ingestion, the fold watermark: its loads for ticks (or manual triggers) before folded_before, '
    'except those written over a day after their tick, are in run_stats.';

-- The loads written over a day after their tick, which the statistics read live below the fold
-- watermark, are found through the partial index runs_late_ticks, built without blocking the
-- engine's writes by migration 20261130000025.

-- What decides whether and where a finished run is counted is history: refused a change, as its
-- status is (migration 0011). A column-list trigger: an UPDATE that sets none of these columns
-- (every statement of the engine) does not consider it.
create function runs_refuse_history_edit() returns trigger language plpgsql as $$
begin
    raise exception 'run % is finished: its ingestion, kind, tick and trigger time are history', old.id
        using errcode = 'check_violation',
              constraint = 'runs_history_fixed',
              hint = 'The statistics count a finished run by these fields (migration 20261130000023).';
end
$$;

create trigger runs_history_fixed
    after update of ingestion_id, kind, scheduled_for, queued_at on runs
    for each row
    when (old.finished_at is not null
          and (old.ingestion_id, old.kind, old.scheduled_for, old.queued_at)
              is distinct from (new.ingestion_id, new.kind, new.scheduled_for, new.queued_at))
    execute function runs_refuse_history_edit();

comment on trigger runs_history_fixed on runs is
    'Refuses a change of a finished run''s ingestion, kind, tick or trigger time: the statistics count it by them.';

-- The advisory lock key the fold and the run retention share, named as the application's other
-- advisory locks are ('autoloader.' and what they guard).
create function run_stats_lock() returns bigint language sql immutable parallel safe
    return hashtextextended('autoloader.run_stats', 0);
