-- The smallest UUIDv7 made at an instant (millisecond precision): run ids are UUIDv7, whose first
-- 48 bits are their creation time in milliseconds, so `id >= uuid_v7_floor(t)` is "made at or
-- after t" read from the primary key. Used by run retention and the `/metrics` fold; handy at a
-- psql prompt too: `select * from runs where id >= uuid_v7_floor(now() - interval '1 hour')`.
create function uuid_v7_floor(at timestamptz) returns uuid
    language sql immutable strict parallel safe
    return (lpad(to_hex(floor(extract(epoch from at) * 1000)::bigint), 12, '0')
            || '70008000000000000000')::uuid;

comment on function uuid_v7_floor(timestamptz) is
    'The smallest UUIDv7 made at this instant (ms): id >= uuid_v7_floor(t) means made at or after t.';
