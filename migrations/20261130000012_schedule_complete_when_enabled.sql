-- The product spec asks for a complete schedule only when it is enabled (its section 8.3,
-- `_validate_schedule`): a disabled daily or weekly schedule may lack its time (it means 00:00,
-- `_parse_schedule_time`), and a disabled custom one its cron. An enabled one still needs both:
-- these checks keep their names and now hold for enabled schedules only
-- (ingestions_enabled_needs_frequency already did). Loosening a check cannot fail on existing rows.
alter table ingestions
    drop constraint ingestions_daily_weekly_need_time,
    add constraint ingestions_daily_weekly_need_time
        check (not schedule_enabled
               or schedule_frequency not in ('daily', 'weekly')
               or schedule_time is not null),
    drop constraint ingestions_custom_needs_cron,
    add constraint ingestions_custom_needs_cron
        check (not schedule_enabled
               or schedule_frequency is distinct from 'custom'
               or schedule_cron is not null);

-- The psql view shows the 00:00 a daily or weekly schedule without a time means. (Only enabled
-- schedules have a tick row, and those have a time; this keeps the view right whatever the rows.)
create or replace view upcoming_ticks as
select i.name                                             as ingestion,
       t.name                                             as tenant,
       s.next_fire_at                                     as next_fire_utc,
       (s.next_fire_at at time zone i.schedule_timezone)  as next_fire_local,
       i.schedule_timezone                                as timezone,
       i.schedule_frequency                               as frequency,
       case i.schedule_frequency
           when 'hourly' then '0 * * * *'
           when 'daily' then split_part(coalesce(i.schedule_time, '00:00'), ':', 2)::int || ' '
                             || split_part(coalesce(i.schedule_time, '00:00'), ':', 1)::int || ' * * *'
           when 'weekly' then split_part(coalesce(i.schedule_time, '00:00'), ':', 2)::int || ' '
                              || split_part(coalesce(i.schedule_time, '00:00'), ':', 1)::int || ' * * 0'
           else i.schedule_cron
       end                                                as cron_expression,
       s.next_fire_at - now()                             as due_in,
       s.last_fire_at                                     as last_fire_utc,
       s.ingestion_id,
       s.tenant_id
from schedule_ticks s
join ingestions i on i.id = s.ingestion_id
join tenants t on t.id = s.tenant_id
order by s.next_fire_at;
