//! The small HTML pages of the unsubscribe flow. Everything interpolated is
//! escaped; the pages load nothing, keep the token out of referrers and caches,
//! and post back to their own address.

use axum::http::StatusCode;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::response::{Html, IntoResponse, Response};
use muster_proto::messaging::v1::UnsubscribeResponse;
use muster_runtime::language::Language;
use tonic::{Code, Status};

const POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// Asks the recipient to confirm.
pub fn confirm(reply: &UnsubscribeResponse) -> Response {
    let address = escape(&reply.masked_email);
    if reply.already_unsubscribed {
        let body = format!(
            "<h1>Already unsubscribed</h1>\
             <p><strong>{address}</strong> no longer receives these e-mails.</p>"
        );
        return page(StatusCode::OK, "Already unsubscribed", &body);
    }
    let body = format!(
        "<h1>Unsubscribe?</h1>\
         <p><strong>{address}</strong> will no longer receive these e-mails.</p>\
         <form method=\"post\"><button type=\"submit\">Unsubscribe</button></form>"
    );
    page(StatusCode::OK, "Unsubscribe", &body)
}

/// Confirms that the recipient is unsubscribed.
pub fn done(reply: &UnsubscribeResponse) -> Response {
    let address = escape(&reply.masked_email);
    let body = format!(
        "<h1>You are unsubscribed</h1>\
         <p><strong>{address}</strong> will no longer receive these e-mails. \
         It can take a few minutes for messages already on their way to stop.</p>"
    );
    page(StatusCode::OK, "Unsubscribed", &body)
}

/// The link cannot be read: cut, altered, or not ours.
pub fn invalid_link() -> Response {
    let body = "<h1>This link is not valid</h1>\
        <p>The unsubscribe link may have been cut or changed when it was copied. \
        Open it again straight from the e-mail, or reply to the e-mail and ask to be \
        removed from the list.</p>";
    page(StatusCode::BAD_REQUEST, "Invalid link", body)
}

/// A page for a messaging error: the link's fault, or ours.
pub fn failure(status: &Status) -> Response {
    match status.code() {
        Code::InvalidArgument | Code::NotFound => invalid_link(),
        Code::Unavailable => {
            tracing::warn!(error = status.message(), "messaging service unavailable");
            let body = "<h1>Please try again</h1>\
                <p>We cannot handle your request right now. \
                Please try again in a few minutes.</p>";
            page(StatusCode::SERVICE_UNAVAILABLE, "Please try again", body)
        }
        code => {
            tracing::error!(?code, error = status.message(), "unsubscribe failed");
            let body = "<h1>Something went wrong</h1>\
                <p>Your request could not be handled. Please try again later, \
                or reply to the e-mail and ask to be removed from the list.</p>";
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                body,
            )
        }
    }
}

/// A complete English page around `body`, which must already be escaped.
pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    page_in(Language::English, status, title, body)
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

    #[tokio::test]
    async fn the_confirmation_page_escapes_the_address_and_offers_a_button() {
        let reply = UnsubscribeResponse {
            masked_email: "<script>j***@example.org".into(),
            already_unsubscribed: false,
        };
        let response = confirm(&reply);
        assert_eq!(response.headers()[REFERRER_POLICY], "no-referrer");

        let html = html(response).await;
        assert!(html.contains("&lt;script&gt;j***@example.org"), "{html}");
        assert!(!html.contains("<script>"));
        assert!(html.contains("<form method=\"post\">"));
    }

    #[tokio::test]
    async fn a_refused_token_shows_the_invalid_link_page() {
        let response = failure(&Status::invalid_argument(
            "token: signature does not verify",
        ));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(html(response).await.contains("not valid"));
    }
}
