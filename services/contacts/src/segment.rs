//! Segment filters translated to SQL: the one module that builds dynamic
//! SQL here, with every value bound as a parameter.

use muster_proto::contacts::v1::{ConsentState, SegmentFilter};
use muster_runtime::{ApiError, TenantId};
use sqlx::{Postgres, QueryBuilder};

/// A checked filter: tags trimmed, consent known, prefixes escaped.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    tags_any: Vec<String>,
    tags_all: Vec<String>,
    tags_none: Vec<String>,
    email_consent: Option<&'static str>,
    postal_patterns: Vec<String>,
    departements: Vec<String>,
    communes: Vec<String>,
    regions: Vec<String>,
    require_email: bool,
}

impl Filter {
    /// Checks a filter from the API; errors name the field.
    pub fn parse(filter: &SegmentFilter) -> Result<Self, ApiError> {
        // An empty value would silently widen the filter to everyone.
        let clean = |values: &[String], field: &str| -> Result<Vec<String>, ApiError> {
            values
                .iter()
                .map(|v| match v.trim() {
                    "" => Err(ApiError::invalid(
                        format!("filter.{field}"),
                        "contains an empty value; leave the list out to match anyone",
                    )),
                    v => Ok(v.to_owned()),
                })
                .collect()
        };
        let email_consent = match ConsentState::try_from(filter.email_consent) {
            Ok(ConsentState::Unspecified) => None,
            Ok(ConsentState::None) => Some("none"),
            Ok(ConsentState::Granted) => Some("granted"),
            Ok(ConsentState::Withdrawn) => Some("withdrawn"),
            Err(_) => {
                return Err(ApiError::invalid(
                    "filter.email_consent",
                    format!("unknown consent state {}", filter.email_consent),
                ));
            }
        };
        let mut postal_patterns = Vec::new();
        for prefix in clean(&filter.postal_code_prefixes, "postal_code_prefixes")? {
            if !prefix.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(ApiError::invalid(
                    "filter.postal_code_prefixes",
                    format!("{prefix:?} is not a postal code prefix (letters and digits only)"),
                ));
            }
            postal_patterns.push(format!("{prefix}%"));
        }
        Ok(Self {
            tags_any: clean(&filter.tags_any, "tags_any")?,
            tags_all: clean(&filter.tags_all, "tags_all")?,
            tags_none: clean(&filter.tags_none, "tags_none")?,
            email_consent,
            postal_patterns,
            departements: clean(&filter.departements, "departements")?
                .iter()
                .map(|d| d.to_uppercase())
                .collect(),
            communes: clean(&filter.communes, "communes")?,
            regions: clean(&filter.regions, "regions")?,
            require_email: filter.require_email,
        })
    }

    /// A filter for people who may receive an e-mail campaign.
    pub fn reachable_by_email(mut self) -> Self {
        self.email_consent = Some("granted");
        self.require_email = true;
        self
    }

    /// Appends ` WHERE …` matching this filter within `tenant`.
    pub fn push_where(&self, query: &mut QueryBuilder<Postgres>, tenant: TenantId) {
        query.push(" WHERE tenant_id = ").push_bind(tenant);
        if !self.tags_any.is_empty() {
            query.push(" AND tags && ").push_bind(&self.tags_any);
        }
        if !self.tags_all.is_empty() {
            query.push(" AND tags @> ").push_bind(&self.tags_all);
        }
        if !self.tags_none.is_empty() {
            query
                .push(" AND NOT (tags && ")
                .push_bind(&self.tags_none)
                .push(")");
        }
        if let Some(state) = self.email_consent {
            query.push(" AND email_consent = ").push_bind(state);
        }
        if !self.postal_patterns.is_empty() {
            query
                .push(" AND postal_code LIKE ANY(")
                .push_bind(&self.postal_patterns)
                .push(")");
        }
        if !self.departements.is_empty() {
            query
                .push(" AND departement = ANY(")
                .push_bind(&self.departements)
                .push(")");
        }
        if !self.communes.is_empty() {
            query
                .push(" AND commune_insee = ANY(")
                .push_bind(&self.communes)
                .push(")");
        }
        if !self.regions.is_empty() {
            query
                .push(" AND region = ANY(")
                .push_bind(&self.regions)
                .push(")");
        }
        if self.require_email {
            query.push(" AND email_key IS NOT NULL");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(filter: &SegmentFilter) -> String {
        let filter = Filter::parse(filter).unwrap();
        let mut query = QueryBuilder::new("SELECT count(*) FROM people");
        filter.push_where(&mut query, TenantId::new());
        query.sql().as_str().to_owned()
    }

    #[test]
    fn an_empty_filter_still_scopes_to_the_tenant() {
        assert_eq!(
            sql(&SegmentFilter::default()),
            "SELECT count(*) FROM people WHERE tenant_id = $1"
        );
    }

    #[test]
    fn every_value_is_bound_never_inlined() {
        let filter = SegmentFilter {
            tags_any: vec!["adhérent'; DROP TABLE people; --".into()],
            tags_none: vec!["presse".into()],
            email_consent: ConsentState::Granted as i32,
            departements: vec!["2a".into()],
            require_email: true,
            ..Default::default()
        };
        let sql = sql(&filter);
        assert!(!sql.contains("DROP"), "{sql}");
        assert_eq!(
            sql,
            "SELECT count(*) FROM people WHERE tenant_id = $1 AND tags && $2 \
             AND NOT (tags && $3) AND email_consent = $4 AND departement = ANY($5) \
             AND email_key IS NOT NULL"
        );
    }

    #[test]
    fn an_empty_tag_is_refused_rather_than_matching_everyone() {
        let filter = SegmentFilter {
            tags_any: vec![" ".into()],
            ..Default::default()
        };
        let error = Filter::parse(&filter).unwrap_err();
        assert!(error.to_string().starts_with("filter.tags_any"), "{error}");
    }

    #[test]
    fn a_postal_prefix_with_wildcards_is_refused() {
        let filter = SegmentFilter {
            postal_code_prefixes: vec!["75%".into()],
            ..Default::default()
        };
        let error = Filter::parse(&filter).unwrap_err();
        assert!(
            error.to_string().contains("postal_code_prefixes"),
            "{error}"
        );
    }
}
