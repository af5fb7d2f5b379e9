//! Segments against a real contacts service and its own PostgreSQL database:
//! every leaf and random nested trees counted by CountSegment against the
//! same conditions evaluated here, and saved segments scoped by tenant.

use chrono::{DateTime, TimeZone, Utc};
use muster_proto::Timestamp;
use muster_proto::contacts::v1 as pb;
use muster_proto::contacts::v1::segment_expr::Node;
use muster_runtime::TenantId;
use sqlx::PgPool;

mod support;

use support::{Client, Service};

/// A person as inserted, to evaluate conditions against here.
#[derive(Debug, Clone)]
struct Person {
    tags: Vec<&'static str>,
    consent: &'static str,
    postal_code: Option<String>,
    departement: Option<&'static str>,
    commune: Option<String>,
    region: Option<&'static str>,
    created_at: DateTime<Utc>,
    email: bool,
    phone: bool,
}

const TAGS: [&str; 3] = ["adhérent", "bénévole", "Presse"];
const CONSENTS: [&str; 3] = ["none", "granted", "withdrawn"];
const PLACES: [(&str, &str); 4] = [("75", "11"), ("93", "11"), ("69", "84"), ("2A", "94")];

fn day(n: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::days(n as i64)
}

/// A small, deterministic spread of people over every property.
fn people() -> Vec<Person> {
    (0u32..72)
        .map(|n| {
            let place = (n % 5 != 4).then(|| PLACES[(n / 5 % 4) as usize]);
            Person {
                tags: TAGS
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| (n >> i) & 1 == 1)
                    .map(|(_, t)| *t)
                    .collect(),
                consent: CONSENTS[(n / 3 % 3) as usize],
                postal_code: place.map(|(d, _)| format!("{}{:03}", &d[..2], n % 7 * 100)),
                departement: place.map(|(d, _)| d),
                commune: place.map(|(d, _)| format!("{}{:03}", &d[..2], n % 3)),
                region: place.map(|(_, r)| r),
                created_at: day(n * 5),
                email: n % 7 != 0,
                phone: n % 4 == 1,
            }
        })
        .collect()
}

async fn insert(pool: &PgPool, tenant: TenantId, people: &[Person]) -> anyhow::Result<()> {
    for p in people {
        let id = uuid::Uuid::now_v7();
        let email = p.email.then(|| format!("{}@example.org", id.simple()));
        sqlx::query(
            "INSERT INTO people (id, tenant_id, email, email_key, phone, postal_code,
                 departement, commune_insee, region, tags, email_consent, created_at)
             VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(id)
        .bind(tenant)
        .bind(email)
        .bind(
            p.phone
                .then(|| format!("+33{}", id.as_u128() % 1_000_000_000)),
        )
        .bind(&p.postal_code)
        .bind(p.departement)
        .bind(&p.commune)
        .bind(p.region)
        .bind(&p.tags)
        .bind(p.consent)
        .bind(p.created_at)
        .execute(pool)
        .await?;
    }
    Ok(())
}

fn ts(time: DateTime<Utc>) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: time.timestamp(),
        nanos: 0,
    })
}

/// Whether `person` matches `expr`: a missing value matches no leaf.
fn matches(person: &Person, expr: &pb::SegmentExpr) -> bool {
    let Some(node) = &expr.node else {
        panic!("the generator makes no empty node")
    };
    let state = |s: i32| match pb::ConsentState::try_from(s) {
        Ok(pb::ConsentState::Granted) => "granted",
        Ok(pb::ConsentState::Withdrawn) => "withdrawn",
        _ => "none",
    };
    match node {
        Node::And(list) => list.items.iter().all(|e| matches(person, e)),
        Node::Or(list) => list.items.iter().any(|e| matches(person, e)),
        Node::Not(inner) => !matches(person, inner),
        Node::Tag(tag) => person.tags.contains(&tag.as_str()),
        Node::Consent(c) => person.consent == state(c.state),
        Node::PostalCodePrefix(p) => person
            .postal_code
            .as_ref()
            .is_some_and(|c| c.starts_with(p)),
        Node::Departement(d) => person.departement == Some(d.to_uppercase().as_str()),
        Node::Commune(c) => person.commune.as_deref() == Some(c.as_str()),
        Node::Region(r) => person.region == Some(r.as_str()),
        Node::Created(range) => {
            let seconds = person.created_at.timestamp();
            range.start.is_none_or(|s| seconds >= s.seconds)
                && range.end.is_none_or(|e| seconds < e.seconds)
        }
        Node::HasEmail(has) => person.email == *has,
        Node::HasPhone(has) => person.phone == *has,
        Node::HasCommune(has) => person.commune.is_some() == *has,
        Node::Field(_)
        | Node::HasField(_)
        | Node::Contacted(_)
        | Node::HasContacted(_)
        | Node::DonationTotal(_)
        | Node::LastDonation(_)
        | Node::Attended(_)
        | Node::AttendedCountAtLeast(_) => {
            panic!(
                "the generator makes no such condition (tests/custom_fields.rs and \
                    tests/projections.rs count them)"
            )
        }
    }
}

