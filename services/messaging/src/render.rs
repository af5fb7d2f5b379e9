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

impl MergeFields<'_> {
    /// The merge fields a template may use.
    pub const NAMES: [&'static str; 5] = [
        "first_name",
        "last_name",
        "email",
        "city",
        "unsubscribe_url",
    ];

    fn context(&self) -> minijinja::Value {
        minijinja::context! {
            first_name => self.first_name,
            last_name => self.last_name,
            email => self.email,
            city => self.city,
            unsubscribe_url => self.unsubscribe_url,
        }
    }
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
        Self::compile_with(subject, text, html, UndefinedBehavior::Chainable)
    }

    /// Compiles and renders once with sample values, refusing merge fields
    /// that do not exist (`{{ firstname }}`) before anything is sent.
    pub fn check(subject: &str, text: &str, html: &str) -> Result<(), ApiError> {
        let strict = Self::compile_with(subject, text, html, UndefinedBehavior::Strict)?;
        let sample = MergeFields {
            first_name: "Camille",
            last_name: "Martin",
            email: "camille@example.org",
            city: "Lyon",
            unsubscribe_url: "https://example.org/u/token",
        };
        let parts = [
            (SUBJECT, "template.subject"),
            (TEXT, "template.text_body"),
            (HTML, "template.html_body"),
        ];
        for (name, field) in parts {
            let Ok(template) = strict.env.get_template(name) else {
                continue;
            };
            template.render(sample.context()).map_err(|e| {
                let reason = match e.kind() {
                    minijinja::ErrorKind::UndefinedError => format!(
                        "unknown merge field ({e}); the fields are {}",
                        MergeFields::NAMES.join(", ")
                    ),
                    _ => format!("template error: {e}"),
                };
                ApiError::invalid(field, reason)
            })?;
        }
        Ok(())
    }

    fn compile_with(
        subject: &str,
        text: &str,
        html: &str,
        undefined: UndefinedBehavior,
    ) -> Result<Self, ApiError> {
        let mut env = Environment::new();
        // Template names decide escaping: only `.html` escapes.
        env.set_undefined_behavior(undefined);
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
        let context = fields.context();
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
    fn a_misspelt_merge_field_is_refused_naming_the_fields_that_exist() {
        let error = Templates::check("Bonjour {{ firstname }}", "ok", "").unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("template.subject: unknown merge field"),
            "{message}"
        );
        assert!(message.contains("first_name, last_name"), "{message}");
        assert!(Templates::check("{{ first_name }}", "{{ unsubscribe_url }}", "").is_ok());
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
