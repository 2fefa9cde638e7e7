-- The audit trail: who changed what, and when. One row per change, never updated nor deleted
-- (PostgreSQL refuses both, and TRUNCATE), kept when the ingestion or tenant it is about is
-- deleted (no foreign key) and never pruned by run retention.
--
-- Changes to an ingestion's definition are recorded by a trigger on `ingestions`, whoever makes
-- them: the API names itself in settings local to its transaction (`autoloader.actor_kind`,
-- `autoloader.actor`, `autoloader.token_id`, `autoloader.request_id`); a change made at a psql
-- prompt has none and is recorded as by `database`, with the database role as the actor. The
-- other changes (manual triggers, cancels, tokens, tenants) are written by the store functions
-- in the transaction of the change.

create table audit_events (
    id            bigint generated always as identity primary key,
    at            timestamptz not null default now(),
    tenant_id     uuid,
    ingestion_id  uuid,
    actor_kind    text not null
        check (actor_kind in ('token', 'admin', 'cli', 'database', 'scheduler')),
    actor         text not null check (char_length(actor) <= 300),
    token_id      uuid,
    request_id    text check (char_length(request_id) <= 200),
    action        text not null check (action ~ '^[a-z_]+\.[a-z_]+$'),
    detail        jsonb not null default '{}' check (jsonb_typeof(detail) = 'object')
);

comment on table audit_events is
    'Every change to ingestions, schedules, runs asked for by hand, tokens and tenants: who, when, '
    'which request, what (detail: before/after of the changed fields, secrets as ********). '
    'Append-only.';
comment on column audit_events.actor_kind is
    'token (a tenant''s API token), admin (the admin token), cli (autoloader-api on a shell), '
    'scheduler (the engine), database (a change made at a psql prompt).';
comment on column audit_events.actor is
    'The token''s name (label, else "token <id>"), "admin", or the database role of a psql session.';

-- An ingestion's events, newest first; the admin's view of a tenant, newest first; `since`.
create index audit_events_ingestion on audit_events (ingestion_id, id desc)
    where ingestion_id is not null;
create index audit_events_tenant on audit_events (tenant_id, id desc);
create index audit_events_at on audit_events (at);

create function audit_events_refuse() returns trigger language plpgsql as $$
begin
    raise exception 'audit_events is append-only: % is refused', tg_op
        using errcode = 'insufficient_privilege',
              hint = 'audit rows are never changed nor deleted';
end
$$;

create trigger audit_events_append_only
    before update or delete on audit_events
    for each row execute function audit_events_refuse();
create trigger audit_events_no_truncate
    before truncate on audit_events
    for each statement execute function audit_events_refuse();

-- An event by whoever the transaction names (see the header), else by `database`.
create function audit_record(p_tenant uuid, p_ingestion uuid, p_action text, p_detail jsonb)
returns void language plpgsql as $$
declare
    kind text := nullif(current_setting('autoloader.actor_kind', true), '');
begin
    insert into audit_events (tenant_id, ingestion_id, actor_kind, actor, token_id, request_id,
                              action, detail)
    values (p_tenant, p_ingestion,
            coalesce(kind, 'database'),
            case when kind is null then session_user::text
                 else left(coalesce(nullif(current_setting('autoloader.actor', true), ''), kind), 300)
            end,
            case when kind is null then null
                 else nullif(current_setting('autoloader.token_id', true), '')::uuid end,
            case when kind is null then null
                 else left(nullif(current_setting('autoloader.request_id', true), ''), 200) end,
            p_action, p_detail);
end
$$;

-- Option names that hold secrets: the same rule as `is_secret_option` in
-- src/ingestions/definition.rs (the test `audit.rs::secrets_are_masked_as_the_api_masks_them`
-- holds them together).
create function audit_is_secret_option(key text) returns boolean
immutable language sql as $$
    select lower(key) like '%secret%' or lower(key) like '%password%' or lower(key) like '%token%'
           or (right(lower(key), 4) = '_key' and lower(key) <> 's3_access_key_id')
$$;