/// Every kind of leaf, with values that match some people and not others.
fn leaves() -> Vec<Node> {
    let consent = |state: pb::ConsentState| {
        Node::Consent(pb::ConsentCondition {
            channel: pb::ConsentChannel::Email as i32,
            purpose: String::new(),
            state: state as i32,
        })
    };
    vec![
        Node::Tag("adhérent".into()),
        Node::Tag("Presse".into()),
        Node::Tag("presse".into()),
        consent(pb::ConsentState::Granted),
        consent(pb::ConsentState::Withdrawn),
        consent(pb::ConsentState::None),
        Node::PostalCodePrefix("69".into()),
        Node::PostalCodePrefix("750".into()),
        Node::PostalCodePrefix("2A".into()),
        Node::Departement("2a".into()),
        Node::Departement("93".into()),
        Node::Commune("69001".into()),
        Node::Region("11".into()),
        Node::Created(pb::TimeRange {
            start: ts(day(60)),
            end: ts(day(200)),
        }),
        Node::Created(pb::TimeRange {
            start: ts(day(100)),
            end: None,
        }),
        Node::Created(pb::TimeRange {
            start: None,
            end: ts(day(100)),
        }),
        Node::HasEmail(true),
        Node::HasEmail(false),
        Node::HasPhone(true),
        Node::HasPhone(false),
        Node::HasCommune(true),
        Node::HasCommune(false),
    ]
}

/// A small deterministic generator (xorshift), enough to vary the trees.
struct Draw(u64);

impl Draw {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn tree(&mut self, depth: usize) -> pb::SegmentExpr {
        let leaves = leaves();
        let node = match (depth, self.below(5)) {
            (0, _) | (_, 0 | 1) => leaves[self.below(leaves.len())].clone(),
            (_, 2) => Node::Not(Box::new(self.tree(depth - 1))),
            (_, kind) => {
                let items = (0..self.below(4)).map(|_| self.tree(depth - 1)).collect();
                let list = pb::SegmentExprList { items };
                if kind == 3 {
                    Node::And(list)
                } else {
                    Node::Or(list)
                }
            }
        };
        pb::SegmentExpr { node: Some(node) }
    }
}

async fn count(client: &mut Client, filter: pb::SegmentFilter) -> anyhow::Result<u64> {
    let request = pb::CountSegmentRequest {
        filter: Some(filter),
    };
    Ok(client.count_segment(request).await?.into_inner().count)
}

fn tree_filter(expr: pb::SegmentExpr) -> pb::SegmentFilter {
    pb::SegmentFilter {
        expr: Some(expr),
        ..Default::default()
    }
}

#[tokio::test]
async fn every_leaf_and_its_negation_count_what_they_say() -> anyhow::Result<()> {
    let service = Service::start("segments").await?;
    let tenant = TenantId::new();
    let people = people();
    insert(&service.pool, tenant, &people).await?;
    insert(&service.pool, TenantId::new(), &people).await?;
    let mut client = service.client(tenant).await?;

    for leaf in leaves() {
        let expr = pb::SegmentExpr {
            node: Some(leaf.clone()),
        };
        let expected = people.iter().filter(|p| matches(p, &expr)).count() as u64;
        let negated = pb::SegmentExpr {
            node: Some(Node::Not(Box::new(expr.clone()))),
        };
        assert_eq!(
            count(&mut client, tree_filter(expr)).await?,
            expected,
            "{leaf:?}"
        );
        assert_eq!(
            count(&mut client, tree_filter(negated)).await?,
            people.len() as u64 - expected,
            "NOT {leaf:?}"
        );
    }
    service.stop().await
}

