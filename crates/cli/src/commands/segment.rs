//! `muster segment count|save|list|show|delete`, and the segment flags
//! campaigns share.

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use serde_json::Value;

use crate::gateway::Gateway;
use crate::models::{SavedSegment, SavedSegments, SegmentCount, decode};
use crate::output::Output;

#[derive(Subcommand)]
pub enum SegmentCommand {
    /// Count the people the filter selects.
    Count(SegmentArgs),
    /// Keep the filter under a name, for counts and campaigns (--saved-segment ID).
    Save {
        /// Unique within the organization.
        name: String,
        #[command(flatten)]
        filter: SegmentArgs,
    },
    /// List the saved segments.
    List,
    /// Show a saved segment and how many people it holds now.
    Show { id: String },
    /// Delete a saved segment; campaigns already launched keep their people.
    Delete { id: String },
}

/// A segment filter: people matching every condition given.
#[derive(Args, Debug, Default)]
pub struct SegmentArgs {
    /// People with at least one of these tags.
    #[arg(long = "tag-any", value_name = "TAG")]
    tags_any: Vec<String>,

    /// People with all of these tags.
    #[arg(long = "tag-all", value_name = "TAG")]
    tags_all: Vec<String>,

    /// People with none of these tags.
    #[arg(long = "tag-none", value_name = "TAG")]
    tags_none: Vec<String>,

    /// People whose e-mail consent is in this state.
    #[arg(long, value_enum)]
    consent: Option<Consent>,

    /// People whose postal code starts with one of these.
    #[arg(long = "postal-prefix", value_name = "PREFIX")]
    postal_prefixes: Vec<String>,

    /// People living in one of these départements ("75", "2A", "971", or a name: "Gironde").
    #[arg(long = "departement", value_name = "CODE")]
    departements: Vec<String>,

    /// People living in one of these communes (INSEE code, "69123").
    #[arg(long = "commune", value_name = "INSEE")]
    communes: Vec<String>,

    /// People living in one of these régions (INSEE code, "84", or a name: "Bretagne").
    #[arg(long = "region", value_name = "CODE")]
    regions: Vec<String>,

    /// Only people with an e-mail address.
    #[arg(long)]
    require_email: bool,

    /// Conditions in the text form, ANDed with the flags, e.g.
    /// 'tag:adhérent AND (departement:75 OR departement:93) AND NOT consent:email=withdrawn'
    /// (grammar: docs/segments.md).
    #[arg(long, value_name = "QUERY")]
    query: Option<String>,

    /// People of this saved segment (`muster segment list`), ANDed with the rest.
    #[arg(long = "saved-segment", value_name = "ID")]
    saved_segment: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
enum Consent {
    Granted,
    None,
    Withdrawn,
    /// Subscribed from a form, waiting for the person to confirm.
    Pending,
}

/// The JSON segment filter of the gateway's API.
#[derive(Serialize)]
struct Filter<'a> {
    tags_any: &'a [String],
    tags_all: &'a [String],
    tags_none: &'a [String],
    email_consent: Option<Consent>,
    postal_code_prefixes: &'a [String],
    departements: &'a [String],
    communes: &'a [String],
    regions: &'a [String],
    require_email: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    saved_segment_id: Option<&'a str>,
}

impl SegmentArgs {
    /// The filter as the gateway takes it.
    pub fn to_json(&self) -> Value {
        let filter = Filter {
            tags_any: &self.tags_any,
            tags_all: &self.tags_all,
            tags_none: &self.tags_none,
            email_consent: self.consent,
            postal_code_prefixes: &self.postal_prefixes,
            departements: &self.departements,
            communes: &self.communes,
            regions: &self.regions,
            require_email: self.require_email,
            query: self.query.as_deref(),
            saved_segment_id: self.saved_segment.as_deref(),
        };
        serde_json::to_value(filter).expect("a filter serializes")
    }
}

