//! The SQL each filter becomes; the counts it gives against PostgreSQL are
//! checked in tests/segments.rs.

use muster_proto::Timestamp;
use muster_proto::contacts::v1::segment_expr::Node;
use muster_proto::contacts::v1::{
    ConsentChannel, ConsentCondition, SegmentExpr, SegmentExprList, TimeRange,
};

use super::*;

fn sql(filter: &SegmentFilter) -> String {
    let filter = Filter::parse(filter).unwrap();
    let mut query = QueryBuilder::new("SELECT count(*) FROM people");
    filter.push_where(&mut query, TenantId::new());
    query.sql().as_str().to_owned()
}

/// The condition `tree` becomes, after the tenant's.
fn expr_sql(tree: SegmentExpr) -> String {
    let filter = SegmentFilter {
        expr: Some(tree),
        ..Default::default()
    };
    sql(&filter)
        .strip_prefix("SELECT count(*) FROM people WHERE tenant_id = $1 AND ")
        .unwrap()
        .to_owned()
}

fn query_sql(query: &str) -> String {
    let filter = SegmentFilter {
        query: query.into(),
        ..Default::default()
    };
    sql(&filter)
        .strip_prefix("SELECT count(*) FROM people WHERE tenant_id = $1 AND ")
        .unwrap()
        .to_owned()
}

fn node(node: Node) -> SegmentExpr {
    SegmentExpr { node: Some(node) }
}

fn list(items: Vec<SegmentExpr>) -> SegmentExprList {
    SegmentExprList { items }
}

fn error(tree: SegmentExpr) -> String {
    let filter = SegmentFilter {
        expr: Some(tree),
        ..Default::default()
    };
    Filter::parse(&filter).unwrap_err().to_string()
}

fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
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

#[test]
fn every_leaf_becomes_its_own_indexed_predicate() {
    let consent = ConsentCondition {
        channel: ConsentChannel::Email as i32,
        purpose: String::new(),
        state: ConsentState::Withdrawn as i32,
    };
    let cases = [
        (Node::Tag("adhérent".into()), "tags && $2"),
        (Node::Consent(consent), "email_consent = $2"),
        (
            Node::PostalCodePrefix("69".into()),
            "(postal_code ~>=~ $2 AND postal_code ~<~ $3)",
        ),
        (Node::Departement("2a".into()), "departement = ANY($2)"),
        (Node::Commune("69123".into()), "commune_insee = ANY($2)"),
        (Node::Region("84".into()), "region = ANY($2)"),
        (
            Node::Created(TimeRange {
                start: at(1_700_000_000),
                end: at(1_800_000_000),
            }),
            "(created_at >= $2 AND created_at < $3)",
        ),
        (
            Node::Created(TimeRange {
                start: at(1_700_000_000),
                end: None,
            }),
            "created_at >= $2",
        ),
        (
            Node::Created(TimeRange {
                start: None,
                end: at(1_700_000_000),
            }),
            "created_at < $2",
        ),
        (Node::HasEmail(true), "email_key IS NOT NULL"),
        (Node::HasEmail(false), "email_key IS NULL"),
        (Node::HasPhone(true), "phone IS NOT NULL"),
        (Node::HasPhone(false), "phone IS NULL"),
        (Node::HasCommune(true), "commune_insee IS NOT NULL"),
        (Node::HasCommune(false), "commune_insee IS NULL"),
    ];
    for (leaf, expected) in cases {
        assert_eq!(expr_sql(node(leaf.clone())), expected, "{leaf:?}");
    }
}

#[test]
fn a_postal_prefix_is_the_range_of_codes_it_begins() {
    let prefix = expr::postal_prefix("69").unwrap();
    assert_eq!((prefix.start.as_str(), prefix.end.as_str()), ("69", "6:"));
    let prefix = expr::postal_prefix("2Az").unwrap();
    assert_eq!((prefix.start.as_str(), prefix.end.as_str()), ("2Az", "2A{"));
    assert!("69123" >= "69" && "69123" < "6:" && "7" >= "6:");
}

