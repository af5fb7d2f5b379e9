//! The small HTML pages of the unsubscribe flow, in French or English, naming
//! the organization when the link tells it. Everything interpolated is
//! escaped; the pages load nothing, keep the token out of referrers and caches,
//! and post back to their own address. The subscription form's pages are
//! built on the same frame ([`page_in`], [`escape`]).

use axum::http::StatusCode;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::response::{Html, IntoResponse, Response};
use muster_proto::messaging::v1::UnsubscribeResponse;
use muster_runtime::language::Language;
use tonic::{Code, Status};

use crate::audience::Audience;

const POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// Asks the recipient to confirm.
pub fn confirm(audience: &Audience, reply: &UnsubscribeResponse) -> Response {
    let address = escape(&reply.masked_email);
    let from = from_whom(audience);
    let (title, body) = match (audience.language, reply.already_unsubscribed) {
        (Language::French, true) => (
            "Adresse déjà désinscrite",
            format!(
                "<h1>Adresse déjà désinscrite</h1>\
                 <p><strong>{address}</strong> ne reçoit plus {from}.</p>"
            ),
        ),
        (Language::English, true) => (
            "Already unsubscribed",
            format!(
                "<h1>Already unsubscribed</h1>\
                 <p><strong>{address}</strong> no longer receives {from}.</p>"
            ),
        ),
        (Language::French, false) => (
            "Se désinscrire",
            format!(
                "<h1>Se désinscrire&nbsp;?</h1>\
                 <p><strong>{address}</strong> ne recevra plus {from}.</p>\
                 <form method=\"post\"><button type=\"submit\">Me désinscrire</button></form>"
            ),
        ),
        (Language::English, false) => (
            "Unsubscribe",
            format!(
                "<h1>Unsubscribe?</h1>\
                 <p><strong>{address}</strong> will no longer receive {from}.</p>\
                 <form method=\"post\"><button type=\"submit\">Unsubscribe</button></form>"
            ),
        ),
    };
    audience.page(title, &body)
}

/// Confirms that the recipient is unsubscribed.
pub fn done(audience: &Audience, reply: &UnsubscribeResponse) -> Response {
    let address = escape(&reply.masked_email);
    let from = from_whom(audience);
    let (title, body) = match audience.language {
        Language::French => (
            "Désinscription confirmée",
            format!(
                "<h1>Désinscription confirmée</h1>\
                 <p><strong>{address}</strong> ne recevra plus {from}. Les messages déjà \
                 en route peuvent encore arriver pendant quelques minutes.</p>"
            ),
        ),
        Language::English => (
            "Unsubscribed",
            format!(
                "<h1>You are unsubscribed</h1>\
                 <p><strong>{address}</strong> will no longer receive {from}. \
                 It can take a few minutes for messages already on their way to stop.</p>"
            ),
        ),
    };
    audience.page(title, &body)
}

/// Whose e-mails the recipient leaves, in HTML: the organization's when
/// the link names one we know, else "these e-mails".
fn from_whom(audience: &Audience) -> String {
    match (audience.language, audience.name()) {
        (Language::French, Some(name)) => {
            format!("les e-mails de «&nbsp;<strong>{name}</strong>&nbsp;»")
        }
        (Language::French, None) => "ces e-mails".to_owned(),
        (Language::English, Some(name)) => format!("e-mails from <strong>{name}</strong>"),
        (Language::English, None) => "these e-mails".to_owned(),
    }
}

/// The link cannot be read: cut, altered, or not ours.
pub fn invalid_link(language: Language) -> Response {
    let (title, body) = match language {
        Language::French => (
            "Lien non valide",
            "<h1>Ce lien n’est pas valide</h1>\
             <p>Le lien de désinscription a peut-être été coupé ou modifié lors d’un \
             copier-coller. Ouvrez-le de nouveau directement depuis l’e-mail, ou répondez à \
             l’e-mail en demandant qu’on vous retire de la liste.</p>",
        ),
        Language::English => (
            "Invalid link",
            "<h1>This link is not valid</h1>\
             <p>The unsubscribe link may have been cut or changed when it was copied. \
             Open it again straight from the e-mail, or reply to the e-mail and ask to be \
             removed from the list.</p>",
        ),
    };
    page_in(language, StatusCode::BAD_REQUEST, title, body)
}

/// A page for a messaging error: the link's fault, or ours.
pub fn failure(language: Language, status: &Status) -> Response {
    match status.code() {
        Code::InvalidArgument | Code::NotFound => invalid_link(language),
        Code::Unavailable => {
            tracing::warn!(error = status.message(), "messaging service unavailable");
            unavailable(language)
        }
        code => {
            tracing::error!(?code, error = status.message(), "unsubscribe failed");
            went_wrong(language)
        }
    }
}

/// Messaging is down: nothing was done, and the same link will work later.
fn unavailable(language: Language) -> Response {
    let (title, body) = match language {
        Language::French => (
            "Veuillez réessayer",
            "<h1>Veuillez réessayer</h1>\
             <p>Nous ne pouvons pas traiter votre demande pour le moment. \
             Réessayez dans quelques minutes.</p>",
        ),
        Language::English => (
            "Please try again",
            "<h1>Please try again</h1>\
             <p>We cannot handle your request right now. \
             Please try again in a few minutes.</p>",
        ),
    };
    page_in(language, StatusCode::SERVICE_UNAVAILABLE, title, body)
}

