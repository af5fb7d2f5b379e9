//! The consent ledger against a real contacts service and its own database:
//! statements from API clients under the ledger's rules, their errors, the
//! history, the policy on legal bases, and imports that declare their basis.

use muster_proto::contacts::v1 as pb;
use muster_proto::contacts::v1::consent_service_client::ConsentServiceClient;
use muster_proto::contacts::v1::contacts_service_client::ContactsServiceClient;
use muster_proto::contacts::v1::person_data_service_client::PersonDataServiceClient;
use muster_runtime::TenantId;
use muster_runtime::auth::Bearer;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

mod support;

use support::Service;

type Authed = InterceptedService<Channel, Bearer>;

/// The clients of one organization.
struct Clients {
    ledger: ConsentServiceClient<Authed>,
    contacts: ContactsServiceClient<Authed>,
    people: PersonDataServiceClient<Authed>,
}

/// What these tests ask of the service beyond a client.
trait Ledger {
    async fn clients(&self, tenant: TenantId) -> anyhow::Result<Clients>;
    async fn person(&self, tenant: TenantId, email: &str) -> anyhow::Result<Uuid>;
    async fn email_consent(&self, person: Uuid) -> anyhow::Result<String>;
}

impl Ledger for Service {
    async fn clients(&self, tenant: TenantId) -> anyhow::Result<Clients> {
        let (channel, bearer) = self.connect(tenant).await?;
        Ok(Clients {
            ledger: ConsentServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            contacts: ContactsServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            people: PersonDataServiceClient::with_interceptor(channel, bearer),
        })
    }