#[test]
fn nesting_keeps_its_parentheses_and_not_keeps_people_without_the_value() {
    assert_eq!(
        query_sql("tag:a AND (departement:75 OR tag:b) AND NOT departement:93"),
        "(tags && $2 AND (departement = ANY($3) OR tags && $4) \
         AND (departement = ANY($5)) IS NOT TRUE)"
    );
    assert_eq!(
        query_sql("NOT (tag:a OR has:phone)"),
        "NOT ((tags && $2 OR phone IS NOT NULL))"
    );
    assert_eq!(
        query_sql("NOT NOT (region:84 AND has:email)"),
        "NOT (((region = ANY($2) AND email_key IS NOT NULL)) IS NOT TRUE)"
    );
}

#[test]
fn sibling_values_under_an_or_become_one_list() {
    let query = "departement:75 OR departement:93 OR (tag:a OR tag:b) \
                 OR postal:69 OR postal:38";
    assert_eq!(
        query_sql(query),
        "(departement = ANY($2) OR tags && $3 OR \
         ((postal_code ~>=~ $4 AND postal_code ~<~ $5) \
         OR (postal_code ~>=~ $6 AND postal_code ~<~ $7)))"
    );
    assert_eq!(
        query_sql("(tag:a AND tag:b) AND has:email"),
        "(tags && $2 AND tags && $3 AND email_key IS NOT NULL)"
    );
}

#[test]
fn empty_lists_match_everyone_under_and_and_no_one_under_or() {
    assert_eq!(expr_sql(node(Node::And(list(vec![])))), "TRUE");
    assert_eq!(expr_sql(node(Node::Or(list(vec![])))), "FALSE");
}

#[test]
fn the_flat_fields_the_tree_and_the_text_are_all_required() {
    let filter = SegmentFilter {
        tags_any: vec!["adhérent".into()],
        expr: Some(node(Node::Departement("75".into()))),
        query: "has:phone".into(),
        ..Default::default()
    };
    assert_eq!(
        sql(&filter),
        "SELECT count(*) FROM people WHERE tenant_id = $1 AND tags && $2 \
         AND departement = ANY($3) AND phone IS NOT NULL"
    );
}

#[test]
fn a_bad_leaf_deep_in_the_tree_is_named_by_its_path() {
    let tree = node(Node::And(list(vec![
        node(Node::Tag("a".into())),
        node(Node::Tag("b".into())),
        node(Node::Not(Box::new(node(Node::Or(list(vec![
            node(Node::Region("84".into())),
            node(Node::PostalCodePrefix("69*".into())),
        ])))))),
    ])));
    let error = error(tree);
    assert!(
        error.starts_with("filter.expr.and[2].not.or[1]: "),
        "{error}"
    );
    assert!(error.contains("letters and digits"), "{error}");
}

#[test]
fn every_invalid_leaf_says_what_to_do() {
    let consent = |channel: ConsentChannel, purpose: &str, state: ConsentState| {
        Node::Consent(ConsentCondition {
            channel: channel as i32,
            purpose: purpose.into(),
            state: state as i32,
        })
    };
    let cases = [
        (
            SegmentExpr { node: None },
            "filter.expr: an empty condition",
        ),
        (node(Node::Tag(" ".into())), "filter.expr: empty tag"),
        (
            node(Node::Departement("".into())),
            "filter.expr: empty département",
        ),
        (node(Node::Commune("".into())), "filter.expr: empty commune"),
        (node(Node::Region("".into())), "filter.expr: empty région"),
        (
            node(consent(
                ConsentChannel::Unspecified,
                "",
                ConsentState::Granted,
            )),
            "filter.expr.consent: choose a channel",
        ),
        (
            node(consent(
                ConsentChannel::Email,
                "petitions",
                ConsentState::Granted,
            )),
            "filter.expr.consent: unknown purpose \"petitions\"",
        ),
        (
            node(consent(
                ConsentChannel::Email,
                "",
                ConsentState::Unspecified,
            )),
            "filter.expr.consent: choose a state",
        ),
        (
            node(Node::Created(TimeRange::default())),
            "filter.expr: a range without start or end",
        ),
        (
            node(Node::Created(TimeRange {
                start: at(2_000),
                end: at(1_000),
            })),
            "filter.expr: the range starts at",
        ),
    ];
    for (tree, expected) in cases {
        let error = error(tree.clone());
        assert!(error.starts_with(expected), "{tree:?}: {error}");
    }
}

