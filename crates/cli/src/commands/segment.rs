//! `muster segment count`, and the segment flags campaigns share.

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use serde_json::Value;

use crate::gateway::Gateway;
use crate::models::{SegmentCount, decode};
use crate::output::Output;

#[derive(Subcommand)]
pub enum SegmentCommand {
    /// Count the people the filter selects.
    Count(SegmentArgs),
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

    /// People living in one of these départements ("75", "2A", "971").
    #[arg(long = "departement", value_name = "CODE")]
    departements: Vec<String>,

    /// People living in one of these communes (INSEE code, "69123").
    #[arg(long = "commune", value_name = "INSEE")]
    communes: Vec<String>,

    /// People living in one of these régions (code, "84").
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
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
enum Consent {
    Granted,
    None,
    Withdrawn,
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
        };
        serde_json::to_value(filter).expect("a filter serializes")
    }
}

pub async fn run(
    command: SegmentCommand,
    gateway: &Gateway,
    output: &Output,
) -> anyhow::Result<()> {
    let SegmentCommand::Count(filter) = command;
    let raw = gateway
        .post(&["v1", "segments", "count"], &filter.to_json())
        .await?;

    if output.is_json() {
        output.print_json(&raw);
    } else {
        let count: SegmentCount = decode(&raw)?;
        println!("{}", count.count);
    }
    Ok(())
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
    fn no_consent_flag_means_any_consent() {
        assert_eq!(
            SegmentArgs::default().to_json()["email_consent"],
            Value::Null
        );
    }
}
