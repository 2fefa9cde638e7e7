//! `autoloader-api`: serves the admin API (the default), or runs one administrative command.

use std::net::SocketAddr;

use anyhow::{bail, Context};
use autoloader::config::{
    CatchupConfig, DatabaseConfig, EgressConfig, FileRootsConfig, LimitsConfig, QuotaConfig,
    SecretKeyConfig,
};
use autoloader::ingestions::definition::ScheduleFields;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};

/// Autoloader's admin API: ingestions, schedules, runs and health checks over HTTP.
///
/// With no command it serves the API. Commands: `preview` prints a schedule's upcoming runs
/// without a database; `create-token` creates a tenant (if needed) and prints a new token;
/// `dry-run` prints what an ingestion's next run would load.
#[derive(Debug, Parser)]
#[command(
    name = "autoloader-api",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    database: DatabaseConfig,

    /// Address and port to listen on.
    #[arg(long, env = "AUTOLOADER_API_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,

    /// Token that authorises the tenant administration endpoints (/api/v1/admin/...).
    /// Unset: those endpoints answer 403.
    #[arg(long, env = "AUTOLOADER_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,

    /// Bearer token scrapers of /metrics must send. Unset: /metrics answers whoever reaches it
    /// (it shows fleet-wide counts, no tenant's data).
    #[arg(long, env = "AUTOLOADER_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,

    /// Do not apply database migrations at start (apply them with `make migrate` or
    /// `autoloader-api --migrate-only` instead).
    #[arg(long, env = "AUTOLOADER_SKIP_MIGRATIONS", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    skip_migrations: bool,

    #[command(flatten)]
    file_roots: FileRootsConfig,

    #[command(flatten)]
    egress: EgressConfig,

    #[command(flatten)]
    limits: LimitsConfig,

    #[command(flatten)]
    quotas: QuotaConfig,

    #[command(flatten)]
    secrets: SecretKeyConfig,

    #[command(flatten)]
    catchup: CatchupConfig,

    /// Apply pending migrations, then exit.
    #[arg(long, conflicts_with = "skip_migrations")]
    migrate_only: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a schedule's upcoming runs (UTC and local time), validated as the API validates it.
    Preview(PreviewArgs),
    /// Create a tenant if it does not exist and print a new API token for it.
    CreateToken(CreateTokenArgs),
    /// Seal every stored secret under AUTOLOADER_SECRET_KEY: those sealed with
    /// AUTOLOADER_SECRET_KEY_PREVIOUS and those stored in the clear. Safe to run again, and
    /// while the service runs.
    RotateSecrets(RotateSecretsArgs),
    /// Print what an ingestion's next run would load (JSON), as `POST
    /// /api/v1/ingestions/{id}/dry-run` answers: a worker works it out, writing nothing.
    DryRun(DryRunArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["ingestion", "definition"])))]
struct DryRunArgs {
    #[command(flatten)]
    database: DatabaseConfig,
    #[command(flatten)]
    file_roots: FileRootsConfig,
    #[command(flatten)]
    egress: EgressConfig,
    #[command(flatten)]
    limits: LimitsConfig,
    #[command(flatten)]
    secrets: SecretKeyConfig,
    /// The tenant's name.
    #[arg(long)]
    tenant: String,
    /// A saved ingestion's id.
    #[arg(long)]
    ingestion: Option<uuid::Uuid>,
    /// A JSON file holding an unsaved definition, as `POST /api/v1/ingestions` takes it.
    #[arg(long)]
    definition: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
struct RotateSecretsArgs {
    #[command(flatten)]
    database: DatabaseConfig,
    #[command(flatten)]
    secrets: SecretKeyConfig,
}

#[derive(Debug, Args)]
struct PreviewArgs {
    /// hourly, daily, weekly or custom.
    #[arg(long)]
    frequency: String,
    /// HH:MM, for daily and weekly.
    #[arg(long)]
    time: Option<String>,
    /// IANA time zone.
    #[arg(long, default_value = "UTC")]
    timezone: String,
    /// 5-field cron expression, for custom.
    #[arg(long)]
    cron: Option<String>,
    /// RFC 3339 instant to start from (default: now).
    #[arg(long)]
    from: Option<DateTime<Utc>>,
    /// How many runs to print (1 to 1000).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    count: u16,
}

#[derive(Debug, Args)]
struct CreateTokenArgs {
    #[command(flatten)]
    database: DatabaseConfig,
    /// The tenant's name.
    #[arg(long, default_value = "dev")]
    tenant: String,
    /// What the token is for.
    #[arg(long, default_value = "created from the command line")]
    label: String,
    /// Directories the tenant's `file://` sources may read, colon-separated (set on the tenant,
    /// new or existing; the worker still holds them to its AUTOLOADER_FILE_ROOTS).
    #[arg(long, value_delimiter = ':')]
    file_roots: Option<Vec<String>>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    autoloader::config::load_dotenv();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Preview(args)) => preview(args),
        Some(Command::CreateToken(args)) => create_token(args).await,
        Some(Command::RotateSecrets(args)) => rotate_secrets(args).await,
        Some(Command::DryRun(args)) => dry_run(args).await,
        None => serve(cli.serve).await,
    }
}