    async fn person(&self, tenant: TenantId, email: &str) -> anyhow::Result<Uuid> {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO people (id, tenant_id, email, email_key) VALUES ($1, $2, $3, lower($3))",
        )
        .bind(id)
        .bind(tenant)
        .bind(email)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    async fn email_consent(&self, person: Uuid) -> anyhow::Result<String> {
        Ok(
            sqlx::query_scalar("SELECT email_consent FROM people WHERE id = $1")
                .bind(person)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

fn statement(
    person: Uuid,
    channel: &str,
    purpose: &str,
    state: pb::ConsentState,
) -> pb::RecordConsentRequest {
    pb::RecordConsentRequest {
        person_id: person.to_string(),
        channel: channel.into(),
        purpose: purpose.into(),
        state: state as i32,
        legal_basis: pb::LegalBasis::Consent as i32,
        client: "crm".into(),
        notice: "privacy notice v2".into(),
        time: None,
        evidence: [("ip".to_owned(), "192.0.2.7".to_owned())].into(),
        // A client from before the e-mail could name its organization.
        ..Default::default()
    }
}

async fn record(
    clients: &mut Clients,
    request: pb::RecordConsentRequest,
) -> anyhow::Result<(pb::ConsentState, bool)> {
    let reply = clients.ledger.record_consent(request).await?.into_inner();
    let state = reply.current.map(|c| c.state).unwrap_or_default();
    Ok((pb::ConsentState::try_from(state)?, reply.applied))
}

#[tokio::test]
async fn a_grant_after_a_withdrawal_stays_pending_and_the_ledger_keeps_every_step()
-> anyhow::Result<()> {
    let service = Service::start("consent_rules").await?;
    let tenant = TenantId::new();
    let mut clients = service.clients(tenant).await?;
    let ada = service.person(tenant, "ada@example.org").await?;
    use pb::ConsentState::{Granted, Pending, Withdrawn};

    let steps = [
        (Granted, Granted, true),
        (Granted, Granted, false),
        (Withdrawn, Withdrawn, true),
        (Granted, Pending, true),
        (Granted, Pending, false),
    ];
    for (asked, expected, applied) in steps {
        let got = record(&mut clients, statement(ada, "email", "", asked)).await?;
        assert_eq!(got, (expected, applied), "after asking {asked:?}");
    }
    assert_eq!(service.email_consent(ada).await?, "pending");

    let page = clients
        .ledger
        .list_consent_history(pb::ListConsentHistoryRequest {
            person_id: ada.to_string(),
            page_size: 2,
            page_token: String::new(),
        })
        .await?
        .into_inner();
    assert_eq!(page.records.len(), 2);
    assert_eq!(page.records[0].source, "api:crm");
    assert_eq!(page.records[0].notice, "privacy notice v2");
    assert_eq!(page.records[0].legal_basis, pb::LegalBasis::Consent as i32);
    assert_eq!(page.records[0].evidence["ip"], "192.0.2.7");
    assert!(page.records[0].record_time.is_some());
    let rest = clients
        .ledger
        .list_consent_history(pb::ListConsentHistoryRequest {
            person_id: ada.to_string(),
            page_size: 2,
            page_token: page.next_page_token.clone(),
        })
        .await?
        .into_inner();
    let states: Vec<i32> = page
        .records
        .iter()
        .chain(&rest.records)
        .map(|r| r.state)
        .collect();
    assert_eq!(states, [Granted as i32, Withdrawn as i32, Pending as i32]);

    let export = clients
        .people
        .export_person(pb::ExportPersonRequest {
            person_id: ada.to_string(),
        })
        .await?
        .into_inner();
    assert_eq!(export.consent_events.len(), 3);
    assert_eq!(export.consent_events[2].state, Pending as i32);
    assert_eq!(export.consent_events[2].notice, "privacy notice v2");
    assert_eq!(
        export.consent_events[2].legal_basis,
        pb::LegalBasis::Consent as i32
    );

    let announced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE routing_key = 'contacts.consent.changed'",
    )
    .fetch_one(&service.pool)
    .await?;
    assert_eq!(announced, 3);
    service.stop().await
}

#[tokio::test]
async fn a_purpose_has_its_own_state_and_leaves_the_channel_alone() -> anyhow::Result<()> {
    let service = Service::start("consent_purposes").await?;
    let tenant = TenantId::new();
    let mut clients = service.clients(tenant).await?;
    let ada = service.person(tenant, "ada@example.org").await?;
    use pb::ConsentState::{Granted, Withdrawn};

    record(&mut clients, statement(ada, "email", "", Granted)).await?;
    record(
        &mut clients,
        statement(ada, "email", "fundraising", Withdrawn),
    )
    .await?;
    record(&mut clients, statement(ada, "sms", "newsletter", Granted)).await?;
    assert_eq!(service.email_consent(ada).await?, "granted");

    let consents = clients
        .ledger
        .list_consents(pb::ListConsentsRequest {
            person_id: ada.to_string(),
        })
        .await?
        .into_inner()
        .consents;
    let seen: Vec<(&str, &str, i32)> = consents
        .iter()
        .map(|c| (c.channel.as_str(), c.purpose.as_str(), c.state))
        .collect();
    assert_eq!(
        seen,
        [
            ("email", "", Granted as i32),
            ("email", "fundraising", Withdrawn as i32),
            ("sms", "newsletter", Granted as i32),
        ]
    );
    service.stop().await
}

#[tokio::test]
async fn a_bad_statement_is_refused_with_the_field_named() -> anyhow::Result<()> {
    let service = Service::start("consent_errors").await?;
    let tenant = TenantId::new();
    let mut clients = service.clients(tenant).await?;
    let ada = service.person(tenant, "ada@example.org").await?;
    let grant = || statement(ada, "email", "", pb::ConsentState::Granted);

    let cases: Vec<(&str, pb::RecordConsentRequest)> = vec![
        (
            "person_id",
            pb::RecordConsentRequest {
                person_id: "nope".into(),
                ..grant()
            },
        ),
        (
            "channel",
            pb::RecordConsentRequest {
                channel: "fax".into(),
                ..grant()
            },
        ),
        (
            "purpose",
            pb::RecordConsentRequest {
                purpose: "marketing".into(),
                ..grant()
            },
        ),
        (
            "state",
            pb::RecordConsentRequest {
                state: pb::ConsentState::Pending as i32,
                ..grant()
            },
        ),
        (
            "legal_basis",
            pb::RecordConsentRequest {
                legal_basis: 0,
                ..grant()
            },
        ),
        (
            "client",
            pb::RecordConsentRequest {
                client: "my crm".into(),
                ..grant()
            },
        ),
        (
            "time",
            pb::RecordConsentRequest {
                time: Some(muster_runtime::time::to_proto(
                    chrono::Utc::now() + chrono::Duration::days(1),
                )),
                ..grant()
            },
        ),
    ];
    for (field, request) in cases {
        let status = clients.ledger.record_consent(request).await.unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{field}: {status:?}"
        );
        assert!(
            status.message().starts_with(&format!("{field}:")),
            "{field}: {status:?}"
        );
    }
    let unknown = pb::RecordConsentRequest {
        person_id: Uuid::now_v7().to_string(),
        ..grant()
    };
    let status = clients.ledger.record_consent(unknown).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);

    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM consent_events")
        .fetch_one(&service.pool)
        .await?;
    assert_eq!(events, 0);
    service.stop().await
}

