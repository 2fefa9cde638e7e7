-- Why a schedule is paused, since when and by whom, until it is enabled again.

alter table ingestions
    add column paused_reason text
        constraint ingestions_paused_reason_length check (char_length(paused_reason) <= 1000),
    add column paused_at timestamptz,
    add column paused_by text;
alter table ingestions
    add constraint ingestions_paused_only_while_disabled
        check (not schedule_enabled
               or (paused_reason is null and paused_at is null and paused_by is null));

comment on column ingestions.paused_reason is 'Why the schedule was disabled (given with the disable), until it is enabled again.';
comment on column ingestions.paused_at is 'When the schedule was disabled; null while it is enabled.';
comment on column ingestions.paused_by is
    'Who disabled the schedule: an API token''s name, "scheduler" (a stored schedule that no longer '
    'parses), or "database" (a change made at a psql prompt).';

-- Whoever switches a schedule, the pause is recorded: enabling clears it; disabling without
-- saying who (an UPDATE at psql, a PATCH through the API) stamps the time, and the actor the
-- writing transaction named in autoloader.actor, else "database".
create function ingestions_stamp_pause() returns trigger language plpgsql as $$
begin
    if new.schedule_enabled then
        new.paused_reason := null;
        new.paused_at := null;
        new.paused_by := null;
    elsif old.schedule_enabled and new.paused_at is null then
        new.paused_at := now();
        new.paused_by := coalesce(new.paused_by,
                                  nullif(current_setting('autoloader.actor', true), ''),
                                  'database');
    end if;
    return new;
end
$$;

create trigger ingestions_stamp_pause
    before update of schedule_enabled on ingestions
    for each row
    when (old.schedule_enabled is distinct from new.schedule_enabled)
    execute function ingestions_stamp_pause();
