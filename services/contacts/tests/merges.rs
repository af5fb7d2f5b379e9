//! One record per person, against a real contacts service and its own
//! database: merges (what the survivor keeps, consent, audit, the event in
//! the outbox, refused cases), secondary addresses matched by imports, and
//! duplicate detection with its rules.

use std::time::Duration;

use muster_contacts::{Mode, Settings};
use muster_proto::contacts::v1 as pb;
use muster_proto::contacts::v1::contacts_service_client::ContactsServiceClient;
use muster_proto::contacts::v1::person_data_service_client::PersonDataServiceClient;
use muster_proto::events::v1::{ConsentChanges, PersonMerged};
use muster_runtime::TenantId;
use muster_runtime::auth::{Bearer, Signer};
use prost::Message;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

mod support;

use support::Client;

/// A contacts service serving its own database, and a client of one organization.
struct Service {
    client: Client,
    channel: Channel,
    token: String,
    pool: PgPool,
    tenant: TenantId,
    shutdown: CancellationToken,
    database: muster_runtime::config::DatabaseSettings,
}

impl Drop for Service {
    /// Stops the service and drops its database, whether the test passed or
    /// failed, so that a run leaves nothing behind.
    fn drop(&mut self) {
        self.shutdown.cancel();
        let database = self.database.clone();
        // The test's runtime cannot block on a future from here: a thread
        // with its own runtime drops the database (FORCE ends the pool's
        // connections).
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| runtime.block_on(muster_testkit::drop_database(&database)))
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("could not drop the test database: {error:#}");
        }
    }
}

async fn start(label: &str) -> anyhow::Result<Service> {
    muster_runtime::telemetry::init_for_tests();
    let mut settings: Settings =
        muster_runtime::service::default_settings::<muster_contacts::Contacts>()?;
    settings.database = muster_testkit::fresh_database(label).await?;
    settings.listen.addr = "127.0.0.1:0".into();
    settings.listen.admin_addr = "127.0.0.1:0".into();
    let app = muster_contacts::build(settings.clone(), Mode::Serve).await?;
    let port = app.grpc_port().unwrap_or_default();
    let pool = app.pool().clone();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run(shutdown.clone()));
    let tenant = TenantId::new();
    let token = Signer::new(&settings.auth.token_secret).mint(
        "organizer@example.org",
        Some(tenant),
        Duration::from_secs(600),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
        .connect()
        .await?;
    let client = ContactsServiceClient::with_interceptor(channel.clone(), Bearer::new(&token));
    Ok(Service {
        client,
        channel,
        token,
        pool,
        tenant,
        shutdown,
        database: settings.database,
    })
}

/// A person written straight to the database, as an import would leave them.
#[derive(Default)]
struct New<'a> {
    first: Option<&'a str>,
    last: Option<&'a str>,
    email: Option<&'a str>,
    phone: Option<&'a str>,
    line1: Option<&'a str>,
    postal_code: Option<&'a str>,
    birth_date: Option<&'a str>,
    tags: &'a [&'a str],
    external_ids: serde_json::Value,
    /// "granted" or "withdrawn", logged in the ledger too.
    consent: Option<&'a str>,
}

async fn insert(service: &Service, new: New<'_>) -> anyhow::Result<Uuid> {
    let id = Uuid::now_v7();
    let external_ids = match new.external_ids {
        serde_json::Value::Null => serde_json::json!({}),
        ids => ids,
    };
    sqlx::query(
        "INSERT INTO people (id, tenant_id, first_name, last_name, email, email_key, phone,
            address_line1, postal_code, birth_date, tags, external_ids, email_consent,
            email_consent_at, email_consent_source)
         VALUES ($1, $2, $3, $4, $5, lower($5), $6, $7, $8, $9::date, $10, $11,
            COALESCE($12, 'none'), CASE WHEN $12 IS NULL THEN NULL ELSE now() END,
            CASE WHEN $12 IS NULL THEN NULL ELSE 'test' END)",
    )
    .bind(id)
    .bind(service.tenant)
    .bind(new.first)
    .bind(new.last)
    .bind(new.email)
    .bind(new.phone)
    .bind(new.line1)
    .bind(new.postal_code)
    .bind(new.birth_date)
    .bind(new.tags)
    .bind(&external_ids)
    .bind(new.consent)
    .execute(&service.pool)
    .await?;
    if let Some(state) = new.consent {
        // The ledger and the current state it derives, as consent::store writes them.
        for sql in [
            "INSERT INTO consent_events (tenant_id, person_id, channel, state, occurred_at, source)
             VALUES ($1, $2, 'email', $3, now(), 'test')",
            "INSERT INTO consents (tenant_id, person_id, channel, purpose, state, legal_basis,
                                   source, notice, occurred_at)
             VALUES ($1, $2, 'email', '', $3, 'consent', 'test', '', now())",
        ] {
            sqlx::query(sql)
                .bind(service.tenant)
                .bind(id)
                .bind(state)
                .execute(&service.pool)
                .await?;
        }
    }
    Ok(id)
}

async fn merge(
    client: &mut Client,
    survivor: Uuid,
    merged: Uuid,
) -> Result<pb::Merge, tonic::Status> {
    let request = pb::MergePeopleRequest {
        survivor_id: survivor.to_string(),
        merged_id: merged.to_string(),
        reason: "same person, told us by phone".into(),
    };
    Ok(client.merge_people(request).await?.into_inner())
}

async fn get(client: &mut Client, id: Uuid) -> anyhow::Result<pb::Person> {
    let request = pb::GetPersonRequest { id: id.to_string() };
    Ok(client.get_person(request).await?.into_inner())
}

