//! The words of the confirmation e-mail, in French or English, naming the
//! organization the person subscribes to when the request does.
//!
//! The e-mail is written in the language contacts carries in the request.
//! For a form, the gateway chose it from the person's browser and the
//! organization's country, and the person, who has just read that page, is
//! waiting for this e-mail as its next step; for a consent recorded over
//! the API no browser is there, so the gateway gives the organization's. A
//! request without a language (sent before requests carried one, or by an
//! API client of contacts that gives none) is written in English, as every
//! confirmation e-mail was before.

use muster_proto::events::v1::ConsentConfirmationRequested;
use muster_runtime::language::Language;

/// The longest organization name an e-mail shows, as the gateway stores them.
const MAX_ORGANIZATION_CHARS: usize = 200;

/// A confirmation e-mail's subject and plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    pub subject: String,
    pub text: String,
}

/// What a request asks the e-mail to say, read once.
struct Facts<'a> {
    language: Language,
    /// On one line; `None` when the request names no organization.
    organization: Option<String>,
    first_name: &'a str,
    purpose: &'a str,
    notice: &'a str,
    link: &'a str,
    link_hours: u64,
}

/// The e-mail asking the person of `request` to open `link`, which works
/// for `link_hours`.
pub fn compose(request: &ConsentConfirmationRequested, link: &str, link_hours: u64) -> Letter {
    let facts = Facts {
        language: Language::from_tag(&request.language).unwrap_or(Language::English),
        organization: Some(one_line(&request.organization_name)).filter(|n| !n.is_empty()),
        first_name: request.first_name.trim(),
        purpose: request.purpose.trim(),
        notice: request.notice.trim(),
        link,
        link_hours,
    };
    match facts.language {
        Language::French => french(&facts),
        Language::English => english(&facts),
    }
}

fn french(facts: &Facts<'_>) -> Letter {
    let subject = match &facts.organization {
        Some(name) => format!("{name}\u{a0}: confirmez votre inscription"),
        None => "Confirmez votre inscription".to_owned(),
    };
    let greeting = match facts.first_name {
        "" => "Bonjour,".to_owned(),
        name => format!("Bonjour {name},"),
    };
    let mut what = match &facts.organization {
        // Quoted: a name such as « Les Verts » does not contract with « de ».
        Some(name) => format!("les e-mails de «\u{a0}{name}\u{a0}»"),
        None => "nos e-mails".to_owned(),
    };
    if let Some(purpose) = purpose_label(facts.purpose, Language::French) {
        what.push_str(&format!(" ({purpose})"));
    }
    let notice = match facts.notice {
        "" => String::new(),
        notice => format!("\nCe que vous avez accepté\u{a0}: {notice}\n"),
    };
    let text = format!(
        "{greeting}\n\nMerci de confirmer que vous souhaitez recevoir {what}\u{a0}: ouvrez \
         ce lien, puis appuyez sur le bouton.\n\n{link}\n{notice}\nCe lien est valable {hours} \
         heures. Si vous n’avez rien demandé, ignorez ce message\u{a0}: vous ne recevrez rien.\n",
        link = facts.link,
        hours = facts.link_hours,
    );
    Letter { subject, text }
}

fn english(facts: &Facts<'_>) -> Letter {
    let subject = match &facts.organization {
        Some(name) => format!("{name}: please confirm your subscription"),
        None => "Please confirm your subscription".to_owned(),
    };
    let greeting = match facts.first_name {
        "" => "Hello,".to_owned(),
        name => format!("Hello {name},"),
    };
    let mut what = match &facts.organization {
        Some(name) => format!("e-mails from {name}"),
        None => "our e-mails".to_owned(),
    };
    if let Some(purpose) = purpose_label(facts.purpose, Language::English) {
        what.push_str(&format!(" ({purpose})"));
    }
    let notice = match facts.notice {
        "" => String::new(),
        notice => format!("\nWhat you agreed to: {notice}\n"),
    };
    let text = format!(
        "{greeting}\n\nPlease confirm that you want to receive {what} by opening this \
         link and pressing the button:\n\n{link}\n{notice}\nThe link works for {hours} hours. \
         If you did not ask for this, ignore this message: nothing will be sent to you.\n",
        link = facts.link,
        hours = facts.link_hours,
    );
    Letter { subject, text }
}

/// How a purpose reads in `language`; `None` for the channel's general
/// consent. An unknown purpose is shown as sent.
fn purpose_label(purpose: &str, language: Language) -> Option<&str> {
    let label = match (purpose, language) {
        ("", _) => return None,
        ("newsletter", Language::French) => "lettre d’information",
        ("campaign", Language::French) => "campagnes",
        ("fundraising", Language::French) => "appels aux dons",
        ("events", Language::French) => "événements",
        ("campaign", Language::English) => "campaigns",
        (other, _) => other,
    };
    Some(label)
}

/// `name` on one short line: a line break in a subject would start a header
/// of its own, so every control or separator character becomes a space.
fn one_line(name: &str) -> String {
    name.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(MAX_ORGANIZATION_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(organization: &str, language: &str) -> ConsentConfirmationRequested {
        ConsentConfirmationRequested {
            first_name: "Zoé".into(),
            purpose: "newsletter".into(),
            notice: "formulaire v4".into(),
            organization_name: organization.into(),
            language: language.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_french_request_gets_a_french_letter_naming_the_organization() {
        let letter = compose(&request("Les Verts", "fr"), "https://x/confirm/t", 72);
        assert_eq!(
            letter.subject,
            "Les Verts\u{a0}: confirmez votre inscription"
        );
        assert!(letter.text.starts_with("Bonjour Zoé,"), "{}", letter.text);
        assert!(
            letter
                .text
                .contains("les e-mails de «\u{a0}Les Verts\u{a0}» (lettre d’information)"),
            "{}",
            letter.text
        );
        assert!(letter.text.contains("https://x/confirm/t"));
        assert!(letter.text.contains("valable 72 heures"));
        assert!(letter.text.contains("accepté\u{a0}: formulaire v4"));
    }

    #[test]
    fn an_english_request_names_the_organization_in_english() {
        let letter = compose(&request("Green Party", "en"), "https://x/confirm/t", 48);
        assert_eq!(
            letter.subject,
            "Green Party: please confirm your subscription"
        );
        assert!(
            letter
                .text
                .contains("receive e-mails from Green Party (newsletter)"),
            "{}",
            letter.text
        );
        assert!(letter.text.contains("works for 48 hours"));
    }

    #[test]
    fn a_request_from_before_names_and_languages_gets_the_english_letter_it_always_did() {
        let letter = compose(&request("", ""), "https://x/confirm/t", 72);
        assert_eq!(letter.subject, "Please confirm your subscription");
        assert!(letter.text.contains("receive our e-mails (newsletter)"));
        let unknown = compose(&request("", "de"), "https://x/confirm/t", 72);
        assert_eq!(unknown, letter, "an unknown language reads as none");
    }

    #[test]
    fn a_name_with_line_breaks_stays_on_the_subject_line() {
        let letter = compose(
            &request("Verts\r\nBcc: all@example.org\u{2028}x", "en"),
            "https://x/confirm/t",
            72,
        );
        assert_eq!(
            letter.subject,
            "Verts Bcc: all@example.org x: please confirm your subscription"
        );
        let long = "é".repeat(500);
        let letter = compose(&request(&long, "fr"), "https://x/confirm/t", 72);
        assert!(letter.subject.chars().count() < 250, "{}", letter.subject);
    }
}