/// Our fault; the cause is in the log. Replying to the e-mail still works.
fn went_wrong(language: Language) -> Response {
    let (title, body) = match language {
        Language::French => (
            "Une erreur s’est produite",
            "<h1>Une erreur s’est produite</h1>\
             <p>Votre demande n’a pas pu être traitée. Réessayez plus tard, ou répondez à \
             l’e-mail en demandant qu’on vous retire de la liste.</p>",
        ),
        Language::English => (
            "Something went wrong",
            "<h1>Something went wrong</h1>\
             <p>Your request could not be handled. Please try again later, \
             or reply to the e-mail and ask to be removed from the list.</p>",
        ),
    };
    page_in(language, StatusCode::INTERNAL_SERVER_ERROR, title, body)
}

/// A complete page in `language` around `body`, which must already be escaped.
pub(crate) fn page_in(language: Language, status: StatusCode, title: &str, body: &str) -> Response {
    let title = escape(title);
    let lang = language.tag();
    let html = format!(
        "<!doctype html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;\
         padding:0 1rem;line-height:1.5}}button{{font-size:1rem;padding:.5rem 1.5rem}}</style>\
         </head><body><main>{body}</main></body></html>\n"
    );
    let headers = [
        (CACHE_CONTROL, "no-store"),
        (REFERRER_POLICY, "no-referrer"),
        (CONTENT_SECURITY_POLICY, POLICY),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    (status, headers, Html(html)).into_response()
}

/// `text` safe to place in HTML content and in quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;

    use super::*;

    async fn html(response: Response) -> String {
        String::from_utf8(
            to_bytes(response.into_body(), 1 << 16)
                .await
                .unwrap()
                .to_vec(),
        )
        .unwrap()
    }

    #[test]
    fn markup_characters_are_escaped() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    fn reply(masked_email: &str, already_unsubscribed: bool) -> UnsubscribeResponse {
        UnsubscribeResponse {
            masked_email: masked_email.into(),
            already_unsubscribed,
        }
    }

    fn audience(language: Language, name: Option<&str>) -> Audience {
        Audience {
            language,
            organization: name.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn the_confirmation_page_escapes_the_address_and_offers_a_button() {
        let unnamed = audience(Language::English, None);
        let response = confirm(&unnamed, &reply("<script>j***@example.org", false));
        assert_eq!(response.headers()[REFERRER_POLICY], "no-referrer");

        let html = html(response).await;
        assert!(html.contains("&lt;script&gt;j***@example.org"), "{html}");
        assert!(!html.contains("<script>"));
        assert!(html.contains("<form method=\"post\">"));
        assert!(
            html.contains("will no longer receive these e-mails"),
            "{html}"
        );
    }

    #[tokio::test]
    async fn a_french_page_is_marked_french_and_names_the_organization() {
        let french = audience(Language::French, Some("Collectif des quais"));
        let html = html(confirm(&french, &reply("j***@example.org", false))).await;
        assert!(html.contains("<html lang=\"fr\">"), "{html}");
        assert!(html.contains("<title>Se désinscrire – Collectif des quais</title>"));
        assert!(
            html.contains("les e-mails de «&nbsp;<strong>Collectif des quais</strong>&nbsp;»"),
            "{html}"
        );
        assert!(html.contains(">Me désinscrire</button>"), "{html}");
    }

    #[tokio::test]
    async fn the_organization_name_is_text_in_every_page_and_title() {
        let name = "<script>alert(1)</script> Les \"Verts\" & co";
        let escaped = "&lt;script&gt;alert(1)&lt;/script&gt; Les &quot;Verts&quot; &amp; co";
        for language in Language::ALL {
            let named = audience(language, Some(name));
            for response in [
                confirm(&named, &reply("j***@example.org", false)),
                confirm(&named, &reply("j***@example.org", true)),
                done(&named, &reply("j***@example.org", false)),
            ] {
                let html = html(response).await;
                assert!(!html.contains("<script>"), "{html}");
                assert_eq!(html.matches(escaped).count(), 2, "title and text: {html}");
            }
        }
    }

    #[tokio::test]
    async fn an_address_already_unsubscribed_gets_no_button() {
        let french = audience(Language::French, None);
        let html = html(confirm(&french, &reply("j***@example.org", true))).await;
        assert!(html.contains("ne reçoit plus ces e-mails"), "{html}");
        assert!(!html.contains("<form"), "{html}");
    }

    #[tokio::test]
    async fn a_refused_token_shows_the_invalid_link_page_in_the_language_asked() {
        let status = Status::invalid_argument("token: signature does not verify");
        let response = failure(Language::English, &status);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(html(response).await.contains("not valid"));

        let response = failure(Language::French, &status);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let html = html(response).await;
        assert!(html.contains("Ce lien n’est pas valide"), "{html}");
        assert!(
            html.contains("répondez à l’e-mail"),
            "says what to do: {html}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_messaging_asks_to_try_again_in_either_language() {
        let status = Status::unavailable("connection refused");
        for (language, text) in [
            (Language::French, "Réessayez dans quelques minutes"),
            (Language::English, "Please try again in a few minutes"),
        ] {
            let response = failure(language, &status);
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            let html = html(response).await;
            assert!(html.contains(text), "{html}");
        }
    }
}
