//! The parts of the gateway's JSON answers that the summaries show. Missing
//! fields take defaults, so a newer gateway does not break an older client.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Reads a typed view of a JSON answer.
pub fn decode<T: DeserializeOwned>(value: &Value) -> anyhow::Result<T> {
    T::deserialize(value)
        .map_err(|error| anyhow::anyhow!("the gateway answered in an unexpected shape: {error}"))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ImportJob {
    pub id: String,
    pub state: String,
    pub file_name: String,
    pub size_bytes: u64,
    pub bytes_read: u64,
    pub counts: ImportCounts,
    pub encoding: Option<String>,
    pub delimiter: Option<String>,
    pub error: Option<String>,
    pub create_time: Option<String>,
}

impl ImportJob {
    /// Whether the import has stopped, well or not.
    pub fn is_finished(&self) -> bool {
        matches!(self.state.as_str(), "succeeded" | "failed")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ImportCounts {
    pub rows_read: u64,
    pub rows_empty: u64,
    pub created: u64,
    pub merged: u64,
    pub rejected: u64,
    pub warnings: u64,
    pub consent_granted: u64,
    pub suppressed: u64,
    pub duplicates_listed: u64,
    pub duplicates_merged: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ImportIssue {
    pub line: u64,
    pub field: String,
    pub value: String,
    pub reason: String,
    pub severity: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ImportPage {
    pub imports: Vec<ImportJob>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct IssuePage {
    pub issues: Vec<ImportIssue>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Person {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub email_consent: Option<Consent>,
    pub tags: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Consent {
    pub state: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PeoplePage {
    pub people: Vec<Value>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Campaign {
    pub id: String,
    pub name: String,
    pub state: String,
    pub counts: DeliveryCounts,
}

impl Campaign {
    /// Whether nothing more will happen to the campaign's deliveries.
    pub fn is_finished(&self) -> bool {
        matches!(self.state.as_str(), "completed" | "cancelled")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeliveryCounts {
    pub total: u64,
    pub queued: u64,
    pub sending: u64,
    pub sent: u64,
    pub failed: u64,
    pub suppressed: u64,
    pub cancelled: u64,
    pub unknown: u64,
    /// Sent, then bounced (also counted in `sent`).
    pub bounced: u64,
    /// Sent, then reported as spam (also counted in `sent`).
    pub complained: u64,
}

impl DeliveryCounts {
    /// Deliveries that reached an end state.
    pub fn done(&self) -> u64 {
        self.sent + self.failed + self.suppressed + self.cancelled + self.unknown
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CampaignPage {
    pub campaigns: Vec<Campaign>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Created {
    pub id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SegmentCount {
    pub count: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SavedSegment {
    pub id: String,
    pub name: String,
    pub filter: Value,
    pub count: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SavedSegments {
    pub segments: Vec<SavedSegment>,
    pub next_page_token: Option<String>,
}
