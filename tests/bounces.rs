//! Bounces and complaints reported after a campaign, through the gateway's
//! webhooks and messaging's `IngestBounce`: a permanent bounce or a complaint
//! suppresses the address at once, a complaint withdraws consent in
//! contacts, transient bounces suppress only at the limit, every report is
//! stored with its reason, and the next campaign skips the suppressed.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use muster_e2e::Stack;
use muster_proto::contacts::v1 as contacts;
use muster_proto::messaging::v1 as messaging;
use muster_runtime::TenantId;
use muster_runtime::config::DatabaseSettings;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Signs SNS messages and Mailgun events as the providers do; shared with
/// the gateway's API tests.
#[allow(dead_code)]
#[path = "../services/gateway/tests/api/signing.rs"]
mod signing;

use signing::{SnsSigner, mailgun_signature};

const TOKEN: &str = "bounces-e2e-webhook-token";
/// The organization's Mailgun webhook signing key.
const MAILGUN_KEY: &str = "key-bounces-e2e-0123456789abcdef";

/// Who the campaign goes to, by what happens to them afterwards.
const HARD: &str = "camille.roux@example.fr";
const SES: &str = "paul.girard@example.com";
const COMPLAINER: &str = "lea.moreau@example.net";
const SOFT: &str = "nadia.benali@example.org";
const FINE: [&str; 2] = ["hugo.martin@example.com", "marie.lefevre@example.net"];

/// Imports six consenting supporters from a file written for this test.
async fn audience(stack: &Stack, tenant: TenantId) -> anyhow::Result<()> {
    let mut csv = String::from("Email Address,First Name,Last Name,OPTIN_TIME,CONFIRM_TIME\n");
    for (i, email) in [HARD, SES, COMPLAINER, SOFT, FINE[0], FINE[1]]
        .iter()
        .enumerate()
    {
        csv.push_str(&format!(
            "{email},Prénom{i},Nom{i},2024-03-0{} 10:00:00,2024-03-0{} 10:05:00\n",
            i + 1,
            i + 1
        ));
    }
    let path = std::env::temp_dir().join(format!("muster-bounces-{}.csv", tenant));
    std::fs::write(&path, csv)?;
    let job = stack
        .import(tenant, &path, contacts::ImportPreset::MailchimpSubscribed)
        .await;
    std::fs::remove_file(&path)?;
    let job = job?;
    assert_eq!(
        job.state,
        contacts::ImportState::Succeeded as i32,
        "{job:?}"
    );
    Ok(())
}

/// A gateway in front of the stack, its webhooks open to [`TOKEN`], trusting
/// `sns`'s certificate; with one organization, whose Mailgun key is
/// [`MAILGUN_KEY`].
async fn gateway(
    stack: &Stack,
    sns: &SnsSigner,
    shutdown: &CancellationToken,
) -> anyhow::Result<(String, TenantId, String, DatabaseSettings)> {
    let started = stack
        .start_gateway(shutdown, |settings| {
            settings.webhooks.token = TOKEN.into();
            settings.webhooks.sns_cert_url_prefixes = vec![sns.url_prefix()];
        })
        .await?;
    let (base, database) = (started.base, started.database);

    let pool = sqlx::PgPool::connect(&database.url).await?;
    let (tenant, key) = muster_gateway::create_tenant(&pool, "Collectif des Quais").await?;
    assert!(muster_gateway::set_mailgun_signing_key(&pool, tenant, MAILGUN_KEY).await?);
    pool.close().await;
    Ok((base, tenant, key, database))
}

/// The Message-ID each recipient received, as the SMTP server got it.
fn message_ids(stack: &Stack) -> anyhow::Result<HashMap<String, String>> {
    let mut ids = HashMap::new();
    for (recipient, messages) in stack.received_by_recipient()? {
        let id = messages[0]
            .raw
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("message-id")
                    .then(|| value.trim().to_owned())
            })
            .ok_or_else(|| anyhow::anyhow!("no Message-ID received by {recipient}"))?;
        ids.insert(recipient, id);
    }
    Ok(ids)
}

