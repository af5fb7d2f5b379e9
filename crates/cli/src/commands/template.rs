//! `muster template create`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use crate::gateway::Gateway;
use crate::models::{Created, decode};
use crate::output::Output;

#[derive(Subcommand)]
pub enum TemplateCommand {
    /// Create a template from text (and HTML) files; prints its id.
    Create {
        #[arg(long)]
        name: String,
        /// The subject line; merge fields such as {{ first_name }} work here too.
        #[arg(long)]
        subject: String,
        /// The plain-text body.
        #[arg(long, value_name = "FILE")]
        text_file: PathBuf,
        /// The HTML body.
        #[arg(long, value_name = "FILE")]
        html_file: Option<PathBuf>,
    },
}

pub async fn run(
    command: TemplateCommand,
    gateway: &Gateway,
    output: &Output,
) -> anyhow::Result<()> {
    let TemplateCommand::Create {
        name,
        subject,
        text_file,
        html_file,
    } = command;
    let text_body = read(&text_file).await?;
    let html_body = match html_file {
        Some(path) => read(&path).await?,
        None => String::new(),
    };

    let body = json!({
        "name": name,
        "subject": subject,
        "text_body": text_body,
        "html_body": html_body,
    });
    let raw = gateway.post(&["v1", "templates"], &body).await?;

    if output.is_json() {
        output.print_json(&raw);
    } else {
        println!("{}", decode::<Created>(&raw)?.id);
    }
    Ok(())
}

async fn read(path: &Path) -> anyhow::Result<String> {
    let bytes = tokio::fs::read(path)
        .await
        .with_context(|| format!("cannot read {}", path.display()))?;
    String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", path.display()))
}
