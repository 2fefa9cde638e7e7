-- Autoloader's schema. Every invariant the scheduler promises is a constraint here, so that no code
-- path (and no person at a psql prompt) can break it:
--   * one run per (ingestion, scheduled tick):         runs_one_per_tick
--   * at most one QUEUED-or-RUNNING run per ingestion:  runs_one_active_per_ingestion
--   * a RUNNING run always has a worker and a lease:    runs_running_has_lease
-- Statuses are upper-case text so `select * from runs` reads without a decoder ring.

create table tenants (
    id          uuid primary key,
    name        text not null unique check (length(name) between 1 and 200),
    created_at  timestamptz not null default now()
);

comment on table tenants is 'Who owns ingestions. Every API token belongs to exactly one tenant.';

create table api_tokens (
    id            uuid primary key,
    tenant_id     uuid not null references tenants (id) on delete cascade,
    -- SHA-256 of the bearer token; the token itself is shown once and never stored.
    token_sha256  bytea not null unique check (length(token_sha256) = 32),
    label         text,
    created_at    timestamptz not null default now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz
);

create index api_tokens_tenant on api_tokens (tenant_id);

create table ingestions (
    id                  uuid primary key,
    tenant_id           uuid not null references tenants (id) on delete cascade,
    name                text not null check (length(name) between 1 and 200),
    description         text,
    status              text not null default 'ACTIVE' check (status in ('ACTIVE', 'PAUSED')),
    source_type         text not null check (source_type in ('s3', 'local')),
    source_path         text not null,
    format_type         text not null check (format_type in ('json', 'csv', 'parquet')),
    destination_table   text not null,
    options             jsonb not null default '{}' check (jsonb_typeof(options) = 'object'),
    schedule_frequency  text check (schedule_frequency in ('hourly', 'daily', 'weekly', 'custom')),
    schedule_time       text check (schedule_time ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'),
    schedule_timezone   text not null default 'UTC',
    schedule_cron       text,
    schedule_enabled    boolean not null default false,
    -- The instant the next scheduled run is due (UTC); null when the schedule is off.
    next_run_time       timestamptz,
    -- The nominal tick of the most recent run the scheduler created.
    last_scheduled_run  timestamptz,
    created_at          timestamptz not null default now(),
    updated_at          timestamptz not null default now(),
    constraint ingestions_name_unique_per_tenant unique (tenant_id, name),
    constraint ingestions_enabled_needs_frequency
        check (not schedule_enabled or schedule_frequency is not null),
    constraint ingestions_custom_needs_cron
        check (schedule_frequency is distinct from 'custom' or schedule_cron is not null),
    constraint ingestions_daily_weekly_need_time
        check (schedule_frequency not in ('daily', 'weekly') or schedule_time is not null)
);

-- (id, tenant_id) is unique because id is; the pair lets child tables prove they carry the
-- ingestion's own tenant, so a tenant filter on runs can never disagree with the ingestion.
alter table ingestions add constraint ingestions_id_tenant unique (id, tenant_id);

-- One row per enabled, active schedule: the next instant it fires. Tickers lock due rows with
-- FOR UPDATE SKIP LOCKED, create the runs and advance next_fire_at in the same transaction.
create table schedule_ticks (
    ingestion_id   uuid primary key,
    tenant_id      uuid not null,
    next_fire_at   timestamptz not null,
    -- The previous nominal tick: the start of the next run's data interval.
    last_fire_at   timestamptz,
    updated_at     timestamptz not null default now(),
    foreign key (ingestion_id, tenant_id) references ingestions (id, tenant_id) on delete cascade
);

create index schedule_ticks_due on schedule_ticks (next_fire_at);

comment on table schedule_ticks is
    'The next fire instant (UTC) of each enabled schedule; present exactly while a schedule is on.';

create table runs (
    id                   uuid primary key,
    ingestion_id         uuid not null,
    tenant_id            uuid not null,
    triggered_by         text not null
        check (triggered_by in ('scheduler', 'manual', 'retry', 'backfill')),
    -- The nominal tick this run is for; null for manual runs.
    scheduled_for        timestamptz,
    -- Start of the data interval: the previous tick of the schedule, when there was one.
    data_interval_start  timestamptz,
    status               text not null default 'QUEUED'
        check (status in ('QUEUED', 'RUNNING', 'SUCCESS', 'FAILED', 'SKIPPED', 'MISSED', 'CANCELLED')),
    -- Incremented by every claim: attempt 1 is the first execution.
    attempt              integer not null default 0 check (attempt >= 0),
    worker_id            text,
    lease_expires_at     timestamptz,
    heartbeat_at         timestamptz,
    queued_at            timestamptz not null default now(),
    started_at           timestamptz,
    finished_at          timestamptz,
    error                text,
    -- Why a run was SKIPPED or MISSED, or why it was requeued.
    reason               text,
    files_processed      bigint not null default 0 check (files_processed >= 0),
    rows_ingested        bigint not null default 0 check (rows_ingested >= 0),
    bytes_read           bigint not null default 0 check (bytes_read >= 0),
    foreign key (ingestion_id, tenant_id) references ingestions (id, tenant_id) on delete cascade,
    constraint runs_one_per_tick unique (ingestion_id, scheduled_for),
    constraint runs_scheduler_has_tick
        check (triggered_by not in ('scheduler', 'backfill') or scheduled_for is not null),
    constraint runs_running_has_lease
        check (status <> 'RUNNING'
               or (worker_id is not null and lease_expires_at is not null and started_at is not null)),
    constraint runs_finished_iff_terminal
        check ((finished_at is not null) = (status in ('SUCCESS', 'FAILED', 'SKIPPED', 'MISSED', 'CANCELLED'))),
    constraint runs_skip_or_miss_has_reason
        check (status not in ('SKIPPED', 'MISSED') or reason is not null)
);

-- No overlap: Postgres itself refuses a second QUEUED or RUNNING run of one ingestion.
create unique index runs_one_active_per_ingestion on runs (ingestion_id)
    where status in ('QUEUED', 'RUNNING');

-- Claiming takes the oldest queued runs first.
create index runs_queued on runs (coalesce(scheduled_for, queued_at), queued_at)
    where status = 'QUEUED';
-- Recovery scans leases of running runs.
create index runs_running_lease on runs (lease_expires_at) where status = 'RUNNING';
-- Run history of one ingestion, newest first.
create index runs_history on runs (ingestion_id, queued_at desc);
create index runs_tenant on runs (tenant_id, queued_at desc);

comment on table runs is
    'Every run of every ingestion: scheduled ticks, manual triggers, retries. One row per tick.';

-- For people at a psql prompt: runs with names, lateness and duration.
create view run_overview as
select r.id                                              as run_id,
       i.name                                            as ingestion,
       t.name                                            as tenant,
       r.status,
       r.triggered_by,
       r.scheduled_for,
       r.queued_at,
       r.started_at,
       r.finished_at,
       r.started_at - coalesce(r.scheduled_for, r.queued_at) as lateness,
       coalesce(r.finished_at, case when r.status = 'RUNNING' then now() end) - r.started_at
                                                          as duration,
       r.attempt,
       r.worker_id,
       case when r.status = 'RUNNING' then r.lease_expires_at - now() end as lease_left,
       r.files_processed,
       r.rows_ingested,
       r.bytes_read,
       r.error,
       r.reason,
       r.ingestion_id,
       r.tenant_id
from runs r
join ingestions i on i.id = r.ingestion_id
join tenants t on t.id = r.tenant_id;

-- For people at a psql prompt: what fires next, in UTC and in the schedule's own time zone.
create view upcoming_ticks as
select i.name                                             as ingestion,
       t.name                                             as tenant,
       s.next_fire_at                                     as next_fire_utc,
       (s.next_fire_at at time zone i.schedule_timezone)  as next_fire_local,
       i.schedule_timezone                                as timezone,
       i.schedule_frequency                               as frequency,
       case i.schedule_frequency
           when 'hourly' then '0 * * * *'
           when 'daily' then split_part(i.schedule_time, ':', 2)::int || ' '
                             || split_part(i.schedule_time, ':', 1)::int || ' * * *'
           when 'weekly' then split_part(i.schedule_time, ':', 2)::int || ' '
                              || split_part(i.schedule_time, ':', 1)::int || ' * * 0'
           else i.schedule_cron
       end                                                as cron_expression,
       s.next_fire_at - now()                             as due_in,
       s.last_fire_at                                     as last_fire_utc,
       s.ingestion_id,
       s.tenant_id
from schedule_ticks s
join ingestions i on i.id = s.ingestion_id
join tenants t on t.id = s.tenant_id
order by s.next_fire_at;
