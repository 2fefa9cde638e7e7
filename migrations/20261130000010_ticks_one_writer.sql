-- One writer per fact. The trigger keeps a schedule's tick row in step with its definition, for
-- every writer (the API and a person at psql alike): the row exists exactly while the schedule is
-- enabled and the ingestion ACTIVE, and a changed schedule is marked `recompute` with the edit's
-- instant in `updated_at`. Fire instants have one writer, the ticker: it works out the first fire
-- after the edit and mirrors it into ingestions.next_run_time, which the trigger clears meanwhile
-- (until then the API answers the same instant, computed from the same edit time). The API no
-- longer writes schedule_ticks or next_run_time itself.
create or replace function ingestions_sync_tick() returns trigger language plpgsql as $$
begin
    if new.schedule_enabled and new.status = 'ACTIVE' then
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

comment on column schedule_ticks.updated_at is
    'When the row last changed; while recompute is set, when the schedule was edited: the next fire is the first one after it.';