fn dsn(recipient: &str, message_id: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.example.fr (Mail Delivery System)\r\n\
         To: equipe@example.org\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Message-Id: <20250114090211.4XyZ1@mx.example.fr>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"4XyZ1\"\r\n\
         \r\n\
         --4XyZ1\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         Your message could not be delivered to one or more recipients.\r\n\
         --4XyZ1\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.example.fr\r\n\
         \r\n\
         Final-Recipient: rfc822; {recipient}\r\n\
         Action: failed\r\n\
         Status: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: User unknown\r\n\
         \r\n\
         --4XyZ1\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n\
         From: Muster <equipe@example.org>\r\n\
         To: {recipient}\r\n\
         Message-ID: {message_id}\r\n\
         \r\n\
         --4XyZ1--\r\n"
    )
}

/// An SNS notification of an SES permanent bounce, signed by `sns`.
fn ses_permanent_bounce(sns: &SnsSigner, recipient: &str, message_id: &str) -> Value {
    let notification = json!({
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [{
                "emailAddress": recipient,
                "action": "failed",
                "status": "5.1.1",
                "diagnosticCode": "smtp; 550 5.1.1 mailbox does not exist"
            }],
            "timestamp": "2025-01-14T09:02:11.000Z",
            "feedbackId": "0102019461f0b1c4-feedback-000000"
        },
        "mail": {
            "timestamp": "2025-01-14T09:02:08.000Z",
            "source": "equipe@example.org",
            "messageId": "0102019461f0a7b2-ses-000000",
            "destination": [recipient],
            "headers": [
                {"name": "To", "value": recipient},
                {"name": "Message-ID", "value": message_id}
            ]
        }
    });
    let mut envelope = json!({
        "Type": "Notification",
        "MessageId": "5b0ab7d4-2f1c-5b8e-9a51-3c0f7f6d2e11",
        "TopicArn": "arn:aws:sns:eu-west-3:123456789012:muster-bounces",
        "Message": notification.to_string(),
        "Timestamp": "2025-01-14T09:02:12.345Z"
    });
    sns.sign(&mut envelope, 1).expect("openssl signs");
    envelope
}

fn arf_complaint(recipient: &str, message_id: &str) -> String {
    format!(
        "From: <feedback@fbl.example.net>\r\n\
         To: <abuse@example.org>\r\n\
         Subject: Abuse report\r\n\
         Message-ID: <fbl-77@fbl.example.net>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"fb\"\r\n\
         \r\n\
         --fb\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         This is an abuse report.\r\n\
         --fb\r\n\
         Content-Type: message/feedback-report\r\n\
         \r\n\
         Feedback-Type: abuse\r\n\
         User-Agent: ExampleFBL/1.4\r\n\
         Version: 1\r\n\
         Original-Rcpt-To: {recipient}\r\n\
         \r\n\
         --fb\r\n\
         Content-Type: message/rfc822\r\n\
         \r\n\
         From: equipe@example.org\r\n\
         To: {recipient}\r\n\
         Message-ID: {message_id}\r\n\
         \r\n\
         Bonjour\r\n\
         --fb--\r\n"
    )
}

/// A Mailgun event of a temporary failure, signed now with [`MAILGUN_KEY`]
/// (its token is the event's id).
fn mailgun_temporary(recipient: &str, message_id: &str, event_id: &str) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let timestamp = now.as_secs().to_string();
    let signature = mailgun_signature(MAILGUN_KEY, &timestamp, event_id);
    json!({
        "signature": {"timestamp": timestamp, "token": event_id, "signature": signature},
        "event-data": {
            "event": "failed",
            "id": event_id,
            "severity": "temporary",
            "reason": "generic",
            "recipient": recipient,
            "message": {"headers": {
                "to": recipient,
                "message-id": message_id.trim_matches(['<', '>']),
                "subject": "Appel"
            }},
            "delivery-status": {"code": 452, "message": "4.2.2 Mailbox full", "attempt-no": 1}
        }
    })
}

