//! `GET /v1/people/{id}/bounces`, `/v1/campaigns/{id}/bounces` and
//! `/v1/deliveries/{id}` in front of the fake messaging service.

use serde_json::Value;

use crate::fakes::{BOUNCED_DELIVERY, Call, NEXT_BOUNCES};
use crate::helpers::{gateway_with_messaging, json_error};

const PERSON: &str = "0190b5a0-0000-7000-8000-00000000fe01";
const CAMPAIGN: &str = "0190b5a0-0000-7000-8000-00000000ca01";

fn assert_is_the_fakes_bounce(bounce: &Value) {
    assert_eq!(bounce["kind"], "permanent", "{bounce}");
    assert_eq!(bounce["status"], "5.1.1", "{bounce}");
    assert_eq!(bounce["reason"], "smtp; 550 5.1.1 User unknown", "{bounce}");
    assert_eq!(bounce["source"], "dsn", "{bounce}");
    assert_eq!(bounce["email"], "camille.roux@example.fr", "{bounce}");
    assert_eq!(bounce["delivery_id"], BOUNCED_DELIVERY, "{bounce}");
    assert_eq!(bounce["campaign_id"], CAMPAIGN, "{bounce}");
    assert_eq!(bounce["person_id"], PERSON, "{bounce}");
    assert!(bounce["receive_time"].is_string(), "{bounce}");
}

#[tokio::test]
async fn a_persons_bounces_are_listed_a_page_at_a_time() {
    let (gateway, mut calls) = gateway_with_messaging().await;
    let (tenant, key) = gateway.tenant().await;

    let response = gateway
        .get(&format!(
            "/v1/people/{PERSON}/bounces?page_size=10&page_token=abc"
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["bounces"].as_array().map(Vec::len), Some(1), "{body}");
    assert_is_the_fakes_bounce(&body["bounces"][0]);
    assert_eq!(body["next_page_token"], NEXT_BOUNCES);
    let Some(Call::ListBounces {
        tenant: seen,
        request,
    }) = calls.recv().await
    else {
        panic!("messaging was not asked for bounces");
    };
    assert_eq!(seen, Some(tenant));
    assert_eq!(
        (
            &*request.person_id,
            &*request.delivery_id,
            &*request.campaign_id
        ),
        (PERSON, "", "")
    );
    assert_eq!((request.page_size, &*request.page_token), (10, "abc"));
}

#[tokio::test]
async fn a_campaigns_bounces_are_listed_by_its_id() {
    let (gateway, mut calls) = gateway_with_messaging().await;
    let (_, key) = gateway.tenant().await;

    let response = gateway
        .get(&format!("/v1/campaigns/{CAMPAIGN}/bounces"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_is_the_fakes_bounce(&body["bounces"][0]);
    let Some(Call::ListBounces { request, .. }) = calls.recv().await else {
        panic!("messaging was not asked for bounces");
    };
    assert_eq!(
        (
            &*request.campaign_id,
            &*request.person_id,
            &*request.delivery_id
        ),
        (CAMPAIGN, "", "")
    );
    assert_eq!((request.page_size, &*request.page_token), (0, ""));
}

#[tokio::test]
async fn a_bounce_listing_naming_no_one_is_refused() {
    let (gateway, _calls) = gateway_with_messaging().await;
    let (_, key) = gateway.tenant().await;

    let response = gateway
        .get("/v1/people/%20/bounces")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();

    let (status, code, message) = json_error(response).await;
    assert_eq!((status, &*code), (400, "invalid_argument"), "{message}");
    assert!(message.contains("person_id"), "{message}");
}

#[tokio::test]
async fn a_delivery_shows_its_state_answer_and_bounces() {
    let (gateway, mut calls) = gateway_with_messaging().await;
    let (tenant, key) = gateway.tenant().await;

    let response = gateway
        .get(&format!("/v1/deliveries/{BOUNCED_DELIVERY}"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], BOUNCED_DELIVERY);
    assert_eq!(body["state"], "sent", "{body}");
    assert_eq!(body["attempts"], 1, "{body}");
    assert_eq!(body["error"], Value::Null, "{body}");
    assert_eq!(
        body["provider_answer"],
        "<b0b0@example.org> 250 2.0.0 Ok: queued"
    );
    assert!(body["send_time"].is_string(), "{body}");
    assert_is_the_fakes_bounce(&body["bounces"][0]);
    assert_eq!(
        calls.recv().await,
        Some(Call::GetDelivery {
            tenant: Some(tenant),
            id: BOUNCED_DELIVERY.into()
        })
    );
}

#[tokio::test]
async fn an_unknown_delivery_is_not_found() {
    let (gateway, _calls) = gateway_with_messaging().await;
    let (_, key) = gateway.tenant().await;

    let response = gateway
        .get("/v1/deliveries/0190b5a0-dead-7000-8000-000000000000")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();

    let (status, code, _) = json_error(response).await;
    assert_eq!((status, &*code), (404, "not_found"));
}
