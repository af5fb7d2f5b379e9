//! Custom fields: the properties an organization defines on its people, and
//! the typed JSON values people hold for them (`people.custom_fields`).
//!
//! A value is parsed from what a user types or a file holds ("12,5",
//! "31/12/2024", "oui") into one canonical JSON value, so that the database
//! compares numbers as numbers, dates as ISO strings and choices in the
//! spelling of their definition. Dates and yes/no answers are read as the
//! import reads them ([`super::date`], [`super::yes_no`]).

use std::collections::BTreeMap;

use serde_json::Value;

use super::date::parse_date;
use super::yes_no::{YES_NO_FORMS, parse_yes_no};
use super::{FieldError, header_key, nfc, trim_blank};

/// The longest text value kept, in characters.
pub const MAX_TEXT_CHARS: usize = 1_000;

/// The longest label or choice, in characters.
const MAX_LABEL_CHARS: usize = 100;

/// The most choices a choice field may have.
const MAX_CHOICES: usize = 200;

/// The longest key, in bytes (ASCII only).
const MAX_KEY_LENGTH: usize = 63;

/// What a custom field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Text,
    Number,
    Date,
    Boolean,
    Choice,
}

impl FieldType {
    /// The name stored in `custom_fields.type` and shown in errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Number => "number",
            Self::Date => "date",
            Self::Boolean => "boolean",
            Self::Choice => "choice",
        }
    }

    /// The type of a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "text" => Self::Text,
            "number" => Self::Number,
            "date" => Self::Date,
            "boolean" => Self::Boolean,
            "choice" => Self::Choice,
            _ => return None,
        })
    }

    /// Whether values of this type are ordered (`>=`, `<` in segments).
    pub fn is_ordered(self) -> bool {
        matches!(self, Self::Number | Self::Date)
    }

    /// The `jsonb_typeof` of the values of this type.
    pub fn json_type(self) -> &'static str {
        match self {
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Text | Self::Date | Self::Choice => "string",
        }
    }
}

/// A checked definition: a valid key, a label, a type and, for a choice, its choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    key: String,
    label: String,
    kind: FieldType,
    choices: Vec<String>,
}

impl Definition {
    /// Checks a definition as a user gives it; errors say what is allowed.
    pub fn new(
        key: &str,
        label: &str,
        kind: FieldType,
        choices: &[String],
    ) -> Result<Self, (&'static str, FieldError)> {
        let key = parse_key(key).map_err(|e| ("key", e))?;
        let label = nfc(trim_blank(label));
        if label.is_empty() || label.chars().count() > MAX_LABEL_CHARS || label.contains('\0') {
            return Err((
                "label",
                FieldError::new(format!(
                    "give a label of 1 to {MAX_LABEL_CHARS} characters, as shown to users"
                )),
            ));
        }
        let choices = match kind {
            FieldType::Choice => parse_choices(choices).map_err(|e| ("choices", e))?,
            _ if choices.is_empty() => Vec::new(),
            other => {
                return Err((
                    "choices",
                    FieldError::new(format!(
                        "a {} field has no choices; leave them out or make it a choice field",
                        other.as_str()
                    )),
                ));
            }
        };
        Ok(Self {
            key,
            label,
            kind,
            choices,
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn kind(&self) -> FieldType {
        self.kind
    }

    pub fn choices(&self) -> &[String] {
        &self.choices
    }

    /// The canonical JSON value of `raw`, or why it does not fit the type
    /// (the reason says what is allowed, not which field: callers name it).
    pub fn parse_value(&self, raw: &str) -> Result<Value, FieldError> {
        let text = trim_blank(raw);
        if text.contains('\0') {
            return Err(FieldError::new(
                "contains a NUL character (U+0000), which cannot be stored; remove it",
            ));
        }
        match self.kind {
            FieldType::Text => {
                let text = nfc(text);
                match text.chars().count() {
                    n if n > MAX_TEXT_CHARS => Err(FieldError::new(format!(
                        "{n} characters is longer than the {MAX_TEXT_CHARS} a text field holds"
                    ))),
                    _ => Ok(Value::String(text)),
                }
            }
            FieldType::Number => parse_number(text).ok_or_else(|| {
                FieldError::new(format!(
                    "{} is not a number; write 12, -3 or 12.5 (or 12,5)",
                    shown(text)
                ))
            }),
            FieldType::Date => parse_date(text)
                .map(|date| Value::String(date.format("%Y-%m-%d").to_string()))
                .map_err(|error| FieldError::new(format!("{} is {error}", shown(text)))),
            FieldType::Boolean => parse_yes_no(text).map(Value::Bool).ok_or_else(|| {
                FieldError::new(format!(
                    "{} is not a yes or no; write {YES_NO_FORMS}",
                    shown(text)
                ))
            }),
            FieldType::Choice => {
                let wanted = nfc(text).to_lowercase();
                self.choices
                    .iter()
                    .find(|choice| choice.to_lowercase() == wanted)
                    .map(|choice| Value::String(choice.clone()))
                    .ok_or_else(|| {
                        FieldError::new(format!(
                            "{} is not one of the choices: {}",
                            shown(text),
                            self.choices.join(", ")
                        ))
                    })
            }
        }
    }
}

/// The text form of a stored value, as `Person.custom_fields` shows it.
pub fn canonical_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Bool(flag) => flag.to_string(),
        other => other.to_string(),
    }
}

/// The definitions of one organization, by key.
#[derive(Debug, Clone, Default)]
pub struct Definitions {
    by_key: BTreeMap<String, Definition>,
}

impl Definitions {
    pub fn new(definitions: impl IntoIterator<Item = Definition>) -> Self {
        Self {
            by_key: definitions
                .into_iter()
                .map(|d| (d.key.clone(), d))
                .collect(),
        }
    }