#[test]
fn a_tree_deeper_than_the_limit_is_refused_at_the_node_too_deep() {
    let mut tree = node(Node::Tag("a".into()));
    for _ in 0..MAX_DEPTH {
        tree = node(Node::Not(Box::new(tree)));
    }
    assert!(
        Filter::parse(&SegmentFilter {
            expr: Some(tree.clone()),
            ..Default::default()
        })
        .is_ok()
    );
    let deeper = node(Node::And(list(vec![tree])));
    let error = error(deeper);
    let path = format!("filter.expr.and[0]{}", ".not".repeat(MAX_DEPTH - 1));
    assert!(
        error.starts_with(&format!("{path}.not: nested deeper")),
        "{error}"
    );
}

#[test]
fn a_tree_of_exactly_the_most_conditions_passes_and_one_more_is_refused() {
    let leaves = |n: usize| -> Vec<SegmentExpr> {
        (0..n)
            .map(|n| node(Node::Not(Box::new(node(Node::Tag(format!("t{n}")))))))
            .collect()
    };
    let within = SegmentFilter {
        expr: Some(node(Node::Or(list(leaves(MAX_CONDITIONS))))),
        ..Default::default()
    };
    assert!(Filter::parse(&within).is_ok());
    let over = error(node(Node::Or(list(leaves(MAX_CONDITIONS + 1)))));
    assert!(
        over.starts_with(&format!("filter.expr.or[{MAX_CONDITIONS}].not: ")),
        "{over}"
    );
    assert!(over.contains("more than 256 conditions"), "{over}");

    // Empty combinations count too, so a tree cannot grow without leaves.
    let empty = (0..=MAX_CONDITIONS)
        .map(|_| node(Node::And(list(vec![]))))
        .collect();
    let refused = error(node(Node::Or(list(empty))));
    assert!(refused.contains("more than 256 conditions"), "{refused}");
}