#[tokio::test]
async fn the_policy_refuses_a_forbidden_basis_on_its_channel_only() -> anyhow::Result<()> {
    let service = Service::start("consent_policy").await?;
    let tenant = TenantId::new();
    let mut clients = service.clients(tenant).await?;
    let ada = service.person(tenant, "ada@example.org").await?;
    let forbid = pb::ForbiddenBasis {
        channel: "sms".into(),
        legal_basis: pb::LegalBasis::LegitimateInterests as i32,
    };

    let bad = pb::ForbiddenBasis {
        channel: "fax".into(),
        ..forbid.clone()
    };
    let status = clients
        .ledger
        .set_consent_policy(pb::SetConsentPolicyRequest {
            policy: Some(pb::ConsentPolicy {
                forbidden: vec![forbid.clone(), bad],
            }),
        })
        .await
        .unwrap_err();
    assert!(
        status.message().starts_with("policy.forbidden[1].channel:"),
        "{status:?}"
    );
    clients
        .ledger
        .set_consent_policy(pb::SetConsentPolicyRequest {
            policy: Some(pb::ConsentPolicy {
                forbidden: vec![forbid.clone()],
            }),
        })
        .await?;
    let policy = clients
        .ledger
        .get_consent_policy(pb::GetConsentPolicyRequest {})
        .await?
        .into_inner();
    assert_eq!(policy.forbidden, [forbid]);

    let on = |channel: &str| pb::RecordConsentRequest {
        legal_basis: pb::LegalBasis::LegitimateInterests as i32,
        ..statement(ada, channel, "", pb::ConsentState::Granted)
    };
    let status = clients.ledger.record_consent(on("sms")).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().starts_with("legal_basis:"), "{status:?}");
    assert!(status.message().contains("policy"), "{status:?}");
    let email = record(&mut clients, on("email")).await?;
    assert_eq!(email, (pb::ConsentState::Granted, true));

    let mut other = service.clients(TenantId::new()).await?;
    let theirs = other
        .ledger
        .get_consent_policy(pb::GetConsentPolicyRequest {})
        .await?;
    assert!(theirs.into_inner().forbidden.is_empty());
    service.stop().await
}

async fn upload(
    clients: &mut Clients,
    csv: &str,
    legal_basis: &str,
) -> anyhow::Result<pb::ImportJob> {
    let header = pb::ImportHeader {
        file_name: "members.csv".into(),
        preset: pb::ImportPreset::Custom as i32,
        mapping: Some(pb::ColumnMapping {
            email: "email".into(),
            email_consent: "optin".into(),
            email_consent_time: "quand".into(),
            ..Default::default()
        }),
        legal_basis: legal_basis.into(),
        notice: "adhésion 2026".into(),
        ..Default::default()
    };
    upload_with(clients, header, csv).await
}

/// A NationBuilder export: its files grant (`email_opt_in`) and withdraw
/// (`do_not_contact`).
async fn upload_nation_builder(clients: &mut Clients, csv: &str) -> anyhow::Result<pb::ImportJob> {
    let header = pb::ImportHeader {
        file_name: "nationbuilder.csv".into(),
        preset: pb::ImportPreset::Nationbuilder as i32,
        legal_basis: "consent".into(),
        ..Default::default()
    };
    upload_with(clients, header, csv).await
}

