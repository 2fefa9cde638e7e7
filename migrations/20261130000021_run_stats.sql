-- Statistics per ingestion (GET /api/v1/ingestions/{id}/stats): every load that reaches a
-- terminal status is counted, in the same transaction, into a minute, an hour and a day bucket
-- of its ingestion. A bucket holds counts by status, sums, maxima, the latest success and
-- failure, and fixed log-scale histograms of duration and lateness from which percentiles are
-- read. The 1h window reads minute buckets (at most 61); 24h reads hour buckets (at most 25);
-- 7d and 30d read hour buckets up to the first midnight of the window and day buckets from
-- there (at most 24 + 31): whole hours, as the hour buckets alone would give, from few rows.
--
-- Why a trigger: a run becomes terminal through the worker's outcome, the rescue of an expired
-- lease, a cancel, the ticker's SKIPPED and MISSED rows or a person at psql; the status change
-- on `runs` is the one place all of them pass. A bucket is counted once, as its runs finish,
-- and is never recomputed from `runs`, so the run retention (SCHEDULER_RUN_RETENTION_DAYS)
-- deleting runs changes no statistic. Each level keeps what its windows need (minutes 2 hours,
-- hours and days 32 days): the trigger deletes an ingestion's older buckets of a level when it
-- opens a new one, so the table stays bounded without a sweep.
--
-- A run counts in the buckets of the instant it finished (`finished_at`), whatever tick it was
-- for. Its duration is finished_at - started_at (SUCCESS and FAILED runs); its lateness is
-- started_at - scheduled_for, at least 0 (SUCCESS and FAILED runs for a tick: manual runs have
-- none). A run that finished before what a level keeps (a row written by hand) is not counted
-- in that level.

create table run_stats (
    ingestion_id    uuid not null,
    tenant_id       uuid not null,
    -- 60: a minute; 3600: an hour; 86400: a day (UTC).
    bucket_seconds  integer not null check (bucket_seconds in (60, 3600, 86400)),
    bucket_start    timestamptz not null,
    succeeded       bigint not null default 0,
    failed          bigint not null default 0,
    cancelled       bigint not null default 0,
    skipped         bigint not null default 0,
    missed          bigint not null default 0,
    -- Of SUCCESS runs.
    files_loaded    bigint not null default 0,
    rows_loaded     bigint not null default 0,
    bytes_loaded    bigint not null default 0,
    duration_count  bigint not null default 0,
    duration_sum_ms double precision not null default 0,
    duration_max_ms double precision,
    -- duration_hist[i + 1] counts the durations in bucket i of run_stats_bounds() (see there).
    duration_hist   integer[] not null,
    lateness_count  bigint not null default 0,
    lateness_sum_ms double precision not null default 0,
    lateness_max_ms double precision,
    lateness_hist   integer[] not null,
    last_success_at  timestamptz,
    last_success_run uuid,
    last_failure_at  timestamptz,
    last_failure_run uuid,
    primary key (ingestion_id, bucket_seconds, bucket_start),
    foreign key (ingestion_id, tenant_id) references ingestions (id, tenant_id) on delete cascade
);

comment on table run_stats is
    'Per ingestion, minute, hour and day buckets of its finished loads, written by the trigger '
    'runs_stats_count on runs; read by GET /api/v1/ingestions/{id}/stats. Run retention does not '
    'touch it.';

-- The lower bounds, in milliseconds, of the histogram buckets 1..119; bucket 0 is [0, 1 ms).
-- 1, 2, 3 ms, then four steps per power of two (2^k times 1, 1.25, 1.5, 1.75) up to 2^30 x 1.75
-- ms (21.7 days), which starts the last bucket. A bucket is at most 25 % (from 4 ms on) or 1 ms
-- wide. The same list is autoloader::runs::stats::BOUNDS_MS.
create function run_stats_bounds() returns double precision[] language sql immutable parallel safe as $$
    select '{1,2,3,4,5,6,7,8,10,12,14,16,20,24,28,32,40,48,56,64,80,96,112,128,160,192,224,256,320,384,448,512,640,768,896,1024,1280,1536,1792,2048,2560,3072,3584,4096,5120,6144,7168,8192,10240,12288,14336,16384,20480,24576,28672,32768,40960,49152,57344,65536,81920,98304,114688,131072,163840,196608,229376,262144,327680,393216,458752,524288,655360,786432,917504,1048576,1310720,1572864,1835008,2097152,2621440,3145728,3670016,4194304,5242880,6291456,7340032,8388608,10485760,12582912,14680064,16777216,20971520,25165824,29360128,33554432,41943040,50331648,58720256,67108864,83886080,100663296,117440512,134217728,167772160,201326592,234881024,268435456,335544320,402653184,469762048,536870912,671088640,805306368,939524096,1073741824,1342177280,1610612736,1879048192}'::double precision[]
$$;

-- The histogram h (or a new one of zeros) with one more observation in bucket k (none when k is null).
create function run_stats_bump(h integer[], k integer) returns integer[]
    language plpgsql immutable parallel safe as $$
begin
    if h is null then
        h := array_fill(0, array[120]);
    end if;
    if k is not null then
        h[k + 1] := h[k + 1] + 1;
    end if;
    return h;
end
$$;

