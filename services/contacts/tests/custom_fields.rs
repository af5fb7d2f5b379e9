//! Custom fields against a real contacts service and its own PostgreSQL
//! database: definitions, values set by the API and by imports (with their
//! warnings), and segment conditions on them against hand-computed counts.

use std::collections::HashMap;

use muster_proto::contacts::v1 as pb;
use muster_proto::contacts::v1::segment_expr::Node;
use muster_runtime::TenantId;

mod support;

use support::{Client, Service};

fn field(key: &str, label: &str, kind: pb::CustomFieldType, choices: &[&str]) -> pb::CustomField {
    pb::CustomField {
        key: key.into(),
        label: label.into(),
        r#type: kind as i32,
        choices: choices.iter().map(|c| c.to_string()).collect(),
        create_time: None,
    }
}

/// Defines the fields every test here uses.
async fn define_fields(client: &mut Client) -> anyhow::Result<()> {
    for definition in [
        field("year", "Année d'adhésion", pb::CustomFieldType::Number, &[]),
        field("since", "Membre depuis", pb::CustomFieldType::Date, &[]),
        field("volunteer", "Bénévole", pb::CustomFieldType::Boolean, &[]),
        field(
            "color",
            "Couleur",
            pb::CustomFieldType::Choice,
            &["Rouge", "Vert"],
        ),
        field("note", "Note", pb::CustomFieldType::Text, &[]),
    ] {
        let request = pb::DefineCustomFieldRequest {
            field: Some(definition),
        };
        client.define_custom_field(request).await?;
    }
    Ok(())
}

