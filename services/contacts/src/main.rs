//! `muster-contacts [serve|worker|relay|all|migrate]`

use muster_contacts::{Mode, Settings};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mode = match std::env::args().nth(1).as_deref() {
        None | Some("all") => Some(Mode::All),
        Some("serve") => Some(Mode::Serve),
        Some("worker") => Some(Mode::Worker),
        Some("relay") => Some(Mode::Relay),
        Some("migrate") => None,
        Some(other) => {
            eprintln!("unknown mode {other:?}: use serve, worker, relay, all or migrate");
            return std::process::ExitCode::from(2);
        }
    };
    match run(mode).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "contacts stopped");
            eprintln!("muster-contacts: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(mode: Option<Mode>) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let _telemetry = muster_runtime::telemetry::init("muster-contacts", &settings.telemetry)?;
    let Some(mode) = mode else {
        return muster_contacts::migrate(&settings).await;
    };
    let shutdown = muster_runtime::shutdown::on_signals();
    muster_contacts::build(settings, mode)
        .await?
        .run(shutdown)
        .await
}
