-- A tenant can be suspended: its schedules stop firing and its tokens answer 403, and nothing of
-- it is deleted; made ACTIVE again, both come back. Tokens may carry an expiry.
alter table tenants
    add column status text not null default 'ACTIVE' check (status in ('ACTIVE', 'SUSPENDED')),
    add column suspended_at timestamptz,
    add constraint tenants_suspended_at_iff_suspended
        check ((suspended_at is not null) = (status = 'SUSPENDED'));

alter table api_tokens add column expires_at timestamptz;

comment on column tenants.status is
    'ACTIVE, or SUSPENDED: no schedule of the tenant fires and its tokens are refused (403).';
comment on column api_tokens.expires_at is 'After this instant the token is refused; null: never.';

-- A schedule is live while it is enabled, its ingestion ACTIVE and its tenant ACTIVE: the tick
-- row follows all three.
create or replace function ingestions_sync_tick() returns trigger language plpgsql as $$
begin
    if new.schedule_enabled and new.status = 'ACTIVE'
       and exists (select 1 from tenants t where t.id = new.tenant_id and t.status = 'ACTIVE') then
        insert into schedule_ticks (ingestion_id, tenant_id, next_fire_at, recompute, updated_at)
        values (new.id, new.tenant_id, now(), true, now())
        on conflict (ingestion_id) do update
            set recompute = true, updated_at = now();
    else
        delete from schedule_ticks where ingestion_id = new.id;
    end if;
    if new.next_run_time is not null then
        update ingestions set next_run_time = null where id = new.id;
    end if;
    return null;
end
$$;

create function tenants_sync_ticks() returns trigger language plpgsql as $$
begin
    if new.status = 'ACTIVE' then
        -- Resumed: each live schedule starts afresh from now, as after any edit.
        insert into schedule_ticks (ingestion_id, tenant_id, next_fire_at, recompute, updated_at)
        select i.id, i.tenant_id, now(), true, now()
        from ingestions i
        where i.tenant_id = new.id and i.schedule_enabled and i.status = 'ACTIVE'
        on conflict (ingestion_id) do update set recompute = true, updated_at = now();
    else
        delete from schedule_ticks where tenant_id = new.id;
        update ingestions set next_run_time = null
        where tenant_id = new.id and next_run_time is not null;
    end if;
    return null;
end
$$;

create trigger tenants_sync_ticks
    after update of status on tenants
    for each row when (old.status is distinct from new.status)
    execute function tenants_sync_ticks();
