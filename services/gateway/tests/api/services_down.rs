use muster_runtime::unsubscribe::UnsubscribeTokens;

use crate::helpers::{SECRET, json_error, spawn_gateway, stopped_services};

#[tokio::test]
async fn a_call_while_contacts_is_stopped_is_a_503_naming_contacts() {
    let gateway = spawn_gateway(stopped_services().await).await;
    let (_, key) = gateway.tenant().await;

    let response = gateway
        .get("/v1/people")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();

    let (status, code, message) = json_error(response).await;
    assert_eq!((status, code.as_str()), (503, "unavailable"));
    assert!(message.contains("contacts service"), "{message}");
}

#[tokio::test]
async fn a_call_while_messaging_is_stopped_is_a_503_naming_messaging() {
    let gateway = spawn_gateway(stopped_services().await).await;
    let (_, key) = gateway.tenant().await;

    let response = gateway
        .get("/v1/campaigns")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();

    let (status, _, message) = json_error(response).await;
    assert_eq!(status, 503);
    assert!(message.contains("messaging service"), "{message}");
}

#[tokio::test]
async fn an_upload_while_contacts_is_stopped_is_a_503() {
    let gateway = spawn_gateway(stopped_services().await).await;
    let (_, key) = gateway.tenant().await;

    let response = gateway
        .post("/v1/imports?preset=fr_excel&file_name=adherents.csv")
        .bearer_auth(&key)
        .body("Nom;Prénom;Email\nDupont;Jeanne;jeanne@example.org\n")
        .send()
        .await
        .unwrap();

    let (status, _, message) = json_error(response).await;
    assert_eq!(status, 503);
    assert!(message.contains("contacts service"), "{message}");
}

#[tokio::test]
async fn a_misspelt_segment_filter_is_a_400_before_any_service_call() {
    let gateway = spawn_gateway(stopped_services().await).await;
    let (_, key) = gateway.tenant().await;

    let response = gateway
        .post("/v1/segments/count")
        .bearer_auth(&key)
        .json(&serde_json::json!({ "tag_any": ["volunteer"] }))
        .send()
        .await
        .unwrap();

    let (status, code, message) = json_error(response).await;
    assert_eq!((status, code.as_str()), (400, "invalid_argument"));
    assert!(message.contains("tag_any"), "{message}");
}

#[tokio::test]
async fn an_import_with_an_unknown_preset_is_a_400() {
    let gateway = spawn_gateway(stopped_services().await).await;
    let (_, key) = gateway.tenant().await;

    let response = gateway
        .post("/v1/imports?preset=excel")
        .bearer_auth(&key)
        .body("a;b\n")
        .send()
        .await
        .unwrap();

    let (status, _, message) = json_error(response).await;
    assert_eq!(status, 400);
    assert!(message.contains("fr_excel"), "lists the presets: {message}");
}

#[tokio::test]
async fn the_unsubscribe_page_asks_to_retry_while_messaging_is_stopped() {
    let gateway = spawn_gateway(stopped_services().await).await;

    let response = gateway
        .get("/u/some-token")
        .header("accept-language", "en")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 503);
    assert!(response.text().await.unwrap().contains("try again"));
}

#[tokio::test]
async fn a_genuine_link_speaks_its_organizations_language_while_messaging_is_stopped() {
    let gateway = spawn_gateway(stopped_services().await).await;
    let (tenant, _) = gateway.tenant().await;
    let token = UnsubscribeTokens::new(SECRET).issue(tenant, uuid::Uuid::now_v7());

    let response = gateway.get(&format!("/u/{token}")).send().await.unwrap();

    assert_eq!(response.status().as_u16(), 503);
    let html = response.text().await.unwrap();
    assert!(html.contains("<html lang=\"fr\">"), "{html}");
    assert!(html.contains("Réessayez dans quelques minutes"), "{html}");
}

#[tokio::test]
async fn a_listing_parameter_it_does_not_know_is_refused_not_ignored() {
    let gateway = spawn_gateway(stopped_services().await).await;
    let (_, key) = gateway.tenant().await;

    for path in ["/v1/people?limit=400", "/v1/duplicates?pagesize=5"] {
        let response = gateway.get(path).bearer_auth(&key).send().await.unwrap();
        let (status, code, message) = json_error(response).await;
        assert_eq!((status, code.as_str()), (400, "invalid_argument"), "{path}");
        assert!(message.contains("unknown field"), "{path}: {message}");
        assert!(message.contains("page_size"), "{path}: {message}");
    }
}