/// The header of [`upload_nation_builder`]'s files.
const NATION_BUILDER: &str = "nationbuilder_id,email,email_opt_in,do_not_contact,created_at\n";

async fn upload_with(
    clients: &mut Clients,
    header: pb::ImportHeader,
    csv: &str,
) -> anyhow::Result<pb::ImportJob> {
    support::upload(&mut clients.contacts, header, csv).await
}

#[tokio::test]
async fn an_import_carries_its_basis_and_a_forbidden_basis_grants_nothing() -> anyhow::Result<()> {
    let service = Service::start("consent_imports").await?;
    let tenant = TenantId::new();
    let mut clients = service.clients(tenant).await?;

    let status = upload(&mut clients, "email\n", "goodwill")
        .await
        .unwrap_err();
    assert!(
        status.to_string().contains("header.legal_basis"),
        "{status:#}"
    );

    let csv = "email;optin;quand\nada@example.org;oui;01/03/2026 10:00\n";
    let job = upload(&mut clients, csv, "legitimate_interests").await?;
    assert_eq!(job.legal_basis, "legitimate_interests");
    assert_eq!(job.notice, "adhésion 2026");
    assert_eq!(job.counts.unwrap_or_default().consent_granted, 1);
    let (basis, notice, source): (String, String, String) = sqlx::query_as(
        "SELECT legal_basis, notice, source FROM consent_events WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_one(&service.pool)
    .await?;
    assert_eq!(
        (basis.as_str(), notice.as_str()),
        ("legitimate_interests", "adhésion 2026")
    );
    assert_eq!(source, format!("import:{}", job.id));

    clients
        .ledger
        .set_consent_policy(pb::SetConsentPolicyRequest {
            policy: Some(pb::ConsentPolicy {
                forbidden: vec![pb::ForbiddenBasis {
                    channel: "email".into(),
                    legal_basis: pb::LegalBasis::LegitimateInterests as i32,
                }],
            }),
        })
        .await?;
    let csv = "email;optin;quand\nbob@example.org;oui;01/03/2026 10:00\n";
    let job = upload(&mut clients, csv, "legitimate_interests").await?;
    assert_eq!(job.counts.unwrap_or_default().consent_granted, 0);
    let bob: String = sqlx::query_scalar("SELECT email_consent FROM people WHERE email_key = $1")
        .bind("bob@example.org")
        .fetch_one(&service.pool)
        .await?;
    assert_eq!(bob, "none");
    let issues = clients
        .contacts
        .list_import_issues(pb::ListImportIssuesRequest {
            import_id: job.id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .issues;
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(
        (issues[0].line, issues[0].field.as_str()),
        (0, "legal_basis")
    );
    assert!(issues[0].reason.contains("policy"), "{issues:?}");
    service.stop().await
}

#[tokio::test]
async fn an_import_announces_its_changes_together_and_its_people_match_the_ledger()
-> anyhow::Result<()> {
    use muster_proto::events::v1::ConsentChanges;
    use prost::Message;

    let service = Service::start("consent_import_batch").await?;
    let tenant = TenantId::new();
    let mut clients = service.clients(tenant).await?;
    let carl = service.person(tenant, "carl@example.org").await?;
    record(
        &mut clients,
        statement(carl, "email", "", pb::ConsentState::Withdrawn),
    )
    .await?;
    let before: i64 = sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM outbox")
        .fetch_one(&service.pool)
        .await?;

    let mut csv = NATION_BUILDER.to_owned();
    csv.push_str("1,ada@example.org,true,false,2026-03-01T10:00:00+01:00\n");
    csv.push_str("2,bob@example.org,false,true,2026-03-02T11:00:00+01:00\n");
    csv.push_str("3,carl@example.org,true,false,2026-03-03T12:00:00+01:00\n");
    for n in 4..40 {
        csv.push_str(&format!(
            "{n},p{n}@example.org,true,false,2026-03-04T12:00:00+01:00\n"
        ));
    }
    let job = upload_nation_builder(&mut clients, &csv).await?;
    let counts = job.counts.unwrap_or_default();
    assert_eq!((counts.consent_granted, counts.suppressed), (37, 1));

    let announced: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT body FROM outbox WHERE routing_key = 'contacts.consent.changed' AND id > $1",
    )
    .bind(before)
    .fetch_all(&service.pool)
    .await?;
    // One batch, split between the import's writers: one message each.
    assert!((1..=2).contains(&announced.len()), "{}", announced.len());
    let mut said = Vec::new();
    for body in &announced {
        for change in ConsentChanges::decode(body.as_slice())?.changes {
            said.push((change.email, change.state));
        }
    }
    said.sort();
    assert_eq!(
        said.len(),
        38,
        "carl withdrew: the file's grant changes nothing"
    );
    assert_eq!(
        said[..2],
        [
            (
                "ada@example.org".to_owned(),
                pb::ConsentState::Granted as i32
            ),
            (
                "bob@example.org".to_owned(),
                pb::ConsentState::Withdrawn as i32
            ),
        ],
    );

    // New people are written with the state the ledger derives, not
    // written a second time to get it.
    let differing: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM people p JOIN consents c ON c.person_id = p.id
         WHERE p.tenant_id = $1 AND c.channel = 'email' AND c.purpose = ''
           AND (p.email_consent, p.email_consent_at, p.email_consent_source,
                p.email_consent_evidence)
               IS DISTINCT FROM (c.state, c.occurred_at, c.source, c.evidence)",
    )
    .bind(tenant)
    .fetch_one(&service.pool)
    .await?;
    assert_eq!(differing, 0);
    assert_eq!(service.email_consent(carl).await?, "withdrawn");
    let states: Vec<String> = sqlx::query_scalar(
        "SELECT email_consent FROM people WHERE tenant_id = $1 ORDER BY email_key LIMIT 3",
    )
    .bind(tenant)
    .fetch_all(&service.pool)
    .await?;
    assert_eq!(states, ["granted", "withdrawn", "withdrawn"]);
    service.stop().await
}

#[tokio::test]
async fn the_rows_of_one_person_apply_in_file_order_across_batches_and_writers()
-> anyhow::Result<()> {
    let service = Service::start("consent_import_order").await?;
    let tenant = TenantId::new();
    let mut clients = service.clients(tenant).await?;

    // Ada grants, then withdraws 4,500 lines later; Bob withdraws, then the
    // file grants: the two statements of each are batches apart, and the
    // import writes several batches at once.
    let mut csv = NATION_BUILDER.to_owned();
    csv.push_str("1,ada@example.org,true,false,2026-03-01T10:00:00+01:00\n");
    csv.push_str("2,bob@example.org,false,true,2026-03-01T10:00:00+01:00\n");
    for n in 0..4_500 {
        csv.push_str(&format!("{},filler{n}@example.org,false,false,\n", n + 10));
    }
    csv.push_str("1,ada@example.org,false,true,2026-03-02T10:00:00+01:00\n");
    csv.push_str("2,bob@example.org,true,false,2026-03-02T10:00:00+01:00\n");
    let job = upload_nation_builder(&mut clients, &csv).await?;
    let counts = job.counts.unwrap_or_default();
    assert_eq!((counts.rows_read, counts.created), (4_504, 4_502));

    for (email, expected) in [
        ("ada@example.org", vec!["granted", "withdrawn"]),
        ("bob@example.org", vec!["withdrawn"]),
    ] {
        let ledger: Vec<String> = sqlx::query_scalar(
            "SELECT e.state FROM consent_events e JOIN people p ON p.id = e.person_id
             WHERE p.tenant_id = $1 AND p.email_key = $2 ORDER BY e.id",
        )
        .bind(tenant)
        .bind(email)
        .fetch_all(&service.pool)
        .await?;
        assert_eq!(ledger, expected, "{email}");
    }
    service.stop().await
}

async fn count(clients: &mut Clients, query: &str) -> anyhow::Result<u64> {
    let filter = pb::SegmentFilter {
        query: query.into(),
        ..Default::default()
    };
    let request = pb::CountSegmentRequest {
        filter: Some(filter),
    };
    Ok(clients
        .contacts
        .count_segment(request)
        .await?
        .into_inner()
        .count)
}

async fn forbid(clients: &mut Clients, forbidden: Vec<pb::ForbiddenBasis>) -> anyhow::Result<()> {
    let policy = Some(pb::ConsentPolicy { forbidden });
    clients
        .ledger
        .set_consent_policy(pb::SetConsentPolicyRequest { policy })
        .await?;
    Ok(())
}

#[tokio::test]
async fn segments_read_consent_per_channel_and_purpose_under_the_policy_of_now()
-> anyhow::Result<()> {
    let service = Service::start("consent_segments").await?;
    let tenant = TenantId::new();
    let mut clients = service.clients(tenant).await?;
    use pb::ConsentState::{Granted, Withdrawn};
    let on = |person, channel: &str, purpose: &str, state, basis: pb::LegalBasis| {
        pb::RecordConsentRequest {
            legal_basis: basis as i32,
            ..statement(person, channel, purpose, state)
        }
    };
    let ada = service.person(tenant, "ada@example.org").await?;
    let bob = service.person(tenant, "bob@example.org").await?;
    let cat = service.person(tenant, "cat@example.org").await?;
    let dan = service.person(tenant, "dan@example.org").await?;
    let interests = pb::LegalBasis::LegitimateInterests;
    for request in [
        on(ada, "email", "", Granted, pb::LegalBasis::Consent),
        on(bob, "email", "", Granted, interests),
        on(bob, "email", "newsletter", Granted, interests),
        on(cat, "sms", "events", Granted, pb::LegalBasis::Consent),
        on(dan, "email", "", Withdrawn, pb::LegalBasis::Consent),
        on(dan, "email", "", Granted, pb::LegalBasis::Consent),
    ] {
        clients.ledger.record_consent(request).await?;
    }

    assert_eq!(count(&mut clients, "consent:email=granted").await?, 2);
    assert_eq!(count(&mut clients, "consent:email=pending").await?, 1);
    assert_eq!(
        count(&mut clients, "consent:email.newsletter=granted").await?,
        1
    );
    assert_eq!(count(&mut clients, "consent:sms.events=granted").await?, 1);
    assert_eq!(count(&mut clients, "consent:sms.events=none").await?, 3);
    assert_eq!(count(&mut clients, "NOT consent:sms=none").await?, 0);

    let email = pb::ForbiddenBasis {
        channel: "email".into(),
        legal_basis: interests as i32,
    };
    forbid(&mut clients, vec![email]).await?;
    assert_eq!(count(&mut clients, "consent:email=granted").await?, 1);
    assert_eq!(
        count(&mut clients, "consent:email.newsletter=granted").await?,
        0
    );
    assert_eq!(count(&mut clients, "consent:sms.events=granted").await?, 1);
    let flat = pb::SegmentFilter {
        email_consent: Granted as i32,
        ..Default::default()
    };
    let request = pb::CountSegmentRequest { filter: Some(flat) };
    assert_eq!(
        clients
            .contacts
            .count_segment(request)
            .await?
            .into_inner()
            .count,
        1
    );

    forbid(&mut clients, Vec::new()).await?;
    assert_eq!(count(&mut clients, "consent:email=granted").await?, 2);
    service.stop().await
}

#[tokio::test]
async fn a_form_never_brings_back_an_erased_address() -> anyhow::Result<()> {
    let service = Service::start("consent_erased_form").await?;
    let tenant = TenantId::new();
    let mut clients = service.clients(tenant).await?;
    let person = service.person(tenant, "Effacee@Example.org").await?;
    clients
        .people
        .erase_person(pb::ErasePersonRequest {
            person_id: person.to_string(),
            requested_by: "dpo".into(),
            reason: "asked".into(),
        })
        .await?;

    let subscribe = |email: &str| pb::SubscribeRequest {
        email: email.into(),
        notice: "form v1".into(),
        ..Default::default()
    };
    let reply = clients
        .ledger
        .subscribe(subscribe("effacee@example.org"))
        .await?
        .into_inner();
    assert!(reply.person_id.is_empty(), "{reply:?}");
    let counted: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM people)
              + (SELECT count(*) FROM outbox
                 WHERE routing_key = 'contacts.consent.confirmation_requested')",
    )
    .fetch_one(&service.pool)
    .await?;
    assert_eq!(counted, 0, "no one created, no confirmation asked");

    // Any other address subscribes as usual.
    let reply = clients
        .ledger
        .subscribe(subscribe("autre@example.org"))
        .await?
        .into_inner();
    assert_eq!(reply.state, pb::ConsentState::Pending as i32);
    service.stop().await
}

