//! Sending rate limits that every sender process together keeps: one GCRA
//! per limit and window, its state in Redis, updated by one atomic script
//! that checks every limit a message falls under (its organization, its
//! sender identity, its provider) and takes a token from all or from none.
//!
//! A limit of `n` per period with a burst of `b` lets at most `n + b`
//! messages through in any window of one period. The limits themselves live
//! in PostgreSQL (`rate_limits`) and senders re-read them every few seconds.
//! Redis only holds what can be rebuilt; when it is unreachable, senders wait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use muster_proto::messaging::v1 as pb;
use muster_runtime::{ApiError, TenantId};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Deserialize;
use sqlx::PgPool;
use tokio::sync::RwLock;

/// Where the limiter keeps its state, and the limit of organizations that
/// set none.
#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitSettings {
    pub redis_url: String,
    /// Prefix of every Redis key the limiter writes.
    pub prefix: String,
    /// The provider name messages are counted under; empty: the SMTP host.
    pub provider: String,
    /// How often senders re-read the limits from the database.
    pub refresh_secs: u64,
    /// The limit of an organization without one of its own (0: unlimited).
    pub default_tenant: Rate,
}

/// How fast one scope may send: at most `per_second + burst` messages in
/// any second, `per_hour + burst` in any hour, `per_day + burst` in any day.
/// A window whose limit is 0 is not limited. Every window paces evenly: a
/// daily limit spreads the day's messages over the day, `burst` at once.
///
/// TODO(#3): a burst of its own per window would let a daily quota go out
/// in the first hours; the table holds one burst for all windows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Rate {
    pub per_second: u32,
    pub per_hour: u32,
    pub per_day: u32,
    /// Messages that may go at once beyond the steady rate after a quiet spell.
    pub burst: u32,
}

const MICROS_PER_SECOND: u64 = 1_000_000;
const MAX_PER_SECOND: u32 = 1_000_000;
const MAX_BURST: u32 = 10_000;

impl Rate {
    /// Whether no window is limited.
    pub fn is_unlimited(&self) -> bool {
        self.per_second == 0 && self.per_hour == 0 && self.per_day == 0
    }

    /// Each window: its key suffix, its period in microseconds and its limit.
    fn windows(&self) -> [(&'static str, u64, u32); 3] {
        [
            ("s", MICROS_PER_SECOND, self.per_second),
            ("h", 3_600 * MICROS_PER_SECOND, self.per_hour),
            ("d", 86_400 * MICROS_PER_SECOND, self.per_day),
        ]
    }

    /// Adds one GCRA per limited window, under keys starting with `base`.
    fn buckets(&self, base: &str, out: &mut Vec<Bucket>) {
        for (suffix, period, limit) in self.windows() {
            if limit == 0 {
                continue;
            }
            // Rounding the interval up keeps the rate at or under the limit.
            let interval = period.div_ceil(u64::from(limit));
            out.push(Bucket {
                key: format!("{base}:{suffix}"),
                interval,
                tolerance: interval * u64::from(self.burst),
            });
        }
    }
}

/// One GCRA: its key (under the prefix), the interval between two messages
/// at the steady rate and how far ahead of it the burst may run, in µs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bucket {
    key: String,
    interval: u64,
    tolerance: u64,
}

/// Takes one token from every GCRA in KEYS[2..] or from none.
///
/// The state of a GCRA is its theoretical arrival time (TAT, µs of Redis's
/// clock): a message is allowed when `now >= TAT - tolerance`, which moves
/// the TAT to `max(TAT, now) + interval`. Any window of one period then
/// holds at most limit + burst messages.
///
/// Lost state must not reopen the burst: after a flush, or a restart that
/// lost or rolled back the keys, the last message may have just gone with
/// the burst spent, so that its TAT was up to `now + tolerance + interval`.
/// KEYS[1] records which Redis run the state belongs to and since when; when
/// the run changed or the record is gone, every GCRA restarts from that
/// conservative TAT rather than from an empty bucket. The first message after
/// a loss so waits one interval and the burst refills at the steady rate;
/// later the floor lies in the past and changes nothing. A single key lost
/// alone (evicted) is not detected: the limiter's Redis must not evict
/// (`maxmemory-policy noeviction`, the default).
///
/// Every key carries the hash tag `{rl}`, so that the keys of one script fall
/// in one slot, as a Redis Cluster requires (the limiter's state is small:
/// one node of a cluster holds it).
const SCRIPT: &str = r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
local epoch = redis.call('HMGET', KEYS[1], 'run_id', 'since')
local since = tonumber(epoch[2])
if epoch[1] ~= run or since == nil then
  since = now
  redis.call('HSET', KEYS[1], 'run_id', run, 'since', string.format('%.0f', now))
