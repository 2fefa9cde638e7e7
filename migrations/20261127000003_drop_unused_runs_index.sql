-- No query reads runs by (tenant_id, queued_at): the API reaches runs through their id or their
-- ingestion (runs_history). The index only cost every run insert and status change a write.
drop index if exists runs_tenant;
