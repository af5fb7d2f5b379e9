//! One module per subcommand.

pub mod campaign;
pub mod import;
pub mod people;
pub mod segment;
pub mod template;

use std::time::Duration;

/// How often long work is polled for progress.
const POLL_EVERY: Duration = Duration::from_millis(250);