    /// These definitions with `definition` added, or put in place of the one of its key.
    pub fn with(&self, definition: Definition) -> Self {
        let mut changed = self.clone();
        changed.by_key.insert(definition.key.clone(), definition);
        changed
    }

    /// These definitions without the one of `key`.
    pub fn without(&self, key: &str) -> Self {
        let mut changed = self.clone();
        changed.by_key.remove(key);
        changed
    }

    /// The definition of `key` (keys are lower-case; the lookup ignores case).
    pub fn get(&self, key: &str) -> Option<&Definition> {
        self.by_key.get(&key.to_lowercase())
    }

    /// The definition whose key or label a file's column header names, as
    /// [`header_key`] compares them.
    pub fn by_header(&self, header: &str) -> Option<&Definition> {
        let header = header_key(header);
        self.by_key
            .values()
            .find(|d| d.key == header || header_key(&d.label) == header)
    }

    /// The keys, sorted, for error messages.
    pub fn keys(&self) -> String {
        match self.by_key.is_empty() {
            true => "none is defined; define one with DefineCustomField".into(),
            false => self.by_key.keys().cloned().collect::<Vec<_>>().join(", "),
        }
    }
}

/// A key: a lower-case slug that is also written in segment queries.
/// Keys that name a person's own fields (and import columns): a custom field
/// under one of them would copy that column into a free field.
const RESERVED_KEYS: &[&str] = &[
    "id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "address",
    "address_line1",
    "postal_code",
    "city",
    "country",
    "departement",
    "commune",
    "region",
    "birth_date",
    "tag",
    "tags",
    "email_consent",
    "email_consent_time",
    "external_id",
];

fn parse_key(raw: &str) -> Result<String, FieldError> {
    let key = raw.trim();
    if RESERVED_KEYS.contains(&key) {
        return Err(FieldError::new(format!(
            "{key} is a field every person has; choose another key (as in membership_year)"
        )));
    }
    let mut chars = key.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && key.len() <= MAX_KEY_LENGTH;
    match valid {
        true => Ok(key.to_owned()),
        false => Err(FieldError::new(format!(
            "{} is not a key; use a-z, 0-9 and _, starting with a letter, at most \
             {MAX_KEY_LENGTH} characters (as in membership_year)",
            shown(key)
        ))),
    }
}

fn parse_choices(raw: &[String]) -> Result<Vec<String>, FieldError> {
    if raw.is_empty() || raw.len() > MAX_CHOICES {
        return Err(FieldError::new(format!(
            "a choice field needs 1 to {MAX_CHOICES} choices"
        )));
    }
    let mut choices: Vec<String> = Vec::with_capacity(raw.len());
    for choice in raw {
        let choice = nfc(trim_blank(choice));
        if choice.is_empty() || choice.chars().count() > MAX_LABEL_CHARS || choice.contains('\0') {
            return Err(FieldError::new(format!(
                "each choice has 1 to {MAX_LABEL_CHARS} characters; {} does not",
                shown(&choice)
            )));
        }
        if choices
            .iter()
            .any(|c| c.to_lowercase() == choice.to_lowercase())
        {
            return Err(FieldError::new(format!(
                "{} is given twice (choices match ignoring case); keep one",
                shown(&choice)
            )));
        }
        choices.push(choice);
    }
    Ok(choices)
}

/// `12`, `-3`, `12.5`, the French `12,5`, with spaces between thousands
/// (`1 234,5`); a JSON integer when whole, else a JSON number.
fn parse_number(text: &str) -> Option<Value> {
    let compact: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '\u{A0}' | '\u{202F}'))
        .collect();
    if compact.is_empty() || compact.len() > 30 {
        return None;
    }
    let (digits, sign) = match compact.strip_prefix('-') {
        Some(rest) => (rest, "-"),
        None => (compact.strip_prefix('+').unwrap_or(&compact), ""),
    };
    let (whole, fraction) = match digits.split_once([',', '.']) {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) {
        return None;
    }
    match fraction.filter(|f| f.bytes().any(|b| b != b'0')) {
        None => format!("{sign}{whole}")
            .parse::<i64>()
            .ok()
            .map(Value::from),
        Some(fraction) => {
            let number: f64 = format!("{sign}{whole}.{fraction}").parse().ok()?;
            serde_json::Number::from_f64(number).map(Value::Number)
        }
    }
}

