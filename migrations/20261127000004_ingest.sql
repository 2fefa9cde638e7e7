-- Loading files: what each run wrote, the per-ingestion ledger of loaded files, and the schema
-- that holds the Iceberg SQL catalog.

alter table runs
    add column bytes_written bigint not null default 0 check (bytes_written >= 0),
    -- The Iceberg snapshot a successful run committed; null when it loaded nothing.
    add column snapshot_id   bigint;

-- Every file an ingestion has loaded, written in the same transaction that commits the Iceberg
-- snapshot holding its rows (so a row here always means "these rows are in the table"). A file is
-- new to an ingestion when its path is not here.
create table loaded_files (
    ingestion_id   uuid        not null references ingestions (id) on delete cascade,
    path           text        not null,
    size_bytes     bigint      not null check (size_bytes >= 0),
    etag           text,
    last_modified  timestamptz not null,
    run_id         uuid        not null,
    attempt        int         not null,
    snapshot_id    bigint      not null,
    rows_loaded    bigint      not null check (rows_loaded >= 0),
    loaded_at      timestamptz not null default now(),
    primary key (ingestion_id, path)
);
create index loaded_files_run on loaded_files (run_id);

comment on table loaded_files is
    'The ledger of loaded files: one row per (ingestion, path), committed with the Iceberg snapshot.';

-- The Iceberg SQL catalog (the layout the iceberg-rust and pyiceberg SQL catalogs share), in its
-- own schema so it never mixes with the scheduler's tables.
create schema if not exists iceberg_catalog;

create table if not exists iceberg_catalog.iceberg_tables (
    catalog_name               varchar(255) not null,
    table_namespace            varchar(255) not null,
    table_name                 varchar(255) not null,
    metadata_location          varchar(1000),
    previous_metadata_location varchar(1000),
    iceberg_type               varchar(5),
    primary key (catalog_name, table_namespace, table_name)
);

create table if not exists iceberg_catalog.iceberg_namespace_properties (
    catalog_name   varchar(255) not null,
    namespace      varchar(255) not null,
    property_key   varchar(255),
    property_value varchar(1000),
    primary key (catalog_name, namespace, property_key)
);

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
       r.snapshot_id
from runs r
join ingestions i on i.id = r.ingestion_id
join tenants t on t.id = r.tenant_id;
