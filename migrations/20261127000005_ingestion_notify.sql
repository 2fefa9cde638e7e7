-- Tell API processes which ingestion's schedule view changed, so their cache of
-- `GET /api/v1/ingestions/{id}/schedule` never serves a stale one. Only changes the view shows
-- notify: the ticker's per-tick write of next_run_time / last_scheduled_run does not (the cache
-- treats a passed next_run_time as a miss instead), so tick batches send nothing here.
create function notify_ingestion_changed() returns trigger language plpgsql as $$
begin
    perform pg_notify('autoloader_ingestions', old.id::text);
    return null;
end
$$;

create trigger ingestions_notify_change
    after update on ingestions
    for each row
    when (old.schedule_enabled   is distinct from new.schedule_enabled
       or old.schedule_frequency is distinct from new.schedule_frequency
       or old.schedule_time      is distinct from new.schedule_time
       or old.schedule_timezone  is distinct from new.schedule_timezone
       or old.schedule_cron      is distinct from new.schedule_cron
       or old.status             is distinct from new.status
       or old.tenant_id          is distinct from new.tenant_id
       or old.id                 is distinct from new.id
       -- next_run_time moving while the old value is still ahead is a recompute after an edit,
       -- not a tick firing: the cache would not notice it by itself. (An enabled schedule whose
       -- next_run_time is still unset is never cached.)
       or (old.next_run_time > now() and new.next_run_time is distinct from old.next_run_time))
    execute function notify_ingestion_changed();

create trigger ingestions_notify_delete
    after delete on ingestions
    for each row execute function notify_ingestion_changed();
