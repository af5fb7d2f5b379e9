//! `muster-gateway`: serve the REST API (the default), apply migrations, or
//! create an organization and print its first API key.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use muster_gateway::Settings;
use muster_runtime::telemetry::LogTo;

/// The exit code of a configuration error (sysexits' EX_CONFIG).
const EXIT_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(name = "muster-gateway", about = "Muster's REST gateway")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the REST API until SIGTERM or Ctrl-C.
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Create an organization and print its first API key (shown only once).
    CreateTenant {
        #[arg(long)]
        name: String,
        /// The country it works in (ISO 3166-1 alpha-2): rows without a
        /// country and national phone numbers are read as being there, and
        /// its form's pages speak French there (FR) unless the visitor reads
        /// only English.
        #[arg(long, default_value = "FR")]
        country: String,
    },
    /// Set the key Mailgun signs an organization's webhooks with (Mailgun's
    /// dashboard: "HTTP webhook signing key"), read from the environment.
    SetMailgunKey {
        #[arg(long)]
        organization: uuid::Uuid,
        #[arg(long, env = "MUSTER_MAILGUN_SIGNING_KEY", hide_env_values = true)]
        key: String,
    },
    /// Print a one-hour internal credential for the organization of an API
    /// key, to call the gRPC services directly (grpcurl, scripts).
    ServiceToken {
        #[arg(long, env = "MUSTER_API_KEY")]
        api_key: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("muster-gateway: {error:#}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };

    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
    let _entered = runtime.enter();
    // Only the server's logs go to standard output; a command prints its
    // answer there (a tenant's id and API key) and logs to standard error.
    let command = cli.command.unwrap_or(Command::Serve);
    let log_to = match command {
        Command::Serve => LogTo::Stdout,
        _ => LogTo::Stderr,
    };
    let telemetry =
        muster_runtime::telemetry::init_to("muster-gateway", &settings.telemetry, log_to);
    let _telemetry = match telemetry {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("muster-gateway: {error:#}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };

    match runtime.block_on(run(command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "muster-gateway failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let application = muster_gateway::build(settings).await?;
            tracing::info!(port = application.port(), "gateway listening");
            application
                .run(muster_runtime::shutdown::on_signals())
                .await
        }
        Command::Migrate => muster_gateway::migrate(&settings.database).await,
        Command::CreateTenant { name, country } => {
            let pool = muster_runtime::db::connect(&settings.database).await?;
            if settings.database.migrate_on_start {
                muster_runtime::db::migrate(&pool, muster_gateway::MIGRATIONS)
                    .await
                    .context("migrating the gateway database")?;
            }
            let country = muster_gateway::country_code(&country)?;
            let (tenant, key) = muster_gateway::create_tenant(&pool, &name).await?;
            muster_gateway::set_default_country(&pool, tenant, &country).await?;
            println!("tenant_id {tenant}");
            println!("api_key   {key}");
            eprintln!("Store the API key now: only its hash is kept, it cannot be shown again.");
            Ok(())
        }
        Command::SetMailgunKey { organization, key } => {
            let pool = muster_runtime::db::connect(&settings.database).await?;
            let tenant = muster_runtime::TenantId::from_uuid(organization);
            let found = muster_gateway::set_mailgun_signing_key(&pool, tenant, &key).await?;
            anyhow::ensure!(found, "no organization {organization}: check its id");
            println!("Mailgun webhooks of {organization} are checked with the new key.");
            println!(
                "Their URL: /webhooks/mailgun?token=<webhooks.token>&organization={organization}"
            );
            Ok(())
        }
        Command::ServiceToken { api_key } => {
            let key = muster_gateway::ApiKey::parse(&api_key)
                .context("that is not an API key (they start with mk_)")?;
            let pool = muster_runtime::db::connect(&settings.database).await?;
            let tenant = muster_gateway::tenant_for_key(&pool, &key)
                .await?
                .context("no organization has this API key (revoked, or mistyped)")?;
            let signer = muster_runtime::auth::Signer::new(&settings.auth.token_secret);
            let hour = std::time::Duration::from_secs(3600);
            println!("{}", signer.mint("cli", Some(tenant), hour));
            Ok(())
        }
    }
}