#[test]
fn a_query_of_exactly_the_most_conditions_passes_and_one_more_is_refused_at_its_column() {
    let query = |n: usize| {
        (0..n)
            .map(|n| format!("tag:t{n}"))
            .collect::<Vec<_>>()
            .join(" OR ")
    };
    let within = SegmentFilter {
        query: query(MAX_CONDITIONS),
        ..Default::default()
    };
    assert!(Filter::parse(&within).is_ok());
    let over = query(MAX_CONDITIONS + 1);
    let column = over.rfind("tag:").unwrap() + 1;
    let error = Filter::parse(&SegmentFilter {
        query: over,
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert_eq!(
        error,
        format!(
            "filter.query: column {column}: the query has more than 256 conditions; \
             split it or use lists"
        )
    );
}

#[test]
fn a_nul_character_in_any_value_is_refused_naming_where_it_is() {
    let flat = |field: &str| {
        let mut filter = SegmentFilter::default();
        let list = match field {
            "tags_any" => &mut filter.tags_any,
            "tags_all" => &mut filter.tags_all,
            "tags_none" => &mut filter.tags_none,
            "postal_code_prefixes" => &mut filter.postal_code_prefixes,
            "departements" => &mut filter.departements,
            "communes" => &mut filter.communes,
            "regions" => &mut filter.regions,
            _ => unreachable!("{field}"),
        };
        *list = vec!["ok".into(), "7\u{0}5".into()];
        filter
    };
    let tree = |tree: SegmentExpr| SegmentFilter {
        expr: Some(tree),
        ..Default::default()
    };
    let query = |query: &str| SegmentFilter {
        query: query.into(),
        ..Default::default()
    };
    let cases = [
        (flat("tags_any"), "filter.tags_any[1]: contains a NUL"),
        (flat("tags_all"), "filter.tags_all[1]: contains a NUL"),
        (flat("tags_none"), "filter.tags_none[1]: contains a NUL"),
        (
            flat("postal_code_prefixes"),
            "filter.postal_code_prefixes[1]: contains a NUL",
        ),
        (
            flat("departements"),
            "filter.departements[1]: contains a NUL",
        ),
        (flat("communes"), "filter.communes[1]: contains a NUL"),
        (flat("regions"), "filter.regions[1]: contains a NUL"),
        (
            tree(node(Node::Tag("a\u{0}".into()))),
            "filter.expr: the tag contains a NUL",
        ),
        (
            tree(node(Node::And(list(vec![
                node(Node::Tag("a".into())),
                node(Node::Not(Box::new(node(Node::Departement(
                    "7\u{0}5".into(),
                ))))),
            ])))),
            "filter.expr.and[1].not: the département contains a NUL",
        ),
        (
            tree(node(Node::Commune("\u{0}".into()))),
            "filter.expr: the commune contains a NUL",
        ),
        (
            tree(node(Node::Region("8\u{0}".into()))),
            "filter.expr: the région contains a NUL",
        ),
        (
            tree(node(Node::PostalCodePrefix("7\u{0}".into()))),
            "filter.expr: \"7\\0\" is not a postal code prefix",
        ),
        (
            query("tag:a\u{0}b"),
            "filter.query: column 6: the query contains a NUL",
        ),
        (
            query("tag:x OR tag:\"a \u{0}\""),
            "filter.query: column 17: the query contains a NUL",
        ),
    ];
    for (filter, expected) in cases {
        let error = Filter::parse(&filter).unwrap_err();
        assert!(
            matches!(error, ApiError::InvalidArgument { .. }),
            "{filter:?}: {error:?}"
        );
        let error = error.to_string();
        assert!(error.starts_with(expected), "{filter:?}: {error}");
    }
}

#[test]
fn a_value_quoted_in_an_error_is_cut_on_a_character_boundary() {
    assert_eq!(
        expr::clip(&"é".repeat(QUOTE_LENGTH)),
        "é".repeat(QUOTE_LENGTH)
    );
    assert_eq!(
        expr::clip(&"é".repeat(QUOTE_LENGTH + 1)),
        format!("{}…", "é".repeat(QUOTE_LENGTH))
    );
    assert_eq!(expr::quote("a\"b"), "\"a\\\"b\"");

    let long = "é".repeat(5_000);
    let query = |query: String| SegmentFilter {
        query,
        ..Default::default()
    };
    let tree = |node: Node| SegmentFilter {
        expr: Some(SegmentExpr { node: Some(node) }),
        ..Default::default()
    };
    let consent = |purpose: &str| {
        Node::Consent(ConsentCondition {
            channel: ConsentChannel::Email as i32,
            purpose: purpose.into(),
            state: ConsentState::Granted as i32,
        })
    };
    let cases = [
        query("é".repeat(3_000)),
        query(format!("consent:email={long}")),
        query(format!("consent:{long}=granted")),
        query(format!("consent:email.{long}=granted")),
        query(format!("tag:a {long}")),
        query(format!("(tag:a {long})")),
        query(format!("has:{long}")),
        query(format!("created>={long}")),
        query(format!("created:..{long}")),
        query(format!("postal:{long}")),
        query(format!("{long}:x")),
        query(long.clone()),
        query(format!("tag{long}")),
        query(format!("tag={long}")),
        tree(Node::PostalCodePrefix(long.clone())),
        tree(consent(&long)),
        SegmentFilter {
            postal_code_prefixes: vec![long.clone()],
            ..Default::default()
        },
        SegmentFilter {
            saved_segment_id: long.clone(),
            ..Default::default()
        },
    ];
    let whole = "é".repeat(QUOTE_LENGTH + 1);
    for filter in cases {
        let error = Filter::parse(&filter).unwrap_err().to_string();
        let shown = format!("{:.80}", filter.query);
        assert!(error.chars().count() < 300, "{shown}: {error}");
        assert!(!error.contains(&whole), "{shown}: {error}");
    }
}

#[test]
fn the_values_of_a_filter_are_capped_in_all_and_the_field_past_the_cap_is_named() {
    let values = |n: usize, prefix: &str| -> Vec<String> {
        (0..n).map(|n| format!("{prefix}{n}")).collect()
    };
    let within = SegmentFilter {
        tags_any: values(MAX_VALUES - 1, "t"),
        query: "tag:a".into(),
        ..Default::default()
    };
    assert!(Filter::parse(&within).is_ok());

    let or_of_tags = |n: usize| {
        node(Node::Or(list(
            (0..n).map(|n| node(Node::Tag(format!("x{n}")))).collect(),
        )))
    };
    let cases = [
        (
            SegmentFilter {
                tags_any: values(200_000, "t"),
                ..Default::default()
            },
            "filter.tags_any",
        ),
        (
            SegmentFilter {
                tags_all: values(600, "t"),
                departements: values(401, "d"),
                ..Default::default()
            },
            "filter.departements",
        ),
        (
            SegmentFilter {
                regions: values(MAX_VALUES + 1, "r"),
                ..Default::default()
            },
            "filter.regions",
        ),
        (
            SegmentFilter {
                tags_all: values(800, "c"),
                expr: Some(or_of_tags(201)),
                ..Default::default()
            },
            "filter.expr",
        ),
        (
            SegmentFilter {
                tags_none: values(900, "t"),
                query: "tag:a OR tag:b".into(),
                expr: Some(or_of_tags(99)),
                ..Default::default()
            },
            "filter.query",
        ),
    ];
    for (filter, field) in cases {
        let error = Filter::parse(&filter).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "{field}: the filter has more than 1000 values in all (list entries and \
                 conditions together); tag the people once and filter on that tag"
            )
        );
    }
}

