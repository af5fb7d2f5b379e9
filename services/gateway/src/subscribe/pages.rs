//! The pages of the public subscription flow, in French and English. They
//! name the organization whenever it is known, so that a person can tell
//! who asks them to confirm; the name is escaped like everything else.

use axum::http::StatusCode;
use axum::response::Response;
use muster_runtime::language::Language;

use crate::audience::Audience;
use crate::unsubscribe::page::{escape, page_in};

/// Why a form was not taken.
#[derive(Debug, Clone, Copy)]
pub enum Refusal<'a> {
    /// The form names no organization this gateway serves; the detail says how.
    Organization(&'a str),
    /// The address is not one.
    Email,
    /// Another field; the detail names it.
    Field(&'a str),
}

/// After the form: the e-mail is on its way.
pub fn check_inbox(audience: &Audience) -> Response {
    let body = match (audience.language, audience.name()) {
        (Language::French, name) => format!(
            "<h1>Vérifiez votre boîte de réception</h1><p>Pour confirmer votre inscription{}, \
             ouvrez l’e-mail que nous venons de vous envoyer et suivez son lien. D’ici là, \
             vous ne recevrez rien.</p><p>Rien reçu d’ici quelques minutes&nbsp;? Regardez \
             dans vos courriers indésirables.</p>",
            name.map(|n| format!(" auprès de «&nbsp;<strong>{n}</strong>&nbsp;»"))
                .unwrap_or_default()
        ),
        (Language::English, name) => format!(
            "<h1>Check your inbox</h1><p>To confirm your subscription{}, open the e-mail we \
             just sent you and follow its link. Until then, you will receive nothing.</p>\
             <p>Nothing after a few minutes? Look in your spam folder.</p>",
            name.map(|n| format!(" to <strong>{n}</strong>"))
                .unwrap_or_default()
        ),
    };
    let title = match audience.language {
        Language::French => "Vérifiez votre boîte de réception",
        Language::English => "Check your inbox",
    };
    audience.page(title, &body)
}

/// The page a confirmation link opens: a button, since mail scanners
/// follow links and a GET must change nothing.
pub fn confirm_button(audience: &Audience) -> Response {
    let (title, body) = match (audience.language, audience.name()) {
        (Language::French, name) => (
            "Confirmez votre inscription",
            format!(
                "<h1>Confirmez votre inscription</h1><p>Appuyez sur le bouton pour confirmer \
                 que vous souhaitez recevoir {}.</p><form method=\"post\">\
                 <button type=\"submit\">Confirmer</button></form>",
                name.map(|n| format!("les e-mails de «&nbsp;<strong>{n}</strong>&nbsp;»"))
                    .unwrap_or_else(|| "nos e-mails".to_owned())
            ),
        ),
        (Language::English, name) => (
            "Confirm your subscription",
            format!(
                "<h1>Confirm your subscription</h1><p>Press the button to confirm that you \
                 want to receive {}.</p><form method=\"post\">\
                 <button type=\"submit\">Confirm</button></form>",
                name.map(|n| format!("e-mails from <strong>{n}</strong>"))
                    .unwrap_or_else(|| "our e-mails".to_owned())
            ),
        ),
    };
    audience.page(title, &body)
}

/// The consent is granted (now, or by an earlier click).
pub fn confirmed(audience: &Audience) -> Response {
    let (title, body) = match (audience.language, audience.name()) {
        (Language::French, name) => (
            "Inscription confirmée",
            format!(
                "<h1>Inscription confirmée</h1><p>Merci. Vous recevrez désormais {}. Vous \
                 pouvez vous désinscrire à tout moment grâce au lien présent en bas de chaque \
                 e-mail.</p>",
                name.map(|n| format!("les e-mails de «&nbsp;<strong>{n}</strong>&nbsp;»"))
                    .unwrap_or_else(|| "nos e-mails".to_owned())
            ),
        ),
        (Language::English, name) => (
            "Subscription confirmed",
            format!(
                "<h1>Subscription confirmed</h1><p>Thank you. You will now receive {}. You \
                 can unsubscribe at any time from the link at the bottom of every e-mail.</p>",
                name.map(|n| format!("e-mails from <strong>{n}</strong>"))
                    .unwrap_or_else(|| "our e-mails".to_owned())
            ),
        ),
    };
    audience.page(title, &body)
}

/// The link was cut or altered.
pub fn invalid_link(language: Language) -> Response {
    let (title, body) = match language {
        Language::French => (
            "Lien non valide",
            "<h1>Ce lien n’est pas valide</h1><p>Il a peut-être été coupé ou modifié lors \
             d’un copier-coller. Ouvrez-le de nouveau directement depuis l’e-mail.</p>",
        ),
        Language::English => (
            "Invalid link",
            "<h1>This link is not valid</h1><p>It may have been cut or changed when it was \
             copied. Open it again straight from the e-mail.</p>",
        ),
    };
    page_in(language, StatusCode::BAD_REQUEST, title, body)
}

/// The link is genuine but too old.
pub fn expired(language: Language) -> Response {
    let (title, body) = match language {
        Language::French => (
            "Lien expiré",
            "<h1>Ce lien a expiré</h1><p>Inscrivez-vous de nouveau depuis le formulaire pour \
             recevoir un nouveau lien.</p>",
        ),
        Language::English => (
            "Link expired",
            "<h1>This link has expired</h1><p>Subscribe again from the form to receive a new \
             one.</p>",
        ),
    };
    page_in(language, StatusCode::GONE, title, body)
}

/// Too many forms from the visitor's network this hour.
pub fn too_many(language: Language) -> Response {
    let (title, body) = match language {
        Language::French => (
            "Trop d’inscriptions",
            "<h1>Trop d’inscriptions</h1><p>Votre réseau a envoyé trop d’inscriptions au \
             cours de la dernière heure. Réessayez dans une heure.</p>",
        ),
        Language::English => (
            "Too many subscriptions",
            "<h1>Too many subscriptions</h1><p>Too many subscriptions came from your network \
             this hour. Please try again in an hour.</p>",
        ),
    };
    page_in(language, StatusCode::TOO_MANY_REQUESTS, title, body)
}

/// The form was not taken. The details, written for whoever runs the site
/// the form is on, stay in English.
pub fn refused(language: Language, refusal: Refusal<'_>) -> Response {
    let (title, heading) = match language {
        Language::French => ("Non envoyé", "Le formulaire n’a pas pu être envoyé"),
        Language::English => ("Not sent", "The form could not be sent"),
    };
    let (advice, detail) = match (refusal, language) {
        (Refusal::Organization(detail), Language::French) => (
            "Ce formulaire ne désigne aucune organisation connue. Merci de prévenir les \
             responsables du site où vous l’avez trouvé.",
            Some(detail),
        ),
        (Refusal::Organization(detail), Language::English) => (
            "This form does not name an organization we know. Please tell the people who run \
             the website you found it on.",
            Some(detail),
        ),
        (Refusal::Email, Language::French) => (
            "Cette adresse e-mail ne semble pas valide. Vérifiez-la, puis renvoyez le \
             formulaire.",
            None,
        ),
        (Refusal::Email, Language::English) => (
            "This e-mail address does not look valid. Check it, then send the form again.",
            None,
        ),
        (Refusal::Field(detail), Language::French) => (
            "Un champ du formulaire n’a pas pu être lu. Vérifiez ce que vous avez saisi, puis \
             renvoyez le formulaire.",
            Some(detail),
        ),
        (Refusal::Field(detail), Language::English) => (
            "A field of the form could not be read. Check what you typed, then send the form \
             again.",
            Some(detail),
        ),
    };
    let detail = detail
        .map(|d| format!("<p><small>{}</small></p>", escape(d)))
        .unwrap_or_default();
    let body = format!("<h1>{heading}</h1><p>{advice}</p>{detail}");
    page_in(language, StatusCode::BAD_REQUEST, title, &body)
}

/// The link no longer confirms anything; contacts' `reason` says why, in
/// English, so the French page says it in general terms.
pub fn nothing_to_confirm(language: Language, reason: &str) -> Response {
    let (title, body) = match language {
        Language::French => (
            "Rien à confirmer",
            "<h1>Rien à confirmer</h1><p>Cette inscription ne peut plus être confirmée&nbsp;: \
             depuis l’envoi de l’e-mail, elle a été retirée, effacée ou rattachée à une autre \
             fiche. Inscrivez-vous de nouveau depuis le formulaire pour recevoir un nouveau \
             lien.</p>"
                .to_owned(),
        ),
        Language::English => (
            "Nothing to confirm",
            format!("<h1>Nothing to confirm</h1><p>{}</p>", escape(reason)),
        ),
    };
    page_in(language, StatusCode::CONFLICT, title, &body)
}

/// A service we need is down.
pub fn unavailable(language: Language) -> Response {
    let (title, body) = match language {
        Language::French => (
            "Veuillez réessayer",
            "<h1>Veuillez réessayer</h1><p>Nous ne pouvons pas traiter votre demande pour le \
             moment. Réessayez dans quelques minutes.</p>",
        ),
        Language::English => (
            "Please try again",
            "<h1>Please try again</h1><p>We cannot handle your request right now. Please try \
             again in a few minutes.</p>",
        ),
    };
    page_in(language, StatusCode::SERVICE_UNAVAILABLE, title, body)
}

/// Our fault; the cause is in the log.
pub fn went_wrong(language: Language) -> Response {
    let (title, body) = match language {
        Language::French => (
            "Une erreur s’est produite",
            "<h1>Une erreur s’est produite</h1><p>Veuillez réessayer plus tard.</p>",
        ),
        Language::English => (
            "Something went wrong",
            "<h1>Something went wrong</h1><p>Please try again later.</p>",
        ),
    };
    page_in(language, StatusCode::INTERNAL_SERVER_ERROR, title, body)
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;

    use super::*;

    async fn html(response: Response) -> String {
        let bytes = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn audience(language: Language, name: &str) -> Audience {
        Audience {
            language,
            organization: Some(name.to_owned()),
        }
    }

    #[tokio::test]
    async fn a_french_page_is_marked_french_and_names_the_organization() {
        let html = html(check_inbox(&audience(Language::French, "Collectif"))).await;
        assert!(html.contains("<html lang=\"fr\">"), "{html}");
        assert!(html.contains("Vérifiez votre boîte de réception"), "{html}");
        assert!(html.contains("<strong>Collectif</strong>"), "{html}");
        assert!(html.contains("<title>Vérifiez votre boîte de réception – Collectif"));
    }

    #[tokio::test]
    async fn an_english_page_is_marked_english() {
        let html = html(confirm_button(&audience(Language::English, "Collectif"))).await;
        assert!(html.contains("<html lang=\"en\">"), "{html}");
        assert!(
            html.contains("e-mails from <strong>Collectif</strong>"),
            "{html}"
        );
        assert!(html.contains("<form method=\"post\">"), "{html}");
    }

    #[tokio::test]
    async fn the_organization_name_is_text_in_every_page_and_title() {
        let name = "<script>alert(1)</script> Les \"Verts\" & co";
        for language in Language::ALL {
            let audience = audience(language, name);
            for response in [
                check_inbox(&audience),
                confirm_button(&audience),
                confirmed(&audience),
            ] {
                let html = html(response).await;
                assert!(!html.contains("<script>"), "{html}");
                assert!(
                    html.contains(
                        "&lt;script&gt;alert(1)&lt;/script&gt; Les &quot;Verts&quot; &amp; co"
                    ),
                    "{html}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_page_without_an_organization_names_none() {
        let unnamed = Audience {
            language: Language::French,
            organization: None,
        };
        let html = html(confirmed(&unnamed)).await;
        assert!(
            html.contains("Vous recevrez désormais nos e-mails."),
            "{html}"
        );
        assert!(
            html.contains("<title>Inscription confirmée</title>"),
            "{html}"
        );
    }

    #[tokio::test]
    async fn a_refusal_escapes_its_detail_and_says_what_to_do() {
        let response = refused(Language::French, Refusal::Field("first_name: <b>"));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let html = html(response).await;
        assert!(html.contains("first_name: &lt;b&gt;"), "{html}");
        assert!(html.contains("renvoyez le formulaire"), "{html}");
    }
}