pub async fn run(
    command: SegmentCommand,
    gateway: &Gateway,
    output: &Output,
) -> anyhow::Result<()> {
    let raw = match &command {
        SegmentCommand::Count(filter) => {
            gateway
                .post(&["v1", "segments", "count"], &filter.to_json())
                .await?
        }
        SegmentCommand::Save { name, filter } => {
            let body = serde_json::json!({ "name": name, "filter": filter.to_json() });
            gateway.post(&["v1", "segments"], &body).await?
        }
        SegmentCommand::List => list(gateway).await?,
        SegmentCommand::Show { id } => gateway.get(&["v1", "segments", id], &[]).await?,
        SegmentCommand::Delete { id } => gateway.delete(&["v1", "segments", id]).await?,
    };
    if output.is_json() {
        output.print_json(&raw);
        return Ok(());
    }
    match command {
        SegmentCommand::Count(_) => println!("{}", decode::<SegmentCount>(&raw)?.count),
        SegmentCommand::Save { .. } => {
            let saved: SavedSegment = decode(&raw)?;
            println!("Saved {:?} as {}", saved.name, saved.id);
        }
        SegmentCommand::List => {
            let page: SavedSegments = decode(&raw)?;
            for segment in &page.segments {
                println!("{}  {}", segment.id, segment.name);
            }
            if page.segments.is_empty() {
                println!("No saved segments: `muster segment save NAME --query ...` adds one.");
            }
        }
        SegmentCommand::Show { .. } => {
            let segment: SavedSegment = decode(&raw)?;
            let count = segment.count.map_or("?".to_owned(), |n| n.to_string());
            println!("{} ({}): {count} people", segment.name, segment.id);
            println!("{}", serde_json::to_string_pretty(&segment.filter)?);
        }
        SegmentCommand::Delete { id } => println!("Deleted {id}"),
    }
    Ok(())
}

/// Every saved segment, page after page.
async fn list(gateway: &Gateway) -> anyhow::Result<Value> {
    let mut segments = Vec::new();
    let mut token = String::new();
    loop {
        let query = [("page_size", "200".to_owned()), ("page_token", token)];
        let raw = gateway.get(&["v1", "segments"], &query).await?;
        let page: SavedSegments = decode(&raw)?;
        if let Some(items) = raw.get("segments").and_then(Value::as_array) {
            segments.extend(items.iter().cloned());
        }
        match page.next_page_token {
            Some(next) if !next.is_empty() && !page.segments.is_empty() => token = next,
            _ => break,
        }
    }
    Ok(serde_json::json!({ "segments": segments }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_the_gateway_filter() {
        let args = SegmentArgs {
            tags_any: vec!["benevole".into()],
            consent: Some(Consent::Granted),
            departements: vec!["2A".into()],
            ..Default::default()
        };
        let json = args.to_json();
        assert_eq!(json["tags_any"][0], "benevole");
        assert_eq!(json["email_consent"], "granted");
        assert_eq!(json["departements"][0], "2A");
        assert_eq!(json["require_email"], false);
    }

    #[test]
    fn a_query_goes_to_the_gateway_as_written_and_is_left_out_when_absent() {
        let args = SegmentArgs {
            query: Some("tag:adhérent AND NOT consent:email=withdrawn".into()),
            ..Default::default()
        };
        assert_eq!(
            args.to_json()["query"],
            "tag:adhérent AND NOT consent:email=withdrawn"
        );
        assert!(SegmentArgs::default().to_json().get("query").is_none());
    }

    #[test]
    fn a_saved_segment_is_named_by_id_and_left_out_when_absent() {
        let args = SegmentArgs {
            saved_segment: Some("0193b7a0-0000-7000-8000-000000000001".into()),
            ..Default::default()
        };
        assert_eq!(
            args.to_json()["saved_segment_id"],
            "0193b7a0-0000-7000-8000-000000000001"
        );
        assert!(
            SegmentArgs::default()
                .to_json()
                .get("saved_segment_id")
                .is_none()
        );
    }

    #[test]
    fn no_consent_flag_means_any_consent() {
        assert_eq!(
            SegmentArgs::default().to_json()["email_consent"],
            Value::Null
        );
    }
}