async fn upload(
    client: &mut Client,
    csv: &str,
    custom: &[(&str, &str)],
) -> anyhow::Result<pb::ImportJob> {
    let header = pb::ImportHeader {
        file_name: "fields.csv".into(),
        preset: pb::ImportPreset::Custom as i32,
        mapping: Some(pb::ColumnMapping {
            email: "email".into(),
            custom_fields: custom
                .iter()
                .map(|(k, h)| (k.to_string(), h.to_string()))
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    support::upload(client, header, csv).await
}

async fn person_by_email(client: &mut Client, email: &str) -> anyhow::Result<pb::Person> {
    let request = pb::ListPeopleRequest {
        page_size: 1_000,
        ..Default::default()
    };
    let people = client.list_people(request).await?.into_inner().people;
    people
        .into_iter()
        .find(|p| p.email == email)
        .ok_or_else(|| anyhow::anyhow!("no person {email}"))
}

async fn count(client: &mut Client, query: &str) -> Result<u64, tonic::Status> {
    let request = pb::CountSegmentRequest {
        filter: Some(pb::SegmentFilter {
            query: query.into(),
            ..Default::default()
        }),
    };
    Ok(client.count_segment(request).await?.into_inner().count)
}

fn values(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn definitions_are_checked_listed_and_unique_per_organization() -> anyhow::Result<()> {
    let service = Service::start("fields").await?;
    let mut client = service.client(TenantId::new()).await?;
    define_fields(&mut client).await?;

    let listed = client
        .list_custom_fields(pb::ListCustomFieldsRequest {})
        .await?
        .into_inner()
        .fields;
    let keys: Vec<&str> = listed.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["color", "note", "since", "volunteer", "year"]);
    assert_eq!(listed[0].choices, ["Rouge", "Vert"]);

    let again = field("year", "Autre", pb::CustomFieldType::Number, &[]);
    let error = client
        .define_custom_field(pb::DefineCustomFieldRequest { field: Some(again) })
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::AlreadyExists, "{error:?}");
    let same_label = field("other", "couleur", pb::CustomFieldType::Text, &[]);
    let error = client
        .define_custom_field(pb::DefineCustomFieldRequest {
            field: Some(same_label),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::AlreadyExists, "{error:?}");

    let bad = field("Année", "Année", pb::CustomFieldType::Number, &[]);
    let error = client
        .define_custom_field(pb::DefineCustomFieldRequest { field: Some(bad) })
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(
        error.message().starts_with("field.key: "),
        "{}",
        error.message()
    );
    let untyped = field("x", "X", pb::CustomFieldType::Unspecified, &[]);
    let error = client
        .define_custom_field(pb::DefineCustomFieldRequest {
            field: Some(untyped),
        })
        .await
        .unwrap_err();
    assert!(
        error.message().contains("choose a type"),
        "{}",
        error.message()
    );

    // Another organization has none of them.
    let mut other = service.client(TenantId::new()).await?;
    let theirs = other
        .list_custom_fields(pb::ListCustomFieldsRequest {})
        .await?
        .into_inner();
    assert!(theirs.fields.is_empty());
    service.stop().await
}

#[tokio::test]
async fn values_are_validated_by_type_and_shown_in_canonical_form() -> anyhow::Result<()> {
    let service = Service::start("fields").await?;
    let mut client = service.client(TenantId::new()).await?;
    define_fields(&mut client).await?;
    upload(&mut client, "email\nana@example.org\n", &[]).await?;
    let ana = person_by_email(&mut client, "ana@example.org").await?;

    let set = |values| pb::SetCustomFieldsRequest {
        person_id: ana.id.clone(),
        values,
    };
    let person = client
        .set_custom_fields(set(values(&[
            ("year", "2 021,0"),
            ("since", "15/03/2021"),
            ("volunteer", "oui"),
            ("color", "ROUGE"),
            ("note", " Ho\u{302}tel "),
        ])))
        .await?
        .into_inner();
    let shown: HashMap<&str, &str> = person
        .custom_fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let expected = HashMap::from([
        ("year", "2021"),
        ("since", "2021-03-15"),
        ("volunteer", "true"),
        ("color", "Rouge"),
        ("note", "H\u{f4}tel"),
    ]);
    assert_eq!(shown, expected);

    for (key, raw, message) in [
        (
            "year",
            "douze",
            "values[year]: a number field: \"douze\" is not a number",
        ),
        (
            "since",
            "2021-02-30",
            "values[since]: a date field: \"2021-02-30\" is not a date",
        ),
        (
            "volunteer",
            "peut-être",
            "values[volunteer]: a boolean field: \"peut-être\"",
        ),
        (
            "color",
            "bleu",
            "values[color]: a choice field: \"bleu\" is not one of the choices",
        ),
        (
            "shoe_size",
            "42",
            "values[shoe_size]: no custom field has this key; known keys: color",
        ),
    ] {
        let error = client
            .set_custom_fields(set(values(&[(key, raw)])))
            .await
            .unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        assert!(error.message().starts_with(message), "{}", error.message());
    }

    // A refused value changes nothing; an empty one removes the field.
    let person = client
        .set_custom_fields(set(values(&[("note", ""), ("year", "12,5")])))
        .await?
        .into_inner();
    assert_eq!(
        person.custom_fields.get("year").map(String::as_str),
        Some("12.5")
    );
    assert!(!person.custom_fields.contains_key("note"));
    assert_eq!(person.custom_fields.len(), 4);

    // A field a saved segment tests is not deleted; another segment does not hold it.
    let saved = |name: &str, query: &str| pb::CreateSavedSegmentRequest {
        name: name.into(),
        filter: Some(pb::SegmentFilter {
            query: query.into(),
            ..Default::default()
        }),
    };
    let reds = client
        .create_saved_segment(saved("Rouges", "tag:x OR NOT (field:color=Rouge)"))
        .await?
        .into_inner();
    client
        .create_saved_segment(saved("Anciens", "field:year<2000"))
        .await?;
    let delete = pb::DeleteCustomFieldRequest {
        key: "color".into(),
    };
    let error = client
        .delete_custom_field(delete.clone())
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::FailedPrecondition);
    assert!(
        error.message().contains("\"Rouges\"") && !error.message().contains("Anciens"),
        "{}",
        error.message()
    );
    let person = person_by_email(&mut client, "ana@example.org").await?;
    assert!(person.custom_fields.contains_key("color"));
    client
        .delete_saved_segment(pb::DeleteSavedSegmentRequest { id: reds.id })
        .await?;

    // Deleting a field deletes the values people hold for it.
    client.delete_custom_field(delete).await?;
    let person = person_by_email(&mut client, "ana@example.org").await?;
    assert!(!person.custom_fields.contains_key("color"));
    let error = count(&mut client, "field:color=Rouge").await.unwrap_err();
    assert!(
        error.message().contains("unknown custom field \"color\""),
        "{error:?}"
    );
    service.stop().await
}

#[tokio::test]
async fn an_import_reads_custom_columns_warns_on_bad_values_and_keeps_known_ones()
-> anyhow::Result<()> {
    let service = Service::start("fields").await?;
    let mut client = service.client(TenantId::new()).await?;
    define_fields(&mut client).await?;

    // "Année d'adhésion" is the label of year, "volunteer" a key; "Teinte"
    // is mapped explicitly to color, so it is read (and warned about) first.
    // "Section" is no field: the header line says it was not imported.
    let csv = "email,Année d'adhésion,volunteer,Teinte,since,Section\n\
               ana@example.org,2020,oui,vert,01/02/2020,Nord\n\
               bob@example.org,deux mille,non,bleu,2021-05-06,Sud\n\
               cleo@example.org,,1,ROUGE,,\n";
    let job = upload(&mut client, csv, &[("custom:color", "Teinte")]).await?;
    let counts = job.counts.unwrap_or_default();
    assert_eq!(
        (counts.created, counts.warnings, counts.rejected),
        (3, 1, 0)
    );

    let issues = support::issues(&mut client, &job).await?;
    let found: Vec<(u64, &str, &str, &str)> = issues
        .iter()
        .map(|i| {
            (
                i.line,
                i.field.as_str(),
                i.value.as_str(),
                i.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                1,
                "header",
                "Section",
                "1 column(s) not imported: \"Section\"; to keep one, define a custom field \
                 whose key or label is its header, or map it (preset custom, \
                 map.custom:KEY=header)"
            ),
            (
                3,
                "custom_fields",
                "bleu",
                "custom field color (choice): \"bleu\" is not one of the choices: Rouge, Vert"
            ),
            (
                3,
                "custom_fields",
                "deux mille",
                "custom field year (number): \"deux mille\" is not a number; write 12, -3 or \
                 12.5 (or 12,5)"
            ),
        ]
    );
    let ana = person_by_email(&mut client, "ana@example.org").await?;
    let shown = |p: &pb::Person| {
        let mut all: Vec<String> = p
            .custom_fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        all.sort();
        all.join(" ")
    };
    assert_eq!(
        shown(&ana),
        "color=Vert since=2020-02-01 volunteer=true year=2020"
    );
    let bob = person_by_email(&mut client, "bob@example.org").await?;
    assert_eq!(shown(&bob), "since=2021-05-06 volunteer=false");

    // Re-import: values already held are kept, new keys are added.
    let again = "email,year,note,color\nana@example.org,1999,arrivée en 2020,Rouge\n";
    upload(&mut client, again, &[]).await?;
    let ana = person_by_email(&mut client, "ana@example.org").await?;
    assert_eq!(
        shown(&ana),
        "color=Vert note=arrivée en 2020 since=2020-02-01 volunteer=true year=2020"
    );

    // A mapping naming an undefined field is refused before the upload is read.
    let error = upload(&mut client, "email,x\n", &[("custom:shoe_size", "x")])
        .await
        .unwrap_err();
    let status = error.downcast_ref::<tonic::Status>().expect("a status");
    assert!(
        status
            .message()
            .starts_with("header.mapping.custom_fields[shoe_size]: no custom field"),
        "{status:?}"
    );
    service.stop().await
}

#[tokio::test]
async fn segment_conditions_on_custom_fields_match_hand_computed_counts() -> anyhow::Result<()> {
    let service = Service::start("fields").await?;
    let mut client = service.client(TenantId::new()).await?;
    define_fields(&mut client).await?;

    // Twelve people: year 2015..2026 for the first ten, none for the last two;
    // since on even ones; volunteer on every third; color alternating.
    let mut csv = String::from("email;year;since;volunteer;color\n");
    for n in 0..12 {
        let year = if n < 10 {
            (2015 + n).to_string()
        } else {
            String::new()
        };
        let since = if n % 2 == 0 {
            format!("2023-12-{:02}", 20 + n)
        } else {
            String::new()
        };
        let volunteer = if n % 3 == 0 { "oui" } else { "non" };
        let color = ["rouge", "VERT", ""][n % 3];
        csv.push_str(&format!(
            "p{n}@example.org;{year};{since};{volunteer};{color}\n"
        ));
    }
    upload(&mut client, &csv, &[]).await?;

    // Years of 0..10 are 2015..2024: >= 2020 is n 5..9 (5 people).
    let cases: [(&str, u64); 12] = [
        ("field:year>=2020", 5),
        ("field:year>2020", 4),
        ("field:year<2017,5", 3),
        ("field:year<=2017", 3),
        ("field:year=2016", 1),
        ("NOT field:year>=2020", 7),
        // since: n even → 2023-12-20 + n: n 0..10 step 2 → 20, 22, ..., 30, all in 2023.
        ("field:since<2023-12-25", 3),
        ("field:since>=24/12/2023", 4),
        ("field:volunteer=yes", 4),
        ("field:color=Rouge", 4),
        ("has:field.color AND NOT field:color=vert", 4),
        ("has:field.year OR has:field.since", 11),
    ];
    for (query, expected) in cases {
        assert_eq!(count(&mut client, query).await?, expected, "{query}");
    }

    // The tree form, typed the same way.
    let tree = pb::SegmentExpr {
        node: Some(Node::Field(pb::FieldCondition {
            key: "year".into(),
            operator: pb::FieldOperator::GreaterOrEqual as i32,
            value: "2020".into(),
        })),
    };
    let request = pb::CountSegmentRequest {
        filter: Some(pb::SegmentFilter {
            expr: Some(tree),
            ..Default::default()
        }),
    };
    assert_eq!(client.count_segment(request).await?.into_inner().count, 5);

    // Unknown keys and wrong types are refused at their column.
    for (query, message) in [
        (
            "tag:a OR field:shoe=42",
            "filter.query: column 16: unknown custom field \"shoe\"",
        ),
        (
            "field:color>=Rouge",
            "filter.query: column 12: color is a choice field: compare",
        ),
        (
            "field:year>=douze",
            "filter.query: column 13: year is a number field: \"douze\"",
        ),
        (
            "field:since<hier",
            "filter.query: column 13: since is a date field: \"hier\"",
        ),
        (
            "has:field.nope",
            "filter.query: column 11: unknown custom field \"nope\"",
        ),
        (
            "field:year",
            "filter.query: column 11: write field:KEY=VALUE",
        ),
    ] {
        let error = count(&mut client, query).await.unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument, "{query}");
        assert!(
            error.message().starts_with(message),
            "{query}: {}",
            error.message()
        );
    }
    service.stop().await
}

#[tokio::test]
async fn a_definition_changes_its_label_and_choices_but_never_loses_a_value() -> anyhow::Result<()>
{
    let service = Service::start("fields").await?;
    let mut client = service.client(TenantId::new()).await?;
    define_fields(&mut client).await?;
    upload(&mut client, "email,Couleur\nana@example.org,rouge\n", &[]).await?;
    let update =
        |label: &str, kind: pb::CustomFieldType, choices: &[&str]| pb::UpdateCustomFieldRequest {
            field: Some(field("color", label, kind, choices)),
        };

    // A new label and a choice added; what is left out stays.
    let changed = client
        .update_custom_field(update(
            "Teinte préférée",
            pb::CustomFieldType::Unspecified,
            &["Rouge", "Vert", "Bleu"],
        ))
        .await?
        .into_inner();
    assert_eq!(
        (changed.label.as_str(), changed.choices.clone()),
        (
            "Teinte préférée",
            vec!["Rouge".into(), "Vert".into(), "Bleu".into()]
        )
    );
    assert_eq!(changed.r#type, pb::CustomFieldType::Choice as i32);
    let relabelled = client
        .update_custom_field(update("Teinte", pb::CustomFieldType::Choice, &[]))
        .await?
        .into_inner();
    assert_eq!(relabelled.choices.len(), 3, "no choices given: kept");
    assert_eq!(count(&mut client, "field:color=bleu").await?, 0);

    // A choice Ana holds is not removed; one a saved segment tests neither.
    let error = client
        .update_custom_field(update(
            "",
            pb::CustomFieldType::Unspecified,
            &["Vert", "Bleu"],
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::FailedPrecondition);
    assert!(
        error.message().contains("\"Rouge\" (1 person)"),
        "{}",
        error.message()
    );
    client
        .create_saved_segment(pb::CreateSavedSegmentRequest {
            name: "Verts".into(),
            filter: Some(pb::SegmentFilter {
                query: "field:color=Vert".into(),
                ..Default::default()
            }),
        })
        .await?;
    let error = client
        .update_custom_field(update(
            "",
            pb::CustomFieldType::Unspecified,
            &["Rouge", "Bleu"],
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::FailedPrecondition);
    assert!(error.message().contains("\"Verts\""), "{}", error.message());
    let unchanged = client
        .update_custom_field(update(
            "",
            pb::CustomFieldType::Unspecified,
            &["Rouge", "Vert"],
        ))
        .await?
        .into_inner();
    assert_eq!(
        unchanged.choices,
        ["Rouge", "Vert"],
        "an unheld, untested choice goes"
    );

    // The type stays; the label stays unique; the key must exist.
    let error = client
        .update_custom_field(update("", pb::CustomFieldType::Text, &[]))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(
        error.message().starts_with("field.type: "),
        "{}",
        error.message()
    );
    let error = client
        .update_custom_field(update("Note", pb::CustomFieldType::Unspecified, &[]))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::AlreadyExists);
    // Nor may it be another field's key, nor a new field's label this one's
    // key: an import reads a column by either, and could not tell them apart.
    let error = client
        .update_custom_field(update("YEAR", pb::CustomFieldType::Unspecified, &[]))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::AlreadyExists, "{error:?}");
    let error = client
        .define_custom_field(pb::DefineCustomFieldRequest {
            field: Some(field("shade", "color", pb::CustomFieldType::Text, &[])),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::AlreadyExists, "{error:?}");
    let error = client
        .update_custom_field(update("", pb::CustomFieldType::Unspecified, &[]))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(
        error.message().contains("nothing to change"),
        "{}",
        error.message()
    );
    let error = client
        .update_custom_field(pb::UpdateCustomFieldRequest {
            field: Some(field("shade", "Shade", pb::CustomFieldType::Text, &[])),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::NotFound);

    let ana = person_by_email(&mut client, "ana@example.org").await?;
    assert_eq!(
        ana.custom_fields.get("color").map(String::as_str),
        Some("Rouge")
    );

    // A held choice respelled in another case is renamed, values included.
    let respelled = client
        .update_custom_field(update(
            "",
            pb::CustomFieldType::Unspecified,
            &["ROUGE", "Vert"],
        ))
        .await?
        .into_inner();
    assert_eq!(respelled.choices, ["ROUGE", "Vert"]);
    let ana = person_by_email(&mut client, "ana@example.org").await?;
    assert_eq!(
        ana.custom_fields.get("color").map(String::as_str),
        Some("ROUGE")
    );
    assert_eq!(count(&mut client, "field:color=rouge").await?, 1);
    service.stop().await
}

#[tokio::test]
async fn headers_name_fields_however_typed_and_a_field_the_preset_reads_is_named()
-> anyhow::Result<()> {
    let service = Service::start("fields").await?;
    let mut client = service.client(TenantId::new()).await?;
    define_fields(&mut client).await?;
    let ville = field("ville", "Ville de vote", pb::CustomFieldType::Text, &[]);
    client
        .define_custom_field(pb::DefineCustomFieldRequest { field: Some(ville) })
        .await?;

    // A curly apostrophe, a no-break space and a doubled space, as word
    // processors and spreadsheets type them: still the label of "year".
    let csv = "Prénom;Nom;E-mail;Ville;Année d\u{2019}adhésion;Membre\u{a0}depuis\n\
               Ana;Roy;ana@example.org;Lille;2020;01/02/2020\n";
    let header = pb::ImportHeader {
        file_name: "adherents.csv".into(),
        preset: pb::ImportPreset::FrExcel as i32,
        ..Default::default()
    };
    let job = support::upload(&mut client, header, csv).await?;

    let ana = person_by_email(&mut client, "ana@example.org").await?;
    let mut held: Vec<String> = ana
        .custom_fields
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    held.sort();
    assert_eq!(held, ["since=2020-02-01", "year=2020"]);
    let issues = support::issues(&mut client, &job).await?;
    let reasons: Vec<&str> = issues.iter().map(|i| i.reason.as_str()).collect();
    assert_eq!(issues.len(), 1, "{reasons:?}");
    assert_eq!((issues[0].line, issues[0].value.as_str()), (1, "Ville"));
    assert!(
        reasons[0].starts_with(
            "the custom field \"ville\" is not filled from column 4 (\"Ville\"): this format \
             reads that column as the person's own field"
        ),
        "{}",
        reasons[0]
    );

    // Typed another way, the label is still the one of "year".
    let twin = field(
        "adhesion",
        "ANNEE  D’ADHESION",
        pb::CustomFieldType::Text,
        &[],
    );
    let refused = client
        .define_custom_field(pb::DefineCustomFieldRequest { field: Some(twin) })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::AlreadyExists, "{refused:?}");
    assert!(refused.message().contains("\"year\""), "{refused:?}");
    service.stop().await
}
