//! `muster import`: stream a file to the gateway, follow the import, and
//! summarise it; `muster import status|issues ID`; `muster import list`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use futures::TryStreamExt;
use serde_json::{Value, json};
use tokio_util::io::ReaderStream;

use super::POLL_EVERY;
use crate::gateway::Gateway;
use crate::models::{ImportJob, ImportPage, IssuePage, decode};
use crate::output::{BYTES, Output};

/// Issues shown in a summary; the rest are one command away.
const ISSUES_SHOWN: usize = 10;
const ISSUES_PAGE: i32 = 500;
const UPLOAD_CHUNK: usize = 256 * 1024;
/// An import id that names no import, to check access before an upload.
const PROBE_ID: &str = "00000000-0000-0000-0000-000000000000";

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ImportArgs {
    #[command(subcommand)]
    command: Option<ImportCommand>,

    #[command(flatten)]
    upload: UploadArgs,
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Show an import's progress and counts.
    Status { id: String },
    /// List every issue of an import.
    Issues { id: String },
    /// List the organization's imports, newest first.
    List {
        /// How many to show.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i32).range(1..=1000))]
        limit: i32,
    },
}

#[derive(Args)]
struct UploadArgs {
    /// The file to import (CSV).
    #[arg(required = true)]
    file: Option<PathBuf>,

    /// The file's layout.
    #[arg(long, value_enum, required = true)]
    preset: Option<Preset>,

    /// Where the file comes from, kept with every consent it states.
    #[arg(long, value_name = "LABEL")]
    source_label: Option<String>,

    /// The legal basis (GDPR art. 6) of the consent the file states.
    #[arg(long, value_enum, default_value = "consent")]
    legal_basis: LegalBasis,

    /// The text, or the version, of the notice the file's people were shown.
    #[arg(long, value_name = "TEXT")]
    notice: Option<String>,

    /// With `--preset custom`: the column holding a field, e.g. `email=E-mail`,
    /// or a custom field's, e.g. `custom:membership_year=Année`.
    #[arg(long = "map", value_name = "FIELD=HEADER", value_parser = parse_mapping)]
    map: Vec<(String, String)>,
}

#[derive(Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
enum Preset {
    /// French Excel export (semicolons).
    FrExcel,
    Nationbuilder,
    MailchimpSubscribed,
    MailchimpUnsubscribed,
    /// Columns named with --map.
    Custom,
}

impl Preset {
    fn name(self) -> &'static str {
        match self {
            Self::FrExcel => "fr_excel",
            Self::Nationbuilder => "nationbuilder",
            Self::MailchimpSubscribed => "mailchimp_subscribed",
            Self::MailchimpUnsubscribed => "mailchimp_unsubscribed",
            Self::Custom => "custom",
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
enum LegalBasis {
    Consent,
    Contract,
    LegalObligation,
    VitalInterests,
    PublicTask,
    LegitimateInterests,
}

impl LegalBasis {
    fn name(self) -> &'static str {
        match self {
            Self::Consent => "consent",
            Self::Contract => "contract",
            Self::LegalObligation => "legal_obligation",
            Self::VitalInterests => "vital_interests",
            Self::PublicTask => "public_task",
            Self::LegitimateInterests => "legitimate_interests",
        }
    }
}

/// The fields `--map` can name.
const MAPPED_FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "email",
    "phone",
    "address_line1",
    "postal_code",
    "city",
    "country",
    "birth_date",
    "tags",
    "email_consent",
    "email_consent_time",
    "external_id",
];

fn parse_mapping(raw: &str) -> Result<(String, String), String> {
    let Some((field, header)) = raw.split_once('=').filter(|(_, header)| !header.is_empty()) else {
        return Err(format!("{raw:?} is not FIELD=HEADER (e.g. email=E-mail)"));
    };
    let field = field.trim();
    // A custom field, `custom:KEY`: the gateway checks the key.
    let custom = field
        .strip_prefix("custom:")
        .is_some_and(|key| !key.is_empty());
    if !custom && !MAPPED_FIELDS.contains(&field) {
        return Err(format!(
            "unknown field {field:?}; one of {}, or custom:KEY for a custom field",
            MAPPED_FIELDS.join(", ")
        ));
    }
    Ok((field.to_owned(), header.to_owned()))
}

