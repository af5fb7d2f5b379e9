//! The REST gateway in front of the real services: an organization's API key,
//! an import, a segment count, a campaign, and the public unsubscribe pages.

use std::time::Duration;

use muster_e2e::{Stack, data_file};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Gateway {
    database: muster_runtime::config::DatabaseSettings,
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Gateway {
    async fn start(stack: &Stack, shutdown: &CancellationToken) -> anyhow::Result<Self> {
        Self::start_in(stack, shutdown, "FR").await
    }

    /// A gateway with one organization working in `country`.
    async fn start_in(
        stack: &Stack,
        shutdown: &CancellationToken,
        country: &str,
    ) -> anyhow::Result<Self> {
        let started = stack.start_gateway(shutdown, |_| {}).await?;
        let (settings_database, base) = (started.database, started.base);
        let pool = sqlx::PgPool::connect(&settings_database.url).await?;
        let (tenant, key) = muster_gateway::create_tenant(&pool, "Fédération du Rhône").await?;
        muster_gateway::set_default_country(&pool, tenant, country).await?;
        Ok(Self {
            database: settings_database,
            base,
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

    /// Uploads `file` to `POST /v1/imports?{query}` (which must answer 201)
    /// and waits for the import to end; returns its path and last state.
    async fn import(&self, query: &str, file: Vec<u8>) -> anyhow::Result<(String, Value)> {
        let upload = self
            .http
            .post(format!("{}/v1/imports?{query}", self.base))
            .bearer_auth(&self.key)
            .header("content-length", file.len())
            .body(file)
            .send()
            .await?;
        assert_eq!(upload.status().as_u16(), 201);
        let job: Value = upload.json().await?;
        let path = format!("/v1/imports/{}", job["id"].as_str().unwrap_or_default());
        let job = poll(self, &path, |j| {
            j["state"] == "succeeded" || j["state"] == "failed"
        })
        .await?;
        Ok((path, job))
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await?;
        anyhow::ensure!(status == 200, "GET {path}: {status} {body}");
        Ok(body)
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let (status, body) = self.call(reqwest::Method::POST, path, Some(body)).await?;
        anyhow::ensure!(
            status == 200 || status == 201,
            "POST {path}: {status} {body}"
        );
        Ok(body)
    }
}

async fn poll(
    gateway: &Gateway,
    path: &str,
    done: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    for _ in 0..1200 {
        let body = gateway.get(path).await?;
        if done(&body) {
            return Ok(body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{path} never reached the expected state")
}

#[tokio::test]
async fn an_organizer_imports_counts_sends_and_a_recipient_unsubscribes_over_rest()
-> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let shutdown = CancellationToken::new();
    let gateway = Gateway::start(&stack, &shutdown).await?;

    let anonymous = gateway
        .http
        .get(format!("{}/v1/people", gateway.base))
        .send()
        .await?;
    assert_eq!(anonymous.status().as_u16(), 401);

    let file = std::fs::read(data_file("mailchimp-audience-subscribed.csv"))?;
    let query = "preset=mailchimp_subscribed&file_name=audience.csv";
    let (path, job) = gateway.import(query, file).await?;
    assert_eq!(job["state"], "succeeded", "{job}");
    let counts = &job["counts"];
    assert_eq!(counts["rows_read"], 5_125);
    assert_eq!(counts["rejected"], 99);
    let issues = gateway.get(&format!("{path}/issues?page_size=5")).await?;
    assert_eq!(issues["issues"].as_array().unwrap().len(), 5);
    // Mailchimp's columns that Muster keeps nothing of are named once, on the header line.
    let header = &issues["issues"][0];
    assert_eq!(
        (&header["line"], &header["field"]),
        (&json!(1), &json!("header"))
    );
    assert!(
        header["reason"].as_str().unwrap_or_default().starts_with(
            "10 column(s) not imported: \"MEMBER_RATING\", \"LATITUDE\", \"LONGITUDE\""
        ),
        "{header}"
    );
    assert!(issues["issues"][1]["line"].as_u64().unwrap() > 1);

    let segment = json!({ "tags_any": ["jeunes"] });
    let reachable =
        json!({ "tags_any": ["jeunes"], "email_consent": "granted", "require_email": true });
    let count = gateway.post("/v1/segments/count", reachable).await?["count"]
        .as_u64()
        .unwrap();
    assert!(count > 100, "{count}");

    let template = gateway
        .post(
            "/v1/templates",
            json!({
                "name": "Appel",
                "subject": "Bonjour {{ first_name }}",
                "text_body": "Venez !",
            }),
        )
        .await?;
    let campaign = gateway
        .post(
            "/v1/campaigns",
            json!({
                "name": "Appel jeunes",
                "template_id": template["id"],
                "segment": segment,
                "from_email": "equipe@example.org",
                "from_name": "L'équipe",
            }),
        )
        .await?;
    let id = campaign["id"].as_str().unwrap().to_owned();
    gateway
        .post(&format!("/v1/campaigns/{id}/launch"), json!({}))
        .await?;
    let done = poll(&gateway, &format!("/v1/campaigns/{id}"), |c| {
        c["state"] == "completed"
    })
    .await?;
    assert_eq!(done["counts"]["sent"].as_u64(), Some(count), "{done}");
    assert_eq!(stack.sink.messages()?.len() as u64, count);

    let message = stack.sink.messages()?.remove(0);
    let token = message
        .raw
        .lines()
        .find_map(|line| line.strip_prefix("List-Unsubscribe: <"))
        .and_then(|rest| rest.split("/u/").nth(1))
        .map(|rest| rest.trim_end_matches('>').to_owned())
        .expect("a List-Unsubscribe header");
    let page = gateway
        .http
        .get(format!("{}/u/{token}", gateway.base))
        .send()
        .await?;
    assert_eq!(page.status().as_u16(), 200);
    let page = page.text().await?;
    assert!(page.contains("***@"), "{page}");
    assert!(
        !page.contains(&message.recipients[0]),
        "the page shows the whole address"
    );
    // A French organization's page, unless the browser reads English.
    assert!(page.contains("<html lang=\"fr\">"), "{page}");
    assert!(
        page.contains("les e-mails de «&nbsp;<strong>Fédération du Rhône</strong>&nbsp;»"),
        "{page}"
    );
    let english = gateway
        .http
        .get(format!("{}/u/{token}", gateway.base))
        .header("accept-language", "en")
        .send()
        .await?
        .text()
        .await?;
    assert!(english.contains("<html lang=\"en\">"), "{english}");
    assert!(
        english.contains("e-mails from <strong>Fédération du Rhône</strong>"),
        "{english}"
    );

    let one_click = gateway
        .http
        .post(format!("{}/u/{token}", gateway.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await?;
    assert_eq!(one_click.status().as_u16(), 200);
    let done = one_click.text().await?;
    assert!(done.contains("Désinscription confirmée"), "{done}");
    assert!(done.contains("Fédération du Rhône"), "{done}");
    let forged = gateway
        .http
        .post(format!("{}/u/{token}x", gateway.base))
        .send()
        .await?;
    assert_eq!(forged.status().as_u16(), 400);

    let leaver = message.recipients[0].to_lowercase();
    let mut withdrawn = false;
    for _ in 0..100 {
        let state: String =
            sqlx::query_scalar("SELECT email_consent FROM people WHERE email_key = $1")
                .bind(&leaver)
                .fetch_one(&stack.contacts_pool)
                .await?;
        withdrawn = state == "withdrawn";
        if withdrawn {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        withdrawn,
        "the one-click unsubscribe never reached contacts"
    );

    shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    muster_testkit::drop_database(&gateway.database).await?;
    stack.stop().await
}

#[tokio::test]
async fn an_organization_in_belgium_imports_belgian_numbers() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let shutdown = CancellationToken::new();
    let gateway = Gateway::start_in(&stack, &shutdown, "be").await?;

    let file = "Courriel;GSM\nzoe@example.org;0470 12 34 56\n";
    let query = "preset=custom&map.email=Courriel&map.phone=GSM";
    let (_, job) = gateway.import(query, file.as_bytes().to_vec()).await?;
    assert_eq!(job["counts"]["created"], 1, "{job}");

    let people = gateway.get("/v1/people").await?;
    assert_eq!(people["people"][0]["phone"], "+32470123456");
    assert_eq!(people["people"][0]["address"]["country"], "BE");

    shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    muster_testkit::drop_database(&gateway.database).await?;
    stack.stop().await
}

#[tokio::test]
async fn saved_segments_are_kept_listed_counted_and_deleted_over_rest() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let shutdown = CancellationToken::new();
    let gateway = Gateway::start(&stack, &shutdown).await?;
    let file = std::fs::read(data_file("mailchimp-audience-subscribed.csv"))?;
    let (_, job) = gateway
        .import("preset=mailchimp_subscribed&file_name=audience.csv", file)
        .await?;
    assert_eq!(job["state"], "succeeded", "{job}");

    let filter = json!({ "query": "tag:jeunes AND consent:email=granted" });
    let expected = gateway.post("/v1/segments/count", filter.clone()).await?["count"]
        .as_u64()
        .unwrap();
    assert!(expected > 100, "{expected}");

    let new = json!({ "name": "Jeunes joignables", "filter": filter });
    let (status, saved) = gateway
        .call(reqwest::Method::POST, "/v1/segments", Some(new.clone()))
        .await?;
    assert_eq!(status, 201, "{saved}");
    let id = saved["id"].as_str().unwrap().to_owned();
    assert_eq!(saved["filter"]["query"], filter["query"]);

    let (status, twice) = gateway
        .call(reqwest::Method::POST, "/v1/segments", Some(new))
        .await?;
    assert_eq!(status, 409, "a second segment of the same name: {twice}");

    let listed = gateway.get("/v1/segments").await?;
    assert_eq!(listed["segments"][0]["id"], id.as_str(), "{listed}");
    let read = gateway.get(&format!("/v1/segments/{id}")).await?;
    assert_eq!(read["count"].as_u64(), Some(expected), "{read}");
    let by_reference = json!({ "saved_segment_id": id });
    let counted = gateway.post("/v1/segments/count", by_reference).await?;
    assert_eq!(counted["count"].as_u64(), Some(expected));

    let path = format!("/v1/segments/{id}");
    let (status, _) = gateway.call(reqwest::Method::DELETE, &path, None).await?;
    assert_eq!(status, 204);
    let (status, gone) = gateway.call(reqwest::Method::GET, &path, None).await?;
    assert_eq!(status, 404, "{gone}");

    shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    muster_testkit::drop_database(&gateway.database).await?;
    stack.stop().await
}

#[tokio::test]
async fn an_organizer_defines_custom_fields_fills_them_and_counts_on_them_over_rest()
-> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let shutdown = CancellationToken::new();
    let gateway = Gateway::start(&stack, &shutdown).await?;

    let year = json!({"key": "membership_year", "label": "Année d'adhésion", "type": "number"});
    let defined = gateway.post("/v1/custom-fields", year).await?;
    assert_eq!(defined["type"], "number");
    let color = json!({"key": "color", "label": "Couleur", "type": "choice",
                       "choices": ["Rouge", "Vert"]});
    gateway.post("/v1/custom-fields", color).await?;
    let listed = gateway.get("/v1/custom-fields").await?;
    assert_eq!(listed["fields"][0]["choices"], json!(["Rouge", "Vert"]));
    let one = gateway.get("/v1/custom-fields/Color").await?;
    assert_eq!(
        (&one["key"], &one["label"]),
        (&json!("color"), &json!("Couleur"))
    );
    let (status, missing) = gateway
        .call(reqwest::Method::GET, "/v1/custom-fields/colour", None)
        .await?;
    assert_eq!(status, 404, "{missing}");
    assert_eq!(
        missing["error"]["message"],
        "custom field \"colour\" not found"
    );

    // The label names the column; the mapping names another.
    let file = "Courriel;Année d'adhésion;Teinte\n\
                ana@example.org;2019;rouge\n\
                bob@example.org;2022,0;bleu\n";
    let query = "preset=custom&map.email=Courriel&map.custom:color=Teinte";
    let (path, job) = gateway.import(query, file.as_bytes().to_vec()).await?;
    assert_eq!(job["counts"]["warnings"], 1, "{job}");
    let issues = gateway.get(&format!("{path}/issues")).await?;
    assert_eq!(issues["issues"][0]["line"], 3, "{issues}");
    // The organization's imports, newest first, a page at a time.
    let (second, _) = gateway
        .import(
            "preset=fr_excel&file_name=vide.csv",
            b"Nom;Prenom;E-mail\n".to_vec(),
        )
        .await?;
    let newest = gateway.get("/v1/imports?page_size=1").await?;
    assert_eq!(
        format!(
            "/v1/imports/{}",
            newest["imports"][0]["id"].as_str().unwrap_or("")
        ),
        second
    );
    let token = newest["next_page_token"].as_str().unwrap_or_default();
    let older = gateway
        .get(&format!("/v1/imports?page_size=1&page_token={token}"))
        .await?;
    assert_eq!(
        format!(
            "/v1/imports/{}",
            older["imports"][0]["id"].as_str().unwrap_or("")
        ),
        path
    );
    assert_eq!(older["imports"][0]["counts"]["warnings"], 1, "{older}");
    // A file refused at its header is answered failed, with the reason.
    let joined = "Prénom;Nom;E-mail;VilleAna;Roy;ana@example.org;Lyon".as_bytes();
    let refused = gateway
        .http
        .post(format!("{}/v1/imports?preset=fr_excel", gateway.base))
        .bearer_auth(&gateway.key)
        .header("content-length", joined.len())
        .body(joined)
        .send()
        .await?;
    assert_eq!(refused.status().as_u16(), 201);
    let refused: Value = refused.json().await?;
    assert_eq!(refused["state"], "failed", "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("--data-binary")),
        "{refused}"
    );
    assert_eq!(issues["issues"][0]["value"], "bleu", "{issues}");

    let people = gateway.get("/v1/people").await?;
    let ana = people["people"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["email"] == "ana@example.org"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        ana["custom_fields"],
        json!({"membership_year": "2019", "color": "Rouge"})
    );

    let id = ana["id"].as_str().unwrap_or_default();
    let (status, patched) = gateway
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/people/{id}/custom-fields"),
            Some(json!({"membership_year": "2 024", "color": ""})),
        )
        .await?;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["custom_fields"], json!({"membership_year": "2024"}));
    // JSON's own numbers and null are taken as they are meant.
    let (status, patched) = gateway
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/people/{id}/custom-fields"),
            Some(json!({"membership_year": 2025})),
        )
        .await?;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["custom_fields"], json!({"membership_year": "2025"}));
    let (status, patched) = gateway
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/people/{id}/custom-fields"),
            Some(json!({"membership_year": null})),
        )
        .await?;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["custom_fields"], json!({}));
    let (status, refused) = gateway
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/people/{id}/custom-fields"),
            Some(json!({"membership_year": [2024]})),
        )
        .await?;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused.to_string().contains("values[membership_year]"),
        "{refused}"
    );
    gateway
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/people/{id}/custom-fields"),
            Some(json!({"membership_year": "2024"})),
        )
        .await?;
    let (status, refused) = gateway
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/people/{id}/custom-fields"),
            Some(json!({"membership_year": "deux mille"})),
        )
        .await?;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused.to_string().contains("values[membership_year]"),
        "{refused}"
    );

    let counted = gateway
        .post(
            "/v1/segments/count",
            json!({"query": "field:membership_year>=2020"}),
        )
        .await?;
    assert_eq!(counted["count"], 2);
    let tree = json!({"expr": {"field": {"key": "membership_year", "operator": "less",
                                         "value": "2020"}}});
    assert_eq!(gateway.post("/v1/segments/count", tree).await?["count"], 0);
    let (status, body) = gateway
        .call(
            reqwest::Method::POST,
            "/v1/segments/count",
            Some(json!({"query": "field:membership_year>=douze"})),
        )
        .await?;
    assert_eq!(status, 400, "{body}");

    let (status, changed) = gateway
        .call(
            reqwest::Method::PATCH,
            "/v1/custom-fields/color",
            Some(json!({"label": "Teinte", "choices": ["Rouge", "Vert", "Bleu"]})),
        )
        .await?;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (&changed["label"], &changed["type"], &changed["choices"][2]),
        (&json!("Teinte"), &json!("choice"), &json!("Bleu"))
    );
    for (body, says) in [
        (json!({"type": "text"}), "type cannot change"),
        (json!({"choices": []}), "an empty list"),
        (json!({}), "nothing to change"),
        (
            json!({"key": "shade", "label": "Nuance"}),
            "a field's key never changes",
        ),
    ] {
        let (status, refused) = gateway
            .call(
                reqwest::Method::PATCH,
                "/v1/custom-fields/color",
                Some(body),
            )
            .await?;
        assert_eq!(status, 400, "{refused}");
        assert!(refused.to_string().contains(says), "{refused}");
    }
    let (status, same_key) = gateway
        .call(
            reqwest::Method::PATCH,
            "/v1/custom-fields/color",
            Some(json!({"key": "color", "label": "Couleur"})),
        )
        .await?;
    assert_eq!(
        status, 200,
        "a body copied from a GET names the field's own key: {same_key}"
    );

    let (status, _) = gateway
        .call(reqwest::Method::DELETE, "/v1/custom-fields/color", None)
        .await?;
    assert_eq!(status, 204);
    let listed = gateway.get("/v1/custom-fields").await?;
    assert_eq!(listed["fields"].as_array().map(Vec::len), Some(1));

    shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    muster_testkit::drop_database(&gateway.database).await?;
    stack.stop().await
}