#[tokio::test]
async fn a_form_confirmation_request_carries_the_page_language_and_the_organization()
-> anyhow::Result<()> {
    use muster_proto::events::v1::ConsentConfirmationRequested;
    use prost::Message;

    let service = Service::start("consent_letterhead").await?;
    let tenant = TenantId::new();
    let mut clients = service.clients(tenant).await?;
    let subscribe = |email: &str, language: &str| pb::SubscribeRequest {
        email: email.into(),
        first_name: "Zoé".into(),
        organization_name: "  Les \"Verts\" & co ".into(),
        language: language.into(),
        ..Default::default()
    };

    clients
        .ledger
        .subscribe(subscribe("zoe@example.org", "fr-FR"))
        .await?;
    clients
        .ledger
        .subscribe(subscribe("old@example.org", ""))
        .await?;
    let refused = clients
        .ledger
        .subscribe(subscribe("de@example.org", "de"))
        .await
        .expect_err("German is not a language of ours");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().starts_with("language"), "{refused:?}");

    let bodies: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT body FROM outbox
         WHERE routing_key = 'contacts.consent.confirmation_requested' ORDER BY id",
    )
    .fetch_all(&service.pool)
    .await?;
    let asked = bodies
        .iter()
        .map(|body| ConsentConfirmationRequested::decode(body.as_slice()))
        .collect::<Result<Vec<_>, _>>()?;
    let letterheads: Vec<(&str, &str, &str)> = asked
        .iter()
        .map(|a| {
            (
                a.email.as_str(),
                a.organization_name.as_str(),
                a.language.as_str(),
            )
        })
        .collect();
    assert_eq!(
        letterheads,
        [
            ("zoe@example.org", "Les \"Verts\" & co", "fr"),
            ("old@example.org", "Les \"Verts\" & co", ""),
        ]
    );
    service.stop().await
}

