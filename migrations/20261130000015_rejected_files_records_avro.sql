-- Files as they really arrive: a file that could not be loaded stays in the ledger as rejected
-- (so it is not tried again until someone asks), a run counts the files and records it rejected
-- and keeps the first few rejected records for inspection, and Avro is a source format.

alter table ingestions drop constraint ingestions_format_type_check;
alter table ingestions add constraint ingestions_format_type_check
    check (format_type in ('json', 'csv', 'parquet', 'avro'));

-- The ledger's rows are now of two kinds: 'loaded' (its rows are in the table, committed with
-- snapshot_id; a file whose every record was rejected is loaded with no snapshot) and 'rejected'
-- (nothing of it is in the table; error says why). Either way the file is not new any more.
alter table loaded_files
    add column status text not null default 'loaded'
        constraint loaded_files_status_check check (status in ('loaded', 'rejected')),
    add column error text,
    add column records_rejected bigint not null default 0
        constraint loaded_files_records_rejected_check check (records_rejected >= 0),
    alter column snapshot_id drop not null;
alter table loaded_files
    add constraint loaded_files_rejected_says_why
        check ((status = 'rejected') = (error is not null)),
    add constraint loaded_files_rejected_loads_nothing
        check (status = 'loaded' or (snapshot_id is null and rows_loaded = 0));

-- The rejected files of an ingestion, for the files API and `POST .../files/retry`.
create index loaded_files_rejected on loaded_files (ingestion_id, path) where status = 'rejected';

comment on table loaded_files is
    'The ledger of source files: one row per (ingestion, path) that a run has dealt with, written '
    'in the same transaction as the Iceberg snapshot holding its rows. status loaded: its rows are '
    'in the table; rejected: nothing of it is, error says why, and it is not read again until it '
    'is retried (POST /api/v1/ingestions/{id}/files/retry deletes its row).';
comment on column loaded_files.records_rejected is
    'Records of this file dropped under on_error = skip_record.';

-- A run's rejections, written with its commit (fenced by its lease like the ledger rows).
alter table runs
    add column files_rejected bigint not null default 0
        constraint runs_files_rejected_check check (files_rejected >= 0),
    add column records_rejected bigint not null default 0
        constraint runs_records_rejected_check check (records_rejected >= 0),
    add column rejected_records jsonb
        constraint runs_rejected_records_is_array check (
            rejected_records is null or jsonb_typeof(rejected_records) = 'array');

comment on column runs.files_rejected is
    'Files this run did not load because of bad content (on_error = skip_file); in the ledger as rejected.';
comment on column runs.records_rejected is
    'Records this run dropped (on_error = skip_record).';
comment on column runs.rejected_records is
    'The first rejected records of this run: [{"file", "record", "column", "reason"}], at most 20.';

-- psql users see a run's rejections beside its counters (columns appended: a view keeps its
-- existing columns in place).
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
       r.records_rejected
from runs r
join ingestions i on i.id = r.ingestion_id
join tenants t on t.id = r.tenant_id;