end
local wait, tats = 0, {}
for i = 2, #KEYS do
  local interval = tonumber(ARGV[2 * i - 3])
  local tolerance = tonumber(ARGV[2 * i - 2])
  local stored = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  local tat = math.max(stored, since + tolerance + interval, now)
  wait = math.max(wait, tat - tolerance - now)
  tats[i] = tat + interval
end
if wait > 0 then
  return {math.ceil(wait), now}
end
for i = 2, #KEYS do
  local ttl = math.ceil((tats[i] - now) / 1000) + 1000
  redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', ttl)
end
return {0, now}
";

/// What one attempt to take a token found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Every limit allowed it; at this instant of Redis's clock (µs).
    Granted { at_micros: i64 },
    /// Some limit did not; nothing was taken. Try again after this.
    Wait(Duration),
}

/// The GCRA state in Redis, shared by every process with the same prefix.
#[derive(Clone)]
pub struct Gcra {
    redis: ConnectionManager,
    prefix: String,
    script: redis::Script,
}

impl Gcra {
    /// A client of the Redis at `url`; it connects on first use and
    /// reconnects by itself.
    pub fn new(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("ratelimit.redis_url is not a Redis URL")?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1);
        let redis = ConnectionManager::new_lazy_with_config(client, config)
            .context("creating the Redis connection manager")?;
        Ok(Self {
            redis,
            prefix: prefix.to_owned(),
            script: redis::Script::new(SCRIPT),
        })
    }

    /// The Redis key of `name`: under the prefix, with the hash tag.
    fn key(&self, name: &str) -> String {
        format!("{}{{rl}}:{name}", self.prefix)
    }

    /// Takes a token from every bucket, or from none and says how long to wait.
    async fn take(&self, buckets: &[Bucket]) -> redis::RedisResult<Take> {
        let mut keys = vec![self.key("epoch")];
        keys.extend(buckets.iter().map(|b| self.key(&b.key)));
        let args: Vec<u64> = buckets
            .iter()
            .flat_map(|b| [b.interval, b.tolerance])
            .collect();
        let eval = |command: &str, script: &str| {
            let mut cmd = redis::cmd(command);
            cmd.arg(script).arg(keys.len()).arg(&keys).arg(&args);
            cmd
        };
        let mut redis = self.redis.clone();
        let answer = eval("EVALSHA", self.script.get_hash())
            .query_async(&mut redis)
            .await;
        let (wait, at_micros): (i64, i64) = match answer {
            Err(error)
                if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
            {
                eval("EVAL", SCRIPT).query_async(&mut redis).await?
            }
            answer => answer?,
        };
        Ok(match wait {
            0 => Take::Granted { at_micros },
            micros => Take::Wait(Duration::from_micros(micros.max(1) as u64)),
        })
    }
}

/// Where a limit applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything one organization sends.
    Tenant,
    /// One sender identity of an organization: a campaign's from address.
    Sender,
    /// One provider, all organizations together.
    Provider,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Sender => "sender",
            Self::Provider => "provider",
        }
    }

    fn from_proto(value: i32) -> Result<Self, ApiError> {
        match pb::RateLimitScope::try_from(value) {
            Ok(pb::RateLimitScope::Tenant) => Ok(Self::Tenant),
            Ok(pb::RateLimitScope::Sender) => Ok(Self::Sender),
            Ok(pb::RateLimitScope::Provider) => Ok(Self::Provider),
            _ => Err(ApiError::invalid(
                "rate_limit.scope",
                "is required: tenant, sender or provider",
            )),
        }
    }

    fn to_proto(name: &str) -> pb::RateLimitScope {
        match name {
            "tenant" => pb::RateLimitScope::Tenant,
            "sender" => pb::RateLimitScope::Sender,
            "provider" => pb::RateLimitScope::Provider,
            _ => pb::RateLimitScope::Unspecified,
        }
    }
}

/// A stored limit.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    scope: String,
    key: String,
    per_second: i32,
    per_hour: i32,
    per_day: i32,
    burst: i32,
    updated_at: DateTime<Utc>,
}