#[test]
fn text_errors_name_their_column_and_suggest_quotes_for_spaces() {
    let cases = [
        (
            "postal:75%",
            "column 8: \"75%\" is not a postal code prefix",
        ),
        (
            "tag:a AND created:2025-01-01..2024-01-01",
            "column 19: the range ends before it starts",
        ),
        (
            "created:2025-01-01..2025-01-01",
            "column 9: the range ends before it starts",
        ),
        (
            "consent:email.petitions=granted",
            "column 15: unknown consent purpose \"petitions\"",
        ),
        (
            "consent:e-mail.petitions=granted",
            "column 16: unknown consent purpose",
        ),
        (
            "tag:comité 2026",
            "column 12: expected AND, OR or the end, found \"2026\"; \
             a value with spaces must be quoted, as in tag:\"comité local\"",
        ),
        (
            "(tag:comité 2026)",
            "column 13: expected AND, OR or ')', found \"2026\"; a value with spaces",
        ),
    ];
    for (query, expected) in cases {
        let filter = SegmentFilter {
            query: query.into(),
            ..Default::default()
        };
        let error = Filter::parse(&filter).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("filter.query: {expected}")),
            "{query}: {error}"
        );
    }
    let Some(Node::Created(_)) = text::parse("created:2024-01-01..2025-01-01").unwrap().node else {
        panic!("a range in order is read")
    };
}

#[test]
fn a_text_query_error_names_the_query_and_the_column() {
    let filter = SegmentFilter {
        query: "tag:a AND (departement:75".into(),
        ..Default::default()
    };
    let error = Filter::parse(&filter).unwrap_err().to_string();
    assert_eq!(
        error,
        "filter.query: column 11: this parenthesis is never closed; add a ')'"
    );
    let filter = SegmentFilter {
        query: "consent:email.petitions=granted".into(),
        ..Default::default()
    };
    let error = Filter::parse(&filter).unwrap_err().to_string();
    assert!(
        error.starts_with("filter.query: column 15: unknown consent purpose"),
        "{error}"
    );
}

#[test]
fn a_saved_segment_id_must_be_an_id() {
    let filter = SegmentFilter {
        saved_segment_id: "adherents".into(),
        ..Default::default()
    };
    let error = Filter::parse(&filter).unwrap_err().to_string();
    assert!(error.starts_with("filter.saved_segment_id"), "{error}");
    let id = Uuid::now_v7();
    let filter = SegmentFilter {
        saved_segment_id: id.to_string(),
        ..Default::default()
    };
    assert_eq!(Filter::parse(&filter).unwrap().saved_segment(), Some(id));
}

#[test]
fn reachable_by_email_narrows_any_filter() {
    let filter = SegmentFilter {
        query: "tag:a OR tag:b".into(),
        ..Default::default()
    };
    let filter = Filter::parse(&filter).unwrap().reachable_by_email();
    let mut query = QueryBuilder::new("SELECT 1 FROM people");
    filter.push_where(&mut query, TenantId::new());
    assert_eq!(
        query.sql().as_str(),
        "SELECT 1 FROM people WHERE tenant_id = $1 AND tags && $2 \
         AND email_consent = $3 AND email_key IS NOT NULL"
    );
}

fn custom_definitions() -> Definitions {
    use crate::domain::custom_field::{Definition, FieldType};
    let choices = ["Rouge".to_string(), "Vert".to_string()];
    Definitions::new([
        Definition::new("year", "Année", FieldType::Number, &[]).unwrap(),
        Definition::new("color", "Couleur", FieldType::Choice, &choices).unwrap(),
    ])
}