fn preview(args: PreviewArgs) -> anyhow::Result<()> {
    let fields = ScheduleFields {
        frequency: Some(args.frequency),
        time: args.time,
        timezone: Some(args.timezone),
        cron: args.cron,
        enabled: true,
    };
    let schedule = match fields.validate() {
        Ok(Some(s)) => s,
        Ok(None) => bail!("no schedule given"),
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            bail!("invalid schedule");
        }
    };
    let from = args.from.unwrap_or_else(Utc::now);
    println!(
        "cron: {}  timezone: {}",
        schedule.cron_expression(),
        schedule.timezone().name()
    );
    for fire in schedule.upcoming_detailed(from, usize::from(args.count)) {
        let mut note = String::new();
        if fire.shifted_by_dst_gap {
            note = format!(
                "  (shifted by a DST gap from {})",
                fire.nominal_local.format("%H:%M")
            );
        }
        if fire.repeated_in_dst_overlap {
            note = "  (second occurrence: the clock fell back)".to_owned();
        }
        println!(
            "{}  {}{note}",
            fire.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            fire.local.format("%Y-%m-%d %H:%M %Z")
        );
    }
    Ok(())
}

async fn rotate_secrets(args: RotateSecretsArgs) -> anyhow::Result<()> {
    use autoloader::ingestions::store;
    autoloader::telemetry::init("warn");
    let Some(keys) = args.secrets.resolve().map_err(anyhow::Error::msg)? else {
        bail!("AUTOLOADER_SECRET_KEY is not set: there is no key to seal secrets under");
    };
    let pool = autoloader::db::connect(&args.database, "autoloader-api").await?;
    let (mut rotated, mut sealed, mut failed) = (0usize, 0usize, 0usize);
    let mut after = uuid::Uuid::nil();
    loop {
        let page = store::ingestion_options_after(&pool, after, 500).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for row in page {
            let mut stored = row;
            // An edit between the read and the write wins; read it again, a few times at most.
            for _ in 0..5 {
                let mut options = stored.options.clone();
                match autoloader::secrets::reseal_options(&keys, stored.tenant_id, &mut options) {
                    Err(e) => {
                        eprintln!("ingestion {}: {e}", stored.id);
                        failed += 1;
                        break;
                    }
                    Ok(done) if done == Default::default() => break,
                    Ok(done) => {
                        if store::ingestion_options_swap(
                            &pool,
                            stored.id,
                            &stored.options,
                            &options,
                            &autoloader::audit::Actor::cli(),
                        )
                        .await?
                        {
                            rotated += done.rotated;
                            sealed += done.sealed;
                            break;
                        }
                        let Some(fresh) = store::ingestion_options_get(&pool, stored.id).await?
                        else {
                            break;
                        };
                        stored = fresh;
                    }
                }
            }
        }
    }
    println!(
        "secrets under key {}: {rotated} moved from the previous key, {sealed} sealed that were \
         in the clear, {failed} that do not open",
        keys.key_id()
    );
    if failed > 0 {
        bail!("{failed} secrets do not open with AUTOLOADER_SECRET_KEY or AUTOLOADER_SECRET_KEY_PREVIOUS");
    }
    Ok(())
}

