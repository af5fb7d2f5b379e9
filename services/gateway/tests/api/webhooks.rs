use std::time::Duration;

use serde_json::{Value, json};

use crate::fakes::{BOUNCED_DELIVERY, Call, UNKNOWN_DELIVERY, UNREADABLE};
use crate::helpers::{WEBHOOK_TOKEN, gateway_with_messaging, json_error};

fn hook(path: &str) -> String {
    format!("/webhooks/{path}?token={WEBHOOK_TOKEN}")
}

fn ses_bounce() -> String {
    let message = json!({
        "notificationType": "Bounce",
        "bounce": {"bounceType": "Permanent", "bouncedRecipients": []},
        "mail": {"headers": []}
    });
    json!({"Type": "Notification", "MessageId": "m-1", "Message": message.to_string()}).to_string()
}

const DSN: &str = "From: MAILER-DAEMON@mx.example.net\r\n\
    Subject: Undelivered Mail Returned to Sender\r\n\
    Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n\
    --b\r\nContent-Type: message/delivery-status\r\n\r\n\
    Final-Recipient: rfc822; jean@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--b--\r\n";

#[tokio::test]
async fn a_webhook_without_the_right_token_is_refused_before_messaging_hears_of_it() {
    let (gateway, mut calls) = gateway_with_messaging().await;

    for path in [
        "/webhooks/ses",
        "/webhooks/mailgun?token=",
        "/webhooks/dsn?token=webhook-tests-tokem",
    ] {
        let response = gateway.post(path).body(ses_bounce()).send().await.unwrap();
        let (status, code, _) = json_error(response).await;
        assert_eq!((status, code.as_str()), (401, "unauthenticated"), "{path}");
    }
    assert!(calls.try_recv().is_err(), "messaging was called");
}

#[tokio::test]
async fn an_sns_subscription_confirmation_is_acknowledged_without_fetching_its_url() {
    let (gateway, mut calls) = gateway_with_messaging().await;
    let watcher = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let subscribe_url = format!(
        "http://{}/?Action=ConfirmSubscription&Token=2336412f37",
        watcher.local_addr().unwrap()
    );
    let confirmation = json!({
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37",
        "TopicArn": "arn:aws:sns:eu-west-3:123456789012:muster-bounces",
        "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": subscribe_url,
        "Timestamp": "2025-01-14T09:00:00.000Z"
    });

    let response = gateway
        .post(&hook("ses"))
        .header("x-amz-sns-message-type", "SubscriptionConfirmation")
        .body(confirmation.to_string())
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["recorded"], 0);
    let fetched = tokio::time::timeout(Duration::from_millis(300), watcher.accept()).await;
    assert!(fetched.is_err(), "the gateway fetched the SubscribeURL");
    assert!(calls.try_recv().is_err(), "a confirmation is not a report");
}

#[tokio::test]
async fn provider_notifications_reach_messaging_as_they_were_posted() {
    let (gateway, mut calls) = gateway_with_messaging().await;
    let mailgun = json!({"event-data": {"event": "failed", "severity": "permanent"}}).to_string();

    for (provider, body) in [("ses", ses_bounce()), ("mailgun", mailgun)] {
        let response = gateway
            .post(&hook(provider))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();

        assert_eq!(response.status().as_u16(), 200, "{provider}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["recorded"], 1);
        assert_eq!(answer["bounces"][0]["delivery_id"], BOUNCED_DELIVERY);
        assert_eq!(answer["bounces"][0]["kind"], "permanent");
        assert_eq!(answer["bounces"][0]["suppressed"], true);
        let expected = Call::IngestBounce {
            tenant: None,
            provider: provider.into(),
            body,
        };
        assert_eq!(calls.recv().await, Some(expected));
    }
}

#[tokio::test]
async fn a_returned_message_reaches_messaging_raw() {
    let (gateway, mut calls) = gateway_with_messaging().await;

    let response = gateway
        .post(&hook("dsn"))
        .header("content-type", "message/rfc822")
        .body(DSN)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 200);
    let expected = Call::IngestBounce {
        tenant: None,
        provider: String::new(),
        body: DSN.into(),
    };
    assert_eq!(calls.recv().await, Some(expected));
}

#[tokio::test]
async fn a_report_about_mail_that_is_not_ours_is_acknowledged_and_ignored() {
    let (gateway, _calls) = gateway_with_messaging().await;
    let body = format!("Message-ID: <{UNKNOWN_DELIVERY}@example.org>\r\n\r\nbounced\r\n");

    let response = gateway.post(&hook("dsn")).body(body).send().await.unwrap();

    assert_eq!(response.status().as_u16(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["recorded"], 0);
    assert!(
        answer["ignored"]
            .as_str()
            .unwrap()
            .contains(UNKNOWN_DELIVERY),
        "{answer}"
    );
}

#[tokio::test]
async fn an_unreadable_provider_body_is_a_400_but_an_auto_reply_is_acknowledged() {
    let (gateway, _calls) = gateway_with_messaging().await;

    let from_provider = gateway
        .post(&hook("mailgun"))
        .body(UNREADABLE)
        .send()
        .await
        .unwrap();
    let (status, code, _) = json_error(from_provider).await;
    assert_eq!((status, code.as_str()), (400, "invalid_argument"));

    let auto_reply = format!("Subject: Absent\r\n\r\n{UNREADABLE}\r\n");
    let from_relay = gateway
        .post(&hook("dsn"))
        .body(auto_reply)
        .send()
        .await
        .unwrap();
    assert_eq!(from_relay.status().as_u16(), 200);
    let answer: Value = from_relay.json().await.unwrap();
    assert_eq!(answer["recorded"], 0);
}
