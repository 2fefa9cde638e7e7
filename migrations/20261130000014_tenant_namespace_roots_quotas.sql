-- Tenants kept apart below the API.
--   * namespace: each tenant's Iceberg namespace root. An ingestion's destination `a.b` is the
--     Iceberg table `<namespace>.a.b`, stored under `<warehouse>/<namespace>/a/b`. Unique and
--     never changed once set (trigger tenants_namespace_immutable).
--   * file_roots: the directories the tenant's `local` sources may read, each inside the
--     operator's AUTOLOADER_FILE_ROOTS (checked by the API, and again by the worker per run).
--   * max_ingestions, max_concurrent_runs, max_manual_runs_per_minute: the tenant's quotas;
--     null means the operator's default (AUTOLOADER_DEFAULT_MAX_*).

alter table tenants
    add column namespace text,
    add column file_roots text[] not null default '{}',
    add column max_ingestions integer check (max_ingestions >= 0),
    add column max_concurrent_runs integer check (max_concurrent_runs >= 0),
    add column max_manual_runs_per_minute integer check (max_manual_runs_per_minute >= 0);

-- Existing tenants: a namespace from the name (lower case, other characters as `_`), made unique
-- with the tenant id's last characters where two names fold to one.
with derived as (
    select id,
           left(case when n ~ '^[a-z_]' then n else 't_' || n end, 48) as ns
    from (select id, trim(both '_' from regexp_replace(lower(name), '[^a-z0-9_]+', '_', 'g')) as n
          from tenants) s
), numbered as (
    select id, ns, row_number() over (partition by ns order by id) as k from derived
)
update tenants t
set namespace = case when n.ns = '' or n.ns = 't_' then 't_' || right(replace(t.id::text, '-', ''), 8)
                     when n.k = 1 then n.ns
                     else n.ns || '_' || right(replace(t.id::text, '-', ''), 8) end
from numbered n
where n.id = t.id;

alter table tenants
    alter column namespace set not null,
    add constraint tenants_namespace_unique unique (namespace),
    add constraint tenants_namespace_identifier
        check (namespace ~ '^[a-z_][a-z0-9_]{0,62}$');

-- A tenant inserted without a namespace (at psql, say) gets one from its name, as the API
-- derives it, with the id's last characters added when that one is taken.
create function tenants_default_namespace() returns trigger language plpgsql as $$
declare
    ns text;
begin
    if new.namespace is null then
        ns := trim(both '_' from regexp_replace(lower(new.name), '[^a-z0-9_]+', '_', 'g'));
        if ns = '' then
            ns := 'tenant';
        elsif ns !~ '^[a-z_]' then
            ns := 't_' || ns;
        end if;
        ns := left(ns, 48);
        if exists (select 1 from tenants where namespace = ns) then
            ns := ns || '_' || right(replace(new.id::text, '-', ''), 8);
        end if;
        new.namespace := ns;
    end if;
    return new;
end
$$;

create trigger tenants_default_namespace
    before insert on tenants
    for each row execute function tenants_default_namespace();

create function tenants_namespace_immutable() returns trigger language plpgsql as $$
begin
    raise exception 'a tenant''s namespace never changes (tenant %: % -> %)',
        old.id, old.namespace, new.namespace
        using errcode = 'check_violation';
end
$$;

create trigger tenants_namespace_immutable
    before update of namespace on tenants
    for each row when (old.namespace is distinct from new.namespace)
    execute function tenants_namespace_immutable();

-- Existing local sources keep working: each becomes one of its tenant's roots.
update tenants t
set file_roots = s.roots
from (select tenant_id,
             array_agg(distinct regexp_replace(source_path, '^file://', '') order by regexp_replace(source_path, '^file://', '')) as roots
      from ingestions where source_type = 'local' group by tenant_id) s
where s.tenant_id = t.id;

-- Existing Iceberg tables move under their tenant's namespace; the files stay where they are
-- (a table's metadata location is absolute). A table that several tenants wrote to stays with
-- the tenant whose ingestion is oldest; the others' next runs create tables of their own.
with owner as (
    select distinct on (i.destination_table)
           i.destination_table,
           t.namespace
    from ingestions i join tenants t on t.id = i.tenant_id
    order by i.destination_table, i.created_at, i.id
)
update iceberg_catalog.iceberg_tables it
set table_namespace = o.namespace || '.' || it.table_namespace
from owner o
where it.catalog_name = 'autoloader'
  and it.table_namespace || '.' || it.table_name = o.destination_table;

insert into iceberg_catalog.iceberg_namespace_properties
    (catalog_name, namespace, property_key, property_value)
select distinct it.catalog_name, p.ns, 'exists', 'true'
from iceberg_catalog.iceberg_tables it
cross join lateral (
    select array_to_string((string_to_array(it.table_namespace, '.'))[1:k], '.') as ns
    from generate_series(1, cardinality(string_to_array(it.table_namespace, '.'))) k
) p
where it.catalog_name = 'autoloader'
  and not exists (select 1 from iceberg_catalog.iceberg_namespace_properties np
                  where np.catalog_name = it.catalog_name and np.namespace = p.ns);

-- The claim finds a capped tenant's queued runs, oldest tick first, and counts its RUNNING ones.
create index runs_active_by_tenant
    on runs (tenant_id, status, coalesce(scheduled_for, queued_at), queued_at)
    where status in ('QUEUED', 'RUNNING');

-- The manual triggers of the last minute, per tenant, for max_manual_runs_per_minute: a row per
-- trigger, older ones deleted by the next trigger. (An index on runs would cost every update of
-- every manual run a write.)
create table manual_triggers (
    tenant_id     uuid not null references tenants (id) on delete cascade,
    triggered_at  timestamptz not null default now(),
    run_id        uuid not null
);
create index manual_triggers_by_tenant on manual_triggers (tenant_id, triggered_at);
comment on table manual_triggers is
    'Manual triggers of the last minute (max_manual_runs_per_minute); older rows are deleted.';

comment on column tenants.namespace is
    'The tenant''s Iceberg namespace root: destination a.b is the table <namespace>.a.b. Never changes.';
comment on column tenants.file_roots is
    'Directories the tenant''s local sources may read (each inside AUTOLOADER_FILE_ROOTS).';
comment on column tenants.max_ingestions is 'Quota; null: the operator''s default.';
comment on column tenants.max_concurrent_runs is
    'Most RUNNING runs of the tenant across every worker; null: the operator''s default.';
comment on column tenants.max_manual_runs_per_minute is 'Rate limit; null: the operator''s default.';

-- For a claim: how many more runs of a capped tenant may start now. Takes the tenant's claim lock
-- for the rest of the transaction, or answers 0 when another claim holds it (that claim is
-- starting the tenant's runs; this one leaves them to it rather than wait). The count runs after
-- the lock is taken, in a snapshot of its own, so it sees every run that earlier claims started.
create function tenant_free_run_slots(tenant uuid, cap integer) returns integer
language plpgsql volatile as $$
declare
    running integer;
begin
    if not pg_try_advisory_xact_lock(hashtextextended('autoloader.claim.' || tenant::text, 0)) then
        return 0;
    end if;
    select count(*) into running from runs where tenant_id = tenant and status = 'RUNNING';
    return greatest(cap - running, 0);
end
$$;
