use muster_runtime::TenantId;
use muster_runtime::unsubscribe::UnsubscribeTokens;
use uuid::Uuid;

use crate::fakes::{ALREADY_TOKEN, Call, GOOD_TOKEN};
use crate::helpers::{SECRET, TestGateway, gateway_with_messaging};

/// A genuine unsubscribe link's token for a delivery of `tenant`.
fn token_of(tenant: TenantId) -> String {
    UnsubscribeTokens::new(SECRET).issue(tenant, Uuid::now_v7())
}

/// The status and page of a `GET /u/{token}`, with `accept_language` if any.
async fn show(gateway: &TestGateway, token: &str, accept_language: Option<&str>) -> (u16, String) {
    let mut request = gateway.get(&format!("/u/{token}"));
    if let Some(accepted) = accept_language {
        request = request.header("accept-language", accepted);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

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
        .header("Accept-Language", "en-GB,en;q=0.9")
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

    let (status, html) = show(&gateway, ALREADY_TOKEN, Some("en")).await;

    assert_eq!(status, 200);
    assert!(html.contains("Already unsubscribed"));
    assert!(!html.contains("<form"));
}

#[tokio::test]
async fn a_forged_token_gets_the_invalid_link_page() {
    let (gateway, _calls) = gateway_with_messaging().await;

    for response in [
        gateway
            .get("/u/forged")
            .header("accept-language", "en")
            .send()
            .await
            .unwrap(),
        gateway
            .post("/u/forged")
            .header("accept-language", "en")
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

#[tokio::test]
async fn a_link_that_names_no_organization_speaks_french_to_a_browser_without_preference() {
    let (gateway, _calls) = gateway_with_messaging().await;

    let (status, html) = show(&gateway, "forged", None).await;

    assert_eq!(status, 400);
    assert!(html.contains("<html lang=\"fr\">"), "{html}");
    assert!(html.contains("Ce lien n’est pas valide"), "{html}");
}

#[tokio::test]
async fn a_french_organizations_recipient_reads_a_french_page_naming_it() {
    let (gateway, mut calls) = gateway_with_messaging().await;
    let (tenant, _) = gateway.tenant().await;
    let token = token_of(tenant);

    let (status, html) = show(&gateway, &token, None).await;

    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<html lang=\"fr\">"), "{html}");
    assert!(
        html.contains("<title>Se désinscrire – Les Amis du Canal</title>"),
        "{html}"
    );
    assert!(
        html.contains("les e-mails de «&nbsp;<strong>Les Amis du Canal</strong>&nbsp;»"),
        "{html}"
    );
    assert!(html.contains(">Me désinscrire</button>"), "{html}");
    assert_eq!(calls.recv().await, Some(Call::Inspect { tenant: None }));
    assert!(calls.try_recv().is_err(), "a GET must not unsubscribe");
}

#[tokio::test]
async fn a_browser_that_reads_english_gets_english_from_a_french_organization() {
    let (gateway, _calls) = gateway_with_messaging().await;
    let (tenant, _) = gateway.tenant().await;

    let (status, html) = show(&gateway, &token_of(tenant), Some("en")).await;

    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<html lang=\"en\">"), "{html}");
    assert!(
        html.contains("will no longer receive e-mails from <strong>Les Amis du Canal</strong>"),
        "{html}"
    );
    assert!(html.contains(">Unsubscribe</button>"), "{html}");
}

#[tokio::test]
async fn an_organization_outside_france_writes_in_english_unless_the_browser_reads_french() {
    let (gateway, _calls) = gateway_with_messaging().await;
    let (tenant, _) = gateway.tenant().await;
    muster_gateway::set_default_country(&gateway.pool, tenant, "GB")
        .await
        .unwrap();
    let token = token_of(tenant);

    let (_, html) = show(&gateway, &token, Some("de-DE,de;q=0.9")).await;
    assert!(html.contains("<html lang=\"en\">"), "{html}");
    let (_, html) = show(&gateway, &token, Some("fr-BE,fr;q=0.9,en;q=0.5")).await;
    assert!(html.contains("<html lang=\"fr\">"), "{html}");
}

#[tokio::test]
async fn the_organization_name_is_shown_as_text() {
    let (gateway, _calls) = gateway_with_messaging().await;
    let name = "<script>alert(1)</script> Les \"Verts\" & co";
    let (tenant, _) = muster_gateway::create_tenant(&gateway.pool, name)
        .await
        .unwrap();

    let (status, html) = show(&gateway, &token_of(tenant), None).await;

    assert_eq!(status, 200, "{html}");
    assert!(!html.contains("<script>"), "{html}");
    let escaped = "&lt;script&gt;alert(1)&lt;/script&gt; Les &quot;Verts&quot; &amp; co";
    assert_eq!(
        html.matches(escaped).count(),
        2,
        "in the title and the text: {html}"
    );
}

#[tokio::test]
async fn a_one_click_post_on_a_genuine_link_unsubscribes_and_answers_in_the_organizations_language()
{
    let (gateway, mut calls) = gateway_with_messaging().await;
    let (tenant, _) = gateway.tenant().await;

    let response = gateway
        .post(&format!("/u/{}", token_of(tenant)))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let html = response.text().await.unwrap();
    assert!(html.contains("Désinscription confirmée"), "{html}");
    assert!(
        html.contains("<strong>Les Amis du Canal</strong>"),
        "{html}"
    );
    let expected = Call::Unsubscribe {
        tenant: None,
        method: "one-click".into(),
    };
    assert_eq!(calls.recv().await, Some(expected));
    assert!(calls.try_recv().is_err(), "one request, one unsubscribe");
}