-- An ingestion row as its audit compares it: every column but the bookkeeping ones (what the
-- ticker, the pause stamp and every edit write by themselves), with each option as a field of
-- its own (`options.<name>`). A column added to `ingestions` is compared without a change here;
-- a bookkeeping column the engine writes must be added to this list.
create function audit_ingestion_fields(r jsonb) returns jsonb
immutable language sql as $$
    select (r - array['id', 'tenant_id', 'options', 'next_run_time', 'last_scheduled_run',
                      'created_at', 'updated_at', 'paused_at', 'paused_by'])
           || coalesce((select jsonb_object_agg('options.' || o.key, o.value)
                        from jsonb_each(r -> 'options') o), '{}'::jsonb)
$$;

-- A field's value as an audit row shows it: a secret option's as ********.
create function audit_shown(field text, value jsonb) returns jsonb
immutable language sql as $$
    select case when value is null or value = 'null'::jsonb then value
                when field like 'options.%' and audit_is_secret_option(substr(field, 9))
                    then to_jsonb('********'::text)
                else value end
$$;

-- The fields that differ between two rows' fields: {field: {before, after}}. Secrets are
-- compared by their stored values and shown masked, so a changed secret shows as changed.
create function audit_changes(old_fields jsonb, new_fields jsonb) returns jsonb
immutable language sql as $$
    select coalesce(jsonb_object_agg(k, jsonb_build_object(
                        'before', coalesce(audit_shown(k, old_fields -> k), 'null'::jsonb),
                        'after', coalesce(audit_shown(k, new_fields -> k), 'null'::jsonb))),
                    '{}'::jsonb)
    from (select jsonb_object_keys(coalesce(old_fields, '{}'::jsonb))
          union
          select jsonb_object_keys(coalesce(new_fields, '{}'::jsonb))) keys(k)
    where old_fields -> k is distinct from new_fields -> k
$$;

-- Shown whole, masked: a created or deleted ingestion's definition.
create function audit_definition(fields jsonb) returns jsonb
immutable language sql as $$
    select coalesce(jsonb_object_agg(f.key, audit_shown(f.key, f.value)), '{}'::jsonb)
    from jsonb_each(fields) f
$$;

create function ingestions_audit() returns trigger language plpgsql as $$
declare
    before_fields jsonb;
    after_fields jsonb;
    changes jsonb;
    action text;
begin
    if tg_op = 'INSERT' then
        after_fields := audit_ingestion_fields(to_jsonb(new));
        perform audit_record(new.tenant_id, new.id, 'ingestion.created',
                             jsonb_build_object('name', new.name,
                                                'after', audit_definition(after_fields)));
        return null;
    elsif tg_op = 'DELETE' then
        before_fields := audit_ingestion_fields(to_jsonb(old));
        perform audit_record(old.tenant_id, old.id, 'ingestion.deleted',
                             jsonb_build_object('name', old.name,
                                                'before', audit_definition(before_fields)));
        return null;
    end if;
    before_fields := audit_ingestion_fields(to_jsonb(old));
    after_fields := audit_ingestion_fields(to_jsonb(new));
    changes := audit_changes(before_fields, after_fields);
    if changes = '{}'::jsonb then
        return null;
    end if;
    -- Switching the schedule (with the pause's reason) and nothing else is an enable or a
    -- disable; anything more is an update.
    if old.schedule_enabled is distinct from new.schedule_enabled
       and changes - 'schedule_enabled' - 'paused_reason' = '{}'::jsonb then
        action := case when new.schedule_enabled then 'schedule.enabled' else 'schedule.disabled' end;
    else
        action := 'ingestion.updated';
    end if;
    perform audit_record(new.tenant_id, new.id, action,
                         jsonb_build_object('name', new.name, 'changes', changes));
    return null;
end
$$;

create trigger ingestions_audit_insert
    after insert on ingestions
    for each row execute function ingestions_audit();
create trigger ingestions_audit_delete
    after delete on ingestions
    for each row execute function ingestions_audit();
-- The ticker's write of fire instants (next_run_time, last_scheduled_run) changes no definition:
-- an update that moves either is not compared at all (a row comparison per tick would double
-- the cost of a tick batch's write), unless it also switches the schedule or the status.
create trigger ingestions_audit_update
    after update on ingestions
    for each row
    when ((old.next_run_time is not distinct from new.next_run_time
           and old.last_scheduled_run is not distinct from new.last_scheduled_run)
          or old.schedule_enabled is distinct from new.schedule_enabled
          or old.status is distinct from new.status)
    execute function ingestions_audit();