#[tokio::test]
async fn random_nested_trees_count_what_they_say() -> anyhow::Result<()> {
    let service = Service::start("segments").await?;
    let tenant = TenantId::new();
    let people = people();
    insert(&service.pool, tenant, &people).await?;
    let mut client = service.client(tenant).await?;

    let mut draw = Draw(0x9e37_79b9_7f4a_7c15);
    let mut distinct_counts = std::collections::HashSet::new();
    for _ in 0..300 {
        let tree = draw.tree(4);
        let expected = people.iter().filter(|p| matches(p, &tree)).count() as u64;
        distinct_counts.insert(expected);
        let counted = count(&mut client, tree_filter(tree.clone())).await?;
        assert_eq!(counted, expected, "{tree:?}");
    }
    assert!(distinct_counts.len() > 10, "{distinct_counts:?}");
    service.stop().await
}

#[tokio::test]
async fn the_text_form_the_tree_and_the_flat_fields_agree() -> anyhow::Result<()> {
    let service = Service::start("segments").await?;
    let tenant = TenantId::new();
    let people = people();
    insert(&service.pool, tenant, &people).await?;
    let mut client = service.client(tenant).await?;

    let query = "tag:adhérent AND (departement:75 OR département:93) \
                 AND NOT consent:email=withdrawn AND has:email";
    let expected = people
        .iter()
        .filter(|p| {
            p.tags.contains(&"adhérent")
                && matches!(p.departement, Some("75" | "93"))
                && p.consent != "withdrawn"
                && p.email
        })
        .count() as u64;
    assert!(expected > 0);
    let text = pb::SegmentFilter {
        query: query.into(),
        ..Default::default()
    };
    assert_eq!(count(&mut client, text).await?, expected);

    let flat_and_text = pb::SegmentFilter {
        tags_any: vec!["adhérent".into()],
        departements: vec!["75".into(), "93".into()],
        require_email: true,
        query: "NOT consent:email=withdrawn".into(),
        ..Default::default()
    };
    assert_eq!(count(&mut client, flat_and_text).await?, expected);

    let bad = pb::SegmentFilter {
        query: "tag:adhérent AND departement=75".into(),
        ..Default::default()
    };
    let status = client
        .count_segment(pb::CountSegmentRequest { filter: Some(bad) })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "filter.query: column 29: departement takes \":\", as in departement:VALUE"
    );
    service.stop().await
}

