//! The consent ledger over REST in front of the real services: an import
//! that declares its legal basis, statements recorded per channel and
//! purpose, the history, and the organization's policy on legal bases; the
//! public subscription form, its pages and its confirmation e-mail.

use std::time::Duration;

use muster_e2e::Stack;
use muster_runtime::confirmation::{Confirmation, ConfirmationTokens};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Gateway {
    base: String,
    key: String,
    tenant: muster_runtime::TenantId,
    http: reqwest::Client,
    /// The gateway's database.
    pool: sqlx::PgPool,
    /// The `Accept-Language` the visitor's browser sends, if any.
    accept_language: Option<&'static str>,
}

impl Gateway {
    async fn start(stack: &Stack, shutdown: &CancellationToken) -> anyhow::Result<Self> {
        Self::start_with(stack, shutdown, |_| {}).await
    }

    async fn start_with(
        stack: &Stack,
        shutdown: &CancellationToken,
        adjust: impl FnOnce(&mut muster_gateway::Settings),
    ) -> anyhow::Result<Self> {
        Self::start_named(stack, shutdown, adjust, "Collectif des quais").await
    }

    /// A gateway serving one organization named `name`, in France (the
    /// default country).
    async fn start_named(
        stack: &Stack,
        shutdown: &CancellationToken,
        adjust: impl FnOnce(&mut muster_gateway::Settings),
        name: &str,
    ) -> anyhow::Result<Self> {
        let started = stack.start_gateway(shutdown, adjust).await?;
        let pool = sqlx::PgPool::connect(&started.database.url).await?;
        let (tenant, key) = muster_gateway::create_tenant(&pool, name).await?;
        Ok(Self {
            base: started.base,
            key,
            tenant,
            http: reqwest::Client::new(),
            pool,
            accept_language: None,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    async fn ok(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let (status, reply) = self.call(method.clone(), path, body).await?;
        anyhow::ensure!(
            status == 200 || status == 201,
            "{method} {path}: {status} {reply}"
        );
        Ok(reply)
    }

    /// Uploads `csv` with `query` and waits for the import to end.
    async fn import(&self, query: &str, csv: &str) -> anyhow::Result<Value> {
        let upload = self
            .http
            .post(format!("{}/v1/imports?{query}", self.base))
            .bearer_auth(&self.key)
            .header("content-length", csv.len())
            .body(csv.to_owned())
            .send()
            .await?;
        let status = upload.status().as_u16();
        let job: Value = upload.json().await?;
        anyhow::ensure!(status == 201, "upload: {status} {job}");
        let path = format!("/v1/imports/{}", job["id"].as_str().unwrap_or_default());
        for _ in 0..600 {
            let job = self.ok(reqwest::Method::GET, &path, None).await?;
            if job["state"] == "succeeded" || job["state"] == "failed" {
                return Ok(job);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("{path} never ended")
    }
}

const MAPPING: &str = "preset=custom&map.email=email&map.email_consent=optin\
    &map.email_consent_time=quand";

#[tokio::test]
async fn an_organizer_records_and_reads_consent_per_channel_and_purpose_over_rest()
-> anyhow::Result<()> {
    use reqwest::Method;
    let stack = Stack::start().await?;
    let shutdown = CancellationToken::new();
    let gateway = Gateway::start(&stack, &shutdown).await?;

    let csv = "email;optin;quand\nada@example.org;oui;01/03/2026 10:00\n";
    let (status, refused) = gateway
        .call(
            Method::POST,
            &format!("/v1/imports?{MAPPING}&legal_basis=goodwill"),
            None,
        )
        .await?;
    assert_eq!(status, 400, "{refused}");
    let query = format!("{MAPPING}&legal_basis=contract&notice=adh%C3%A9sion%20v3");
    let job = gateway.import(&query, csv).await?;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["counts"]["consent_granted"], 1);

    let people = gateway.ok(Method::GET, "/v1/people", None).await?;
    let id = people["people"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let consents = format!("/v1/people/{id}/consents");
    let listed = gateway.ok(Method::GET, &consents, None).await?;
    assert_eq!(listed["consents"][0]["legal_basis"], "contract", "{listed}");
    assert_eq!(listed["consents"][0]["notice"], "adhésion v3");
    assert_eq!(listed["consents"][0]["state"], "granted");

    let withdraw = json!({ "channel": "email", "state": "withdrawn", "client": "crm" });
    let reply = gateway.ok(Method::POST, &consents, Some(withdraw)).await?;
    assert_eq!(
        (&reply["current"]["state"], &reply["applied"]),
        (&json!("withdrawn"), &json!(true))
    );
    let again = json!({
        "channel": "email", "state": "granted", "legal_basis": "consent",
        "evidence": { "ip": "192.0.2.7" }
    });
    let reply = gateway.ok(Method::POST, &consents, Some(again)).await?;
    assert_eq!(reply["current"]["state"], "pending", "{reply}");
    let sms = json!({
        "channel": "sms", "purpose": "events", "state": "granted", "legal_basis": "consent"
    });
    gateway.ok(Method::POST, &consents, Some(sms)).await?;

    let page = gateway
        .ok(
            Method::GET,
            &format!("{consents}/history?page_size=2"),
            None,
        )
        .await?;
    assert_eq!(page["records"].as_array().map(Vec::len), Some(2));
    let token = page["next_page_token"].as_str().unwrap_or_default();
    let rest = gateway
        .ok(
            Method::GET,
            &format!("{consents}/history?page_size=2&page_token={token}"),
            None,
        )
        .await?;
    let states: Vec<&Value> = page["records"]
        .as_array()
        .into_iter()
        .chain(rest["records"].as_array())
        .flatten()
        .map(|r| &r["state"])
        .collect();
    assert_eq!(
        states,
        [
            &json!("granted"),
            &json!("withdrawn"),
            &json!("pending"),
            &json!("granted")
        ]
    );
    assert_eq!(rest["records"][0]["source"], "api:rest");
    assert_eq!(rest["records"][0]["evidence"]["ip"], "192.0.2.7");
    assert_eq!(rest["records"][1]["purpose"], "events");

    let policy = json!({ "forbidden": [{ "channel": "sms", "legal_basis": "contract" }] });
    gateway
        .ok(Method::PUT, "/v1/consent-policy", Some(policy.clone()))
        .await?;
    assert_eq!(
        gateway.ok(Method::GET, "/v1/consent-policy", None).await?,
        policy
    );
    let forbidden = json!({ "channel": "sms", "state": "granted", "legal_basis": "contract" });
    let (status, error) = gateway
        .call(Method::POST, &consents, Some(forbidden))
        .await?;
    assert_eq!(status, 400, "{error}");
    assert!(error.to_string().contains("legal_basis"), "{error}");
    let (status, error) = gateway
        .call(
            Method::POST,
            &consents,
            Some(json!({ "channel": "fax", "state": "granted" })),
        )
        .await?;
    assert_eq!(status, 400, "{error}");
    assert!(error.to_string().contains("channel"), "{error}");

    let export = gateway
        .ok(Method::GET, &format!("/v1/people/{id}/export"), None)
        .await?;
    let ledger = export["services"]["contacts"]["consent_events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(ledger.len(), 4, "{export}");
    assert_eq!(ledger[0]["legal_basis"], "contract");

    shutdown.cancel();
    stack.stop().await
}

impl Gateway {
    /// Posts the public subscription form (no API key).
    async fn subscribe(&self, email: &str) -> anyhow::Result<(u16, String)> {
        self.subscribe_from(email, "198.51.100.4").await
    }

    /// Posts the form as a visitor at `ip`, through a proxy on this host.
    async fn subscribe_from(&self, email: &str, ip: &str) -> anyhow::Result<(u16, String)> {
        let organization = self.tenant.to_string();
        let form = [
            ("organization", organization.as_str()),
            ("email", email),
            ("first_name", "Zoe"),
            ("notice", "newsletter form v4"),
        ];
        let mut request = self
            .http
            .post(format!("{}/subscribe", self.base))
            .header("x-forwarded-for", ip)
            .form(&form);
        if let Some(accepted) = self.accept_language {
            request = request.header("accept-language", accepted);
        }
        let reply = request.send().await?;
        Ok((reply.status().as_u16(), reply.text().await?))
    }

    /// `GET` or `POST` of a public confirmation page.
    async fn page(&self, method: reqwest::Method, token: &str) -> anyhow::Result<(u16, String)> {
        let mut request = self
            .http
            .request(method, format!("{}/confirm/{token}", self.base))
            .header("x-forwarded-for", "198.51.100.9");
        if let Some(accepted) = self.accept_language {
            request = request.header("accept-language", accepted);
        }
        let reply = request.send().await?;
        Ok((reply.status().as_u16(), reply.text().await?))
    }

    async fn granted(&self) -> anyhow::Result<u64> {
        let body = json!({ "query": "consent:email=granted" });
        let count = self
            .ok(reqwest::Method::POST, "/v1/segments/count", Some(body))
            .await?;
        Ok(count["count"].as_u64().unwrap_or(u64::MAX))
    }
}

/// The confirmation tokens in the messages `recipient` received, waiting
/// until there are `expected`.
async fn confirmation_tokens(
    stack: &Stack,
    recipient: &str,
    expected: usize,
) -> anyhow::Result<Vec<String>> {
    for _ in 0..300 {
        let received = stack.received_by_recipient()?;
        let messages = received.get(recipient).cloned().unwrap_or_default();
        if messages.len() >= expected {
            return Ok(messages.iter().filter_map(|m| token_in(&m.raw)).collect());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{recipient} did not receive {expected} confirmation e-mails")
}

/// The token of the confirmation link in a raw message (quoted-printable
/// soft line breaks undone).
fn token_in(raw: &str) -> Option<String> {
    let body = raw
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let rest = body.split("/confirm/").nth(1)?;
    let token: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    Some(token)
}

/// The subject and plain-text body of a received message, decoded.
fn subject_and_text(raw: &str) -> anyhow::Result<(String, String)> {
    let message = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .ok_or_else(|| anyhow::anyhow!("not a message: {raw}"))?;
    let subject = message.subject().unwrap_or_default().to_owned();
    let text = message.body_text(0).unwrap_or_default().into_owned();
    Ok((subject, text))
}

/// The first message `recipient` received, once it has.
async fn first_email(stack: &Stack, recipient: &str) -> anyhow::Result<(String, String)> {
    confirmation_tokens(stack, recipient, 1).await?;
    let received = stack.received_by_recipient()?;
    let message = received
        .get(recipient)
        .and_then(|messages| messages.first())
        .ok_or_else(|| anyhow::anyhow!("{recipient} received nothing"))?;
    subject_and_text(&message.raw)
}

#[tokio::test]
async fn a_form_subscription_counts_only_once_the_emailed_link_is_confirmed() -> anyhow::Result<()>
{
    use reqwest::Method;
    let stack = Stack::start().await?;
    let shutdown = CancellationToken::new();
    let mut gateway = Gateway::start(&stack, &shutdown).await?;
    // A British visitor on a French organization's form reads English.
    gateway.accept_language = Some("en-GB,en;q=0.9");

    let (status, page) = gateway.subscribe("zoe@example.org").await?;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<html lang=\"en\">"), "{page}");
    assert!(page.contains("Check your inbox"), "{page}");
    assert!(
        page.contains("<strong>Collectif des quais</strong>"),
        "{page}"
    );
    let (status, page) = gateway.subscribe("not an address").await?;
    assert_eq!(status, 400);
    assert!(
        page.contains("Check it, then send the form again"),
        "{page}"
    );
    assert_eq!(gateway.granted().await?, 0);

    let tokens = confirmation_tokens(&stack, "zoe@example.org", 1).await?;
    let token = tokens.first().cloned().unwrap_or_default();
    let (subject, text) = first_email(&stack, "zoe@example.org").await?;
    assert_eq!(
        subject,
        "Collectif des quais: please confirm your subscription"
    );
    assert!(text.starts_with("Hello Zoe,"), "{text}");
    assert!(
        text.contains("receive e-mails from Collectif des quais by opening this link"),
        "{text}"
    );
    assert!(
        text.contains("What you agreed to: newsletter form v4"),
        "{text}"
    );

    let (status, page) = gateway.page(Method::GET, &token).await?;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<html lang=\"en\">"), "{page}");
    assert!(page.contains("<form method=\"post\">"), "{page}");
    assert!(page.contains("Collectif des quais"), "{page}");
    assert_eq!(gateway.granted().await?, 0, "a GET confirms nothing");

    let mut tampered = token.clone();
    tampered.insert(3, 'x');
    assert_eq!(gateway.page(Method::GET, &tampered).await?.0, 400);
    assert_eq!(gateway.page(Method::POST, &tampered).await?.0, 400);
    let expired = ConfirmationTokens::with_signer(stack.signer.clone()).issue(&Confirmation {
        tenant: gateway.tenant,
        person: uuid::Uuid::now_v7(),
        channel: "email".into(),
        purpose: String::new(),
        expires_at: chrono::Utc::now() - chrono::Duration::minutes(1),
    });
    let (status, page) = gateway.page(Method::GET, &expired).await?;
    assert_eq!(status, 410, "{page}");
    assert!(page.contains("expired"), "{page}");

    for _ in 0..2 {
        let (status, page) = gateway.page(Method::POST, &token).await?;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("Subscription confirmed"), "{page}");
        assert!(
            page.contains("e-mails from <strong>Collectif des quais"),
            "{page}"
        );
    }
    assert_eq!(gateway.granted().await?, 1);
    let people = gateway.ok(Method::GET, "/v1/people", None).await?;
    let id = people["people"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let history = gateway
        .ok(
            Method::GET,
            &format!("/v1/people/{id}/consents/history"),
            None,
        )
        .await?;
    let records = history["records"].as_array().cloned().unwrap_or_default();
    assert_eq!(records.len(), 2, "one request, one confirmation: {history}");
    assert_eq!(records[0]["state"], "pending");
    assert_eq!(records[0]["evidence"]["ip"], "198.51.100.4");
    assert_eq!(records[1]["state"], "granted");
    assert_eq!(records[1]["source"], "form");
    assert_eq!(records[1]["evidence"]["ip"], "198.51.100.9");
    assert!(
        records[1]["evidence"]["confirmed_at"].is_string(),
        "{history}"
    );

    // Zed's record is merged into Zoe's before Zed confirms: the link says
    // why it no longer confirms anything.
    gateway.subscribe("zed@example.org").await?;
    let zed_token = confirmation_tokens(&stack, "zed@example.org", 1).await?;
    let people = gateway.ok(Method::GET, "/v1/people", None).await?;
    let id_of = |email: &str| {
        people["people"]
            .as_array()
            .and_then(|all| all.iter().find(|p| p["email"] == email))
            .and_then(|p| p["id"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let (zoe, zed) = (id_of("zoe@example.org"), id_of("zed@example.org"));
    let body = serde_json::json!({ "other_id": zed, "reason": "same person" });
    gateway
        .ok(Method::POST, &format!("/v1/people/{zoe}/merge"), Some(body))
        .await?;
    let (status, page) = gateway.page(Method::POST, &zed_token[0]).await?;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("merged with another"), "{page}");
    assert_eq!(gateway.granted().await?, 1, "Zoe's own confirmation only");

    shutdown.cancel();
    stack.stop().await
}

#[tokio::test]
async fn one_address_sends_a_few_subscriptions_an_hour_and_a_silent_redis_stops_none()
-> anyhow::Result<()> {
    use reqwest::Method;
    let stack = Stack::start().await?;
    let shutdown = CancellationToken::new();
    let gateway = Gateway::start_with(&stack, &shutdown, |s| s.forms.per_ip_per_hour = 2).await?;

    for n in 0..2 {
        let (status, page) = gateway
            .subscribe_from(&format!("v{n}@example.org"), "198.51.100.7")
            .await?;
        assert_eq!(status, 200, "{page}");
    }
    let (status, page) = gateway
        .subscribe_from("v2@example.org", "198.51.100.7")
        .await?;
    assert_eq!(status, 429, "{page}");
    assert!(page.contains("Réessayez dans une heure"), "{page}");
    let (status, _) = gateway
        .subscribe_from("w@example.org", "198.51.100.8")
        .await?;
    assert_eq!(status, 200, "another address has its own count");
    let people = gateway.ok(Method::GET, "/v1/people", None).await?;
    let mut emails: Vec<String> = people["people"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["email"].as_str().map(str::to_owned))
        .collect();
    emails.sort();
    assert_eq!(
        emails,
        ["v0@example.org", "v1@example.org", "w@example.org"]
    );

    // Counting needs Redis; without it the form is let through.
    let blind = Gateway::start_with(&stack, &shutdown, |s| {
        s.forms.per_ip_per_hour = 1;
        s.forms.redis_url = "redis://127.0.0.1:1".into();
    })
    .await?;
    for n in 0..3 {
        let (status, page) = blind
            .subscribe_from(&format!("b{n}@example.org"), "198.51.100.7")
            .await?;
        assert_eq!(status, 200, "{page}");
    }

    shutdown.cancel();
    stack.stop().await
}

#[tokio::test]
async fn an_unsubscribed_person_who_subscribes_again_stays_out_until_confirmed()
-> anyhow::Result<()> {
    use reqwest::Method;
    let stack = Stack::start().await?;
    let shutdown = CancellationToken::new();
    let gateway = Gateway::start(&stack, &shutdown).await?;

    let csv = "email;optin;quand\nbob@example.org;oui;01/03/2026 10:00\n";
    gateway.import(MAPPING, csv).await?;
    assert_eq!(gateway.granted().await?, 1);
    let people = gateway.ok(Method::GET, "/v1/people", None).await?;
    let id = people["people"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let withdraw = json!({ "channel": "email", "state": "withdrawn", "client": "crm" });
    let consents = format!("/v1/people/{id}/consents");
    gateway.ok(Method::POST, &consents, Some(withdraw)).await?;
    assert_eq!(gateway.granted().await?, 0);

    let (status, page) = gateway.subscribe("bob@example.org").await?;
    assert_eq!(status, 200, "{page}");
    let tokens = confirmation_tokens(&stack, "bob@example.org", 1).await?;
    assert_eq!(gateway.granted().await?, 0, "pending is not granted");

    let job = gateway.import(MAPPING, csv).await?;
    assert_eq!(job["counts"]["consent_granted"], 0, "{job}");
    assert_eq!(gateway.granted().await?, 0, "an import never re-grants");
    let listed = gateway.ok(Method::GET, &consents, None).await?;
    assert_eq!(listed["consents"][0]["state"], "pending", "{listed}");

    let (status, page) = gateway.page(Method::POST, &tokens[0]).await?;
    assert_eq!(status, 200, "{page}");
    assert_eq!(gateway.granted().await?, 1);
    assert_eq!(
        stack.received_by_recipient()?["bob@example.org"].len(),
        1,
        "one confirmation e-mail"
    );

    shutdown.cancel();
    stack.stop().await
}

#[tokio::test]
async fn a_french_organization_writes_its_pages_and_its_email_in_french_and_signs_them()
-> anyhow::Result<()> {
    use reqwest::Method;
    let stack = Stack::start().await?;
    let shutdown = CancellationToken::new();
    let mut gateway = Gateway::start(&stack, &shutdown).await?;

    let (status, page) = gateway.subscribe("zoe@example.org").await?;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<html lang=\"fr\">"), "{page}");
    assert!(page.contains("Vérifiez votre boîte de réception"), "{page}");
    assert!(
        page.contains("<strong>Collectif des quais</strong>"),
        "{page}"
    );

    let (subject, text) = first_email(&stack, "zoe@example.org").await?;
    assert_eq!(
        subject,
        "Collectif des quais\u{a0}: confirmez votre inscription"
    );
    assert!(text.starts_with("Bonjour Zoe,"), "{text}");
    assert!(
        text.contains("recevoir les e-mails de «\u{a0}Collectif des quais\u{a0}»"),
        "{text}"
    );
    assert!(
        text.contains("Ce que vous avez accepté\u{a0}: newsletter form v4"),
        "{text}"
    );

    // A browser that reads neither French nor English gets the organization's.
    gateway.accept_language = Some("de-DE,de;q=0.9");
    let token = confirmation_tokens(&stack, "zoe@example.org", 1).await?[0].clone();
    let (status, page) = gateway.page(Method::GET, &token).await?;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<html lang=\"fr\">"), "{page}");
    assert!(page.contains("Confirmez votre inscription"), "{page}");
    assert!(
        page.contains("<button type=\"submit\">Confirmer</button>"),
        "{page}"
    );
    let (status, page) = gateway.page(Method::POST, &token).await?;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Inscription confirmée"), "{page}");
    assert!(
        page.contains("«&nbsp;<strong>Collectif des quais</strong>&nbsp;»"),
        "{page}"
    );
    assert_eq!(gateway.granted().await?, 1);

    let (status, page) = gateway.page(Method::GET, "cut-short").await?;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("Ce lien n’est pas valide"), "{page}");

    shutdown.cancel();
    stack.stop().await
}

#[tokio::test]
async fn a_grant_recorded_over_rest_asks_in_the_organizations_language_and_names_it()
-> anyhow::Result<()> {
    use reqwest::Method;
    let stack = Stack::start().await?;
    let shutdown = CancellationToken::new();
    let gateway = Gateway::start(&stack, &shutdown).await?;

    let csv = "email;optin;quand\nada@example.org;oui;01/03/2026 10:00\n";
    gateway.import(MAPPING, csv).await?;
    let people = gateway.ok(Method::GET, "/v1/people", None).await?;
    let id = people["people"][0]["id"].as_str().unwrap_or_default();
    let consents = format!("/v1/people/{id}/consents");
    let withdraw = json!({ "channel": "email", "state": "withdrawn", "client": "crm" });
    gateway.ok(Method::POST, &consents, Some(withdraw)).await?;
    let again = json!({
        "channel": "email", "state": "granted", "legal_basis": "consent",
        "notice": "adhésion v3"
    });
    let reply = gateway.ok(Method::POST, &consents, Some(again)).await?;
    assert_eq!(reply["current"]["state"], "pending", "{reply}");

    let (subject, text) = first_email(&stack, "ada@example.org").await?;
    assert_eq!(
        subject,
        "Collectif des quais\u{a0}: confirmez votre inscription"
    );
    assert!(text.starts_with("Bonjour,"), "{text}");
    assert!(
        text.contains("recevoir les e-mails de «\u{a0}Collectif des quais\u{a0}»"),
        "{text}"
    );
    assert!(
        text.contains("Ce que vous avez accepté\u{a0}: adhésion v3"),
        "{text}"
    );

    let token = confirmation_tokens(&stack, "ada@example.org", 1).await?[0].clone();
    let (status, page) = gateway.page(Method::POST, &token).await?;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Inscription confirmée"), "{page}");
    assert_eq!(gateway.granted().await?, 1);

    shutdown.cancel();
    stack.stop().await
}

#[tokio::test]
async fn an_organization_name_shows_as_text_and_cannot_add_an_email_header() -> anyhow::Result<()> {
    use reqwest::Method;
    let name = "<script>alert(1)</script> Les \"Verts\" & co";
    let stack = Stack::start().await?;
    let shutdown = CancellationToken::new();
    let gateway = Gateway::start_named(&stack, &shutdown, |_| {}, name).await?;
    let escaped = "&lt;script&gt;alert(1)&lt;/script&gt; Les &quot;Verts&quot; &amp; co";

    let (status, page) = gateway.subscribe("zoe@example.org").await?;
    assert_eq!(status, 200, "{page}");
    assert!(!page.contains("<script>"), "{page}");
    assert!(page.contains(escaped), "{page}");
    let (subject, _) = first_email(&stack, "zoe@example.org").await?;
    assert_eq!(
        subject,
        format!("{name}\u{a0}: confirmez votre inscription")
    );
    let token = confirmation_tokens(&stack, "zoe@example.org", 1).await?[0].clone();
    for method in [Method::GET, Method::POST] {
        let (status, page) = gateway.page(method, &token).await?;
        assert_eq!(status, 200, "{page}");
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains(escaped), "{page}");
    }

    // A name stored before line breaks were refused.
    sqlx::query("UPDATE tenants SET name = $2 WHERE id = $1")
        .bind(gateway.tenant)
        .bind("Verts\r\nBcc: all@example.org")
        .execute(&gateway.pool)
        .await?;
    gateway.subscribe("bob@example.org").await?;
    let (subject, _) = first_email(&stack, "bob@example.org").await?;
    assert_eq!(
        subject,
        "Verts Bcc: all@example.org\u{a0}: confirmez votre inscription"
    );
    let received = stack.sink.messages()?;
    assert!(
        received.iter().all(|m| m.recipients.len() == 1),
        "{received:?}"
    );
    let raw = &stack.received_by_recipient()?["bob@example.org"][0].raw;
    assert!(!raw.lines().any(|line| line.starts_with("Bcc:")), "{raw}");

    shutdown.cancel();
    stack.stop().await
}