#[tokio::test]
async fn an_api_grant_over_a_withdrawal_asks_for_a_confirmation_headed_as_the_gateway_says()
-> anyhow::Result<()> {
    use muster_proto::events::v1::ConsentConfirmationRequested;
    use pb::ConsentState::{Granted, Withdrawn};
    use prost::Message;

    let service = Service::start("consent_api_letterhead").await?;
    let tenant = TenantId::new();
    let mut clients = service.clients(tenant).await?;
    let ada = service.person(tenant, "ada@example.org").await?;
    let headed = |state, language: &str| pb::RecordConsentRequest {
        organization_name: "Collectif des quais".into(),
        language: language.into(),
        ..statement(ada, "email", "", state)
    };

    record(&mut clients, headed(Granted, "fr")).await?;
    record(&mut clients, headed(Withdrawn, "fr")).await?;
    let refused = clients
        .ledger
        .record_consent(headed(Granted, "de"))
        .await
        .expect_err("German is not a language of ours");
    assert!(refused.message().starts_with("language"), "{refused:?}");
    record(&mut clients, headed(Granted, "fr")).await?;

    let bodies: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT body FROM outbox
         WHERE routing_key = 'contacts.consent.confirmation_requested' ORDER BY id",
    )
    .fetch_all(&service.pool)
    .await?;
    assert_eq!(bodies.len(), 1, "only the grant over the withdrawal asks");
    let asked = ConsentConfirmationRequested::decode(bodies[0].as_slice())?;
    assert_eq!(asked.email, "ada@example.org");
    assert_eq!(asked.organization_name, "Collectif des quais");
    assert_eq!(asked.language, "fr");
    service.stop().await
}