const ROW_COLUMNS: &str = "scope, key, per_second, per_hour, per_day, burst, updated_at";

impl Row {
    fn rate(&self) -> Rate {
        let count = |n: i32| u32::try_from(n).unwrap_or(0);
        Rate {
            per_second: count(self.per_second),
            per_hour: count(self.per_hour),
            per_day: count(self.per_day),
            burst: count(self.burst),
        }
    }
}

impl From<Row> for pb::RateLimit {
    fn from(row: Row) -> Self {
        let rate = row.rate();
        Self {
            scope: Scope::to_proto(&row.scope) as i32,
            key: row.key,
            per_second: rate.per_second,
            per_hour: rate.per_hour,
            per_day: rate.per_day,
            burst: rate.burst,
            update_time: Some(muster_runtime::time::to_proto(row.updated_at)),
        }
    }
}

/// The stored key of a limit in `scope`, normalised.
fn limit_key(scope: Scope, raw: &str) -> Result<String, ApiError> {
    let key = raw.trim();
    match scope {
        Scope::Tenant if key.is_empty() => Ok(String::new()),
        Scope::Tenant => Err(ApiError::invalid(
            "rate_limit.key",
            "must be empty for a tenant limit",
        )),
        Scope::Sender => match key.parse::<lettre::Address>() {
            Ok(_) => Ok(key.to_lowercase()),
            Err(_) => Err(ApiError::invalid(
                "rate_limit.key",
                "a sender limit names the from address it limits",
            )),
        },
        Scope::Provider if key.is_empty() || key.contains(char::is_whitespace) => Err(
            ApiError::invalid("rate_limit.key", "a provider limit names the provider"),
        ),
        Scope::Provider => Ok(key.to_lowercase()),
    }
}

/// Checks a requested rate against what the limiter can keep.
fn requested_rate(limit: &pb::RateLimit) -> Result<Rate, ApiError> {
    let rate = Rate {
        per_second: limit.per_second,
        per_hour: limit.per_hour,
        per_day: limit.per_day,
        burst: limit.burst,
    };
    if rate.per_second > MAX_PER_SECOND {
        let message = format!("at most {MAX_PER_SECOND}");
        return Err(ApiError::invalid("rate_limit.per_second", message));
    }
    if rate.burst > MAX_BURST {
        return Err(ApiError::invalid(
            "rate_limit.burst",
            format!("at most {MAX_BURST}"),
        ));
    }
    for (field, value) in [("per_hour", rate.per_hour), ("per_day", rate.per_day)] {
        if i32::try_from(value).is_err() {
            let message = format!("at most {}", i32::MAX);
            return Err(ApiError::invalid(format!("rate_limit.{field}"), message));
        }
    }
    Ok(rate)
}

/// Stores a limit for the caller's organization `tenant`, or a provider
/// limit when the caller is an operator (no organization); all rates 0
/// remove it.
pub async fn set(
    pool: &PgPool,
    tenant: Option<TenantId>,
    limit: pb::RateLimit,
) -> Result<pb::RateLimit, ApiError> {
    let scope = Scope::from_proto(limit.scope)?;
    match (scope, tenant) {
        (Scope::Provider, Some(_)) => {
            return Err(ApiError::PermissionDenied(
                "a provider limit is an operator setting: call with a service credential".into(),
            ));
        }
        (Scope::Tenant | Scope::Sender, None) => {
            return Err(ApiError::PermissionDenied(
                "this credential has no organization".into(),
            ));
        }
        _ => {}
    }
    let key = limit_key(scope, &limit.key)?;
    let rate = requested_rate(&limit)?;

    if rate.is_unlimited() {
        sqlx::query(
            "DELETE FROM rate_limits
             WHERE tenant_id IS NOT DISTINCT FROM $1 AND scope = $2 AND key = $3",
        )
        .bind(tenant)
        .bind(scope.as_str())
        .bind(&key)
        .execute(pool)
        .await?;
        return Ok(pb::RateLimit {
            scope: limit.scope,
            key,
            update_time: Some(muster_runtime::time::to_proto(Utc::now())),
            ..Default::default()
        });
    }
    let sql = format!(
        "INSERT INTO rate_limits (tenant_id, scope, key, per_second, per_hour, per_day, burst)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (tenant_id, scope, key) DO UPDATE SET
             per_second = EXCLUDED.per_second, per_hour = EXCLUDED.per_hour,
             per_day = EXCLUDED.per_day, burst = EXCLUDED.burst, updated_at = now()
         RETURNING {ROW_COLUMNS}"
    );
    let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(scope.as_str())
        .bind(&key)
        .bind(rate.per_second as i32)
        .bind(rate.per_hour as i32)
        .bind(rate.per_day as i32)
        .bind(rate.burst as i32)
        .fetch_one(pool)
        .await?;
    Ok(row.into())
}