#[tokio::test]
async fn a_saved_segment_counts_live_and_belongs_to_its_tenant() -> anyhow::Result<()> {
    let service = Service::start("segments").await?;
    let (tenant, other) = (TenantId::new(), TenantId::new());
    let people = people();
    insert(&service.pool, tenant, &people).await?;
    let mut client = service.client(tenant).await?;
    let mut stranger = service.client(other).await?;

    let filter = pb::SegmentFilter {
        query: "tag:bénévole AND has:email".into(),
        ..Default::default()
    };
    let create = |name: &str| pb::CreateSavedSegmentRequest {
        name: name.into(),
        filter: Some(filter.clone()),
    };
    let saved = client
        .create_saved_segment(create("Bénévoles"))
        .await?
        .into_inner();
    assert_eq!(saved.count, None);
    let duplicate = client.create_saved_segment(create("Bénévoles")).await;
    assert_eq!(duplicate.unwrap_err().code(), tonic::Code::AlreadyExists);
    let nested = pb::CreateSavedSegmentRequest {
        name: "Nested".into(),
        filter: Some(pb::SegmentFilter {
            saved_segment_id: saved.id.clone(),
            ..Default::default()
        }),
    };
    let nested = client.create_saved_segment(nested).await.unwrap_err();
    assert_eq!(nested.code(), tonic::Code::InvalidArgument);
    let invalid = pb::CreateSavedSegmentRequest {
        name: "Invalid".into(),
        filter: Some(pb::SegmentFilter {
            query: "tag:".into(),
            ..Default::default()
        }),
    };
    let invalid = client.create_saved_segment(invalid).await.unwrap_err();
    assert!(
        invalid.message().starts_with("filter.query: column 5"),
        "{invalid:?}"
    );

    let expected = people
        .iter()
        .filter(|p| p.tags.contains(&"bénévole") && p.email)
        .count() as u64;
    let get = || pb::GetSavedSegmentRequest {
        id: saved.id.clone(),
    };
    let fetched = client.get_saved_segment(get()).await?.into_inner();
    assert_eq!(fetched.count, Some(expected));
    assert_eq!(fetched.name, "Bénévoles");
    assert_eq!(fetched.filter, Some(filter.clone()));

    insert(&service.pool, tenant, &people[..10]).await?;
    let added = people[..10]
        .iter()
        .filter(|p| p.tags.contains(&"bénévole") && p.email)
        .count() as u64;
    assert!(added > 0);
    let fetched = client.get_saved_segment(get()).await?.into_inner();
    assert_eq!(fetched.count, Some(expected + added), "the count is live");

    let by_reference = pb::SegmentFilter {
        saved_segment_id: saved.id.clone(),
        query: "has:phone".into(),
        ..Default::default()
    };
    let with_phone = people
        .iter()
        .chain(&people[..10])
        .filter(|p| p.tags.contains(&"bénévole") && p.email && p.phone)
        .count() as u64;
    assert_eq!(count(&mut client, by_reference.clone()).await?, with_phone);

    let listed = client
        .list_saved_segments(pb::ListSavedSegmentsRequest::default())
        .await?
        .into_inner();
    assert_eq!(listed.segments.len(), 1);
    let theirs = stranger
        .list_saved_segments(pb::ListSavedSegmentsRequest::default())
        .await?
        .into_inner();
    assert!(theirs.segments.is_empty());
    let status = stranger.get_saved_segment(get()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    let status = stranger
        .count_segment(pb::CountSegmentRequest {
            filter: Some(by_reference.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let status = stranger
        .delete_saved_segment(pb::DeleteSavedSegmentRequest {
            id: saved.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);

    client
        .delete_saved_segment(pb::DeleteSavedSegmentRequest {
            id: saved.id.clone(),
        })
        .await?;
    let status = client.get_saved_segment(get()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    let status = client
        .count_segment(pb::CountSegmentRequest {
            filter: Some(by_reference),
        })
        .await
        .unwrap_err();
    assert!(status.message().contains("no saved segment"), "{status:?}");
    service.stop().await
}

#[tokio::test]
async fn the_leaf_predicates_use_their_indexes() -> anyhow::Result<()> {
    let service = Service::start("segments").await?;
    let indexes: Vec<String> =
        sqlx::query_scalar("SELECT indexdef FROM pg_indexes WHERE tablename = 'people'")
            .fetch_all(&service.pool)
            .await?;
    for wanted in [
        "USING gin (tags)",
        "(tenant_id, departement)",
        "(tenant_id, commune_insee)",
        "(tenant_id, region)",
        "(tenant_id, postal_code text_pattern_ops)",
        "(tenant_id, created_at)",
        "(tenant_id, email_consent)",
    ] {
        assert!(
            indexes.iter().any(|i| i.contains(wanted)),
            "no index on {wanted}: {indexes:?}"
        );
    }
    service.stop().await
}

#[tokio::test]
async fn a_nul_or_an_oversized_filter_is_an_invalid_argument_not_an_internal_error()
-> anyhow::Result<()> {
    let service = Service::start("segments").await?;
    let tenant = TenantId::new();
    insert(&service.pool, tenant, &people()).await?;
    let mut client = service.client(tenant).await?;

    let cases = [
        (
            pb::SegmentFilter {
                query: "tag:a\u{0}b".into(),
                ..Default::default()
            },
            "filter.query: column 6: the query contains a NUL character",
        ),
        (
            pb::SegmentFilter {
                tags_any: vec!["a\u{0}b".into()],
                ..Default::default()
            },
            "filter.tags_any[0]: contains a NUL character",
        ),
        (
            pb::SegmentFilter {
                departements: vec!["7\u{0}5".into()],
                ..Default::default()
            },
            "filter.departements[0]: contains a NUL character",
        ),
        (
            tree_filter(pb::SegmentExpr {
                node: Some(Node::Tag("a\u{0}".into())),
            }),
            "filter.expr: the tag contains a NUL character",
        ),
        (
            pb::SegmentFilter {
                tags_any: (0..200_000).map(|n| format!("t{n}")).collect(),
                ..Default::default()
            },
            "filter.tags_any: the filter has more than 1000 values",
        ),
        (
            pb::SegmentFilter {
                query: format!("consent:email={}", "é".repeat(5_000)),
                ..Default::default()
            },
            "filter.query: column 15: unknown consent state",
        ),
    ];
    for (filter, expected) in cases {
        let shown = format!("{:.80}", format!("{filter:?}"));
        let status = client
            .count_segment(pb::CountSegmentRequest {
                filter: Some(filter),
            })
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{shown}: {status:?}"
        );
        assert!(
            status.message().starts_with(expected),
            "{shown}: {status:?}"
        );
        assert!(status.message().len() < 400, "{shown}: {status:?}");
    }

    // The service still answers once the refused filters are behind it.
    let all = count(&mut client, pb::SegmentFilter::default()).await?;
    assert_eq!(all, people().len() as u64);
    service.stop().await
}