#[test]
fn custom_field_conditions_are_typed_and_bound_never_inlined() {
    let filter = SegmentFilter {
        query: "field:color=rouge AND (field:year>=12,5 OR NOT has:field.year)".into(),
        ..Default::default()
    };
    let filter = Filter::parse_with(&filter, &custom_definitions()).unwrap();
    let mut query = QueryBuilder::new("SELECT count(*) FROM people");
    filter.push_where(&mut query, TenantId::new());
    assert_eq!(
        query.sql().as_str(),
        "SELECT count(*) FROM people WHERE tenant_id = $1 AND (custom_fields @> $2 AND \
         ((jsonb_typeof(custom_fields -> $3) = $4 AND custom_fields -> $5 >= $6) OR \
         NOT (custom_fields ? $7)))"
    );
    let Expr::And(items) = &filter.conditions[0] else {
        panic!("{:?}", filter.conditions)
    };
    let Expr::Leaf(Leaf::Field(color)) = &items[0] else {
        panic!("{items:?}")
    };
    assert_eq!(color.value, serde_json::json!("Rouge"));
    let Expr::Or(either) = &items[1] else {
        panic!("{items:?}")
    };
    let Expr::Leaf(Leaf::Field(year)) = &either[0] else {
        panic!("{either:?}")
    };
    assert_eq!(
        (year.value.clone(), year.json_type),
        (serde_json::json!(12.5), "number")
    );
}

#[test]
fn a_custom_field_condition_without_its_definition_is_refused_naming_the_node() {
    let tree = node(Node::Field(muster_proto::contacts::v1::FieldCondition {
        key: "year".into(),
        operator: muster_proto::contacts::v1::FieldOperator::Less as i32,
        value: "2020".into(),
    }));
    let error = error(tree.clone());
    assert!(
        error.starts_with(
            "filter.expr.field.key: unknown custom field \"year\"; the fields are: \
             none is defined"
        ),
        "{error}"
    );
    let filter = SegmentFilter {
        expr: Some(node(Node::Not(Box::new(tree)))),
        ..Default::default()
    };
    let filter = Filter::parse_with(&filter, &custom_definitions()).unwrap();
    let mut query = QueryBuilder::new("SELECT count(*) FROM people");
    filter.push_where(&mut query, TenantId::new());
    // A person without the field is not "year < 2020": NOT must still select them.
    assert!(
        query.sql().as_str().ends_with(") IS NOT TRUE"),
        "{}",
        query.sql().as_str()
    );
}

/// The SQL of a filter already checked (and given a policy).
fn checked_sql(filter: &Filter) -> String {
    let mut query = QueryBuilder::new("SELECT count(*) FROM people");
    filter.push_where(&mut query, TenantId::new());
    query.sql().as_str().to_owned()
}

#[test]
fn a_consent_per_channel_and_purpose_reads_the_ledger_with_bound_values() {
    let query = |text: &str| SegmentFilter {
        query: text.into(),
        ..Default::default()
    };
    let filter = Filter::parse(&query("consent:sms.events=granted")).unwrap();
    assert_eq!(
        checked_sql(&filter),
        "SELECT count(*) FROM people WHERE tenant_id = $1 AND EXISTS (SELECT 1 FROM consents c \
         WHERE c.tenant_id = people.tenant_id AND c.person_id = people.id AND c.channel = $2 \
         AND c.purpose = $3 AND c.state = $4)"
    );
    let filter = Filter::parse(&query("consent:post=none")).unwrap();
    assert!(
        checked_sql(&filter).contains("AND NOT EXISTS (SELECT 1 FROM consents c"),
        "{}",
        checked_sql(&filter)
    );
    assert!(
        !checked_sql(&filter).contains("c.state"),
        "{}",
        checked_sql(&filter)
    );
}

