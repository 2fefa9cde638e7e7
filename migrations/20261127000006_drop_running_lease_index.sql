-- Recovery finds expired leases through runs_one_active_per_ingestion (every RUNNING run is in
-- it) instead of an index on lease_expires_at. Without that index a heartbeat changes no indexed
-- column and can be a HOT update, and a claim writes one index entry fewer.
drop index if exists runs_running_lease;
