-- Discovery that does not grow with history: an ingestion with options.discovery = 'incremental'
-- lists only the keys after the greatest one its ledger holds under the source prefix, and lists
-- the whole prefix once every options.full_listing_interval to catch files that arrived late.

-- Keys are compared byte by byte, as S3 lists them: the greatest path of a prefix is then one
-- step of the primary key, and a prefix is a range of it, whatever the database's collation
-- ('C' orders UTF-8 by code point; a linguistic collation ignores punctuation such as '/').
-- Rebuilds the ledger's two indexes.
alter table loaded_files alter column path type text collate "C";

create table discovery_listings (
    ingestion_id         uuid        primary key,
    tenant_id            uuid        not null,
    last_full_listing_at timestamptz not null,
    run_id               uuid        not null,
    keys_listed          bigint      not null check (keys_listed >= 0),
    foreign key (ingestion_id, tenant_id) references ingestions (id, tenant_id) on delete cascade
);

comment on table discovery_listings is
    'When each ingestion with incremental discovery last listed its whole source prefix; written '
    'in the transaction that commits the run which did (fenced by its lease). Its next full '
    'listing is due options.full_listing_interval later; deleting the row makes it due now.';
comment on column discovery_listings.last_full_listing_at is
    'When the last full listing started (database clock); files that arrived late, sorting before '
    'keys already loaded, are found by the first full listing after them.';
comment on column discovery_listings.run_id is
    'The run that did the full listing.';
comment on column discovery_listings.keys_listed is
    'Keys (files) that full listing found under the prefix, before the ledger was consulted.';
