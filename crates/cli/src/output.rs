//! What the user sees: summaries and progress bars, or raw JSON with `--json`.

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

/// Summaries for people, JSON for scripts.
pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether answers are printed as JSON.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints `value` as indented JSON.
    pub fn print_json(&self, value: &Value) {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
        );
    }

    /// A progress bar on stderr; hidden with `--json` so that stdout stays JSON
    /// and stderr stays quiet. `template` is an indicatif template.
    pub fn bar(&self, length: u64, prefix: &'static str, template: &str) -> ProgressBar {
        if self.json {
            return ProgressBar::hidden();
        }
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        ProgressBar::new(length)
            .with_style(style)
            .with_prefix(prefix)
    }
}

/// Bytes with a bar, a count and a message.
pub const BYTES: &str = "{prefix:>9} [{bar:30}] {bytes}/{total_bytes} {msg}";
/// Items with a bar, a count and a message.
pub const ITEMS: &str = "{prefix:>9} [{bar:30}] {pos}/{len} {msg}";
