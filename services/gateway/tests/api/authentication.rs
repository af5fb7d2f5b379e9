use muster_gateway::{create_api_key, revoke_api_key};

use crate::helpers::{json_error, spawn_gateway, stopped_services};

#[tokio::test]
async fn healthz_answers_without_a_key() {
    let gateway = spawn_gateway(stopped_services().await).await;

    let response = gateway.get("/healthz").send().await.unwrap();

    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn a_request_without_a_key_is_refused_with_401() {
    let gateway = spawn_gateway(stopped_services().await).await;

    let response = gateway.get("/v1/people").send().await.unwrap();

    let (status, code, message) = json_error(response).await;
    assert_eq!((status, code.as_str()), (401, "unauthenticated"));
    assert!(message.contains("Authorization: Bearer"), "{message}");
}

#[tokio::test]
async fn an_unknown_or_malformed_key_is_refused_with_401() {
    let gateway = spawn_gateway(stopped_services().await).await;
    gateway.tenant().await;
    let unknown = format!("mk_{}", "Z".repeat(40));

    for key in [unknown.as_str(), "hunter2"] {
        let response = gateway
            .get("/v1/people")
            .bearer_auth(key)
            .send()
            .await
            .unwrap();

        let (status, _, message) = json_error(response).await;
        assert_eq!(status, 401, "{key}");
        assert_eq!(message, "unknown or revoked API key");
    }
}

#[tokio::test]
async fn a_revoked_key_is_refused_with_401() {
    let gateway = spawn_gateway(stopped_services().await).await;
    let (tenant, _) = gateway.tenant().await;
    let (id, key) = create_api_key(&gateway.pool, tenant, "old laptop")
        .await
        .unwrap();
    revoke_api_key(&gateway.pool, tenant, id).await.unwrap();

    let response = gateway
        .get("/v1/people")
        .bearer_auth(key.expose())
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 401);
}

#[tokio::test]
async fn a_key_in_the_x_api_key_header_is_accepted() {
    let gateway = spawn_gateway(stopped_services().await).await;
    let (_, key) = gateway.tenant().await;

    let response = gateway
        .get("/v1/people")
        .header("X-Api-Key", key)
        .send()
        .await
        .unwrap();

    // Past authentication, the stopped contacts service is what answers.
    assert_eq!(response.status().as_u16(), 503);
}

#[tokio::test]
async fn an_unknown_route_is_a_json_404() {
    let gateway = spawn_gateway(stopped_services().await).await;

    let response = gateway.get("/v2/people").send().await.unwrap();

    let (status, code, _) = json_error(response).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
}
