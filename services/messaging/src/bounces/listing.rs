//! Reading stored bounces back: the bounces of one delivery, person or
//! campaign, newest first, a page at a time.

use chrono::{DateTime, Utc};
use muster_proto::messaging::v1 as pb;
use muster_runtime::time::to_proto;
use muster_runtime::{ApiError, TenantId};
use sqlx::PgExecutor;
use uuid::Uuid;

/// A page when the request names no size.
pub const DEFAULT_PAGE: i64 = 50;
/// The largest page.
pub const MAX_PAGE: i64 = 500;

/// Whose bounces to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Delivery(Uuid),
    Person(Uuid),
    Campaign(Uuid),
}

impl Filter {
    /// The one filter a request names; refuses none and several.
    pub fn from_request(request: &pb::ListBouncesRequest) -> Result<Self, ApiError> {
        let named: Vec<(&str, &str)> = [
            ("delivery_id", &request.delivery_id),
            ("person_id", &request.person_id),
            ("campaign_id", &request.campaign_id),
        ]
        .into_iter()
        .map(|(field, value)| (field, value.trim()))
        .filter(|(_, value)| !value.is_empty())
        .collect();
        let (field, raw) = match named.as_slice() {
            [one] => *one,
            [] => {
                return Err(ApiError::invalid(
                    "delivery_id",
                    "name exactly one of delivery_id, person_id or campaign_id; none was given",
                ));
            }
            [_, second, ..] => {
                let fields: Vec<&str> = named.iter().map(|(field, _)| *field).collect();
                return Err(ApiError::invalid(
                    second.0,
                    format!(
                        "name exactly one of delivery_id, person_id or campaign_id; got {}",
                        fields.join(" and ")
                    ),
                ));
            }
        };
        let id = Uuid::parse_str(raw)
            .map_err(|_| ApiError::invalid(field, format!("{raw:?} is not a valid id")))?;
        Ok(match field {
            "delivery_id" => Self::Delivery(id),
            "person_id" => Self::Person(id),
            _ => Self::Campaign(id),
        })
    }

    fn column(self) -> (&'static str, Uuid) {
        match self {
            Self::Delivery(id) => ("delivery_id", id),
            Self::Person(id) => ("person_id", id),
            Self::Campaign(id) => ("campaign_id", id),
        }
    }
}

/// Where a page starts: after the bounce received at `received_at` with `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    received_at: DateTime<Utc>,
    id: Uuid,
}

impl Cursor {
    /// The token of the page after `last`.
    fn token(last: &BounceRow) -> String {
        format!("{}.{}", last.received_at.timestamp_micros(), last.id)
    }

    /// Reads a token [`Cursor::token`] wrote; `None` for the empty token.
    pub fn parse(token: &str) -> Result<Option<Self>, ApiError> {
        let token = token.trim();
        if token.is_empty() {
            return Ok(None);
        }
        let invalid = || {
            ApiError::invalid(
                "page_token",
                "is not a token this listing returned; list again without one",
            )
        };
        let (micros, id) = token.split_once('.').ok_or_else(invalid)?;
        let micros: i64 = micros.parse().map_err(|_| invalid())?;
        let received_at = DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
        let id = Uuid::parse_str(id).map_err(|_| invalid())?;
        Ok(Some(Self { received_at, id }))
    }
}

/// The page size a request asks for, defaulted and capped.
pub fn page_size(requested: i32) -> i64 {
    match requested {
        n if n <= 0 => DEFAULT_PAGE,
        n => i64::from(n).min(MAX_PAGE),
    }
}

#[derive(Debug, sqlx::FromRow)]
struct BounceRow {
    id: Uuid,
    kind: String,
    email_key: String,
    status: String,
    reason: String,
    provider: String,
    received_at: DateTime<Utc>,
    delivery_id: Option<Uuid>,
    campaign_id: Option<Uuid>,
    person_id: Option<Uuid>,
}

