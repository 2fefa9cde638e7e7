-- The scheduling engine: tick rows kept in step with ingestions by the database itself, retry
-- back-off, and notifications that wake tickers and workers instead of polling.

-- A tick row whose schedule changed and whose next fire instant a ticker must work out again.
-- Tickers take these rows as they take due ones; recomputing never fires a run.
alter table schedule_ticks add column recompute boolean not null default false;
create index schedule_ticks_recompute on schedule_ticks (ingestion_id) where recompute;

comment on column schedule_ticks.recompute is
    'The schedule changed: a ticker recomputes next_fire_at from now (no run fires for the change).';

-- A queued run is not claimed before this instant (back-off between retries).
alter table runs add column not_before timestamptz;

-- Keep schedule_ticks in step with ingestions, whoever edits them (the API or a person at psql):
-- a row exists exactly while the schedule is enabled and the ingestion ACTIVE, and any change to
-- the schedule asks a ticker to recompute the next fire instant.
create function ingestions_sync_tick() returns trigger language plpgsql as $$
begin
    if new.schedule_enabled and new.status = 'ACTIVE' then
        insert into schedule_ticks (ingestion_id, tenant_id, next_fire_at, recompute)
        values (new.id, new.tenant_id, now(), true)
        on conflict (ingestion_id) do update
            set recompute = true, updated_at = now();
    else
        delete from schedule_ticks where ingestion_id = new.id;
        if new.next_run_time is not null then
            update ingestions set next_run_time = null where id = new.id;
        end if;
    end if;
    return null;
end
$$;

create trigger ingestions_sync_tick_on_insert
    after insert on ingestions
    for each row execute function ingestions_sync_tick();

create trigger ingestions_sync_tick_on_update
    after update of schedule_frequency, schedule_time, schedule_timezone, schedule_cron,
                    schedule_enabled, status
    on ingestions
    for each row
    when (old.schedule_frequency is distinct from new.schedule_frequency
          or old.schedule_time is distinct from new.schedule_time
          or old.schedule_timezone is distinct from new.schedule_timezone
          or old.schedule_cron is distinct from new.schedule_cron
          or old.schedule_enabled is distinct from new.schedule_enabled
          or old.status is distinct from new.status)
    execute function ingestions_sync_tick();

-- Wake tickers when tick rows change (a schedule was edited, or another ticker advanced one).
create function notify_ticks_changed() returns trigger language plpgsql as $$
begin
    perform pg_notify('autoloader_ticks', '');
    return null;
end
$$;

create trigger schedule_ticks_notify
    after insert or update or delete on schedule_ticks
    for each statement execute function notify_ticks_changed();

-- Wake workers when a run becomes claimable. PostgreSQL folds identical notifications sent in one
-- transaction, so a tick batch of thousands of runs sends one.
create function notify_run_queued() returns trigger language plpgsql as $$
begin
    perform pg_notify('autoloader_runs', '');
    return null;
end
$$;

create trigger runs_notify_queued
    after insert or update of status on runs
    for each row when (new.status = 'QUEUED')
    execute function notify_run_queued();
