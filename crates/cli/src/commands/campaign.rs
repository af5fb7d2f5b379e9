//! `muster campaign`: create, list, launch, pause, resume, cancel, and
//! follow a campaign's deliveries.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::POLL_EVERY;
use super::segment::SegmentArgs;
use crate::gateway::Gateway;
use crate::models::{Campaign, CampaignPage, decode};
use crate::output::{ITEMS, Output};

#[derive(Subcommand)]
pub enum CampaignCommand {
    /// Create a draft campaign; prints its id.
    Create(Box<CreateArgs>),
    /// List campaigns.
    List,
    /// Launch a draft: its audience is fixed and sending starts.
    Launch {
        id: String,
        /// Show progress until the campaign completes.
        #[arg(long)]
        follow: bool,
    },
    /// Pause sending.
    Pause { id: String },
    /// Resume a paused campaign.
    Resume { id: String },
    /// Cancel what has not been sent yet.
    Cancel { id: String },
    /// Show a campaign's deliveries.
    Status {
        id: String,
        /// Show progress until the campaign completes.
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Args)]
pub struct CreateArgs {
    #[arg(long)]
    name: String,

    /// The template's id (`muster template create` prints it).
    #[arg(long = "template", value_name = "ID")]
    template_id: String,

    /// The sender's address.
    #[arg(long)]
    from_email: String,

    /// The sender's name.
    #[arg(long)]
    from_name: Option<String>,

    /// Where replies go.
    #[arg(long)]
    reply_to: Option<String>,

    #[command(flatten)]
    segment: SegmentArgs,
}

pub async fn run(
    command: CampaignCommand,
    gateway: &Gateway,
    output: &Output,
) -> anyhow::Result<()> {
    match command {
        CampaignCommand::Create(args) => create(*args, gateway, output).await,
        CampaignCommand::List => list(gateway, output).await,
        CampaignCommand::Launch { id, follow } => act(gateway, output, &id, "launch", follow).await,
        CampaignCommand::Pause { id } => act(gateway, output, &id, "pause", false).await,
        CampaignCommand::Resume { id } => act(gateway, output, &id, "resume", false).await,
        CampaignCommand::Cancel { id } => act(gateway, output, &id, "cancel", false).await,
        CampaignCommand::Status { id, follow } => {
            let raw = gateway.get(&["v1", "campaigns", &id], &[]).await?;
            show(gateway, output, raw, follow).await
        }
    }
}

async fn create(args: CreateArgs, gateway: &Gateway, output: &Output) -> anyhow::Result<()> {
    let body = json!({
        "name": args.name,
        "template_id": args.template_id,
        "segment": args.segment.to_json(),
        "from_name": args.from_name.unwrap_or_default(),
        "from_email": args.from_email,
        "reply_to": args.reply_to.unwrap_or_default(),
    });
    let raw = gateway.post(&["v1", "campaigns"], &body).await?;

    if output.is_json() {
        output.print_json(&raw);
    } else {
        println!("{}", decode::<Campaign>(&raw)?.id);
    }
    Ok(())
}

async fn list(gateway: &Gateway, output: &Output) -> anyhow::Result<()> {
    let mut all: Vec<Value> = Vec::new();
    let mut token = String::new();
    loop {
        let query = [
            ("page_size", "100".to_owned()),
            ("page_token", token.clone()),
        ];
        let raw = gateway.get(&["v1", "campaigns"], &query).await?;
        all.extend(
            raw.get("campaigns")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        );
        match decode::<CampaignPage>(&raw)?.next_page_token {
            Some(next) if !next.is_empty() => token = next,
            _ => break,
        }
    }

    if output.is_json() {
        output.print_json(&json!({ "campaigns": all }));
        return Ok(());
    }
    for raw in &all {
        let campaign: Campaign = decode(raw)?;
        let counts = &campaign.counts;
        println!(
            "{}  {:<10} {:>7}/{:<7} {}",
            campaign.id,
            campaign.state,
            counts.done(),
            counts.total,
            campaign.name
        );
    }
    Ok(())
}

/// `POST /v1/campaigns/{id}/{action}`, then the campaign's state.
async fn act(
    gateway: &Gateway,
    output: &Output,
    id: &str,
    action: &str,
    follow: bool,
) -> anyhow::Result<()> {
    let raw = gateway
        .post(&["v1", "campaigns", id, action], &json!({}))
        .await?;
    show(gateway, output, raw, follow).await
}

async fn show(gateway: &Gateway, output: &Output, raw: Value, follow: bool) -> anyhow::Result<()> {
    let raw = if follow {
        follow_until_done(gateway, output, raw).await?
    } else {
        raw
    };
    if output.is_json() {
        output.print_json(&raw);
    } else {
        print_counts(&decode(&raw)?);
    }
    Ok(())
}

/// Polls the campaign until it is completed or cancelled; returns its last state.
async fn follow_until_done(
    gateway: &Gateway,
    output: &Output,
    mut raw: Value,
) -> anyhow::Result<Value> {
    let bar = output.bar(0, "sending", ITEMS);
    loop {
        let campaign: Campaign = decode(&raw)?;
        if campaign.state == "draft" {
            bar.finish_and_clear();
            anyhow::bail!(
                "campaign {} is a draft; `muster campaign launch {} --follow` sends it",
                campaign.id,
                campaign.id
            );
        }
        bar.set_length(campaign.counts.total);
        bar.set_position(campaign.counts.done());
        bar.set_message(campaign.state.clone());
        if campaign.is_finished() {
            bar.finish_and_clear();
            return Ok(raw);
        }

        tokio::time::sleep(POLL_EVERY).await;
        raw = gateway.get(&["v1", "campaigns", &campaign.id], &[]).await?;
    }
}

fn print_counts(campaign: &Campaign) {
    let counts = &campaign.counts;
    println!(
        "Campaign {} ({}): {}",
        campaign.id, campaign.name, campaign.state
    );
    println!("  total       {}", counts.total);
    if counts.queued + counts.sending > 0 {
        println!("  queued      {}", counts.queued);
        println!("  sending     {}", counts.sending);
    }
    println!("  sent        {}", counts.sent);
    println!("  failed      {}", counts.failed);
    println!("  suppressed  {}", counts.suppressed);
    println!("  cancelled   {}", counts.cancelled);
    if counts.unknown > 0 {
        println!(
            "  unknown     {}  (handed over, result not recorded; never re-sent)",
            counts.unknown
        );
    }
    if counts.bounced + counts.complained > 0 {
        println!("  bounced     {}  (of the sent)", counts.bounced);
        println!("  complained  {}  (of the sent)", counts.complained);
    }
}
