-- Dry runs: what an ingestion's next run would load, worked out by a worker (which links the
-- loader and holds the tenant's credentials' key) and read back by the API or the CLI that asked.
--   * definition: the definition to try (source_type, source_path, format_type,
--     destination_table, options), its secret options sealed as stored ingestions' are; set to
--     null once the dry run is over, so no definition outlives its answer.
--   * deadline: the instant by which the answer is due. A worker claims only requests before
--     it, and stops each stage it has not finished at it, saying which (result.complete = false).
--   * status: queued -> running -> done | failed. failed: the dry run could not start, or no
--     worker claimed it before its deadline (error says which).
-- Rows are deleted an hour after their deadline (the retention sweep of every worker).

create table dry_runs (
    id            uuid primary key,
    tenant_id     uuid not null references tenants (id) on delete cascade,
    ingestion_id  uuid references ingestions (id) on delete set null,
    definition    jsonb,
    status        text not null default 'queued'
        constraint dry_runs_status check (status in ('queued', 'running', 'done', 'failed')),
    requested_at  timestamptz not null default now(),
    deadline      timestamptz not null,
    claimed_by    text,
    claimed_at    timestamptz,
    finished_at   timestamptz,
    result        jsonb,
    error         text constraint dry_runs_error_length check (char_length(error) <= 16384),
    constraint dry_runs_finished_iff_over
        check ((finished_at is not null) = (status in ('done', 'failed'))),
    constraint dry_runs_definition_until_over
        check (status in ('done', 'failed') or definition is not null)
);

comment on table dry_runs is
    'Requests for a dry run of an ingestion (or an unsaved definition) and their answers; nothing '
    'else is written by a dry run.';
comment on column dry_runs.definition is
    'The definition tried, secrets sealed; null once the dry run is over.';

-- Workers find queued requests oldest first.
create index dry_runs_queued on dry_runs (requested_at) where status = 'queued';
-- The retention sweep finds rows by age (every row is over by its deadline, or abandoned).
create index dry_runs_deadline on dry_runs (deadline);
create index dry_runs_tenant on dry_runs (tenant_id);
create index dry_runs_ingestion on dry_runs (ingestion_id) where ingestion_id is not null;

create function notify_dry_run_queued() returns trigger language plpgsql as $$
begin
    perform pg_notify('autoloader_dry_runs', '');
    return null;
end
$$;

create trigger dry_runs_notify_queued
    after insert on dry_runs
    for each statement
    execute function notify_dry_run_queued();