create function runs_stats_count() returns trigger language plpgsql as $$
declare
    duration double precision;
    lateness double precision;
    duration_bucket integer;
    lateness_bucket integer;
    width integer;
    keep interval;
    bucket timestamptz;
    opened boolean;
begin
    if new.status in ('SUCCESS', 'FAILED') and new.started_at is not null then
        duration := greatest(0, extract(epoch from new.finished_at - new.started_at) * 1000);
        duration_bucket := width_bucket(duration, run_stats_bounds());
        if new.scheduled_for is not null then
            lateness := greatest(0, extract(epoch from new.started_at - new.scheduled_for) * 1000);
            lateness_bucket := width_bucket(lateness, run_stats_bounds());
        end if;
    end if;
    foreach width in array array[60, 3600, 86400] loop
        keep := case width when 60 then interval '2 hours' else interval '32 days' end;
        bucket := to_timestamp(floor(extract(epoch from new.finished_at) / width) * width);
        continue when bucket < now() - keep;
        insert into run_stats as s (
            ingestion_id, tenant_id, bucket_seconds, bucket_start,
            succeeded, failed, cancelled, skipped, missed,
            files_loaded, rows_loaded, bytes_loaded,
            duration_count, duration_sum_ms, duration_max_ms, duration_hist,
            lateness_count, lateness_sum_ms, lateness_max_ms, lateness_hist,
            last_success_at, last_success_run, last_failure_at, last_failure_run)
        values (
            new.ingestion_id, new.tenant_id, width, bucket,
            (new.status = 'SUCCESS')::integer, (new.status = 'FAILED')::integer,
            (new.status = 'CANCELLED')::integer, (new.status = 'SKIPPED')::integer,
            (new.status = 'MISSED')::integer,
            case when new.status = 'SUCCESS' then new.files_processed else 0 end,
            case when new.status = 'SUCCESS' then new.rows_ingested else 0 end,
            case when new.status = 'SUCCESS' then new.bytes_read else 0 end,
            (duration is not null)::integer, coalesce(duration, 0), duration,
            run_stats_bump(null, duration_bucket),
            (lateness is not null)::integer, coalesce(lateness, 0), lateness,
            run_stats_bump(null, lateness_bucket),
            case when new.status = 'SUCCESS' then new.finished_at end,
            case when new.status = 'SUCCESS' then new.id end,
            case when new.status = 'FAILED' then new.finished_at end,
            case when new.status = 'FAILED' then new.id end)
        on conflict (ingestion_id, bucket_seconds, bucket_start) do update set
            succeeded = s.succeeded + excluded.succeeded,
            failed = s.failed + excluded.failed,
            cancelled = s.cancelled + excluded.cancelled,
            skipped = s.skipped + excluded.skipped,
            missed = s.missed + excluded.missed,
            files_loaded = s.files_loaded + excluded.files_loaded,
            rows_loaded = s.rows_loaded + excluded.rows_loaded,
            bytes_loaded = s.bytes_loaded + excluded.bytes_loaded,
            duration_count = s.duration_count + excluded.duration_count,
            duration_sum_ms = s.duration_sum_ms + excluded.duration_sum_ms,
            duration_max_ms = greatest(s.duration_max_ms, excluded.duration_max_ms),
            duration_hist = run_stats_bump(s.duration_hist, duration_bucket),
            lateness_count = s.lateness_count + excluded.lateness_count,
            lateness_sum_ms = s.lateness_sum_ms + excluded.lateness_sum_ms,
            lateness_max_ms = greatest(s.lateness_max_ms, excluded.lateness_max_ms),
            lateness_hist = run_stats_bump(s.lateness_hist, lateness_bucket),
            last_success_at = case when excluded.last_success_at >= s.last_success_at
                                        or s.last_success_at is null
                                   then excluded.last_success_at else s.last_success_at end,
            last_success_run = case when excluded.last_success_at >= s.last_success_at
                                         or s.last_success_at is null
                                    then excluded.last_success_run else s.last_success_run end,
            last_failure_at = case when excluded.last_failure_at >= s.last_failure_at
                                        or s.last_failure_at is null
                                   then excluded.last_failure_at else s.last_failure_at end,
            last_failure_run = case when excluded.last_failure_at >= s.last_failure_at
                                         or s.last_failure_at is null
                                    then excluded.last_failure_run else s.last_failure_run end
        returning s.xmax = 0 into opened;
        -- A new bucket (inserted, not updated): the level's buckets past what it keeps go.
        if opened then
            delete from run_stats
            where ingestion_id = new.ingestion_id and bucket_seconds = width
              and bucket_start < now() - keep;
        end if;
    end loop;
    return null;
end
$$;

-- Loads only (maintenance runs are not an ingestion's runs). SKIPPED and MISSED rows are born
-- terminal (an INSERT); every other terminal status is an UPDATE of status. The WHEN clauses
-- keep every other write of runs (claims, heartbeats, the fence) from queueing a call.
create trigger runs_stats_on_insert
    after insert on runs
    for each row when (new.finished_at is not null and new.kind = 'load')
    execute function runs_stats_count();

create trigger runs_stats_on_finish
    after update of status on runs
    for each row when (old.status is distinct from new.status and new.finished_at is not null
                       and new.kind = 'load')
    execute function runs_stats_count();

comment on trigger runs_stats_on_finish on runs is
    'Counts a load that became terminal into run_stats (migration 0021).';