impl From<BounceRow> for pb::Bounce {
    fn from(row: BounceRow) -> Self {
        let id = |id: Option<Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
        let kind = match row.kind.as_str() {
            "permanent" => pb::BounceKind::Permanent,
            "transient" => pb::BounceKind::Transient,
            "complaint" => pb::BounceKind::Complaint,
            _ => pb::BounceKind::Unspecified,
        };
        pb::Bounce {
            id: row.id.to_string(),
            kind: kind as i32,
            email: row.email_key,
            status: row.status,
            reason: row.reason,
            source: row.provider,
            receive_time: Some(to_proto(row.received_at)),
            delivery_id: id(row.delivery_id),
            campaign_id: id(row.campaign_id),
            person_id: id(row.person_id),
        }
    }
}

/// One page of the bounces `filter` names in `tenant`, newest first.
#[tracing::instrument(name = "messaging.bounces.list", skip_all, fields(tenant_id = %tenant))]
pub async fn list(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    filter: Filter,
    after: Option<Cursor>,
    limit: i64,
) -> Result<pb::ListBouncesResponse, ApiError> {
    let (column, id) = filter.column();
    // `column` is one of three fixed names, never request text.
    let sql = format!(
        "SELECT id, kind, email_key, status, reason, provider, received_at, delivery_id,
                campaign_id, person_id
         FROM bounces
         WHERE tenant_id = $1 AND {column} = $2
           AND ($3::timestamptz IS NULL OR (received_at, id) < ($3, $4))
         ORDER BY received_at DESC, id DESC
         LIMIT $5"
    );
    let rows: Vec<BounceRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .bind(after.map(|cursor| cursor.received_at))
        .bind(after.map(|cursor| cursor.id).unwrap_or_else(Uuid::nil))
        .bind(limit)
        .fetch_all(db)
        .await?;
    let next_page_token = match rows.last() {
        Some(last) if rows.len() as i64 == limit => Cursor::token(last),
        _ => String::new(),
    };
    Ok(pb::ListBouncesResponse {
        bounces: rows.into_iter().map(pb::Bounce::from).collect(),
        next_page_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(delivery: &str, person: &str, campaign: &str) -> pb::ListBouncesRequest {
        pb::ListBouncesRequest {
            delivery_id: delivery.into(),
            person_id: person.into(),
            campaign_id: campaign.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_request_naming_no_filter_is_refused_with_the_fields_to_use() {
        let error = Filter::from_request(&request("", " ", "")).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, ApiError::InvalidArgument { .. }),
            "{error:?}"
        );
        assert!(
            message.contains("person_id") && message.contains("campaign_id"),
            "{message}"
        );
    }

    #[test]
    fn a_request_naming_two_filters_is_refused_naming_them() {
        let id = Uuid::now_v7().to_string();
        let error = Filter::from_request(&request("", &id, &id)).unwrap_err();
        assert!(
            error.to_string().contains("got person_id and campaign_id"),
            "{error}"
        );
    }

    #[test]
    fn the_one_named_filter_is_read_and_checked() {
        let id = Uuid::now_v7();
        let filter = Filter::from_request(&request("", &id.to_string(), "")).unwrap();
        assert_eq!(filter, Filter::Person(id));
        let error = Filter::from_request(&request("nope", "", "")).unwrap_err();
        assert!(error.to_string().starts_with("delivery_id:"), "{error}");
    }

    #[test]
    fn a_page_token_reads_back_as_the_cursor_it_was_made_from() {
        let row = BounceRow {
            id: Uuid::now_v7(),
            kind: "permanent".into(),
            email_key: String::new(),
            status: String::new(),
            reason: String::new(),
            provider: "dsn".into(),
            received_at: DateTime::from_timestamp_micros(1_736_845_331_123_456).unwrap(),
            delivery_id: None,
            campaign_id: None,
            person_id: None,
        };
        let cursor = Cursor::parse(&Cursor::token(&row)).unwrap().unwrap();
        assert_eq!((cursor.received_at, cursor.id), (row.received_at, row.id));
        assert_eq!(Cursor::parse("").unwrap(), None);
        assert!(Cursor::parse("12.not-an-id").is_err());
        assert!(Cursor::parse("x").is_err());
    }

    #[test]
    fn page_sizes_default_to_50_and_stop_at_500() {
        assert_eq!((page_size(0), page_size(-3)), (50, 50));
        assert_eq!((page_size(7), page_size(10_000)), (7, 500));
    }
}