/// Posts to a webhook; returns the status and the JSON answer.
async fn post(
    http: &reqwest::Client,
    url: String,
    body: impl Into<reqwest::Body>,
) -> anyhow::Result<(u16, Value)> {
    let response = http.post(url).body(body).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

async fn suppression(
    stack: &Stack,
    tenant: TenantId,
    email: &str,
) -> anyhow::Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT reason FROM suppressions WHERE tenant_id = $1 AND email_key = $2",
    )
    .bind(tenant)
    .bind(email)
    .fetch_optional(&stack.messaging_pool)
    .await?)
}

/// `(kind, status, provider, reason)` of each bounce of `email`, oldest first.
async fn bounces_of(
    stack: &Stack,
    email: &str,
) -> anyhow::Result<Vec<(String, String, String, String)>> {
    Ok(sqlx::query_as(
        "SELECT kind, status, provider, reason FROM bounces WHERE email_key = $1
         ORDER BY received_at, id",
    )
    .bind(email)
    .fetch_all(&stack.messaging_pool)
    .await?)
}

async fn consent(stack: &Stack, tenant: TenantId, email: &str) -> anyhow::Result<String> {
    Ok(sqlx::query_scalar(
        "SELECT email_consent FROM people WHERE tenant_id = $1 AND email_key = $2",
    )
    .bind(tenant)
    .bind(email)
    .fetch_one(&stack.contacts_pool)
    .await?)
}

/// One recipient of a campaign, as messaging stored them.
struct Recipient {
    delivery: String,
    person: String,
}

async fn recipient(stack: &Stack, campaign: &str, email: &str) -> anyhow::Result<Recipient> {
    let (delivery, person): (uuid::Uuid, uuid::Uuid) = sqlx::query_as(
        "SELECT id, person_id FROM deliveries WHERE campaign_id = $1::uuid AND email = $2",
    )
    .bind(campaign)
    .bind(email)
    .fetch_one(&stack.messaging_pool)
    .await?;
    Ok(Recipient {
        delivery: delivery.to_string(),
        person: person.to_string(),
    })
}

fn by(filter: &str, id: &str) -> messaging::ListBouncesRequest {
    let mut request = messaging::ListBouncesRequest::default();
    match filter {
        "delivery" => request.delivery_id = id.into(),
        "person" => request.person_id = id.into(),
        _ => request.campaign_id = id.into(),
    }
    request
}

fn kind(bounce: &messaging::Bounce) -> messaging::BounceKind {
    messaging::BounceKind::try_from(bounce.kind).unwrap_or_default()
}

