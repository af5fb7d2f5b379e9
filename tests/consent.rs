//! The consent ledger over REST in front of the real services: an import
//! that declares its legal basis, statements recorded per channel and
//! purpose, the history, and the organization's policy on legal bases.

use std::time::Duration;

use muster_e2e::Stack;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Gateway {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Gateway {
    async fn start(stack: &Stack, shutdown: &CancellationToken) -> anyhow::Result<Self> {
        let started = stack.start_gateway(shutdown, |_| {}).await?;
        let pool = sqlx::PgPool::connect(&started.database.url).await?;
        let (_, key) = muster_gateway::create_tenant(&pool, "Collectif des quais").await?;
        Ok(Self {
            base: started.base,
            key,
            http: reqwest::Client::new(),
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
