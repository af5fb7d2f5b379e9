//! How many form subscriptions one address may send an organization per
//! hour: each one e-mails a confirmation link, so a script posting other
//! people's addresses would have Muster write to all of them ("list
//! bombing"). Counted in Redis, shared by every gateway replica, in fixed
//! hourly windows. When Redis cannot answer, the form is let through: a
//! lost subscription costs more than a few unthrottled ones.

use std::time::Duration;

use anyhow::Context;
use muster_runtime::TenantId;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::settings::FormSettings;

/// The subscriptions counter.
#[derive(Clone)]
pub struct FormLimiter {
    redis: ConnectionManager,
    prefix: String,
    per_hour: u32,
}

impl FormLimiter {
    /// Prepares the counter; the connection is made on first use.
    pub fn new(settings: &FormSettings) -> anyhow::Result<Self> {
        let client = redis::Client::open(settings.redis_url.as_str())
            .context("forms.redis_url is not a Redis URL")?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(0);
        let redis = ConnectionManager::new_lazy_with_config(client, config)
            .context("creating the Redis connection manager")?;
        Ok(Self {
            redis,
            prefix: settings.prefix.clone(),
            per_hour: settings.per_ip_per_hour,
        })
    }

    /// Counts a subscription from `ip` to `tenant`; false once the address
    /// sent `per_ip_per_hour` this hour (0: no limit).
    pub async fn admit(&self, tenant: TenantId, ip: &str) -> bool {
        if self.per_hour == 0 || ip.is_empty() {
            return true;
        }
        let hour = chrono::Utc::now().timestamp() / 3600;
        let key = format!("{}:{tenant}:{ip}:{hour}", self.prefix);
        let mut redis = self.redis.clone();
        let counted: redis::RedisResult<(u64, bool)> = redis::pipe()
            .atomic()
            .incr(&key, 1)
            .expire(&key, 3600)
            .query_async(&mut redis)
            .await;
        match counted {
            Ok((sent, _)) => sent <= u64::from(self.per_hour),
            Err(error) => {
                tracing::warn!(%error, "form limit not checked: Redis did not answer");
                true
            }
        }
    }
}