/// `ListBounces` and `GetDelivery` show the bounces recorded so far by
/// delivery, person and campaign, to the organization only.
async fn bounces_are_visible_on_delivery_person_and_campaign(
    stack: &Stack,
    tenant: TenantId,
    campaign: &str,
) -> anyhow::Result<()> {
    use messaging::BounceKind::{Complaint, Permanent, Transient};
    let mut api = stack.messaging(tenant).await?;
    let hard = recipient(stack, campaign, HARD).await?;
    let soft = recipient(stack, campaign, SOFT).await?;
    let complainer = recipient(stack, campaign, COMPLAINER).await?;

    let of_hard = api
        .list_bounces(by("person", &hard.person))
        .await?
        .into_inner();
    assert_eq!(of_hard.bounces.len(), 1, "{of_hard:?}");
    let bounce = &of_hard.bounces[0];
    assert_eq!(
        (kind(bounce), &*bounce.status, &*bounce.source),
        (Permanent, "5.1.1", "dsn")
    );
    assert!(bounce.reason.contains("User unknown"), "{bounce:?}");
    assert_eq!(bounce.email, HARD);
    assert_eq!(
        (
            &*bounce.delivery_id,
            &*bounce.campaign_id,
            &*bounce.person_id
        ),
        (&*hard.delivery, campaign, &*hard.person)
    );
    assert!(bounce.receive_time.is_some());

    let of_soft = api
        .list_bounces(by("person", &soft.person))
        .await?
        .into_inner();
    assert_eq!(of_soft.bounces.len(), 2, "{of_soft:?}");
    assert!(
        of_soft
            .bounces
            .iter()
            .all(|b| kind(b) == Transient && b.source == "mailgun")
    );
    assert!(
        of_soft.bounces[0].reason.contains("Mailbox full"),
        "{of_soft:?}"
    );
    let (newer, older) = (&of_soft.bounces[0], &of_soft.bounces[1]);
    let at = |b: &messaging::Bounce| b.receive_time.as_ref().map(|t| (t.seconds, t.nanos));
    assert!(at(newer) >= at(older), "not newest first: {of_soft:?}");
    assert_eq!(of_soft.next_page_token, "");

    let mut paged = Vec::new();
    let mut request = by("person", &soft.person);
    request.page_size = 1;
    loop {
        let page = api.list_bounces(request.clone()).await?.into_inner();
        assert!(page.bounces.len() <= 1, "{page:?}");
        paged.extend(page.bounces.into_iter().map(|b| b.id));
        if page.next_page_token.is_empty() || paged.len() > 2 {
            break;
        }
        request.page_token = page.next_page_token;
    }
    let all: Vec<String> = of_soft.bounces.iter().map(|b| b.id.clone()).collect();
    assert_eq!(paged, all, "pages of one do not add up to the listing");

    let of_delivery = api
        .list_bounces(by("delivery", &complainer.delivery))
        .await?
        .into_inner();
    assert_eq!(of_delivery.bounces.len(), 1, "{of_delivery:?}");
    let complaint = &of_delivery.bounces[0];
    assert_eq!((kind(complaint), &*complaint.source), (Complaint, "arf"));
    assert!(complaint.reason.contains("abuse"), "{complaint:?}");
    assert_eq!(complaint.person_id, complainer.person);

    let of_campaign = api
        .list_bounces(by("campaign", campaign))
        .await?
        .into_inner();
    let mut kinds: Vec<(String, i32)> = of_campaign
        .bounces
        .iter()
        .map(|b| (b.email.clone(), b.kind))
        .collect();
    kinds.sort();
    let mut expected = vec![
        (HARD.to_owned(), Permanent as i32),
        (SES.to_owned(), Permanent as i32),
        (COMPLAINER.to_owned(), Complaint as i32),
        (SOFT.to_owned(), Transient as i32),
        (SOFT.to_owned(), Transient as i32),
    ];
    expected.sort();
    assert_eq!(kinds, expected);

    let delivery = api
        .get_delivery(messaging::GetDeliveryRequest {
            id: hard.delivery.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(
        delivery.state,
        messaging::DeliveryState::Sent as i32,
        "{delivery:?}"
    );
    assert_eq!(
        (&*delivery.email, &*delivery.person_id),
        (HARD, &*hard.person)
    );
    assert!(
        delivery.attempts >= 1 && delivery.send_time.is_some(),
        "{delivery:?}"
    );
    assert!(
        delivery.provider_answer.contains(&hard.delivery),
        "{delivery:?}"
    );
    assert_eq!(delivery.bounces.len(), 1, "{delivery:?}");
    assert_eq!(kind(&delivery.bounces[0]), Permanent);
    let fine = recipient(stack, campaign, FINE[0]).await?;
    let unbounced = api
        .get_delivery(messaging::GetDeliveryRequest { id: fine.delivery })
        .await?
        .into_inner();
    assert!(unbounced.bounces.is_empty(), "{unbounced:?}");

    let none = api
        .list_bounces(messaging::ListBouncesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(none.code(), tonic::Code::InvalidArgument);
    assert!(none.message().contains("person_id"), "{}", none.message());
    let mut several = by("person", &hard.person);
    several.campaign_id = campaign.into();
    let several = api.list_bounces(several).await.unwrap_err();
    assert_eq!(several.code(), tonic::Code::InvalidArgument);
    assert!(
        several.message().starts_with("campaign_id:"),
        "{}",
        several.message()
    );

    let mut stranger = stack.messaging(TenantId::new()).await?;
    for (filter, id) in [
        ("person", &hard.person),
        ("delivery", &complainer.delivery),
        ("campaign", &campaign.to_owned()),
    ] {
        let seen = stranger.list_bounces(by(filter, id)).await?.into_inner();
        assert!(seen.bounces.is_empty(), "another organization saw {seen:?}");
    }
    let hidden = stranger
        .get_delivery(messaging::GetDeliveryRequest { id: hard.delivery })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), tonic::Code::NotFound);
    let mut service = stack.messaging_as_service().await?;
    let refused = service
        .list_bounces(by("campaign", campaign))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    Ok(())
}

#[tokio::test]
async fn bounces_and_complaints_keep_the_next_campaign_from_them() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let sns = SnsSigner::start().await?;
    let shutdown = CancellationToken::new();
    let (base, tenant, key, gateway_database) = gateway(&stack, &sns, &shutdown).await?;
    let http = reqwest::Client::new();
    let hook = |path: &str| match path {
        "mailgun" => format!("{base}/webhooks/mailgun?token={TOKEN}&organization={tenant}"),
        _ => format!("{base}/webhooks/{path}?token={TOKEN}"),
    };
    audience(&stack, tenant).await?;

    let first = stack
        .launch_campaign(tenant, contacts::SegmentFilter::default())
        .await?;
    let done = stack.wait_completed(tenant, &first.id).await?;
    assert_eq!(done.counts.unwrap().sent, 6);
    let ids = message_ids(&stack)?;

    let (status, answer) = post(&http, hook("dsn"), dsn(HARD, &ids[HARD])).await?;
    assert_eq!(
        (status, &answer["bounces"][0]["kind"]),
        (200, &json!("permanent"))
    );
    assert_eq!(answer["bounces"][0]["suppressed"], true, "{answer}");

    let genuine = ses_permanent_bounce(&sns, SES, &ids[SES]);
    let mut tampered = genuine.clone();
    tampered["Message"] = json!(
        genuine["Message"]
            .as_str()
            .unwrap_or_default()
            .replace(SES, FINE[1])
    );
    let (status, answer) = post(&http, hook("ses"), tampered.to_string()).await?;
    assert_eq!(status, 401, "a tampered SNS message was accepted: {answer}");
    let ses = genuine.to_string();
    let (status, answer) = post(&http, hook("ses"), ses.clone()).await?;
    assert_eq!(
        (status, answer["recorded"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    let (_, again) = post(&http, hook("ses"), ses).await?;
    assert_eq!(again["bounces"][0]["duplicate"], true, "{again}");

    let mut service = stack.messaging_as_service().await?;
    let complaint = messaging::IngestBounceRequest {
        source: Some(messaging::ingest_bounce_request::Source::RawMessage(
            arf_complaint(COMPLAINER, &ids[COMPLAINER]).into_bytes(),
        )),
    };
    let recorded = service.ingest_bounce(complaint).await?.into_inner();
    assert_eq!(
        recorded.bounces[0].kind,
        messaging::BounceKind::Complaint as i32
    );

    for event in ["soft-1", "soft-2"] {
        let body = mailgun_temporary(SOFT, &ids[SOFT], event).to_string();
        let (status, answer) = post(&http, hook("mailgun"), body).await?;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["bounces"][0]["suppressed"], false, "{answer}");
    }
    let replayed = mailgun_temporary(SOFT, &ids[SOFT], "soft-2").to_string();
    let (status, answer) = post(&http, hook("mailgun"), replayed).await?;
    assert_eq!(
        status, 409,
        "a replayed Mailgun event was accepted: {answer}"
    );

    let stranger = dsn(
        FINE[0],
        "<0190b5a0-dead-7000-8000-000000000000@example.org>",
    );
    let unknown = messaging::IngestBounceRequest {
        source: Some(messaging::ingest_bounce_request::Source::RawMessage(
            stranger.into_bytes(),
        )),
    };
    let refused = service.ingest_bounce(unknown).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound);
    let (status, _) = post(&http, format!("{base}/webhooks/dsn?token=nope"), "x").await?;
    assert_eq!(status, 401);

    assert_eq!(
        suppression(&stack, tenant, HARD).await?.as_deref(),
        Some("bounced")
    );
    assert_eq!(
        suppression(&stack, tenant, SES).await?.as_deref(),
        Some("bounced")
    );
    assert_eq!(
        suppression(&stack, tenant, COMPLAINER).await?.as_deref(),
        Some("complained")
    );
    assert_eq!(
        suppression(&stack, tenant, SOFT).await?,
        None,
        "suppressed before the limit"
    );
    for fine in FINE {
        assert_eq!(suppression(&stack, tenant, fine).await?, None);
        assert!(
            bounces_of(&stack, fine).await?.is_empty(),
            "recorded a stranger's bounce"
        );
    }

    let hard = bounces_of(&stack, HARD).await?;
    assert_eq!(hard.len(), 1);
    assert_eq!(
        (&*hard[0].0, &*hard[0].1, &*hard[0].2),
        ("permanent", "5.1.1", "dsn")
    );
    assert!(hard[0].3.contains("User unknown"), "{}", hard[0].3);
    let ses = bounces_of(&stack, SES).await?;
    assert_eq!(ses.len(), 1, "a repeated notification is stored once");
    assert_eq!((&*ses[0].0, &*ses[0].2), ("permanent", "ses"));
    assert!(ses[0].3.contains("mailbox does not exist"), "{}", ses[0].3);
    let complained = bounces_of(&stack, COMPLAINER).await?;
    assert_eq!((&*complained[0].0, &*complained[0].2), ("complaint", "arf"));
    assert!(complained[0].3.contains("abuse"), "{}", complained[0].3);
    let soft = bounces_of(&stack, SOFT).await?;
    assert_eq!(soft.len(), 2);
    assert!(
        soft.iter()
            .all(|b| b.0 == "transient" && b.1 == "452" && b.2 == "mailgun")
    );
    assert!(soft[0].3.contains("Mailbox full"), "{}", soft[0].3);

    let counted = stack.wait_completed(tenant, &first.id).await?;
    let counts = counted.counts.unwrap();
    assert_eq!((counts.bounced, counts.complained), (3, 1), "{counts:?}");
    bounces_are_visible_on_delivery_person_and_campaign(&stack, tenant, &first.id).await?;
    let bounced = recipient(&stack, &first.id, HARD).await?;
    let shown: Value = http
        .get(format!("{base}/v1/deliveries/{}", bounced.delivery))
        .bearer_auth(&key)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(shown["state"], "sent", "{shown}");
    assert_eq!(shown["bounces"][0]["kind"], "permanent", "{shown}");
    let listed: Value = http
        .get(format!("{base}/v1/people/{}/bounces", bounced.person))
        .bearer_auth(&key)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(listed["bounces"][0]["source"], "dsn", "{listed}");
    assert_eq!(listed["next_page_token"], Value::Null, "{listed}");

    let mut withdrawn = false;
    for _ in 0..100 {
        if consent(&stack, tenant, COMPLAINER).await? == "withdrawn" {
            withdrawn = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        withdrawn,
        "contacts never withdrew the complainer's consent"
    );
    assert_eq!(consent(&stack, tenant, HARD).await?, "granted");

    let second = stack
        .launch_campaign(tenant, contacts::SegmentFilter::default())
        .await?;
    stack.wait_completed(tenant, &second.id).await?;
    let received = stack.received_by_recipient()?;
    for once in [HARD, SES, COMPLAINER] {
        assert_eq!(received[once].len(), 1, "{once} got the second campaign");
    }
    for twice in [SOFT, FINE[0], FINE[1]] {
        assert_eq!(
            received[twice].len(),
            2,
            "{twice} missed the second campaign"
        );
    }

    let third = mailgun_temporary(SOFT, &ids[SOFT], "soft-3").to_string();
    let (_, answer) = post(&http, hook("mailgun"), third).await?;
    assert_eq!(answer["bounces"][0]["suppressed"], true, "{answer}");
    assert_eq!(
        suppression(&stack, tenant, SOFT).await?.as_deref(),
        Some("bounced")
    );

    shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    muster_testkit::drop_database(&gateway_database).await?;
    stack.stop().await
}