/// A value quoted for an error, cut at 40 characters.
fn shown(value: &str) -> String {
    let mut cut: String = value.chars().take(40).collect();
    if value.chars().count() > 40 {
        cut.push('…');
    }
    format!("{cut:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(kind: FieldType, choices: &[&str]) -> Definition {
        let choices: Vec<String> = choices.iter().map(|c| c.to_string()).collect();
        Definition::new("f", "F", kind, &choices).unwrap()
    }

    fn value(kind: FieldType, raw: &str) -> Result<String, String> {
        let choices: &[&str] = match kind {
            FieldType::Choice => &["Rouge", "Vert"],
            _ => &[],
        };
        field(kind, choices)
            .parse_value(raw)
            .map(|v| canonical_text(&v))
            .map_err(|e| e.reason)
    }

    #[test]
    fn a_key_a_person_already_has_is_refused() {
        for key in ["email", "first_name", "tags", "postal_code"] {
            let Err((field, error)) = Definition::new(key, "Libellé", FieldType::Text, &[]) else {
                panic!("{key} was accepted");
            };
            assert_eq!(field, "key");
            assert!(
                error.reason.contains("choose another key"),
                "{}",
                error.reason
            );
        }
        assert!(Definition::new("email_pro", "Courriel pro", FieldType::Text, &[]).is_ok());
    }

    #[test]
    fn numbers_are_read_in_english_and_french_and_stored_as_numbers() {
        let number = field(FieldType::Number, &[]);
        assert_eq!(number.parse_value("12").unwrap(), Value::from(12));
        assert_eq!(number.parse_value("12,5").unwrap(), Value::from(12.5));
        assert_eq!(number.parse_value("-12.50").unwrap(), Value::from(-12.5));
        assert_eq!(number.parse_value("1 234,0").unwrap(), Value::from(1234));
        assert_eq!(value(FieldType::Number, "0,25"), Ok("0.25".into()));
        for bad in ["12,5,1", "abc", "1e5", ",5", "12,", "--1", "0x10"] {
            let error = value(FieldType::Number, bad).unwrap_err();
            assert!(error.contains("is not a number; write"), "{bad}: {error}");
        }
    }

    #[test]
    fn dates_are_read_in_every_form_the_import_reads_and_stored_as_iso() {
        for raw in [
            "2024-09-01",
            "01/09/2024",
            "1/9/2024",
            "01.09.2024",
            "01-09-2024",
            "01/09/2024 00:00",
            "2024-09-01 00:00:00",
            "45536",
            "45536,0",
        ] {
            assert_eq!(
                value(FieldType::Date, raw),
                Ok("2024-09-01".into()),
                "{raw}"
            );
        }
    }

    #[test]
    fn a_date_that_is_not_one_is_refused_saying_what_to_write() {
        let cases = [
            (
                "hier",
                "\"hier\" is not a date: write it dd/mm/yyyy, dd.mm.yyyy",
            ),
            (
                "2024-13-01",
                "\"2024-13-01\" is not a date: there is no such day",
            ),
            (
                "31/02/2024",
                "\"31/02/2024\" is not a date: there is no such day",
            ),
            (
                "09/01/24",
                "\"09/01/24\" is not a date: its year has two digits",
            ),
            (
                "2024",
                "\"2024\" is a year alone, not a date: give the full date",
            ),
            (
                "01/09/2024 18:30",
                "\"01/09/2024 18:30\" is a date with a time of day",
            ),
        ];
        for (raw, expected) in cases {
            let error = value(FieldType::Date, raw).unwrap_err();
            assert!(error.starts_with(expected), "{raw}: {error}");
        }
    }

    #[test]
    fn booleans_accept_what_the_import_accepts_french_excel_included() {
        for yes in ["true", "OUI", "Yes", "1", "VRAI", "vrai", "o", "Y"] {
            assert_eq!(value(FieldType::Boolean, yes), Ok("true".into()), "{yes}");
        }
        for no in ["false", "non", "NO", "0", "FAUX", "Faux", "n"] {
            assert_eq!(value(FieldType::Boolean, no), Ok("false".into()), "{no}");
        }
        let error = value(FieldType::Boolean, "peut-être").unwrap_err();
        assert_eq!(
            error,
            "\"peut-être\" is not a yes or no; write oui/non, vrai/faux, yes/no, true/false, \
             o/n, y/n or 1/0"
        );
    }

    #[test]
    fn a_choice_matches_ignoring_case_and_is_stored_as_defined() {
        assert_eq!(value(FieldType::Choice, "rouge"), Ok("Rouge".into()));
        assert_eq!(value(FieldType::Choice, " VERT "), Ok("Vert".into()));
        let error = value(FieldType::Choice, "bleu").unwrap_err();
        assert_eq!(error, "\"bleu\" is not one of the choices: Rouge, Vert");
    }

    #[test]
    fn text_is_composed_and_capped() {
        assert_eq!(
            value(FieldType::Text, " Ho\u{302}tel "),
            Ok("H\u{f4}tel".into())
        );
        let long = "a".repeat(MAX_TEXT_CHARS + 1);
        assert!(
            value(FieldType::Text, &long)
                .unwrap_err()
                .contains("longer than the 1000")
        );
        assert!(value(FieldType::Text, "a\0b").unwrap_err().contains("NUL"));
    }

    #[test]
    fn definitions_refuse_bad_keys_labels_and_choices() {
        let none: [String; 0] = [];
        let two = ["Oui".to_string(), "oui".to_string()];
        let cases: [(&str, &str, FieldType, &[String], &str); 5] = [
            ("Année", "Année", FieldType::Number, &none, "key"),
            ("1st", "First", FieldType::Number, &none, "key"),
            ("year", " ", FieldType::Number, &none, "label"),
            ("pick", "Pick", FieldType::Choice, &none, "choices"),
            ("pick", "Pick", FieldType::Choice, &two, "choices"),
        ];
        for (key, label, kind, choices, wrong) in cases {
            let (field, _) = Definition::new(key, label, kind, choices).unwrap_err();
            assert_eq!(field, wrong, "{key} {label}");
        }
        let (field, error) = Definition::new("year", "Year", FieldType::Number, &two).unwrap_err();
        assert_eq!(field, "choices");
        assert!(error.reason.contains("a number field has no choices"));
    }

    #[test]
    fn a_header_names_a_field_by_key_or_label_ignoring_case() {
        let definitions = Definitions::new([Definition::new(
            "membership_year",
            "Année d'adhésion",
            FieldType::Number,
            &[],
        )
        .unwrap()]);
        for header in [
            "membership_year",
            " ANNÉE D'ADHÉSION",
            "Anne\u{301}e d'adhésion",
        ] {
            let found = definitions.by_header(header).map(Definition::key);
            assert_eq!(found, Some("membership_year"), "{header}");
        }
        assert!(definitions.by_header("année").is_none());
    }
}