/// Why `map` cannot be sent: a field given two columns, the last of which
/// would silently win.
fn mapped_twice(map: &[(String, String)]) -> Option<String> {
    map.iter().enumerate().find_map(|(n, (field, header))| {
        map[..n]
            .iter()
            .find(|(earlier, _)| earlier == field)
            .map(|(_, first)| {
                format!("--map {field} is given twice ({first:?}, then {header:?}); keep one")
            })
    })
}

pub async fn run(args: ImportArgs, gateway: &Gateway, output: &Output) -> anyhow::Result<()> {
    match args.command {
        Some(ImportCommand::Status { id }) => {
            let raw = gateway.get(&["v1", "imports", &id], &[]).await?;
            report(gateway, output, &raw).await
        }
        Some(ImportCommand::Issues { id }) => issues(gateway, output, &id).await,
        Some(ImportCommand::List { limit }) => list(gateway, output, limit).await,
        None => upload(args.upload, gateway, output).await,
    }
}

async fn upload(args: UploadArgs, gateway: &Gateway, output: &Output) -> anyhow::Result<()> {
    let (Some(path), Some(preset)) = (args.file, args.preset) else {
        anyhow::bail!("an import needs a FILE and --preset");
    };
    if !args.map.is_empty() && !matches!(preset, Preset::Custom) {
        anyhow::bail!("--map names columns for --preset custom only");
    }
    if let Some(twice) = mapped_twice(&args.map) {
        anyhow::bail!("{twice}");
    }
    let file = tokio::fs::File::open(&path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    let size = file
        .metadata()
        .await
        .with_context(|| format!("reading {}", path.display()))?
        .len();

    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned());
    let mut query = vec![("preset".to_owned(), preset.name().to_owned())];
    query.extend(file_name.map(|name| ("file_name".to_owned(), name)));
    query.extend(
        args.source_label
            .map(|label| ("source_label".to_owned(), label)),
    );
    query.push(("legal_basis".to_owned(), args.legal_basis.name().to_owned()));
    query.extend(args.notice.map(|notice| ("notice".to_owned(), notice)));
    query.extend(
        args.map
            .into_iter()
            .map(|(field, header)| (format!("map.{field}"), header)),
    );

    // A refusal arriving while the file is still being sent reads as a broken
    // connection, so the key and the service are checked before sending.
    gateway.preflight(&["v1", "imports", PROBE_ID]).await?;

    let bar = output.bar(size, "uploading", BYTES);
    let counted = bar.clone();
    let chunks = ReaderStream::with_capacity(file, UPLOAD_CHUNK)
        .inspect_ok(move |chunk| counted.inc(chunk.len() as u64));
    let created = gateway
        .upload(
            &["v1", "imports"],
            &query,
            reqwest::Body::wrap_stream(chunks),
            size,
        )
        .await;
    bar.finish_and_clear();

    let job: ImportJob = decode(&created?)?;
    let finished = follow(gateway, output, &job.id).await?;
    report(gateway, output, &finished).await
}

