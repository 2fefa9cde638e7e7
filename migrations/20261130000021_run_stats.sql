-- Statistics per ingestion (GET /api/v1/ingestions/{id}/stats) without a write on the engine's
-- path: no trigger and no index on `runs`. The statistics of a window are read at query time
-- from the runs still in the table, through the indexes the run history already has, plus the
-- runs the retention deleted, folded into this table.
--
-- A run belongs to the hour of its tick (`scheduled_for`), or of `queued_at` for a manual run:
-- the same instant the read side windows on. The run-retention sweep (runs_prune) deletes runs
-- and adds them to their ingestion's hour bucket in one statement, so a run is either in `runs`
-- or in a bucket, never both, never neither. Nothing else writes this table.
--
-- A bucket holds counts by status, sums, maxima, the latest success and failure, and fixed
-- log-scale histograms of duration and lateness from which percentiles are read (the read side
-- puts the live runs in the same histogram buckets, so the two combine). Duration is
-- finished_at - started_at of SUCCESS and FAILED loads; lateness is started_at - scheduled_for,
-- at least 0, of those for a tick (manual runs have none).

create table run_stats (
    ingestion_id    uuid not null,
    tenant_id       uuid not null,
    -- The start of the UTC hour of the folded runs' tick (or manual trigger) times.
    hour_start      timestamptz not null,
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
    primary key (ingestion_id, hour_start),
    foreign key (ingestion_id, tenant_id) references ingestions (id, tenant_id) on delete cascade
);

comment on table run_stats is
    'Per ingestion and hour of tick (or manual trigger), the finished loads the run retention '
    'deleted, folded in the statement that deleted them; read with the live runs by '
    'GET /api/v1/ingestions/{id}/stats.';

-- The lower bounds, in milliseconds, of the histogram buckets 1..119; bucket 0 is [0, 1 ms).
-- 1, 2, 3 ms, then four steps per power of two (2^k times 1, 1.25, 1.5, 1.75) up to 2^30 x 1.75
-- ms (21.7 days), which starts the last bucket. A bucket is at most 25 % (from 4 ms on) or 1 ms
-- wide. The same list is autoloader::runs::stats::BOUNDS_MS. width_bucket(v, run_stats_bounds())
-- is the bucket of v.
create function run_stats_bounds() returns double precision[] language sql immutable parallel safe as $$
    select '{1,2,3,4,5,6,7,8,10,12,14,16,20,24,28,32,40,48,56,64,80,96,112,128,160,192,224,256,320,384,448,512,640,768,896,1024,1280,1536,1792,2048,2560,3072,3584,4096,5120,6144,7168,8192,10240,12288,14336,16384,20480,24576,28672,32768,40960,49152,57344,65536,81920,98304,114688,131072,163840,196608,229376,262144,327680,393216,458752,524288,655360,786432,917504,1048576,1310720,1572864,1835008,2097152,2621440,3145728,3670016,4194304,5242880,6291456,7340032,8388608,10485760,12582912,14680064,16777216,20971520,25165824,29360128,33554432,41943040,50331648,58720256,67108864,83886080,100663296,117440512,134217728,167772160,201326592,234881024,268435456,335544320,402653184,469762048,536870912,671088640,805306368,939524096,1073741824,1342177280,1610612736,1879048192}'::double precision[]
$$;

-- The histogram h (or a new one of zeros) with one more observation in bucket k (none when k is
-- null): the step of the aggregate run_stats_hist.
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

-- run_stats_hist(width_bucket(v, run_stats_bounds())): the 120-bucket histogram of a group.
create aggregate run_stats_hist(integer) (sfunc = run_stats_bump, stype = integer[]);

-- Two histograms added bucket by bucket.
create function run_stats_hist_add(a integer[], b integer[]) returns integer[]
    language sql immutable parallel safe as $$
    select array_agg(coalesce(x, 0) + coalesce(y, 0) order by i)
    from unnest(a, b) with ordinality as t(x, y, i)
$$;
