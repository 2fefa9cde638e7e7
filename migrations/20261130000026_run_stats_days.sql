-- Day buckets beside the hour buckets, so a long statistics window reads a few dozen folded rows
-- instead of one per hour: a 30-day window of an ingestion that loads every hour or more often
-- read about 720 hour buckets (two 120-bucket histograms each), now at most 23 + 30 + 24.
--
-- run_stats_days holds, per ingestion and UTC day, the sum of that day's run_stats hour rows:
-- always, because it is not written by anyone but the statement triggers below, which recompute
-- the days an INSERT, UPDATE or DELETE of run_stats touched from run_stats itself, in the same
-- statement. Whoever writes hour buckets (the fold, the run retention, a psql session), the days
-- agree with the hours. The read (autoloader::runs::stats) takes whole UTC days inside the window
-- from here and the hours at its two ends from run_stats.

create table run_stats_days (like run_stats including defaults);
alter table run_stats_days rename column hour_start to day_start;
alter table run_stats_days
    add primary key (ingestion_id, day_start),
    add foreign key (ingestion_id, tenant_id) references ingestions (id, tenant_id) on delete cascade;

comment on table run_stats_days is
    'Per ingestion and UTC day, the sum of its run_stats hour buckets, kept by triggers on '
    'run_stats; read for the whole days of a statistics window.';
comment on column run_stats_days.day_start is 'The start of the UTC day whose hour buckets this row sums.';

-- Histograms summed bucket by bucket over a group.
create aggregate run_stats_hist_sum(integer[]) (sfunc = run_stats_hist_add, stype = integer[]);

-- Recomputes the days of the hour buckets in the transition table `changed`: their sum where the
-- day still has hour rows, nothing where it has none left.
create function run_stats_days_refresh() returns trigger language plpgsql as $$
begin
    with touched as (
        select distinct c.ingestion_id, date_trunc('day', c.hour_start, 'UTC') as day_start
        from changed c
    ), gone as (
        delete from run_stats_days d
        using touched t
        where d.ingestion_id = t.ingestion_id and d.day_start = t.day_start
          and not exists (select 1 from run_stats s
                          where s.ingestion_id = t.ingestion_id
                            and s.hour_start >= t.day_start
                            and s.hour_start < t.day_start + interval '1 day')
    )
    insert into run_stats_days as d (
        ingestion_id, tenant_id, day_start,
        succeeded, failed, cancelled, skipped, missed,
        files_loaded, rows_loaded, bytes_loaded,
        duration_count, duration_sum_ms, duration_max_ms, duration_hist,
        lateness_count, lateness_sum_ms, lateness_max_ms, lateness_hist,
        last_success_at, last_success_run, last_failure_at, last_failure_run)
    select s.ingestion_id, min(s.tenant_id::text)::uuid, t.day_start,
           sum(s.succeeded), sum(s.failed), sum(s.cancelled), sum(s.skipped), sum(s.missed),
           sum(s.files_loaded), sum(s.rows_loaded), sum(s.bytes_loaded),
           sum(s.duration_count), sum(s.duration_sum_ms), max(s.duration_max_ms),
           run_stats_hist_sum(s.duration_hist order by s.hour_start),
           sum(s.lateness_count), sum(s.lateness_sum_ms), max(s.lateness_max_ms),
           run_stats_hist_sum(s.lateness_hist order by s.hour_start),
           max(s.last_success_at),
           (array_agg(s.last_success_run order by s.last_success_at desc nulls last, s.last_success_run desc)
                filter (where s.last_success_at is not null))[1],
           max(s.last_failure_at),
           (array_agg(s.last_failure_run order by s.last_failure_at desc nulls last, s.last_failure_run desc)
                filter (where s.last_failure_at is not null))[1]
    from touched t
    join run_stats s on s.ingestion_id = t.ingestion_id
                    and s.hour_start >= t.day_start
                    and s.hour_start < t.day_start + interval '1 day'
    group by s.ingestion_id, t.day_start
    on conflict (ingestion_id, day_start) do update set
        succeeded = excluded.succeeded, failed = excluded.failed,
        cancelled = excluded.cancelled, skipped = excluded.skipped, missed = excluded.missed,
        files_loaded = excluded.files_loaded, rows_loaded = excluded.rows_loaded,
        bytes_loaded = excluded.bytes_loaded,
        duration_count = excluded.duration_count, duration_sum_ms = excluded.duration_sum_ms,
        duration_max_ms = excluded.duration_max_ms, duration_hist = excluded.duration_hist,
        lateness_count = excluded.lateness_count, lateness_sum_ms = excluded.lateness_sum_ms,
        lateness_max_ms = excluded.lateness_max_ms, lateness_hist = excluded.lateness_hist,
        last_success_at = excluded.last_success_at, last_success_run = excluded.last_success_run,
        last_failure_at = excluded.last_failure_at, last_failure_run = excluded.last_failure_run;
    return null;
end
$$;

create trigger run_stats_days_on_insert after insert on run_stats
    referencing new table as changed for each statement execute function run_stats_days_refresh();
create trigger run_stats_days_on_update after update on run_stats
    referencing new table as changed for each statement execute function run_stats_days_refresh();
create trigger run_stats_days_on_delete after delete on run_stats
    referencing old table as changed for each statement execute function run_stats_days_refresh();

-- The days of the buckets folded before this migration: a no-op update of one hour row per day
-- hands each day to the trigger, which sums it.
update run_stats set succeeded = succeeded
where (ingestion_id, hour_start) in (
    select ingestion_id, min(hour_start) from run_stats
    group by ingestion_id, date_trunc('day', hour_start, 'UTC'));
