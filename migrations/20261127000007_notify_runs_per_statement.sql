-- Wake workers once per statement that queues runs, instead of calling a trigger function for
-- every row: a tick batch inserts hundreds of runs in one statement. Requeues (an UPDATE of a
-- few rows) keep the row trigger.
drop trigger if exists runs_notify_queued on runs;

create function notify_runs_inserted() returns trigger language plpgsql as $$
begin
    if exists (select 1 from inserted_runs where status = 'QUEUED') then
        perform pg_notify('autoloader_runs', '');
    end if;
    return null;
end
$$;

create trigger runs_notify_inserted
    after insert on runs
    referencing new table as inserted_runs
    for each statement execute function notify_runs_inserted();

create trigger runs_notify_requeued
    after update of status on runs
    for each row when (new.status = 'QUEUED' and old.status is distinct from 'QUEUED')
    execute function notify_run_queued();
