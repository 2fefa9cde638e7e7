-- Catch-up policy: what becomes of the ticks a schedule missed while it was paused, or while no
-- ticker ran for longer than the misfire grace time.
--   skip: none of them runs; they are recorded as one MISSED row with their count and window.
--   once: one run, for the newest of them, whose data interval covers them all.
--   all:  one run each, oldest first and one at a time, the newest max_catchup_runs of them;
--         older ones are recorded as one MISSED row.
alter table ingestions
    add column catchup text not null default 'skip'
        constraint ingestions_catchup_known check (catchup in ('skip', 'once', 'all')),
    add column max_catchup_runs integer not null default 100
        constraint ingestions_max_catchup_runs_range check (max_catchup_runs between 1 and 1000);

comment on column ingestions.catchup is
    'skip, once or all: what ticks missed while paused or during an outage longer than the misfire grace become.';
comment on column ingestions.max_catchup_runs is
    'Under catchup = all, the most missed ticks that run (the newest); older ones are recorded MISSED.';

-- The tick row carries what is owed:
--   catchup_after: set when a paused schedule is enabled again (the pause's instant); the ticks
--     after it up to the enable (updated_at, the recompute's edit time) were missed while paused.
--     The ticker that recomputes the row deals with them and clears it.
--   backlog_*: under catchup = all, the ticks still to run, oldest first: backlog_next (and the
--     start of its data interval), up to backlog_last, backlog_count of them. A ticker queues
--     backlog_next when the ingestion has no active load (runs_one_active_per_ingestion decides)
--     and looks again at backlog_check_at.
alter table schedule_ticks
    add column catchup_after timestamptz,
    add column backlog_next timestamptz,
    add column backlog_start timestamptz,
    add column backlog_last timestamptz,
    add column backlog_count integer,
    add column backlog_check_at timestamptz,
    add constraint schedule_ticks_backlog_whole
        check ((backlog_next is null) = (backlog_last is null)
               and (backlog_next is null) = (backlog_count is null)
               and (backlog_next is null) = (backlog_check_at is null)),
    add constraint schedule_ticks_backlog_ordered
        check (backlog_next <= backlog_last and backlog_count between 1 and 1000);

create index schedule_ticks_backlog on schedule_ticks (backlog_check_at)
    where backlog_check_at is not null;

comment on column schedule_ticks.catchup_after is
    'The schedule was paused from this instant until it was enabled again (updated_at): the ticks between are dealt with by the ingestion''s catchup policy.';
comment on column schedule_ticks.backlog_next is
    'catchup = all: the oldest missed tick still to run; null when nothing is owed.';

-- A run id made now, as the engine makes them (UUIDv7: 48 bits of milliseconds, then random).
create function uuid_v7_now() returns uuid language sql volatile as $$
    select encode(
        set_byte(
            overlay(uuid_send(gen_random_uuid())
                    placing substring(int8send((extract(epoch from clock_timestamp()) * 1000)::bigint) from 3)
                    from 1 for 6),
            6, (floor(random() * 16))::int | 112),
        'hex')::uuid
$$;

-- Re-enabling a paused schedule tells the ticker since when it was paused.
create or replace function ingestions_sync_tick() returns trigger language plpgsql as $$
begin
    if new.schedule_enabled and new.status = 'ACTIVE'
       and exists (select 1 from tenants t where t.id = new.tenant_id and t.status = 'ACTIVE') then
        insert into schedule_ticks (ingestion_id, tenant_id, next_fire_at, recompute, updated_at,
                                    catchup_after)
        values (new.id, new.tenant_id, now(), true, now(),
                case when tg_op = 'UPDATE' and not old.schedule_enabled then old.paused_at end)
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

-- A tick row that goes (the schedule is disabled, its ingestion or tenant paused) while ticks
-- are still owed records them as one MISSED row: the history has no silent gap.
create function schedule_ticks_backlog_dropped() returns trigger language plpgsql as $$
begin
    insert into runs (id, ingestion_id, tenant_id, triggered_by, scheduled_for,
                      data_interval_start, status, finished_at, reason)
    select uuid_v7_now(), old.ingestion_id, old.tenant_id, 'scheduler', old.backlog_next,
           old.backlog_start, 'MISSED', now(),
           old.backlog_count || ' missed tick(s) from ' || to_char(old.backlog_next at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
           || ' to ' || to_char(old.backlog_last at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
           || ' were still waiting to catch up when the schedule stopped; not run'
    where exists (select 1 from ingestions i where i.id = old.ingestion_id)
    on conflict do nothing;
    return null;
end
$$;

create trigger schedule_ticks_backlog_dropped
    after delete on schedule_ticks
    for each row when (old.backlog_next is not null)
    execute function schedule_ticks_backlog_dropped();
