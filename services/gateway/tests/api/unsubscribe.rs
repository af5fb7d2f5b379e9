use crate::fakes::{ALREADY_TOKEN, Call, GOOD_TOKEN};
use crate::helpers::gateway_with_messaging;

#[tokio::test]
async fn the_link_shows_the_escaped_masked_address_without_unsubscribing() {
    let (gateway, mut calls) = gateway_with_messaging().await;

    let response = gateway
        .get(&format!("/u/{GOOD_TOKEN}"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let html = response.text().await.unwrap();
    assert!(html.contains("&lt;b&gt;j***@example.org"), "{html}");
    assert!(html.contains("<form method=\"post\">"));
    assert_eq!(calls.recv().await, Some(Call::Inspect { tenant: None }));
    assert!(calls.try_recv().is_err(), "a GET must not unsubscribe");
}

#[tokio::test]
async fn the_page_button_unsubscribes_by_link() {
    let (gateway, mut calls) = gateway_with_messaging().await;

    let response = gateway
        .post(&format!("/u/{GOOD_TOKEN}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("You are unsubscribed")
    );
    let expected = Call::Unsubscribe {
        tenant: None,
        method: "link".into(),
    };
    assert_eq!(calls.recv().await, Some(expected));
}

#[tokio::test]
async fn a_mail_client_one_click_post_unsubscribes_by_one_click() {
    let (gateway, mut calls) = gateway_with_messaging().await;

    let response = gateway
        .post(&format!("/u/{GOOD_TOKEN}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 200);
    let expected = Call::Unsubscribe {
        tenant: None,
        method: "one-click".into(),
    };
    assert_eq!(calls.recv().await, Some(expected));
}

#[tokio::test]
async fn an_address_already_unsubscribed_is_told_so() {
    let (gateway, _calls) = gateway_with_messaging().await;

    let response = gateway
        .get(&format!("/u/{ALREADY_TOKEN}"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("Already unsubscribed"));
    assert!(!html.contains("<form"));
}

#[tokio::test]
async fn a_forged_token_gets_the_invalid_link_page() {
    let (gateway, _calls) = gateway_with_messaging().await;

    for response in [
        gateway.get("/u/forged").send().await.unwrap(),
        gateway
            .post("/u/forged")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(response.status().as_u16(), 400);
        let html = response.text().await.unwrap();
        assert!(html.contains("This link is not valid"), "{html}");
        assert!(
            html.contains("reply to the e-mail"),
            "says what to do: {html}"
        );
    }
}
