-- Sessions of the dashboard (/ui). The browser holds a random session id in an HttpOnly cookie;
-- only its SHA-256 is stored here. A session acts for one tenant token (token_id, tenant_id), or
-- for the admin token (both null, admin_digest the SHA-256 of the admin token's digest, so a new
-- AUTOLOADER_ADMIN_TOKEN ends the old admin sessions). A revoked or expired token, or a
-- suspended tenant, ends the session at its next request (see src/ui_sessions.rs); deleting the
-- token or the tenant deletes it at once.
create table ui_sessions (
    id_sha256 bytea primary key
        constraint ui_sessions_id_length check (length(id_sha256) = 32),
    token_id uuid references api_tokens (id) on delete cascade,
    tenant_id uuid references tenants (id) on delete cascade,
    admin_digest bytea
        constraint ui_sessions_admin_digest_length check (length(admin_digest) = 32),
    csrf_token text not null
        constraint ui_sessions_csrf_length check (char_length(csrf_token) between 32 and 128),
    created_at timestamptz not null default now(),
    last_seen_at timestamptz not null default now(),
    expires_at timestamptz not null,
    constraint ui_sessions_one_holder
        check ((token_id is not null and tenant_id is not null and admin_digest is null)
               or (token_id is null and tenant_id is null and admin_digest is not null))
);

create index ui_sessions_token on ui_sessions (token_id, created_at);
create index ui_sessions_admin on ui_sessions (created_at) where token_id is null;
create index ui_sessions_expires on ui_sessions (expires_at);

comment on table ui_sessions is
    'Dashboard sessions: the SHA-256 of the cookie''s session id, whom it acts for, its CSRF token and its idle expiry.';