/// Polls the import until it stops; returns its last state.
async fn follow(gateway: &Gateway, output: &Output, id: &str) -> anyhow::Result<Value> {
    let bar = output.bar(0, "importing", BYTES);
    loop {
        let raw = gateway.get(&["v1", "imports", id], &[]).await?;
        let job: ImportJob = decode(&raw)?;
        bar.set_length(job.size_bytes.max(job.bytes_read));
        bar.set_position(job.bytes_read);
        bar.set_message(format!("{} rows", job.counts.rows_read));
        if job.is_finished() {
            bar.finish_and_clear();
            return Ok(raw);
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Prints an import's summary and its first issues.
async fn report(gateway: &Gateway, output: &Output, raw: &Value) -> anyhow::Result<()> {
    let job: ImportJob = decode(raw)?;
    if output.is_json() {
        output.print_json(raw);
    } else {
        print_summary(&job);
        let first = first_issues(gateway, &job.id).await?;
        print_issues(&job.id, &first);
    }
    match (job.state.as_str(), &job.error) {
        ("failed", Some(error)) => anyhow::bail!("import {} failed: {error}", job.id),
        ("failed", None) => anyhow::bail!("import {} failed", job.id),
        _ => Ok(()),
    }
}

fn print_summary(job: &ImportJob) {
    print!("{}", summary(job));
}

/// The import's state and counts, one per line.
fn summary(job: &ImportJob) -> String {
    let counts = &job.counts;
    // A finished import that never read its header will not detect them.
    let undetected = if job.is_finished() {
        "not detected"
    } else {
        "not detected yet"
    };
    let title = format!("Import {} ({}): {}", job.id, job.file_name, job.state);
    // A file refused at its header: zero counts would only hide the reason.
    if job.state == "failed" && counts.rows_read == 0 {
        return format!("{title}: nothing imported\n");
    }
    let delimiter = job.delimiter.as_deref().map(|d| format!("{d:?}"));
    let lines = [
        title,
        format!(
            "  encoding         {}",
            job.encoding.as_deref().unwrap_or(undetected)
        ),
        format!(
            "  delimiter        {}",
            delimiter.as_deref().unwrap_or(undetected)
        ),
        format!("  rows read        {}", counts.rows_read),
        format!("  empty rows       {}", counts.rows_empty),
        format!("  created          {}", counts.created),
        format!("  merged           {}", counts.merged),
        format!("  rejected         {}", counts.rejected),
        format!("  warned rows      {}", counts.warnings),
        format!("  consent granted  {}", counts.consent_granted),
        format!("  suppressed       {}", counts.suppressed),
        format!(
            "  duplicates       {} to review, {} merged by rule",
            counts.duplicates_listed, counts.duplicates_merged
        ),
    ];
    lines.iter().map(|line| format!("{line}\n")).collect()
}

async fn first_issues(gateway: &Gateway, id: &str) -> anyhow::Result<IssuePage> {
    let query = [("page_size", ISSUES_SHOWN.to_string())];
    let raw = gateway
        .get(&["v1", "imports", id, "issues"], &query)
        .await?;
    decode(&raw)
}

fn print_issues(id: &str, page: &IssuePage) {
    if page.issues.is_empty() {
        return;
    }
    println!();
    println!("Issues:");
    for issue in page.issues.iter().take(ISSUES_SHOWN) {
        println!(
            "  {:<12} {:<12} {} ({:?}, {})",
            place(issue.line),
            issue.field,
            issue.reason,
            issue.value,
            issue.severity
        );
    }
    if page.next_page_token.is_some() || page.issues.len() > ISSUES_SHOWN {
        println!("  …");
    }
    println!("List them all with `muster import issues {id}`.");
}

/// Where an issue is: its line, or the whole file (line 0).
fn place(line: u64) -> String {
    match line {
        0 => "whole file".to_owned(),
        line => format!("line {line}"),
    }
}

/// Prints every issue, page after page.
/// The newest `limit` imports, one line each.
async fn list(gateway: &Gateway, output: &Output, limit: i32) -> anyhow::Result<()> {
    let raw = gateway
        .get(&["v1", "imports"], &[("page_size", limit.to_string())])
        .await?;
    if output.is_json() {
        output.print_json(&raw);
        return Ok(());
    }
    let page: ImportPage = decode(&raw)?;
    if page.imports.is_empty() {
        println!("No imports yet.");
    }
    for job in &page.imports {
        println!("{}", list_line(job));
    }
    Ok(())
}

fn list_line(job: &ImportJob) -> String {
    let c = &job.counts;
    let created = job.create_time.as_deref().unwrap_or("");
    format!(
        "{}  {created:<20}  {:<9}  {} rows: {} created, {} merged, {} rejected  {}",
        job.id, job.state, c.rows_read, c.created, c.merged, c.rejected, job.file_name
    )
}

async fn issues(gateway: &Gateway, output: &Output, id: &str) -> anyhow::Result<()> {
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let query = [
            ("page_size", ISSUES_PAGE.to_string()),
            ("page_token", token.clone()),
        ];
        let raw = gateway
            .get(&["v1", "imports", id, "issues"], &query)
            .await?;
        let page: IssuePage = decode(&raw)?;
        if !output.is_json() {
            for issue in &page.issues {
                let (place, field, reason) = (place(issue.line), &issue.field, &issue.reason);
                println!(
                    "{place:<12} {field:<12} {reason} ({:?}, {})",
                    issue.value, issue.severity
                );
            }
        }
        all.extend(
            raw.get("issues")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        );
        match page.next_page_token {
            Some(next) if !next.is_empty() => token = next,
            _ => break,
        }
    }
    if output.is_json() {
        output.print_json(&json!({ "issues": all }));
    } else if all.is_empty() {
        println!("No issues.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issue_of_the_whole_file_is_not_on_a_line() {
        assert_eq!(place(0), "whole file");
        assert_eq!(place(12), "line 12");
    }

    #[test]
    fn a_mapping_is_field_equals_header() {
        assert_eq!(
            parse_mapping("email=E-mail").unwrap(),
            ("email".into(), "E-mail".into())
        );
        assert_eq!(
            parse_mapping("tags=a=b").unwrap(),
            ("tags".into(), "a=b".into())
        );
        assert!(parse_mapping("email").is_err());
        assert!(parse_mapping("=E-mail").is_err());
        assert!(
            parse_mapping("emial=E-mail")
                .unwrap_err()
                .contains("first_name")
        );
        assert_eq!(
            parse_mapping("custom:membership_year=Année").unwrap(),
            ("custom:membership_year".into(), "Année".into())
        );
        assert!(parse_mapping("custom:=Année").is_err());
    }

    #[test]
    fn an_import_is_listed_on_one_line_with_its_counts() {
        let job: ImportJob = decode(&json!({
            "id": "0190", "state": "succeeded", "file_name": "adherents.csv",
            "create_time": "2026-12-05T09:00:00Z",
            "counts": {"rows_read": 12, "created": 9, "merged": 2, "rejected": 1}
        }))
        .unwrap();

        let line = list_line(&job);

        assert!(
            line.starts_with("0190  2026-12-05T09:00:00Z  succeeded"),
            "{line}"
        );
        assert!(
            line.ends_with("12 rows: 9 created, 2 merged, 1 rejected  adherents.csv"),
            "{line}"
        );
    }

    #[test]
    fn a_field_mapped_twice_is_refused() {
        let map = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(f, h)| (f.to_string(), h.to_string()))
                .collect()
        };

        assert_eq!(mapped_twice(&map(&[("email", "A"), ("phone", "B")])), None);
        assert_eq!(
            mapped_twice(&map(&[("email", "A"), ("phone", "B"), ("email", "C")])).as_deref(),
            Some("--map email is given twice (\"A\", then \"C\"); keep one")
        );
    }

    #[test]
    fn an_import_refused_at_its_header_shows_no_counts_before_its_reason() {
        let job = ImportJob {
            id: "i1".into(),
            file_name: "a.csv".into(),
            state: "failed".into(),
            ..ImportJob::default()
        };

        assert_eq!(
            summary(&job),
            "Import i1 (a.csv): failed: nothing imported\n"
        );
    }

    #[test]
    fn a_legal_basis_flag_is_sent_by_its_api_name() {
        for basis in LegalBasis::value_variants() {
            let flag = basis.to_possible_value().unwrap();
            assert_eq!(flag.get_name(), basis.name());
        }
        assert!(LegalBasis::from_str("goodwill", false).is_err());
    }

    #[test]
    fn a_failed_import_is_not_still_detecting_its_encoding() {
        let mut job = ImportJob {
            state: "running".into(),
            ..ImportJob::default()
        };
        job.counts.duplicates_listed = 3;
        assert!(summary(&job).contains("encoding         not detected yet\n"));
        assert!(summary(&job).contains("duplicates       3 to review, 0 merged by rule\n"));
        job.state = "failed".into();
        job.counts.rows_read = 12;
        assert!(summary(&job).contains("encoding         not detected\n"));
        assert!(summary(&job).contains("delimiter        not detected\n"));
        job.encoding = Some("windows-1252".into());
        assert!(summary(&job).contains("encoding         windows-1252\n"));
    }
}
