//! When messages left and arrived, and how many fell in one window: how the
//! rate-limit tests measure what a limit let through.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use sqlx::PgPool;

/// When the SMTP sink finished receiving each message under `dir` (its
/// file's mtime), in µs since the epoch.
pub fn received_at(dir: &Path) -> anyhow::Result<Vec<i64>> {
    let mut out = Vec::new();
    collect_received(dir, &mut out)?;
    Ok(out)
}

fn collect_received(dir: &Path, out: &mut Vec<i64>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            collect_received(&entry.path(), out)?;
            continue;
        }
        let modified = entry.metadata()?.modified()?;
        out.push(modified.duration_since(UNIX_EPOCH)?.as_micros() as i64);
    }
    Ok(())
}

/// When each delivery of `campaign` was recorded sent, in µs since the epoch.
pub async fn sent_at(pool: &PgPool, campaign: &str) -> anyhow::Result<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT (extract(epoch FROM sent_at) * 1000000)::bigint FROM deliveries
         WHERE campaign_id = $1::uuid AND sent_at IS NOT NULL",
    )
    .bind(campaign)
    .fetch_all(pool)
    .await?)
}

/// The most instants in any half-open window of `window`, and the first
/// instant of that window.
pub fn most_in_window(times: &[i64], window: Duration) -> (usize, i64) {
    let window = window.as_micros() as i64;
    let mut times = times.to_vec();
    times.sort_unstable();
    let mut start = 0;
    let mut most = (0, 0);
    for end in 0..times.len() {
        while times[end] - times[start] >= window {
            start += 1;
        }
        if end - start + 1 > most.0 {
            most = (end - start + 1, times[start]);
        }
    }
    most
}

/// The most messages a limit of `limit` per second with `burst` lets the sink
/// see in one second. The limiter grants at most limit + burst turns in any
/// second; the sink and the recorded answers see each message later, by the
/// time SMTP and the database take, which shifts under load: a window of
/// received times spans up to 200 ms more of granted ones.
pub fn per_second_ceiling(limit: u32, burst: u32) -> usize {
    (limit + burst + limit / 5) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_window_is_found_and_its_end_is_open() {
        let second = Duration::from_secs(1);
        let times = [0, 999_999, 1_000_000, 1_500_000, 1_900_000, 5_000_000];
        // [999_999, 1_999_999) holds four; [0, 1_000_000) only two.
        assert_eq!(most_in_window(&times, second), (4, 999_999));
        assert_eq!(most_in_window(&times[..3], second), (2, 0));
        assert_eq!(most_in_window(&[], second), (0, 0));
    }
}
