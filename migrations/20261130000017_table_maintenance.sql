-- Tables that stay fast: table maintenance (compaction, snapshot expiry, orphan removal) runs as
-- runs of the engine, in the run table, with the same leases, fencing and history as loads; and
-- the facts of each Iceberg table, written with every commit, for the API and for people at psql.

-- What a run does: 'load' (files into the table, as every run did before) or one kind of
-- maintenance of the table named in maintained_table.
alter table runs
    add column kind text not null default 'load'
        constraint runs_kind_check
            check (kind in ('load', 'compact', 'expire_snapshots', 'remove_orphans')),
    add column maintained_table text,
    -- What a maintenance run did (files rewritten, snapshots expired, files deleted, ...).
    add column maintenance jsonb;
alter table runs
    add constraint runs_maintenance_names_its_table
        check ((kind = 'load') = (maintained_table is null)),
    add constraint runs_maintenance_reports_only_maintenance
        check (kind <> 'load' or maintenance is null);

-- A maintenance run is not for a tick: the scheduler queues it (triggered_by 'scheduler') when
-- its table is due, without one.
alter table runs drop constraint runs_scheduler_has_tick;
alter table runs add constraint runs_scheduler_has_tick
    check (triggered_by not in ('scheduler', 'backfill') or scheduled_for is not null
           or kind <> 'load');

-- No overlap is a property of loads: at most one QUEUED or RUNNING load per ingestion. A
-- maintenance run of its table may run beside a load (a compaction racing a load: the loser of
-- the pointer swap retries against the new metadata).
drop index runs_one_active_per_ingestion;
create unique index runs_one_active_per_ingestion on runs (ingestion_id)
    where status in ('QUEUED', 'RUNNING') and kind = 'load';

-- At most one QUEUED or RUNNING maintenance run per table, whatever its kind and whichever of the
-- table's ingestions asked for it.
create unique index runs_one_maintenance_per_table on runs (tenant_id, maintained_table)
    where status in ('QUEUED', 'RUNNING') and kind <> 'load';

-- The maintenance history of a table, newest first: the scheduler's "is it due?" and the API's
-- "last maintenance run of each kind".
create index runs_maintenance_history on runs (tenant_id, maintained_table, kind, queued_at desc)
    where kind <> 'load';

comment on column runs.kind is
    'load: files into the table; compact | expire_snapshots | remove_orphans: maintenance of maintained_table.';
comment on column runs.maintained_table is
    'The Iceberg table a maintenance run works on (namespace.table); null for loads.';
comment on column runs.maintenance is
    'What a maintenance run did: files read/written/deleted, snapshots expired, the table after it.';

-- One row per Iceberg table a run has committed to, written in the transaction of each commit
-- (the metadata pointer swap), so it is exactly as current as the catalog.
create table table_facts (
    tenant_id           uuid not null references tenants (id) on delete cascade,
    -- namespace.table, as runs.maintained_table and the API's iceberg_table name it.
    iceberg_table       text not null,
    -- The ingestion whose run committed last: its options are the table's maintenance settings.
    ingestion_id        uuid,
    location            text not null,
    metadata_location   text not null,
    format_version      integer not null,
    current_schema_id   integer not null,
    -- Every schema id the table has had, oldest first.
    schema_ids          integer[] not null,
    -- The current schema and the default partition spec, in Iceberg's JSON form.
    schema              jsonb not null,
    partition_spec      jsonb not null,
    current_snapshot_id bigint,
    snapshots           bigint not null check (snapshots >= 0),
    oldest_snapshot_at  timestamptz,
    -- Of the current snapshot: from its summary's totals.
    data_files          bigint not null check (data_files >= 0),
    total_bytes         bigint not null check (total_bytes >= 0),
    total_records       bigint not null check (total_records >= 0),
    -- Data files smaller than small_file_bytes (75% of the compaction target): counted exactly by
    -- each compaction, and by each load since as the files it added.
    small_files         bigint not null check (small_files >= 0),
    small_file_bytes    bigint not null check (small_file_bytes > 0),
    updated_at          timestamptz not null default now(),
    primary key (tenant_id, iceberg_table)
);

comment on table table_facts is
    'Each Iceberg table''s current facts (schema, partition spec, snapshots, data files, small files), '
    'written in the transaction of every commit to it. Read by GET /api/v1/ingestions/{id}/table and '
    'by the maintenance scheduler.';

create or replace view run_overview as
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
       r.tenant_id,
       r.bytes_written,
       r.snapshot_id,
       r.files_rejected,
       r.records_rejected,
       r.kind,
       r.maintained_table,
       r.maintenance
from runs r
join ingestions i on i.id = r.ingestion_id
join tenants t on t.id = r.tenant_id;