async fn outbox(pool: &PgPool, routing_key: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    Ok(
        sqlx::query_scalar("SELECT body FROM outbox WHERE routing_key = $1 ORDER BY id")
            .bind(routing_key)
            .fetch_all(pool)
            .await?,
    )
}

#[tokio::test]
async fn a_merge_unites_addresses_phones_tags_and_ids_and_fills_what_the_survivor_lacks()
-> anyhow::Result<()> {
    let mut service = start("merge_union").await?;
    let survivor = insert(
        &service,
        New {
            first: Some("Ann"),
            email: Some("ann@example.org"),
            phone: Some("+33612345678"),
            tags: &["volunteer"],
            external_ids: serde_json::json!({"nationbuilder": "1"}),
            ..New::default()
        },
    )
    .await?;
    let merged = insert(
        &service,
        New {
            first: Some("Annie"),
            last: Some("Lee"),
            email: Some("Annie.Lee@example.org"),
            phone: Some("+33698765432"),
            line1: Some("3 rue de la Paix"),
            postal_code: Some("75002"),
            tags: &["volunteer", "donor"],
            external_ids: serde_json::json!({"nationbuilder": "2", "mailchimp": "m9"}),
            ..New::default()
        },
    )
    .await?;

    let done = merge(&mut service.client, survivor, merged).await?;

    let person = done.survivor.clone().unwrap_or_default();
    assert_eq!(person.id, survivor.to_string());
    assert_eq!(person.first_name, "Ann", "the survivor's values stay");
    assert_eq!(person.last_name, "Lee", "empty values are filled");
    assert_eq!(person.email, "ann@example.org");
    assert_eq!(person.other_emails, ["Annie.Lee@example.org"]);
    assert_eq!(person.phone, "+33612345678");
    assert_eq!(person.other_phones, ["+33698765432"]);
    assert_eq!(person.tags, ["volunteer", "donor"]);
    assert_eq!(person.external_ids["nationbuilder"], "1");
    assert_eq!(person.external_ids["mailchimp"], "m9");
    let address = person.address.unwrap_or_default();
    assert_eq!(
        (address.line1.as_str(), address.postal_code.as_str()),
        ("3 rue de la Paix", "75002")
    );

    let answered = get(&mut service.client, merged).await?;
    assert_eq!(answered.id, survivor.to_string(), "the merged id answers");
    // Other calls do not follow the merge, and say which id to use.
    let error = service
        .client
        .set_custom_fields(pb::SetCustomFieldsRequest {
            person_id: merged.to_string(),
            values: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::NotFound);
    assert!(
        error
            .message()
            .contains(&format!("merged into person {survivor}")),
        "{}",
        error.message()
    );
    let people: i64 = sqlx::query_scalar("SELECT count(*) FROM people")
        .fetch_one(&service.pool)
        .await?;
    assert_eq!(people, 1);

    let audit: (Uuid, Uuid, String, String, serde_json::Value) = sqlx::query_as(
        "SELECT survivor_id, merged_id, reason, merged_by, snapshot FROM merges WHERE id = $1",
    )
    .bind(Uuid::parse_str(&done.id)?)
    .fetch_one(&service.pool)
    .await?;
    assert_eq!((audit.0, audit.1), (survivor, merged));
    assert_eq!(audit.2, "same person, told us by phone");
    assert_eq!(audit.3, "organizer@example.org");
    assert_eq!(audit.4["email"], "Annie.Lee@example.org");
    assert_eq!(audit.4["last_name"], "Lee");

    let events = outbox(&service.pool, "contacts.person.merged").await?;
    assert_eq!(events.len(), 1);
    let event = PersonMerged::decode(events[0].as_slice())?;
    assert_eq!(event.survivor_id, survivor.to_string());
    assert_eq!(event.merged_id, merged.to_string());
    assert_eq!(event.merge_id, done.id);
    Ok(())
}

/// Street, postal code, town and commune of an address.
fn place(address: Option<pb::PostalAddress>) -> [String; 4] {
    let address = address.unwrap_or_default();
    [
        address.line1,
        address.postal_code,
        address.city,
        address.commune_insee,
    ]
}

#[tokio::test]
async fn a_bare_postal_code_gives_way_to_the_same_place_told_fully() -> anyhow::Result<()> {
    let mut service = start("merge_address").await?;
    let bare = |email| New {
        first: Some("Ann"),
        email: Some(email),
        postal_code: Some("56120"),
        ..New::default()
    };
    let full = |email, postal_code| New {
        first: Some("Ann"),
        email: Some(email),
        line1: Some("3 rue Lafayette"),
        postal_code: Some(postal_code),
        ..New::default()
    };
    let survivor = insert(&service, bare("ann@example.org")).await?;
    let merged = insert(&service, full("ann@old.example", "56120")).await?;
    let elsewhere = insert(&service, full("ann@other.example", "75002")).await?;
    // Placed as an import places them: Guégon, and Paris 2e.
    for (id, city, commune, departement, region) in [
        (merged, "Guégon", "56070", "56", "53"),
        (elsewhere, "Paris", "75102", "75", "11"),
    ] {
        sqlx::query(
            "UPDATE people SET city = $2, commune_insee = $3, departement = $4, region = $5
             WHERE id = $1",
        )
        .bind(id)
        .bind(city)
        .bind(commune)
        .bind(departement)
        .bind(region)
        .execute(&service.pool)
        .await?;
    }

    let done = merge(&mut service.client, survivor, merged).await?;
    assert_eq!(
        place(done.survivor.unwrap_or_default().address),
        ["3 rue Lafayette", "56120", "Guégon", "56070"]
    );

    // Another postal code is another place: the survivor's stays.
    let bare_again = insert(&service, bare("ann@third.example")).await?;
    let done = merge(&mut service.client, bare_again, elsewhere).await?;
    assert_eq!(
        place(done.survivor.unwrap_or_default().address),
        ["", "56120", "", ""]
    );

    // An import fills it the same way.
    let pending = insert(&service, bare("bea@example.org")).await?;
    let mapping = pb::ColumnMapping {
        email: "email".into(),
        address_line1: "line1".into(),
        postal_code: "cp".into(),
        city: "city".into(),
        ..Default::default()
    };
    let csv = "email,line1,cp,city\r\nbea@example.org,3 rue Lafayette,56120,Guégon\r\n";
    upload_with(&mut service.client, csv, mapping).await?;
    assert_eq!(
        place(get(&mut service.client, pending).await?.address),
        ["3 rue Lafayette", "56120", "Guégon", "56070"]
    );
    Ok(())
}

#[tokio::test]
async fn a_withdrawal_on_either_side_survives_the_merge() -> anyhow::Result<()> {
    let mut service = start("merge_consent").await?;
    let granted = insert(
        &service,
        New {
            email: Some("grant@example.org"),
            consent: Some("granted"),
            ..New::default()
        },
    )
    .await?;
    let withdrawn = insert(
        &service,
        New {
            email: Some("withdrew@example.org"),
            consent: Some("withdrawn"),
            ..New::default()
        },
    )
    .await?;
    let other_granted = insert(
        &service,
        New {
            email: Some("later@example.org"),
            consent: Some("granted"),
            ..New::default()
        },
    )
    .await?;

    merge(&mut service.client, granted, withdrawn).await?;
    let person = get(&mut service.client, granted).await?;
    let consent = person.email_consent.unwrap_or_default();
    assert_eq!(consent.state, pb::ConsentState::Withdrawn as i32);
    assert!(consent.source.starts_with("merge:"), "{consent:?}");
    let ledger: Vec<String> =
        sqlx::query_scalar("SELECT state FROM consent_events WHERE person_id = $1 ORDER BY id")
            .bind(granted)
            .fetch_all(&service.pool)
            .await?;
    assert_eq!(
        ledger,
        ["granted", "withdrawn", "withdrawn"],
        "both ledgers, and the change the merge made"
    );
    let announced = outbox(&service.pool, "contacts.consent.changed").await?;
    let changes = ConsentChanges::decode(announced[0].as_slice())?.changes;
    assert_eq!(changes.len(), 1, "{changes:?}");
    let change = &changes[0];
    assert_eq!(change.email, "grant@example.org");
    assert_eq!(change.state, pb::ConsentState::Withdrawn as i32);

    // The other way round: a grant does not lift the survivor's withdrawal.
    merge(&mut service.client, granted, other_granted).await?;
    let person = get(&mut service.client, granted).await?;
    let state = person.email_consent.unwrap_or_default().state;
    assert_eq!(state, pb::ConsentState::Withdrawn as i32);
    assert_eq!(
        outbox(&service.pool, "contacts.consent.changed")
            .await?
            .len(),
        1
    );
    Ok(())
}

/// Sets the current consent of `person` on `channel` and `purpose`, as the
/// ledger would have derived it.
async fn hold(
    service: &Service,
    person: Uuid,
    channel: &str,
    purpose: &str,
    state: &str,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO consents (tenant_id, person_id, channel, purpose, state, legal_basis,
                               source, notice, occurred_at)
         VALUES ($1, $2, $3, $4, $5, 'consent', 'form', 'v2', now())",
    )
    .bind(service.tenant)
    .bind(person)
    .bind(channel)
    .bind(purpose)
    .bind(state)
    .execute(&service.pool)
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_merge_unites_consent_per_channel_and_purpose() -> anyhow::Result<()> {
    let mut service = start("merge_purposes").await?;
    let new = |email| New {
        email: Some(email),
        ..New::default()
    };
    let survivor = insert(&service, new("kept@example.org")).await?;
    let merged = insert(&service, new("gone@example.org")).await?;
    hold(&service, survivor, "sms", "", "granted").await?;
    hold(&service, survivor, "email", "newsletter", "pending").await?;
    hold(&service, survivor, "phone", "", "withdrawn").await?;
    hold(&service, merged, "sms", "", "withdrawn").await?;
    hold(&service, merged, "email", "newsletter", "granted").await?;
    hold(&service, merged, "post", "events", "granted").await?;
    hold(&service, merged, "phone", "", "granted").await?;
    hold(&service, merged, "email", "", "pending").await?;

    let done = merge(&mut service.client, survivor, merged).await?;
    let held: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT channel, purpose, state, source FROM consents WHERE person_id = $1
         ORDER BY channel, purpose",
    )
    .bind(survivor)
    .fetch_all(&service.pool)
    .await?;
    let by_merge = format!("merge:{}", done.id);
    let expected = [
        // The merged person's grant was for their own address: the
        // survivor's request still waits for its confirmation.
        ("email", "newsletter", "pending", "form"),
        // The survivor's withdrawal stays.
        ("phone", "", "withdrawn", "form"),
        // The merged person's withdrawal wins.
        ("sms", "", "withdrawn", by_merge.as_str()),
    ];
    let held: Vec<(&str, &str, &str, &str)> = held
        .iter()
        .map(|(c, p, s, o)| (c.as_str(), p.as_str(), s.as_str(), o.as_str()))
        .collect();
    assert_eq!(
        held, expected,
        "a pending request of the merged is not carried over"
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM consents WHERE person_id = $1")
        .bind(merged)
        .fetch_one(&service.pool)
        .await?;
    assert_eq!(left, 0);
    Ok(())
}

#[tokio::test]
async fn merges_with_oneself_of_an_erased_person_or_twice_are_refused_whole() -> anyhow::Result<()>
{
    let mut service = start("merge_refused").await?;
    let ann = insert(
        &service,
        New {
            email: Some("ann@example.org"),
            tags: &["a"],
            ..New::default()
        },
    )
    .await?;
    let bob = insert(
        &service,
        New {
            email: Some("bob@example.org"),
            tags: &["b"],
            ..New::default()
        },
    )
    .await?;
    let erased = insert(
        &service,
        New {
            email: Some("gone@example.org"),
            tags: &["c"],
            ..New::default()
        },
    )
    .await?;
    let mut privacy = PersonDataServiceClient::with_interceptor(
        service.channel.clone(),
        Bearer::new(&service.token),
    );
    privacy
        .erase_person(pb::ErasePersonRequest {
            person_id: erased.to_string(),
            requested_by: "the person".into(),
            reason: String::new(),
        })
        .await?;

    let own = merge(&mut service.client, ann, ann).await.unwrap_err();
    assert_eq!(own.code(), tonic::Code::InvalidArgument, "{own:?}");
    let gone = merge(&mut service.client, ann, erased).await.unwrap_err();
    assert_eq!(gone.code(), tonic::Code::FailedPrecondition, "{gone:?}");
    assert!(gone.message().contains("erased"), "{gone:?}");
    let unknown = merge(&mut service.client, ann, Uuid::now_v7())
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");
    assert_eq!(
        get(&mut service.client, ann).await?.tags,
        ["a"],
        "nothing half-merged"
    );

    merge(&mut service.client, ann, bob).await?;
    let again = merge(&mut service.client, ann, bob).await.unwrap_err();
    assert_eq!(again.code(), tonic::Code::FailedPrecondition, "{again:?}");
    assert!(
        again
            .message()
            .contains(&format!("merged into {ann}; they are one person already")),
        "{again:?}"
    );
    let merges: i64 = sqlx::query_scalar("SELECT count(*) FROM merges")
        .fetch_one(&service.pool)
        .await?;
    assert_eq!(merges, 1);
    Ok(())
}

#[tokio::test]
async fn two_merges_of_the_same_people_at_once_make_one_merge() -> anyhow::Result<()> {
    let service = start("merge_race").await?;
    for round in 0..5 {
        let ann = insert(
            &service,
            New {
                tags: &["a"],
                ..New::default()
            },
        )
        .await?;
        let bob = insert(
            &service,
            New {
                tags: &["b"],
                ..New::default()
            },
        )
        .await?;
        let (mut one, mut two) = (service.client.clone(), service.client.clone());
        let (first, second) = tokio::join!(merge(&mut one, ann, bob), merge(&mut two, bob, ann));
        let refused: Vec<&tonic::Status> = [&first, &second]
            .into_iter()
            .filter_map(|r| r.as_ref().err())
            .collect();
        assert_eq!(refused.len(), 1, "round {round}: {first:?} {second:?}");
        assert_eq!(refused[0].code(), tonic::Code::FailedPrecondition);
        let left: Vec<Vec<String>> =
            sqlx::query_scalar("SELECT tags FROM people WHERE id = ANY($1)")
                .bind([ann, bob])
                .fetch_all(&service.pool)
                .await?;
        assert_eq!(left.len(), 1, "round {round}");
        assert_eq!(left[0].len(), 2, "round {round}: {left:?}");
    }
    Ok(())
}

async fn upload(client: &mut Client, csv: &str) -> anyhow::Result<pb::ImportJob> {
    let mapping = pb::ColumnMapping {
        email: "email".into(),
        first_name: "first".into(),
        last_name: "last".into(),
        tags: "tags".into(),
        external_id: "id".into(),
        ..Default::default()
    };
    upload_with(client, csv, mapping).await
}

async fn upload_with(
    client: &mut Client,
    csv: &str,
    mapping: pb::ColumnMapping,
) -> anyhow::Result<pb::ImportJob> {
    let header = pb::ImportHeader {
        file_name: "people.csv".into(),
        preset: pb::ImportPreset::Custom as i32,
        mapping: Some(mapping),
        ..Default::default()
    };
    support::upload(client, header, csv).await
}

#[tokio::test]
async fn an_import_row_with_a_secondary_address_updates_its_person() -> anyhow::Result<()> {
    let mut service = start("merge_import").await?;
    let ann = insert(
        &service,
        New {
            email: Some("ann@example.org"),
            ..New::default()
        },
    )
    .await?;
    let old = insert(
        &service,
        New {
            email: Some("ann@old.example"),
            ..New::default()
        },
    )
    .await?;
    merge(&mut service.client, ann, old).await?;

    let job = upload(
        &mut service.client,
        "email,first,last,tags,id\r\nANN@old.example,Ann,Lee,canvasser,\r\n",
    )
    .await?;

    let counts = job.counts.unwrap_or_default();
    assert_eq!((counts.created, counts.merged), (0, 1), "{counts:?}");
    let person = get(&mut service.client, ann).await?;
    assert_eq!(person.email, "ann@example.org");
    assert_eq!(person.tags, ["canvasser"]);
    assert_eq!(person.last_name, "Lee");
    Ok(())
}

#[tokio::test]
async fn an_import_row_with_only_a_secondary_number_updates_its_person() -> anyhow::Result<()> {
    let mut service = start("merge_import_phone").await?;
    let kim = insert(
        &service,
        New {
            phone: Some("+33611111111"),
            ..New::default()
        },
    )
    .await?;
    let old = insert(
        &service,
        New {
            phone: Some("+33622222222"),
            ..New::default()
        },
    )
    .await?;
    merge(&mut service.client, kim, old).await?;

    let mapping = pb::ColumnMapping {
        phone: "phone".into(),
        tags: "tags".into(),
        ..Default::default()
    };
    let job = upload_with(
        &mut service.client,
        "phone,tags\r\n06 22 22 22 22,canvasser\r\n",
        mapping,
    )
    .await?;

    let counts = job.counts.unwrap_or_default();
    assert_eq!((counts.created, counts.merged), (0, 1), "{counts:?}");
    let person = get(&mut service.client, kim).await?;
    assert_eq!(person.phone, "+33611111111");
    assert_eq!(person.other_phones, ["+33622222222"]);
    assert_eq!(person.tags, ["canvasser"]);
    Ok(())
}

#[tokio::test]
async fn erasing_a_survivor_hashes_every_address_and_empties_the_snapshots() -> anyhow::Result<()> {
    let mut service = start("merge_erase").await?;
    let ann = insert(
        &service,
        New {
            email: Some("ann@example.org"),
            ..New::default()
        },
    )
    .await?;
    let old = insert(
        &service,
        New {
            email: Some("ann@old.example"),
            ..New::default()
        },
    )
    .await?;
    merge(&mut service.client, ann, old).await?;
    // Ann shares a number with Bea: a pair to review, through a merged id too.
    let bea = insert(
        &service,
        New {
            email: Some("bea@example.org"),
            phone: Some("+33633333333"),
            ..New::default()
        },
    )
    .await?;
    sqlx::query("UPDATE people SET phone = '+33633333333' WHERE id = $1")
        .bind(ann)
        .execute(&service.pool)
        .await?;
    find(&mut service.client).await?;
    sqlx::query(
        "INSERT INTO duplicates (id, tenant_id, person_a, person_b, reasons)
         SELECT $1, tenant_id, $2, $3, '{phone}' FROM people WHERE id = $3",
    )
    .bind(Uuid::now_v7())
    .bind(old)
    .bind(bea)
    .execute(&service.pool)
    .await?;
    assert_eq!(open_pairs(&mut service.client).await?.len(), 2);
    let mut privacy = PersonDataServiceClient::with_interceptor(
        service.channel.clone(),
        Bearer::new(&service.token),
    );
    privacy
        .erase_person(pb::ErasePersonRequest {
            person_id: ann.to_string(),
            requested_by: "the person".into(),
            reason: String::new(),
        })
        .await?;

    let hashed: i64 = sqlx::query_scalar("SELECT count(*) FROM erased_addresses")
        .fetch_one(&service.pool)
        .await?;
    assert_eq!(hashed, 2);
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM person_emails")
        .fetch_one(&service.pool)
        .await?;
    assert_eq!(kept, 0);
    let snapshot: serde_json::Value = sqlx::query_scalar("SELECT snapshot FROM merges")
        .fetch_one(&service.pool)
        .await?;
    assert_eq!(
        snapshot,
        serde_json::json!({"erased": true}),
        "the audit keeps no address"
    );
    let pairs: i64 = sqlx::query_scalar("SELECT count(*) FROM duplicates")
        .fetch_one(&service.pool)
        .await?;
    assert_eq!(
        pairs, 0,
        "no pair tells that an erased person matched another"
    );
    Ok(())
}

/// Runs detection over the whole organization.
async fn find(client: &mut Client) -> anyhow::Result<pb::FindDuplicatesResponse> {
    Ok(client
        .find_duplicates(pb::FindDuplicatesRequest {})
        .await?
        .into_inner())
}

async fn client_pairs(
    client: &mut Client,
    request: pb::ListDuplicatesRequest,
) -> anyhow::Result<Vec<pb::Duplicate>> {
    Ok(client
        .list_duplicates(request)
        .await?
        .into_inner()
        .duplicates)
}

async fn open_pairs(client: &mut Client) -> anyhow::Result<Vec<pb::Duplicate>> {
    let mut pairs = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListDuplicatesRequest {
            page_size: 2,
            page_token,
            state: pb::DuplicateState::Open as i32,
        };
        let page = client.list_duplicates(request).await?.into_inner();
        pairs.extend(page.duplicates);
        if page.next_page_token.is_empty() {
            return Ok(pairs);
        }
        page_token = page.next_page_token;
    }
}