async fn dry_run(args: DryRunArgs) -> anyhow::Result<()> {
    use autoloader_api::dry_runs::{request, Target};
    autoloader::telemetry::init("warn");
    let target = match (args.ingestion, &args.definition) {
        (Some(id), _) => Target::Saved(id),
        (None, Some(file)) => {
            // A definition file is small; a bigger one is no definition.
            let meta = std::fs::metadata(file).with_context(|| format!("{}", file.display()))?;
            if meta.len() > 1 << 20 {
                bail!("{}: larger than 1 MiB", file.display());
            }
            let text = std::fs::read(file).with_context(|| format!("{}", file.display()))?;
            let body: autoloader_api::model::IngestionCreate = serde_json::from_slice(&text)
                .with_context(|| format!("{}: not an ingestion definition", file.display()))?;
            Target::Unsaved(Box::new(body))
        }
        (None, None) => bail!("give --ingestion or --definition"),
    };
    let pool = autoloader::db::connect(&args.database, "autoloader-api").await?;
    let Some(tenant) = autoloader::tenants::tenant_by_name(&pool, &args.tenant).await? else {
        bail!("no tenant named '{}'", args.tenant);
    };
    let state = autoloader_api::AppState::new(pool, None)
        .with_file_roots(args.file_roots.resolve().map_err(anyhow::Error::msg)?)
        .with_egress(args.egress.resolve().map_err(anyhow::Error::msg)?)
        .with_limits(args.limits.limits())
        .with_secret_keys(args.secrets.resolve().map_err(anyhow::Error::msg)?);
    match request(&state, tenant, target).await {
        Ok(result) => {
            println!("{}", serde_json::to_string_pretty(&result)?);
            Ok(())
        }
        Err(autoloader_api::error::ApiError::Validation(problems)) => {
            for p in &problems {
                eprintln!("{}: {}", p.field, p.message);
            }
            bail!("invalid definition");
        }
        Err(e) => bail!("{e}"),
    }
}

async fn create_token(args: CreateTokenArgs) -> anyhow::Result<()> {
    autoloader::telemetry::init("warn");
    let pool = autoloader::db::connect(&args.database, "autoloader-api").await?;
    let existing = autoloader::tenants::tenant_by_name(&pool, &args.tenant).await?;
    let (tenant_id, token) = match existing {
        Some(id) => {
            let token = autoloader_api::admin::issue_token(&pool, id, &args.label)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            (id, token)
        }
        None => {
            let created = autoloader_api::admin::create_tenant_with_token(
                &pool,
                &args.tenant,
                None,
                &args.label,
                &autoloader::audit::Actor::cli(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            (created.tenant_id, created.token)
        }
    };
    if let Some(roots) = args.file_roots {
        let roots: Vec<String> = roots.into_iter().filter(|r| !r.is_empty()).collect();
        if let Some(bad) = roots.iter().find(|r| !r.starts_with('/')) {
            bail!("--file-roots: '{bad}' is not an absolute path");
        }
        let change = autoloader::tenants::TenantChange {
            file_roots: Some(roots),
            ..Default::default()
        };
        autoloader::tenants::tenant_update(
            &pool,
            tenant_id,
            &change,
            &autoloader::audit::Actor::cli(),
        )
        .await?;
    }
    println!("tenant {} ({tenant_id})", args.tenant);
    println!("AUTOLOADER_TOKEN={token}");
    Ok(())
}

async fn serve(cli: ServeArgs) -> anyhow::Result<()> {
    autoloader::telemetry::init("info");
    let pool = autoloader::db::connect(&cli.database, "autoloader-api").await?;
    if !cli.skip_migrations {
        autoloader::db::migrate(&pool).await?;
        tracing::info!("database schema is up to date");
    }
    if cli.migrate_only {
        return Ok(());
    }
    if cli.admin_token.is_none() {
        tracing::warn!("AUTOLOADER_ADMIN_TOKEN is unset: tenant administration is disabled");
    }
    let listener = tokio::net::TcpListener::bind(cli.addr)
        .await
        .with_context(|| format!("cannot listen on {}", cli.addr))?;
    tracing::info!(addr = %listener.local_addr()?, "autoloader-api listening");
    let file_roots = cli.file_roots.resolve().map_err(anyhow::Error::msg)?;
    let secret_keys = cli.secrets.resolve().map_err(anyhow::Error::msg)?;
    match &secret_keys {
        Some(k) => tracing::info!(key_id = k.key_id(), "secrets are sealed at rest"),
        None => tracing::warn!(
            "AUTOLOADER_SECRET_KEY is unset: ingestions that give a secret option are refused"
        ),
    }
    let egress = cli.egress.resolve().map_err(anyhow::Error::msg)?;
    let state = autoloader_api::AppState::new(pool, cli.admin_token.as_deref())
        .with_file_roots(file_roots)
        .with_egress(egress)
        .with_limits(cli.limits.limits())
        .with_default_catchup(cli.catchup.default_catchup())
        .with_quotas(cli.quotas)
        .with_secret_keys(secret_keys)
        .with_metrics_token(cli.metrics_token.as_deref());
    state.listen();
    let live = state.ui.live.clone();
    let app = autoloader_api::app(state);
    let shutdown = autoloader::signals::shutdown_on_signals();
    // Open dashboard pages' event streams end at once, so they do not hold up the shutdown.
    let closing = shutdown.clone();
    tokio::spawn(async move {
        closing.cancelled().await;
        live.close();
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    tracing::info!("autoloader-api stopped");
    Ok(())
}
