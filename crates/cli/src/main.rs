//! `muster`: the everyday jobs through the gateway's REST API — import a
//! file of people, count a segment, create and follow a campaign — with
//! progress bars on long work and `--json` for scripts.

mod commands;
mod gateway;
mod models;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::{campaign, import, people, segment, template};
use crate::gateway::{Gateway, GatewayError};
use crate::output::Output;

#[derive(Parser)]
#[command(
    name = "muster",
    version,
    about = "Muster from the command line, through the gateway"
)]
struct Cli {
    /// The gateway's address.
    #[arg(
        long,
        global = true,
        env = "MUSTER_GATEWAY_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    gateway: String,

    /// An API key, as printed by `muster-gateway create-tenant`.
    #[arg(long, global = true, env = "MUSTER_API_KEY", hide_env_values = true)]
    api_key: Option<String>,

    /// Print the gateway's JSON answers instead of summaries.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Import a file of people, or look at an import.
    Import(import::ImportArgs),
    /// List people.
    #[command(subcommand)]
    People(people::PeopleCommand),
    /// Count the people a filter selects.
    #[command(subcommand)]
    Segment(segment::SegmentCommand),
    /// Create message templates.
    #[command(subcommand)]
    Template(template::TemplateCommand),
    /// Create, launch and follow campaigns.
    #[command(subcommand)]
    Campaign(campaign::CampaignCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    end_quietly_on_a_closed_pipe();
    let cli = Cli::parse();
    let output = Output::new(cli.json);

    let result = match Gateway::new(&cli.gateway, cli.api_key) {
        Ok(gateway) => run(cli.command, &gateway, &output).await,
        Err(error) => Err(error),
    };

    let Err(error) = result else {
        return ExitCode::SUCCESS;
    };
    eprintln!("error: {error:#}");
    let hint = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<GatewayError>());
    if let Some(hint) = hint.and_then(GatewayError::hint) {
        eprintln!("hint: {hint}");
    }
    ExitCode::FAILURE
}

/// `muster people list | head` closes stdout before the listing ends. Rust
/// ignores SIGPIPE, so the next `println!` would panic; with the default
/// action the process ends silently, as other Unix tools do.
fn end_quietly_on_a_closed_pipe() {
    // SAFETY: restores the default action of one signal; no handler runs
    // Rust code, and nothing in this process relies on SIGPIPE being ignored.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

async fn run(command: Command, gateway: &Gateway, output: &Output) -> anyhow::Result<()> {
    match command {
        Command::Import(args) => import::run(args, gateway, output).await,
        Command::People(command) => people::run(command, gateway, output).await,
        Command::Segment(command) => segment::run(command, gateway, output).await,
        Command::Template(command) => template::run(command, gateway, output).await,
        Command::Campaign(command) => campaign::run(command, gateway, output).await,
    }
}