fn reasons_of(pairs: &[pb::Duplicate], person: Uuid) -> Vec<i32> {
    pairs
        .iter()
        .find(|p| {
            [&p.first, &p.second]
                .iter()
                .any(|q| q.as_ref().is_some_and(|q| q.id == person.to_string()))
        })
        .map(|p| p.reasons.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn phone_name_and_address_and_likely_duplicates_are_listed_for_review() -> anyhow::Result<()>
{
    let mut service = start("dup_review").await?;
    let phone = insert(
        &service,
        New {
            phone: Some("+33612345678"),
            ..New::default()
        },
    )
    .await?;
    let other = insert(
        &service,
        New {
            email: Some("c@example.org"),
            ..New::default()
        },
    )
    .await?;
    sqlx::query("INSERT INTO person_phones (tenant_id, person_id, phone) VALUES ($1, $2, $3)")
        .bind(service.tenant)
        .bind(other)
        .bind("+33612345678")
        .execute(&service.pool)
        .await?;
    let helene = insert(
        &service,
        New {
            first: Some("Hélène"),
            last: Some("Dupont-Moreau"),
            line1: Some("12 rue de l'Église"),
            postal_code: Some("75001"),
            ..New::default()
        },
    )
    .await?;
    insert(
        &service,
        New {
            first: Some("HELENE"),
            last: Some("dupont moreau"),
            line1: Some("12, Rue de l’Eglise"),
            postal_code: Some("75 001"),
            ..New::default()
        },
    )
    .await?;
    let paul = insert(
        &service,
        New {
            first: Some("Paul"),
            last: Some("Martin"),
            line1: Some("1 place Bellecour"),
            postal_code: Some("69002"),
            ..New::default()
        },
    )
    .await?;
    insert(
        &service,
        New {
            first: Some("paul"),
            last: Some("MARTIN"),
            postal_code: Some("69002"),
            ..New::default()
        },
    )
    .await?;
    let born = insert(
        &service,
        New {
            first: Some("Zoé"),
            last: Some("Roy"),
            birth_date: Some("1990-04-01"),
            ..New::default()
        },
    )
    .await?;
    insert(
        &service,
        New {
            first: Some("Zoe"),
            last: Some("Roy"),
            birth_date: Some("1990-04-01"),
            postal_code: Some("13001"),
            ..New::default()
        },
    )
    .await?;
    insert(
        &service,
        New {
            first: Some("Zoe"),
            last: Some("Royer"),
            ..New::default()
        },
    )
    .await?;

    let found = find(&mut service.client).await?;
    assert_eq!(
        found,
        pb::FindDuplicatesResponse {
            listed: 4,
            merged: 0
        }
    );

    let pairs = open_pairs(&mut service.client).await?;
    assert_eq!(pairs.len(), 4, "{pairs:?}");
    assert_eq!(reasons_of(&pairs, phone), [pb::DuplicateKind::Phone as i32]);
    assert_eq!(
        reasons_of(&pairs, helene),
        [pb::DuplicateKind::NameAddress as i32]
    );
    assert_eq!(
        reasons_of(&pairs, paul),
        [pb::DuplicateKind::NamePostalCode as i32]
    );
    assert_eq!(
        reasons_of(&pairs, born),
        [pb::DuplicateKind::NameBirthDate as i32]
    );

    let dismissed = pairs
        .iter()
        .find(|p| p.reasons == [pb::DuplicateKind::NamePostalCode as i32])
        .map(|p| p.id.clone())
        .unwrap_or_default();
    let request = pb::DismissDuplicateRequest { id: dismissed };
    let pair = service
        .client
        .dismiss_duplicate(request)
        .await?
        .into_inner();
    assert_eq!(pair.state, pb::DuplicateState::Dismissed as i32);
    let found = find(&mut service.client).await?;
    assert_eq!(found.listed, 0, "a dismissed pair is not listed again");
    assert_eq!(open_pairs(&mut service.client).await?.len(), 3);
    Ok(())
}

#[tokio::test]
async fn external_ids_merge_by_default_and_rules_choose_other_exact_kinds() -> anyhow::Result<()> {
    let mut service = start("dup_rules").await?;
    let older = insert(
        &service,
        New {
            email: Some("one@example.org"),
            external_ids: serde_json::json!({"nationbuilder": "42"}),
            ..New::default()
        },
    )
    .await?;
    insert(
        &service,
        New {
            email: Some("two@example.org"),
            external_ids: serde_json::json!({"nationbuilder": "42"}),
            ..New::default()
        },
    )
    .await?;
    // One id in two outside accounts (two groups' NationBuilder exports):
    // other names, other people, listed and never merged.
    let gerard = insert(
        &service,
        New {
            email: Some("gerard@example.org"),
            first: Some("Gérard"),
            last: Some("Vidal"),
            external_ids: serde_json::json!({"nationbuilder": "5001"}),
            ..New::default()
        },
    )
    .await?;
    let henriette = insert(
        &service,
        New {
            email: Some("henriette@example.org"),
            first: Some("Henriette"),
            last: Some("Bonnin"),
            external_ids: serde_json::json!({"nationbuilder": "5001"}),
            ..New::default()
        },
    )
    .await?;
    let phoned = insert(
        &service,
        New {
            phone: Some("+33611111111"),
            ..New::default()
        },
    )
    .await?;
    insert(
        &service,
        New {
            email: Some("three@example.org"),
            phone: Some("+33611111111"),
            first: Some("Léa"),
            ..New::default()
        },
    )
    .await?;
    // A couple on one line: the phone rule lists them, never merges them.
    let marie = insert(
        &service,
        New {
            email: Some("marie@example.org"),
            phone: Some("+33622222222"),
            first: Some("Marie"),
            last: Some("Dupont"),
            ..New::default()
        },
    )
    .await?;
    let jean = insert(
        &service,
        New {
            email: Some("jean@example.org"),
            phone: Some("+33622222222"),
            first: Some("Jean"),
            last: Some("Dupont"),
            ..New::default()
        },
    )
    .await?;

    let rules = service
        .client
        .get_duplicate_rules(pb::GetDuplicateRulesRequest {})
        .await?;
    assert_eq!(
        rules.into_inner().automatic,
        [pb::DuplicateKind::ExternalId as i32]
    );
    let found = find(&mut service.client).await?;
    assert_eq!(
        found,
        pb::FindDuplicatesResponse {
            listed: 3,
            merged: 1
        }
    );
    assert_eq!(get(&mut service.client, gerard).await?.first_name, "Gérard");
    assert_eq!(
        get(&mut service.client, henriette).await?.first_name,
        "Henriette"
    );
    let person = get(&mut service.client, older).await?;
    assert_eq!(person.other_emails, ["two@example.org"]);
    let by: String = sqlx::query_scalar("SELECT merged_by FROM merges")
        .fetch_one(&service.pool)
        .await?;
    assert_eq!(by, "rule:external_id");

    let likely = pb::DuplicateRules {
        automatic: vec![pb::DuplicateKind::NameBirthDate as i32],
    };
    let refused = service
        .client
        .set_duplicate_rules(likely)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let phone = pb::DuplicateRules {
        automatic: vec![pb::DuplicateKind::Phone as i32],
    };
    service.client.set_duplicate_rules(phone).await?;
    let found = find(&mut service.client).await?;
    assert_eq!(found.merged, 1);
    let person = get(&mut service.client, phoned).await?;
    assert_eq!(
        person.email, "three@example.org",
        "the survivor took the address it lacked"
    );
    let open = open_pairs(&mut service.client).await?;
    assert_eq!(open.len(), 2, "{open:?}");
    let pairs: Vec<[String; 2]> = open
        .iter()
        .map(|pair| {
            let mut ids = [pair.first_id.clone(), pair.second_id.clone()];
            ids.sort();
            ids
        })
        .collect();
    for (a, b) in [(marie, jean), (gerard, henriette)] {
        let mut ids = [a.to_string(), b.to_string()];
        ids.sort();
        assert!(pairs.contains(&ids), "{open:?}");
    }
    assert_eq!(get(&mut service.client, jean).await?.first_name, "Jean");
    Ok(())
}

#[tokio::test]
async fn an_import_merges_the_duplicates_it_brings_by_the_rules() -> anyhow::Result<()> {
    let mut service = start("dup_import").await?;
    let known = insert(
        &service,
        New {
            email: Some("known@example.org"),
            external_ids: serde_json::json!({"custom": "7"}),
            ..New::default()
        },
    )
    .await?;

    let job = upload(
        &mut service.client,
        "email,first,last,tags,id\r\n\
         new@example.org,Kim,Ng,,7\r\n\
         other@example.org,Kim,Ng,,\r\n",
    )
    .await?;

    let person = get(&mut service.client, known).await?;
    assert_eq!(person.other_emails, ["new@example.org"]);
    assert_eq!(person.first_name, "Kim");
    let pairs = open_pairs(&mut service.client).await?;
    assert!(
        pairs.is_empty(),
        "the same name alone is no duplicate: {pairs:?}"
    );
    let counts = job.counts.unwrap_or_default();
    assert_eq!((counts.duplicates_merged, counts.duplicates_listed), (1, 0));
    // The merged pair names both records it was found with; both show as
    // the survivor now.
    let request = pb::ListDuplicatesRequest {
        state: pb::DuplicateState::Merged as i32,
        ..Default::default()
    };
    let merged = client_pairs(&mut service.client, request).await?;
    assert_eq!(merged.len(), 1, "{merged:?}");
    let ids = [merged[0].first_id.as_str(), merged[0].second_id.as_str()];
    assert!(ids.contains(&known.to_string().as_str()), "{merged:?}");
    assert_ne!(ids[0], ids[1]);
    let shown = |p: &Option<pb::Person>| p.as_ref().map(|p| p.id.clone());
    assert_eq!(shown(&merged[0].first), Some(known.to_string()));
    assert_eq!(shown(&merged[0].second), Some(known.to_string()));

    // The same name in one postal code, written two ways: likely, for review.
    let mapping = pb::ColumnMapping {
        email: "email".into(),
        first_name: "first".into(),
        last_name: "last".into(),
        postal_code: "cp".into(),
        ..Default::default()
    };
    let job = upload_with(
        &mut service.client,
        "email,first,last,cp\r\n\
         lea@example.org,Léa,Roux,33 000\r\n\
         roux@example.org,LEA,ROUX,33000\r\n",
        mapping,
    )
    .await?;
    let counts = job.counts.unwrap_or_default();
    assert_eq!((counts.duplicates_merged, counts.duplicates_listed), (0, 1));
    let codes: Vec<String> = sqlx::query_scalar(
        "SELECT postal_code || ' ' || departement FROM people
         WHERE tenant_id = $1 AND last_name ILIKE 'roux'",
    )
    .bind(service.tenant)
    .fetch_all(&service.pool)
    .await?;
    assert_eq!(codes, ["33000 33", "33000 33"]);
    Ok(())
}

#[tokio::test]
async fn a_number_many_people_share_pairs_no_one() -> anyhow::Result<()> {
    let mut service = start("merge_shared_number").await?;
    let (first, last) = (
        ["Ana", "Ben", "Cleo", "Dan"],
        ["Abel", "Brun", "Cruz", "Diaz"],
    );
    // Three people on one family line are listed pairwise; four on a
    // switchboard number are not listed at all.
    for (n, count) in [("+33140000001", 3), ("+33140000002", 4)] {
        for k in 0..count {
            let email = format!("{k}.{n}@example.org");
            insert(
                &service,
                New {
                    email: Some(&email),
                    phone: Some(n),
                    first: Some(first[k]),
                    last: Some(last[k]),
                    ..New::default()
                },
            )
            .await?;
        }
    }
    let found = find(&mut service.client).await?;
    assert_eq!((found.listed, found.merged), (3, 0));
    Ok(())
}

#[tokio::test]
async fn a_placeholder_id_and_a_common_name_pair_no_one() -> anyhow::Result<()> {
    let mut service = start("merge_placeholders").await?;
    // Five people whose outside id is a placeholder: with external ids
    // merging automatically (the default), they would have become one.
    for k in 0..5 {
        let email = format!("p{k}@example.org");
        let last = format!("Name{k}");
        insert(
            &service,
            New {
                email: Some(&email),
                first: Some("Placeholder"),
                last: Some(&last),
                external_ids: serde_json::json!({"nationbuilder": "0"}),
                ..New::default()
            },
        )
        .await?;
    }
    // Forty people named alike, each elsewhere and born another day; two of
    // them share a postal code.
    for k in 0..40 {
        let email = format!("marie{k}@example.org");
        let postal = format!("{:05}", 10_000 + k.min(38));
        let birth = format!("19{:02}-01-01", 40 + k);
        insert(
            &service,
            New {
                email: Some(&email),
                first: Some(if k % 2 == 0 { "Marie" } else { "MARIE" }),
                last: Some("Martin"),
                postal_code: Some(&postal),
                birth_date: Some(&birth),
                ..New::default()
            },
        )
        .await?;
    }
    let found = find(&mut service.client).await?;
    assert_eq!((found.listed, found.merged), (1, 0));
    let pairs = open_pairs(&mut service.client).await?;
    let reasons: Vec<i32> = pairs[0].reasons.clone();
    assert_eq!(reasons, [pb::DuplicateKind::NamePostalCode as i32]);
    Ok(())
}

#[tokio::test]
async fn a_person_is_found_by_an_address_or_number_of_theirs_or_merged_into_them()
-> anyhow::Result<()> {
    let mut service = start("lookup").await?;
    let ann = insert(
        &service,
        New {
            email: Some("Ann@Example.org"),
            phone: Some("+33644444444"),
            ..New::default()
        },
    )
    .await?;
    let old = insert(
        &service,
        New {
            email: Some("ann@old.example"),
            phone: Some("+33655555555"),
            ..New::default()
        },
    )
    .await?;
    insert(
        &service,
        New {
            email: Some("someone@example.org"),
            ..New::default()
        },
    )
    .await?;
    merge(&mut service.client, ann, old).await?;
    let lookup = |email: &str, phone: &str| pb::ListPeopleRequest {
        email: email.into(),
        phone: phone.into(),
        ..Default::default()
    };

    for (email, phone) in [
        ("ANN@example.org", ""),
        (" ann@OLD.example ", ""),
        ("", "06 55 55 55 55"),
        ("ann@example.org", "+33644444444"),
    ] {
        let found = service.client.list_people(lookup(email, phone)).await?;
        let ids: Vec<String> = found
            .into_inner()
            .people
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(ids, [ann.to_string()], "{email:?} {phone:?}");
    }
    let nobody = service
        .client
        .list_people(lookup("nobody@example.org", ""))
        .await?;
    assert!(nobody.into_inner().people.is_empty());
    // A national number is read in the organization's country.
    let belgian = insert(
        &service,
        New {
            email: Some("bel@example.be"),
            phone: Some("+32470123456"),
            ..New::default()
        },
    )
    .await?;
    for (country, found) in [("BE", vec![belgian.to_string()]), ("", vec![])] {
        let request = pb::ListPeopleRequest {
            default_country: country.into(),
            ..lookup("", "0470 12 34 56")
        };
        let people = service.client.list_people(request).await?.into_inner();
        let ids: Vec<String> = people.people.into_iter().map(|p| p.id).collect();
        assert_eq!(ids, found, "{country:?}");
    }
    let refused = service
        .client
        .list_people(lookup("not an address", ""))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().starts_with("email: "), "{refused:?}");

    // Erasure asked by the merged id names the survivor to erase.
    let mut privacy = PersonDataServiceClient::with_interceptor(
        service.channel.clone(),
        Bearer::new(&service.token),
    );
    let merged = privacy
        .erase_person(pb::ErasePersonRequest {
            person_id: old.to_string(),
            requested_by: "the person".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(merged.code(), tonic::Code::NotFound);
    assert!(
        merged.message().contains(&format!(
            "not found: it was merged into person {ann}; use that id"
        )),
        "{merged:?}"
    );
    Ok(())
}

#[tokio::test]
async fn the_access_export_and_erasure_follow_merges_of_merges() -> anyhow::Result<()> {
    let mut service = start("merge_chain").await?;
    let person = |email, id| New {
        email: Some(email),
        external_ids: serde_json::json!({ "nationbuilder": id }),
        ..New::default()
    };
    let ines = insert(&service, person("ines@example.org", "90011")).await?;
    let karim = insert(&service, person("karim@example.org", "90013")).await?;
    let hugo = insert(&service, person("hugo@example.org", "90012")).await?;
    let other = insert(&service, person("other@example.org", "90014")).await?;
    // Hugo into Karim, then Karim into Inès; Hugo was also paired with someone.
    merge(&mut service.client, karim, hugo).await?;
    sqlx::query(
        "INSERT INTO duplicates (id, tenant_id, person_a, person_b, reasons)
         SELECT $1, tenant_id, $2, $3, '{name_postal_code}' FROM people WHERE id = $3",
    )
    .bind(Uuid::now_v7())
    .bind(hugo)
    .bind(other)
    .execute(&service.pool)
    .await?;
    merge(&mut service.client, ines, karim).await?;

    let mut privacy = PersonDataServiceClient::with_interceptor(
        service.channel.clone(),
        Bearer::new(&service.token),
    );
    let export = privacy
        .export_person(pb::ExportPersonRequest {
            person_id: ines.to_string(),
        })
        .await?
        .into_inner();
    let merges: Vec<(String, String)> = export
        .merges
        .iter()
        .map(|m| (m.merged_id.clone(), m.survivor_id.clone()))
        .collect();
    assert_eq!(
        merges,
        [
            (hugo.to_string(), karim.to_string()),
            (karim.to_string(), ines.to_string())
        ]
    );
    assert!(
        export.merges[0].snapshot_json.contains("90012"),
        "Hugo's own outside id, which the survivor's replaced: {}",
        export.merges[0].snapshot_json
    );
    let snapshot: serde_json::Value = serde_json::from_str(&export.merges[0].snapshot_json)?;
    assert_eq!(snapshot["email"], "hugo@example.org");
    for internal in ["tenant_id", "email_key", "name_key"] {
        assert!(snapshot.get(internal).is_none(), "{internal}: {snapshot}");
    }

    privacy
        .erase_person(pb::ErasePersonRequest {
            person_id: ines.to_string(),
            requested_by: "the person".into(),
            reason: String::new(),
        })
        .await?;
    let pairs: i64 = sqlx::query_scalar("SELECT count(*) FROM duplicates")
        .fetch_one(&service.pool)
        .await?;
    assert_eq!(pairs, 0, "Hugo's pair goes with Inès");
    Ok(())
}
