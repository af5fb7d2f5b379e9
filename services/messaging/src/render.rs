//! Templates with merge fields. Subjects and text bodies are plain text and
//! never escaped; HTML bodies escape contact data.

use minijinja::{Environment, UndefinedBehavior};
use muster_runtime::ApiError;

const SUBJECT: &str = "subject.txt";
const TEXT: &str = "body.txt";
const HTML: &str = "body.html";

/// What a recipient's message is made from.
#[derive(Debug)]
pub struct MergeFields<'a> {
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub email: &'a str,
    pub city: &'a str,
    pub unsubscribe_url: &'a str,
}

/// A rendered message.
#[derive(Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// The compiled templates of one campaign.
pub struct Templates {
    env: Environment<'static>,
    has_html: bool,
}

impl Templates {
    /// Compiles a template's parts; a syntax error names the field.
    pub fn compile(subject: &str, text: &str, html: &str) -> Result<Self, ApiError> {
        let mut env = Environment::new();
        // Template names decide escaping: only `.html` escapes.
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        let parts = [
            (SUBJECT, subject, "template.subject"),
            (TEXT, text, "template.text_body"),
        ];
        for (name, source, field) in parts {
            env.add_template_owned(name, source.to_owned())
                .map_err(|e| ApiError::invalid(field, format!("template error: {e}")))?;
        }
        let has_html = !html.trim().is_empty();
        if has_html {
            env.add_template_owned(HTML, html.to_owned()).map_err(|e| {
                ApiError::invalid("template.html_body", format!("template error: {e}"))
            })?;
        }
        Ok(Self { env, has_html })
    }

    /// Renders the message of one recipient.
    pub fn render(&self, fields: &MergeFields<'_>) -> Result<Rendered, minijinja::Error> {
        let context = minijinja::context! {
            first_name => fields.first_name,
            last_name => fields.last_name,
            email => fields.email,
            city => fields.city,
            unsubscribe_url => fields.unsubscribe_url,
        };
        let subject = self.env.get_template(SUBJECT)?.render(context.clone())?;
        // A subject is one line: a merge field must not add headers.
        let subject = subject.replace(['\r', '\n'], " ").trim().to_owned();
        let text = self.env.get_template(TEXT)?.render(context.clone())?;
        let html = match self.has_html {
            true => Some(self.env.get_template(HTML)?.render(context)?),
            false => None,
        };
        Ok(Rendered {
            subject,
            text,
            html,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(first_name: &'a str) -> MergeFields<'a> {
        MergeFields {
            first_name,
            last_name: "Dupont",
            email: "a@example.org",
            city: "Lyon",
            unsubscribe_url: "http://u/x",
        }
    }

    #[test]
    fn html_escapes_contact_data_but_text_and_subject_do_not() {
        let templates = Templates::compile(
            "Bonjour {{ first_name }}",
            "Bonjour {{ first_name }}",
            "<p>Bonjour {{ first_name }}</p>",
        )
        .unwrap();
        let rendered = templates.render(&fields("<b>Zoé & \"Léa\"</b>")).unwrap();
        assert_eq!(rendered.subject, "Bonjour <b>Zoé & \"Léa\"</b>");
        assert_eq!(rendered.text, "Bonjour <b>Zoé & \"Léa\"</b>");
        assert_eq!(
            rendered.html.unwrap(),
            "<p>Bonjour &lt;b&gt;Zoé &amp; &quot;Léa&quot;&lt;&#x2f;b&gt;</p>"
        );
    }

    #[test]
    fn a_subject_never_spans_lines() {
        let templates = Templates::compile("Hi {{ first_name }}", "x", "").unwrap();
        let rendered = templates
            .render(&fields("Ann\r\nBcc: victim@example.org"))
            .unwrap();
        assert_eq!(rendered.subject, "Hi Ann  Bcc: victim@example.org");
        assert_eq!(rendered.html, None);
    }

    #[test]
    fn a_syntax_error_names_the_field() {
        let error = Templates::compile("ok", "ok", "{% if %}").err().unwrap();
        assert!(
            error.to_string().starts_with("template.html_body"),
            "{error}"
        );
    }
}