/// The limits of organization `tenant`, or the provider limits for an
/// operator (no organization).
pub async fn list(db: &PgPool, tenant: Option<TenantId>) -> Result<Vec<pb::RateLimit>, ApiError> {
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM rate_limits WHERE tenant_id IS NOT DISTINCT FROM $1
         ORDER BY scope, key"
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// The limits in force for senders: each organization's own and the
/// provider limits, re-read from the database after `refresh`.
struct Limits {
    pool: PgPool,
    refresh: Duration,
    default_tenant: Rate,
    cache: RwLock<HashMap<TenantId, Read>>,
}

/// The rows that may apply to one organization, and when they were read.
type Read = (Instant, Arc<Vec<Row>>);

impl Limits {
    /// The rows that may apply to `tenant`. When the database fails, the
    /// last rows read stay in force; with none read yet, it is an error.
    async fn rows(&self, tenant: TenantId) -> anyhow::Result<Arc<Vec<Row>>> {
        let cached = self.cache.read().await.get(&tenant).cloned();
        if let Some((read_at, rows)) = &cached
            && read_at.elapsed() < self.refresh
        {
            return Ok(rows.clone());
        }
        let sql = format!(
            "SELECT {ROW_COLUMNS} FROM rate_limits WHERE tenant_id = $1 OR tenant_id IS NULL"
        );
        let fetched: sqlx::Result<Vec<Row>> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .fetch_all(&self.pool)
            .await;
        match (fetched, cached) {
            (Ok(rows), _) => {
                let rows = Arc::new(rows);
                let entry = (Instant::now(), rows.clone());
                self.cache.write().await.insert(tenant, entry);
                Ok(rows)
            }
            (Err(error), Some((_, rows))) => {
                tracing::warn!(%error, "could not re-read rate limits; keeping the last ones");
                Ok(rows)
            }
            (Err(error), None) => Err(error).context("reading the rate limits"),
        }
    }

    /// Every GCRA a message of `tenant` from `sender` through `provider` uses.
    async fn buckets(
        &self,
        tenant: TenantId,
        sender: &str,
        provider: &str,
    ) -> anyhow::Result<Vec<Bucket>> {
        let rows = self.rows(tenant).await?;
        let (sender, provider) = (sender.trim().to_lowercase(), provider.trim().to_lowercase());
        let find = |scope: &str, key: &str| {
            rows.iter()
                .find(|row| row.scope == scope && row.key == key)
                .map(Row::rate)
        };
        let mut buckets = Vec::new();
        find("tenant", "")
            .unwrap_or(self.default_tenant)
            .buckets(&format!("tenant:{tenant}"), &mut buckets);
        if let Some(rate) = find("sender", &sender) {
            rate.buckets(&format!("sender:{tenant}:{sender}"), &mut buckets);
        }
        if let Some(rate) = find("provider", &provider) {
            rate.buckets(&format!("provider:{provider}"), &mut buckets);
        }
        Ok(buckets)
    }
}

/// Says yes at most once per period: keeps a failing dependency from
/// flooding the log.
struct Every {
    period: Duration,
    last: Mutex<Option<Instant>>,
}

impl Every {
    fn now(&self) -> bool {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match *last {
            Some(at) if at.elapsed() < self.period => false,
            _ => {
                *last = Some(Instant::now());
                true
            }
        }
    }
}

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Makes senders wait for their turn under every limit that applies.
pub struct Limiter {
    gcra: Gcra,
    limits: Limits,
    provider: String,
    warn: Every,
}

impl Limiter {
    /// A limiter for messages relayed through `smtp_host`.
    pub fn new(
        settings: &RateLimitSettings,
        smtp_host: &str,
        pool: PgPool,
    ) -> anyhow::Result<Self> {
        let provider = match settings.provider.trim() {
            "" => smtp_host,
            name => name,
        };
        Ok(Self {
            gcra: Gcra::new(&settings.redis_url, &settings.prefix)?,
            limits: Limits {
                pool,
                refresh: Duration::from_secs(settings.refresh_secs.max(1)),
                default_tenant: settings.default_tenant,
                cache: RwLock::default(),
            },
            provider: provider.trim().to_lowercase(),
            warn: Every {
                period: Duration::from_secs(5),
                last: Mutex::default(),
            },
        })
    }

    /// The provider this process's messages are counted under.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// Whether any limit applies to messages of `tenant` from `sender`
    /// through `provider`; while the limits cannot be read, assume so.
    pub async fn applies(&self, tenant: TenantId, sender: &str, provider: &str) -> bool {
        self.limits
            .buckets(tenant, sender, provider)
            .await
            .map_or(true, |buckets| !buckets.is_empty())
    }

    /// Waits until every limit on a message of `tenant` from `sender`
    /// through `provider` allows it, and counts it. While Redis or the
    /// database cannot be reached it keeps waiting: never sends unlimited.
    pub async fn acquire(&self, tenant: TenantId, sender: &str, provider: &str) {
        let _ = self
            .acquire_within(tenant, sender, provider, Duration::MAX)
            .await;
    }

    /// As [`Self::acquire`], but returns the wait instead of waiting when the
    /// next free slot is further away than `patience`.
    #[tracing::instrument(
        name = "messaging.ratelimit.acquire",
        skip_all,
        fields(tenant_id = %tenant)
    )]
    pub async fn acquire_within(
        &self,
        tenant: TenantId,
        sender: &str,
        provider: &str,
        patience: Duration,
    ) -> Result<(), Duration> {
        let mut backoff = MIN_BACKOFF;
        loop {
            let taken = match self.limits.buckets(tenant, sender, provider).await {
                Ok(buckets) if buckets.is_empty() => return Ok(()),
                Ok(buckets) => self.gcra.take(&buckets).await.context("asking Redis"),
                Err(error) => Err(error),
            };
            match taken {
                Ok(Take::Granted { .. }) => return Ok(()),
                Ok(Take::Wait(wait)) if wait > patience => return Err(wait),
                Ok(Take::Wait(wait)) => {
                    backoff = MIN_BACKOFF;
                    tokio::time::sleep(wait).await;
                }
                Err(error) => {
                    if self.warn.now() {
                        tracing::warn!(
                            error = format!("{error:#}"),
                            "rate limiter unavailable; senders wait until it is back"
                        );
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis_url() -> String {
        std::env::var("MUSTER_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    }

    /// A limiter state of its own, removed by [`forget`].
    fn fresh() -> Gcra {
        let prefix = format!("muster:t:{}:", muster_testkit::unique());
        Gcra::new(&redis_url(), &prefix).unwrap()
    }

    #[tokio::test]
    async fn the_keys_of_one_acquisition_share_one_cluster_hash_tag() {
        let gcra = fresh();
        let rate = Rate {
            per_second: 5,
            per_hour: 100,
            per_day: 1_000,
            burst: 2,
        };
        let mut buckets = Vec::new();
        rate.buckets("tenant:t", &mut buckets);
        rate.buckets("provider:p", &mut buckets);
        let keys =
            std::iter::once(gcra.key("epoch")).chain(buckets.iter().map(|b| gcra.key(&b.key)));
        for key in keys {
            // Redis Cluster hashes only the first {…} of a key.
            let tag = key
                .split_once('{')
                .and_then(|(_, rest)| rest.split_once('}'))
                .map(|(tag, _)| tag);
            assert_eq!(tag, Some("rl"), "{key}");
            assert!(key.starts_with(&gcra.prefix), "{key}");
        }
    }

    async fn forget(gcra: &Gcra) {
        let mut redis = gcra.redis.clone();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", gcra.prefix))
            .query_async(&mut redis)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut redis)
                .await
                .unwrap();
        }
    }

    fn rate(per_second: u32, burst: u32) -> Rate {
        Rate {
            per_second,
            burst,
            ..Rate::default()
        }
    }

    fn buckets_of(base: &str, rate: Rate) -> Vec<Bucket> {
        let mut buckets = Vec::new();
        rate.buckets(base, &mut buckets);
        buckets
    }

    /// The most grants in any half-open window of `window` µs.
    fn most_in_window(times: &[i64], window: i64) -> usize {
        let mut times = times.to_vec();
        times.sort_unstable();
        let mut start = 0;
        let mut most = 0;
        for end in 0..times.len() {
            while times[end] - times[start] >= window {
                start += 1;
            }
            most = most.max(end - start + 1);
        }
        most
    }

    /// Takes tokens as fast as allowed from `tasks` tasks on each of
    /// `processes` connections, for `run`; returns the grant instants.
    async fn hammer(
        gcra: &Gcra,
        buckets: &[Bucket],
        processes: usize,
        tasks: usize,
        run: Duration,
    ) -> Vec<i64> {
        let deadline = tokio::time::Instant::now() + run;
        let mut handles = Vec::new();
        for _ in 0..processes {
            let process = Gcra::new(&redis_url(), &gcra.prefix).unwrap();
            for _ in 0..tasks {
                let (gcra, buckets) = (process.clone(), buckets.to_vec());
                handles.push(tokio::spawn(async move {
                    let mut granted = Vec::new();
                    while tokio::time::Instant::now() < deadline {
                        match gcra.take(&buckets).await.unwrap() {
                            Take::Granted { at_micros } => granted.push(at_micros),
                            Take::Wait(wait) => tokio::time::sleep(wait).await,
                        }
                    }
                    granted
                }));
            }
        }
        let mut all = Vec::new();
        for handle in handles {
            all.extend(handle.await.unwrap());
        }
        all
    }

    /// Lets a new state's caution after a loss (one burst's worth) pass.
    async fn settle(gcra: &Gcra, buckets: &[Bucket]) {
        let _ = gcra.take(&[]).await.unwrap();
        let longest = buckets
            .iter()
            .map(|b| b.tolerance + b.interval)
            .max()
            .unwrap_or(0);
        tokio::time::sleep(Duration::from_micros(longest)).await;
    }

    #[test]
    fn a_rate_makes_one_gcra_per_limited_window() {
        let limited = Rate {
            per_second: 40,
            per_hour: 0,
            per_day: 3,
            burst: 10,
        };
        let buckets = buckets_of("tenant:t", limited);
        assert_eq!(
            buckets,
            vec![
                Bucket {
                    key: "tenant:t:s".into(),
                    interval: 25_000,
                    tolerance: 250_000,
                },
                Bucket {
                    key: "tenant:t:d".into(),
                    interval: 28_800_000_000,
                    tolerance: 288_000_000_000,
                },
            ]
        );
        assert!(buckets_of("x", Rate::default()).is_empty());
    }

    #[test]
    fn a_rate_that_does_not_divide_its_period_rounds_towards_slower() {
        let buckets = buckets_of("x", rate(3, 0));
        assert_eq!(buckets[0].interval, 333_334);
    }

    #[test]
    fn limit_keys_are_normalised_and_checked_per_scope() {
        assert_eq!(limit_key(Scope::Tenant, " ").unwrap(), "");
        assert!(limit_key(Scope::Tenant, "x").is_err());
        assert_eq!(
            limit_key(Scope::Sender, " Equipe@Example.org ").unwrap(),
            "equipe@example.org"
        );
        assert!(limit_key(Scope::Sender, "not an address").is_err());
        assert_eq!(
            limit_key(Scope::Provider, "SMTP.Example.net").unwrap(),
            "smtp.example.net"
        );
        assert!(limit_key(Scope::Provider, "").is_err());
    }

    #[test]
    fn the_busiest_window_is_counted_half_open() {
        assert_eq!(most_in_window(&[0, 10, 999_999, 1_000_000], 1_000_000), 3);
        assert_eq!(most_in_window(&[5, 0, 2_000_000], 1_000_000), 2);
    }

    #[tokio::test]
    async fn a_script_redis_does_not_know_yet_is_sent_whole() {
        let mut gcra = fresh();
        // A hash no Redis has seen, as after a restart or SCRIPT FLUSH.
        let unseen = format!("{SCRIPT}-- {}", muster_testkit::unique());
        gcra.script = redis::Script::new(&unseen);
        let buckets = buckets_of("tenant:g", rate(1_000, 5));

        // A new state starts as if its burst had just been spent.
        let take = gcra.take(&buckets).await.unwrap();
        assert!(
            matches!(take, Take::Wait(w) if w <= Duration::from_millis(1)),
            "{take:?}"
        );
        forget(&gcra).await;
    }

    #[tokio::test]
    async fn a_quiet_limit_lets_its_burst_through_at_once_then_paces_at_its_rate() {
        let gcra = fresh();
        let buckets = buckets_of("tenant:a", rate(10, 4));
        settle(&gcra, &buckets).await;

        for n in 0..5 {
            let take = gcra.take(&buckets).await.unwrap();
            assert!(matches!(take, Take::Granted { .. }), "grant {n}: {take:?}");
        }
        let Take::Wait(wait) = gcra.take(&buckets).await.unwrap() else {
            panic!("a sixth message at once went through a limit of 10/s burst 4");
        };
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(wait >= Duration::from_millis(90), "{wait:?}");
        tokio::time::sleep(wait).await;
        assert!(matches!(
            gcra.take(&buckets).await.unwrap(),
            Take::Granted { .. }
        ));
        forget(&gcra).await;
    }

    #[tokio::test]
    async fn many_tasks_on_several_connections_never_exceed_limit_plus_burst_in_a_second() {
        let gcra = fresh();
        let buckets = buckets_of("tenant:b", rate(50, 5));
        settle(&gcra, &buckets).await;

        let granted = hammer(&gcra, &buckets, 3, 8, Duration::from_millis(2_500)).await;
        let most = most_in_window(&granted, 1_000_000);
        assert!(most <= 55, "{most} grants in one second");
        assert!(most >= 50, "only {most} grants in the busiest second");
        assert!(
            granted.len() <= 50 * 5 / 2 + 5 + 1,
            "{} grants",
            granted.len()
        );
        forget(&gcra).await;
    }

    #[tokio::test]
    async fn the_tightest_of_several_windows_decides_and_every_window_is_charged() {
        let gcra = fresh();
        // 36,000 an hour is one every 100 ms: tighter than 100 a second.
        let limited = Rate {
            per_second: 100,
            per_hour: 36_000,
            per_day: 0,
            burst: 2,
        };
        let buckets = buckets_of("tenant:c", limited);
        settle(&gcra, &buckets).await;

        let granted = hammer(&gcra, &buckets, 1, 6, Duration::from_millis(2_000)).await;
        let most = most_in_window(&granted, 1_000_000);
        assert!(most <= 12, "{most} grants in one second");
        assert!(most >= 9, "only {most} grants in the busiest second");

        let mut redis = gcra.redis.clone();
        for bucket in &buckets {
            let key = gcra.key(&bucket.key);
            let ttl: i64 = redis::cmd("PTTL")
                .arg(&key)
                .query_async(&mut redis)
                .await
                .unwrap();
            assert!(ttl > 0, "{key} holds no state");
        }
        forget(&gcra).await;
    }

    #[tokio::test]
    async fn a_message_refused_by_one_limit_takes_nothing_from_the_others() {
        let gcra = fresh();
        let tight = buckets_of("sender:d", rate(1, 0));
        let loose = buckets_of("tenant:d", rate(1_000, 5));
        let both: Vec<Bucket> = tight.iter().chain(&loose).cloned().collect();
        settle(&gcra, &both).await;
        let mut redis = gcra.redis.clone();
        let loose_key = gcra.key(&loose[0].key);

        assert!(matches!(
            gcra.take(&both).await.unwrap(),
            Take::Granted { .. }
        ));
        let before: String = redis::cmd("GET")
            .arg(&loose_key)
            .query_async(&mut redis)
            .await
            .unwrap();
        let refused = gcra.take(&both).await.unwrap();
        let after: String = redis::cmd("GET")
            .arg(&loose_key)
            .query_async(&mut redis)
            .await
            .unwrap();

        assert!(matches!(refused, Take::Wait(w) if w > Duration::from_millis(900)));
        assert_eq!(
            before, after,
            "the refused message was counted by the loose limit"
        );
        assert!(matches!(
            gcra.take(&loose).await.unwrap(),
            Take::Granted { .. }
        ));
        forget(&gcra).await;
    }

    /// Runs at full speed while `lose` damages the state at 0.8 s.
    async fn hammer_through_a_loss<F, Fut>(gcra: &Gcra, buckets: &[Bucket], lose: F) -> Vec<i64>
    where
        F: FnOnce(Gcra) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let victim = gcra.clone();
        let loss = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(800)).await;
            lose(victim).await;
        });
        let granted = hammer(gcra, buckets, 2, 6, Duration::from_millis(1_800)).await;
        loss.await.unwrap();
        granted
    }

    #[tokio::test]
    async fn losing_the_whole_state_never_reopens_the_burst_within_a_second() {
        let gcra = fresh();
        let buckets = buckets_of("tenant:e", rate(20, 10));
        settle(&gcra, &buckets).await;

        // As FLUSHALL would, for this test's keys only (the Redis is shared).
        let granted = hammer_through_a_loss(&gcra, &buckets, |gcra| async move {
            forget(&gcra).await;
        })
        .await;
        let most = most_in_window(&granted, 1_000_000);
        assert!(most <= 30, "{most} grants in one second across the loss");
        assert!(most >= 20, "only {most} grants in the busiest second");
        forget(&gcra).await;
    }

    #[tokio::test]
    async fn a_restart_that_brings_back_older_state_never_reopens_the_burst() {
        let gcra = fresh();
        let buckets = buckets_of("tenant:f", rate(20, 10));
        settle(&gcra, &buckets).await;
        let key = gcra.key(&buckets[0].key);
        let mut redis = gcra.redis.clone();
        let _ = gcra.take(&buckets).await.unwrap();
        let snapshot: String = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap();

        // A restart from a snapshot: at once, the keys roll back and the run
        // id changes.
        let granted = hammer_through_a_loss(&gcra, &buckets, move |gcra| async move {
            let mut redis = gcra.redis.clone();
            let epoch = gcra.key("epoch");
            let _: () = redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(&key)
                .arg(&snapshot)
                .cmd("HSET")
                .arg(&epoch)
                .arg("run_id")
                .arg("a-previous-run")
                .query_async(&mut redis)
                .await
                .unwrap();
        })
        .await;
        let most = most_in_window(&granted, 1_000_000);
        assert!(most <= 30, "{most} grants in one second across the restart");
        forget(&gcra).await;
    }

    fn stored(scope: pb::RateLimitScope, key: &str, per_second: u32) -> pb::RateLimit {
        pb::RateLimit {
            scope: scope as i32,
            key: key.into(),
            per_second,
            ..Default::default()
        }
    }

    fn keys(buckets: Vec<Bucket>) -> Vec<(String, u64)> {
        buckets.into_iter().map(|b| (b.key, b.interval)).collect()
    }

    #[tokio::test]
    async fn a_message_counts_under_its_tenant_its_sender_and_its_provider() {
        use pb::RateLimitScope::{Provider, Sender, Tenant};
        let database = muster_testkit::fresh_database("ratelimit").await.unwrap();
        let pool = muster_runtime::db::connect(&database).await.unwrap();
        muster_runtime::db::migrate(&pool, crate::MIGRATIONS)
            .await
            .unwrap();
        let (tenant, other) = (TenantId::new(), TenantId::new());
        set(&pool, Some(tenant), stored(Tenant, "", 10))
            .await
            .unwrap();
        set(&pool, Some(tenant), stored(Sender, "Equipe@Example.org", 5))
            .await
            .unwrap();
        set(&pool, Some(other), stored(Sender, "equipe@example.org", 1))
            .await
            .unwrap();
        set(&pool, None, stored(Provider, "smtp.example.net", 50))
            .await
            .unwrap();
        set(&pool, None, stored(Provider, "smtp.example.net", 100))
            .await
            .unwrap();
        let limits = Limits {
            pool: pool.clone(),
            refresh: Duration::from_millis(300),
            default_tenant: rate(1_000, 0),
            cache: RwLock::default(),
        };

        let charged = limits.buckets(tenant, "EQUIPE@example.org", "SMTP.example.net");
        assert_eq!(
            keys(charged.await.unwrap()),
            [
                (format!("tenant:{tenant}:s"), 100_000),
                (format!("sender:{tenant}:equipe@example.org:s"), 200_000),
                ("provider:smtp.example.net:s".into(), 10_000),
            ]
        );
        let newcomer = TenantId::new();
        let charged = limits.buckets(newcomer, "equipe@example.org", "127.0.0.1");
        assert_eq!(
            keys(charged.await.unwrap()),
            [(format!("tenant:{newcomer}:s"), 1_000)]
        );

        set(&pool, Some(tenant), stored(Tenant, "", 0))
            .await
            .unwrap();
        let cached = limits.buckets(tenant, "x@example.org", "127.0.0.1");
        assert_eq!(
            keys(cached.await.unwrap())[0].1,
            100_000,
            "re-read before its time"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        let reread = limits.buckets(tenant, "x@example.org", "127.0.0.1");
        assert_eq!(
            keys(reread.await.unwrap())[0].1,
            1_000,
            "the removal never applied"
        );
        let listed = list(&pool, Some(tenant)).await.unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");

        pool.close().await;
        muster_testkit::drop_database(&database).await.unwrap();
    }
}