#[test]
fn a_policy_takes_grants_on_a_forbidden_basis_out_of_granted_only() {
    use crate::consent::{Channel, LegalBasis};
    let policy = [(Channel::Email, LegalBasis::LegitimateInterests)];
    let query = |text: &str| SegmentFilter {
        query: text.into(),
        ..Default::default()
    };
    let general = Filter::parse(&query("consent:email=granted")).unwrap();
    assert_eq!(
        checked_sql(&general.clone().with_policy(&[])),
        "SELECT count(*) FROM people WHERE tenant_id = $1 AND email_consent = $2"
    );
    assert_eq!(
        checked_sql(&general.with_policy(&policy)),
        "SELECT count(*) FROM people WHERE tenant_id = $1 AND (email_consent = $2 AND NOT EXISTS \
         (SELECT 1 FROM consents c WHERE c.tenant_id = people.tenant_id \
         AND c.person_id = people.id AND c.channel = 'email' AND c.purpose = '' \
         AND c.legal_basis = ANY($3)))"
    );
    let purpose = Filter::parse(&query("consent:email.newsletter=granted")).unwrap();
    assert!(
        checked_sql(&purpose.with_policy(&policy)).ends_with("AND NOT (c.legal_basis = ANY($5)))")
    );
    let withdrawn = Filter::parse(&query("consent:email=withdrawn")).unwrap();
    assert_eq!(
        checked_sql(&withdrawn.with_policy(&policy)),
        "SELECT count(*) FROM people WHERE tenant_id = $1 AND email_consent = $2"
    );
    let sms = Filter::parse(&query("consent:sms=granted")).unwrap();
    assert!(!checked_sql(&sms.with_policy(&policy)).contains("legal_basis"));
}

#[test]
fn only_filters_reading_donations_or_attendance_say_so() {
    let reads = |text: &str| {
        let filter = SegmentFilter {
            query: text.into(),
            ..Default::default()
        };
        Filter::parse(&filter).unwrap().reads_projections()
    };
    assert!(reads("tag:a OR donations.total>=50"));
    assert!(reads("NOT (attended:e1 AND has:email)"));
    assert!(reads("donations.last>=2024-01-01"));
    assert!(!reads("tag:a AND (departement:75 OR NOT has:email)"));
}

#[test]
fn territories_are_read_by_code_or_name_and_stored_as_their_code() {
    let filter = SegmentFilter {
        departements: vec!["9".into(), "gironde".into(), "2a".into(), "Réunion".into()],
        regions: vec!["Bretagne".into(), "84".into(), "PACA".into()],
        communes: vec!["2a004".into(), "Paris".into()],
        ..Default::default()
    };

    let conditions = Filter::parse(&filter).unwrap().conditions;

    let codes = |list: &[&str]| list.iter().map(|code| code.to_string()).collect();
    assert_eq!(
        conditions,
        [
            Expr::Leaf(Leaf::Departement(codes(&["09", "33", "2A", "974"]))),
            Expr::Leaf(Leaf::Commune(codes(&["2A004", "75056"]))),
            Expr::Leaf(Leaf::Region(codes(&["53", "84", "93"]))),
        ]
    );
}

#[test]
fn a_territory_that_names_no_place_is_refused_with_what_to_write() {
    let refused = |query: &str| {
        let filter = SegmentFilter {
            query: query.into(),
            ..Default::default()
        };
        Filter::parse(&filter).unwrap_err().to_string()
    };
    let cases = [
        ("departement:20", "write 2A (Corse-du-Sud) or 2B"),
        ("departement:Corse", "write 2A (Corse-du-Sud) or 2B"),
        (
            "commune:Saint-Denis",
            "communes are called \"Saint-Denis\": write the INSEE code",
        ),
        ("departement:99", "no département \"99\""),
        ("département:Bretagne", "no département \"Bretagne\""),
        (
            "commune:75011",
            "write commune:75056 (Paris) or postal:75011",
        ),
        (
            "commune:99999",
            "no current commune has the INSEE code \"99999\"",
        ),
        (
            "commune:75111",
            "write commune:75056 for all of Paris, or postal:75011",
        ),
        (
            "commune:69381",
            "write commune:69123 for all of Lyon, or postal:69001",
        ),
        ("region:33", "no région \"33\""),
        (
            "commune:Lanouée",
            "no current commune is called \"Lanouée\"",
        ),
    ];
    for (query, expected) in cases {
        let error = refused(query);
        assert!(error.contains(expected), "{query}: {error}");
    }
    // The error points at the value, as the query's other errors do.
    for (query, column) in [
        ("departement:20", 13),
        ("tag:a AND commune:99999", 19),
        ("region:33", 8),
        ("commune:", 9),
    ] {
        let error = refused(query);
        assert!(
            error.starts_with(&format!("filter.query: column {column}: ")),
            "{query}: {error}"
        );
    }

    let flat = SegmentFilter {
        departements: vec!["75".into(), "20".into()],
        ..Default::default()
    };
    let error = Filter::parse(&flat).unwrap_err().to_string();
    assert!(
        error.starts_with("filter.departements[1]: Corsica is two départements"),
        "{error}"
    );
}
