//! Turning one CSV record into a contact row, keeping only valid values.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use csv::ByteRecord;
use phonenumber::country::Id;

use super::columns::{Columns, Layout};
use super::time::{INSTANT_FORMS, parse_instant};
use super::{ConsentStatement, ImportRow, RowIssue, RowOutcome};
use crate::domain::date::parse_date;

use crate::domain::yes_no::{YES_NO_FORMS, parse_yes_no};
use crate::domain::{EmailAddress, PhoneNumber, nfc, territory, trim_blank, unwrap_address};

/// The contact in `record`, which starts on `line` of a file decoded from `encoding`.
pub(crate) fn read(
    record: &ByteRecord,
    line: u64,
    columns: &Columns,
    encoding: &'static str,
    default_country: &str,
) -> RowOutcome {
    if is_blank(record) {
        return RowOutcome::Empty { line };
    }
    let mut fields = Fields {
        record,
        line,
        encoding,
        issues: Vec::new(),
    };

    let first_name = first_name(&mut fields, columns.first_name);
    let last_name = fields.words(columns.last_name, "last_name");
    let email = email(&mut fields, columns);
    let country = country(&mut fields, columns.country, default_country);
    let (postal_code, town_after_code) =
        postal_code(&mut fields, columns.postal_code, country.as_deref());
    let region = country
        .as_deref()
        .and_then(|code| code.parse::<Id>().ok())
        .unwrap_or(Id::FR);
    let phone = fields.get(columns.phone, "phone").and_then(|value| {
        PhoneNumber::parse(value.text, region, postal_code.as_deref())
            .map_err(|error| fields.issue("phone", value.raw, error.reason))
            .ok()
    });
    let address_line1 = fields.text(columns.address_line1, "address_line1");
    // A town written after the code (`56120 Josselin`) is the town when the
    // row gives none of its own.
    let city = fields.words(columns.city, "city").or(town_after_code);
    // Placed here, once: the writers take the place as read.
    let french = matches!(country.as_deref(), None | Some("FR"));
    let (place, stray_town) = match postal_code.as_deref().filter(|_| french) {
        Some(code) => territory::locate_checked(code, city.as_deref()),
        None => (None, None),
    };
    if let (Some("FR"), Some(reason), Some(town)) = (country.as_deref(), stray_town, &city) {
        fields.issue("city", town, reason);
    }
    let birth_date = birth_date(&mut fields, columns.birth_date, Utc::now().date_naive());
    let tags = fields
        .get(columns.tags, "tags")
        .map_or_else(Vec::new, |value| parse_tags(value.text));
    let external_id = fields
        .text(columns.external_id, "external_id")
        .map(|id| (columns.external_system.to_owned(), id));
    let custom_fields = custom_fields(&mut fields, columns);
    let mut consent = consent(&mut fields, columns);
    // E-mail consent belongs with an address: without a valid one, the
    // statement is not recorded, and a row imported by its phone says so.
    if email.is_none() && phone.is_some() && consent != ConsentStatement::None {
        let answer = match &consent {
            ConsentStatement::Granted { .. } => "a grant",
            _ => "a withdrawal",
        };
        fields.issue(
            "email_consent",
            "",
            format!("{answer} of e-mail consent without a valid e-mail address is not recorded"),
        );
        consent = ConsentStatement::None;
    }
    let beyond: Vec<&str> = record
        .iter()
        .skip(columns.width)
        .filter_map(|field| std::str::from_utf8(field).ok())
        .map(trim_blank)
        .filter(|value| !value.is_empty())
        .collect();
    // The row's values have shifted: which one belongs where is anyone's guess,
    // and a postal code stored as a tag is worse than a row to import again.
    if !beyond.is_empty() {
        let reason = format!(
            "{} value(s) past the last column: a separator inside a field (an address with a \
             ';') shifted the row's values, so the row is not imported: quote that field and \
             import the file again",
            beyond.len()
        );
        fields.issue("row", &beyond.join(" | "), reason);
        return RowOutcome::Rejected {
            line,
            issues: fields.issues,
        };
    }

    if email.is_none() && phone.is_none() {
        let reason = match repeated_contact(record, columns) {
            Some(column) => format!(
                "nothing to reach this person by: no valid e-mail or phone in the columns read; \
                 column {column} repeats their header and is not read (see the header's \
                 warning): rename it or merge it into the first, and import again"
            ),
            None => "nothing to reach this person by: no valid e-mail or phone".to_owned(),
        };
        fields.issue("contact", "", reason);
        return RowOutcome::Rejected {
            line,
            issues: fields.issues,
        };
    }
    RowOutcome::Row(ImportRow {
        line,
        first_name,
        last_name,
        email,
        phone,
        address_line1,
        postal_code,
        city,
        country,
        place,
        birth_date,
        tags,
        consent,
        external_id,
        custom_fields,
        issues: fields.issues,
    })
}

/// The birth date in `column`; one that is not a date, or not one a person
/// alive on `today` can have, is reported and left out.
fn birth_date(
    fields: &mut Fields<'_>,
    column: Option<usize>,
    today: NaiveDate,
) -> Option<NaiveDate> {
    let value = fields.get(column, "birth_date")?;
    let checked = parse_date(value.text)
        .map_err(|error| error.reason)
        .and_then(|date| plausible_birth_date(date, today));
    checked
        .map_err(|reason| fields.issue("birth_date", value.raw, reason))
        .ok()
}

/// The earliest year of birth kept: an earlier one is a mistyped year.
const EARLIEST_BIRTH_YEAR: i32 = 1900;

/// `date` if a person can have been born on it by `today`. A date in the
/// future is most often a day and month swapped by a spreadsheet or a year
/// mistyped, which the reason points at.
fn plausible_birth_date(date: NaiveDate, today: NaiveDate) -> Result<NaiveDate, String> {
    if date > today {
        Err("in the future: check the day/month order or the year".to_owned())
    } else if date.year() < EARLIEST_BIRTH_YEAR {
        Err("before 1900: check the year".to_owned())
    } else {
        Ok(date)
    }
}

/// The first column (1-based) repeating the e-mail or phone header that
/// holds a value in `record`: the address the row may have been meant to have.
fn repeated_contact(record: &ByteRecord, columns: &Columns) -> Option<usize> {
    columns
        .contact_repeats
        .iter()
        .find(|&&at| {
            record
                .get(at)
                .is_some_and(|value| !value.trim_ascii().is_empty())
        })
        .map(|at| at + 1)
}

/// The custom field values of a row; a value that does not fit its type is
/// a warning naming the field, and is left out.
fn custom_fields(
    fields: &mut Fields<'_>,
    columns: &Columns,
) -> serde_json::Map<String, serde_json::Value> {
    let mut values = serde_json::Map::new();
    for (column, definition) in &columns.custom {
        let Some(value) = fields.get(Some(*column), "custom_fields") else {
            continue;
        };
        match definition.parse_value(value.text) {
            Ok(parsed) => {
                values.insert(definition.key().to_owned(), parsed);
            }
            Err(error) => {
                let reason = format!(
                    "custom field {} ({}): {}",
                    definition.key(),
                    definition.kind().as_str(),
                    error.reason
                );
                fields.issue("custom_fields", value.raw, reason);
            }
        }
    }
    values
}

/// The fields of one record, and the problems found in them so far.
struct Fields<'r> {
    record: &'r ByteRecord,
    line: u64,
    encoding: &'static str,
    issues: Vec<RowIssue>,
}

/// A non-blank field: as found in the file, and trimmed.
#[derive(Clone, Copy)]
struct Value<'r> {
    raw: &'r str,
    text: &'r str,
}

impl<'r> Fields<'r> {
    /// The field in `column`, or `None` when there is no such column, the record is too
    /// short, the field is blank, or it holds undecodable bytes (reported as an issue).
    fn get(&mut self, column: Option<usize>, field: &'static str) -> Option<Value<'r>> {
        let bytes = self.record.get(column?)?;
        let Ok(raw) = std::str::from_utf8(bytes) else {
            self.undecodable(field, &String::from_utf8_lossy(bytes));
            return None;
        };
        let text = trim_blank(raw);
        if text.is_empty() {
            return None;
        }
        if text.contains('\0') {
            self.issue(
                field,
                raw,
                "contains NUL bytes: is this really a text (CSV) file?",
            );
            return None;
        }
        if text.len() > MAX_FIELD_BYTES {
            let lines = text.matches('\n').count();
            let reason = match lines {
                0 => format!("longer than {MAX_FIELD_BYTES} bytes: not imported"),
                // A quote opened in the field and never closed: the rows
                // after it were read into it.
                _ => format!(
                    "longer than {MAX_FIELD_BYTES} bytes, over {} lines: a double quote opened \
                     in it is probably never closed, and the rows after it were read into it; \
                     fix the quote and import the file again (rows already imported merge)",
                    lines + 1
                ),
            };
            self.issue(field, raw, reason);
            return None;
        }
        if text.contains('\u{FFFD}') {
            self.undecodable(field, raw);
            return None;
        }
        let swallowed = if MULTI_LINE_FIELDS.contains(&field) {
            rows_after_first_line(text)
        } else {
            swallowed_rows(text)
        };
        if swallowed {
            let reason = "holds a line break and a separator, as rows do: a double quote left \
                open on this row may have joined the rows after it into this one, and they are \
                not imported; fix the quote and import the file again (rows already imported \
                merge)";
            self.issue(field, raw, reason);
            return None;
        }
        Some(Value { raw, text })
    }

    /// The trimmed text of the field in `column`, its accents composed (NFC).
    fn text(&mut self, column: Option<usize>, field: &'static str) -> Option<String> {
        self.get(column, field).map(|value| nfc(value.text))
    }

    /// A name: its words separated by single spaces, however the file spaced
    /// them ("Le  Gall", a no-break space, a line break).
    fn words(&mut self, column: Option<usize>, field: &'static str) -> Option<String> {
        self.text(column, field)
            .map(|text| text.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    fn issue(&mut self, field: &'static str, value: &str, reason: impl Into<String>) {
        self.issues.push(RowIssue {
            line: self.line,
            field,
            value: shown(value),
            reason: reason.into(),
        });
    }

    fn undecodable(&mut self, field: &'static str, value: &str) {
        let reason = format!(
            "undecodable bytes: the file is not in {}; re-export it as UTF-8",
            self.encoding
        );
        self.issue(field, value, reason);
    }
}

/// The fields a line break and a separator belong in (a quoted address over
/// two lines); in any other, they are the mark of a quote left open.
const MULTI_LINE_FIELDS: [&str; 2] = ["address_line1", "custom_fields"];

/// Whether a field holds what rows are made of: a line break and a
/// separator (a quoted name over two lines is kept).
fn swallowed_rows(text: &str) -> bool {
    text.contains('\n') && text.contains([';', ',', '\t'])
}

/// Whether a field that may span lines (an address) holds, after its first
/// line, what rows are made of: several separators, or an address and a
/// separator. "3 rue C\nBât. 2, esc. B" is an address; a quote left open
/// before the rows below it joins them into it.
fn rows_after_first_line(text: &str) -> bool {
    text.lines().skip(1).any(|line| {
        let count = |c: char| line.matches(c).count();
        count(';') >= 2
            || count('\t') >= 2
            || count(',') >= 3
            || (line.contains('@') && line.contains([';', ',', '\t']))
    })
}

/// A field longer than this is not contact data.
const MAX_FIELD_BYTES: usize = 4_000;

/// A value as a report shows it: without NUL bytes, cut at 200 characters.
pub(super) fn shown(value: &str) -> String {
    let mut shown: String = value.chars().filter(|c| *c != '\0').take(200).collect();
    if value.chars().count() > 200 {
        shown.push('…');
    }
    shown
}

pub(super) fn is_blank(record: &ByteRecord) -> bool {
    record.iter().all(|field| {
        field.iter().all(|b| matches!(b, b' ' | b'\t'))
            || std::str::from_utf8(field).is_ok_and(|text| trim_blank(text).is_empty())
    })
}

/// Courtesy titles phone-bank lists write where the first name goes.
const CIVILITIES: [&str; 14] = [
    "m",
    "mr",
    "mme",
    "mlle",
    "mrs",
    "ms",
    "miss",
    "monsieur",
    "madame",
    "mademoiselle",
    "dr",
    "docteur",
    "me",
    "maitre",
];

/// The row's first name, without a courtesy title written before it
/// (`Mme`, `M. et Mme`: named on the row, since it is no one's name); a
/// cell naming two people (`Jean et Marie`) is kept as written and named.
fn first_name(fields: &mut Fields<'_>, column: Option<usize>) -> Option<String> {
    let written = fields.words(column, "first_name")?;
    let words: Vec<&str> = written.split(' ').collect();
    // Every row's first word goes through this: folded only when it is
    // short enough to be a title and not plain ASCII (`Maître`).
    let civility = |word: &str| {
        let word = word.trim_end_matches('.');
        let folded = match word.len() {
            13.. => return false,
            _ if word.is_ascii() => word.to_ascii_lowercase(),
            _ => crate::domain::header_key(word),
        };
        CIVILITIES.contains(&folded.as_str())
    };
    let joins = |word: &str| {
        word == "&" || word == "/" || ["et", "ou"].iter().any(|j| word.eq_ignore_ascii_case(j))
    };
    // Titles, and the words joining them: `M. et Mme`.
    let titles = words
        .iter()
        .take_while(|word| civility(word) || joins(word))
        .count();
    let titles = (0..=titles)
        .rev()
        .find(|&n| n == 0 || civility(words[n - 1]))
        .unwrap_or(0);
    let name = words[titles..].join(" ");
    if titles > 0 {
        let reason = match name.is_empty() {
            true => "a courtesy title, not a first name: the row has no first name".to_owned(),
            false => format!("a courtesy title before the first name, left out: {name:?}"),
        };
        fields.issue("first_name", &written, reason);
    }
    if words[titles..].iter().skip(1).any(|word| joins(word)) {
        fields.issue(
            "first_name",
            &written,
            "names two people: imported as one person; give each a row of their own",
        );
    }
    (!name.is_empty()).then_some(name)
}

/// The row's address: the e-mail column's, else the fallback column's
/// (NationBuilder's `email`, then `email1`) when the first is empty,
/// invalid or flagged bad. A cell may hold several addresses
/// (`lina@example.org; lina.b@example.org`): the first valid one is the
/// row's. A second, different valid address is named on the row, not
/// dropped in silence.
fn email(fields: &mut Fields<'_>, columns: &Columns) -> Option<EmailAddress> {
    let flagged_bad = fields
        .get(columns.email_is_bad, "email_is_bad")
        .is_some_and(|flag| parse_yes_no(flag.text) == Some(true));
    let mut chosen: Option<EmailAddress> = None;
    for column in [columns.email, columns.email_fallback] {
        let Some(value) = fields.get(column, "email") else {
            continue;
        };
        let mut parsed = Vec::new();
        for address in addresses_in(value.text) {
            match EmailAddress::parse(address) {
                Ok(email) => parsed.push(email),
                Err(error) => fields.issue("email", value.raw, error.reason),
            }
        }
        // Of several in a cell, one without a likely typo in its domain first.
        parsed.sort_by_key(|email| email.likely_misspelt_domain().is_some());
        for email in parsed {
            if flagged_bad && column == columns.email_flagged {
                let reason = "marked as bad in the source file (email1_is_bad)";
                fields.issue("email", value.raw, reason);
                continue;
            }
            match &chosen {
                None => {
                    if let Some(common) = email.likely_misspelt_domain() {
                        let reason = format!(
                            "imported as written, but the domain looks like a misspelling of \
                             {common}: mail to it would bounce; correct the address if so"
                        );
                        fields.issue("email", value.raw, reason);
                    }
                    chosen = Some(email);
                }
                Some(first) if first.key() != email.key() => {
                    let reason = format!(
                        "a second address, {email}, not imported: a row brings one address, \
                         and this one has {first}; add the other to the person if it is theirs"
                    );
                    fields.issue("email", value.raw, reason);
                }
                Some(_) => {}
            }
        }
    }
    chosen
}

/// The addresses a cell holds: one, unwrapped as mail programs copy it, or
/// several separated by `;`, `,`, `/` or spaces when it has more than one `@`
/// (a name with a comma, `"Dupont, Marie" <marie@example.org>`, has one),
/// each maybe with its name (`Théo <theo@example.org>, Anne <anne@…>`): the
/// words without an `@` around them are names, and left out.
fn addresses_in(cell: &str) -> Vec<&str> {
    if cell.matches('@').count() < 2 {
        return vec![unwrap_address(cell)];
    }
    cell.split([';', ',', '/', '\n'])
        .flat_map(|part| match part.contains('<') {
            true => vec![unwrap_address(part)],
            false => part
                .split([' ', '\t', '\u{a0}'])
                .map(unwrap_address)
                .collect(),
        })
        .filter(|part| part.contains('@'))
        .collect()
}

/// The country code in `column`, "FR" when the file does not say.
fn country(fields: &mut Fields<'_>, column: Option<usize>, default: &str) -> Option<String> {
    let Some(value) = fields.get(column, "country") else {
        return Some(default.to_owned());
    };
    let text = value.text;
    if text.len() == 2 && text.bytes().all(|b| b.is_ascii_alphabetic()) {
        Some(text.to_ascii_uppercase())
    } else if text.eq_ignore_ascii_case("france") {
        Some("FR".to_owned())
    } else {
        fields.issue(
            "country",
            value.raw,
            "not a two-letter country code (ISO 3166)",
        );
        None
    }
}

/// The postal code in `column`. A French one is read as people write it: spaces inside
/// ("33 000"), a "F-" prefix, the leading zero that spreadsheets drop (`2820` for `02820`);
/// one that is still not a postal code is kept as written with an issue, so the person keeps
/// their address but gets no commune or département.
/// The row's postal code, and the town written after a French one.
fn postal_code(
    fields: &mut Fields<'_>,
    column: Option<usize>,
    country: Option<&str>,
) -> (Option<String>, Option<String>) {
    let Some(value) = fields.get(column, "postal_code") else {
        return (None, None);
    };
    if country != Some("FR") {
        return (Some(value.text.to_owned()), None);
    }
    match french_postal_code(value.text) {
        Ok((code, town)) if territory::departement_of(&code).is_some() => (Some(code), town),
        Ok((code, _)) => {
            fields.issue(
                "postal_code",
                value.raw,
                "no French département has this postal code: kept, without commune",
            );
            (Some(code), None)
        }
        Err(reason) => {
            fields.issue("postal_code", value.raw, reason);
            (Some(value.text.to_owned()), None)
        }
    }
}

/// `text` as a five-digit French postal code, or why it is not one.
/// Reads the forms spreadsheets and mail merges leave: Excel's text marks
/// (`'02820`, `="02820"`), a number exported with a decimal (`33000.0`,
/// `33000,0`), a country prefix (`F-75011`, `F75011`), a CEDEX code
/// (`75008 CEDEX 08`, `CEDEX 75008`), the town after the code (`75011 Paris`),
/// which comes back beside the code.
fn french_postal_code(text: &str) -> Result<(String, Option<String>), String> {
    const NOT_ONE: &str =
        "not a French postal code (five digits): kept as written, without commune";
    let text = text.trim();
    let text = text.strip_prefix('\'').unwrap_or(text);
    let text = text
        .strip_prefix("=\"")
        .and_then(|quoted| quoted.strip_suffix('"'))
        .unwrap_or(text);
    let text = match text.to_ascii_lowercase().find("cedex") {
        Some(at) if text[..at].trim().is_empty() => text[at + "cedex".len()..].trim(),
        Some(at) => text[..at].trim(),
        None => text,
    };
    let text = [".0", ",0"]
        .iter()
        .find_map(|decimal| text.strip_suffix(decimal))
        .filter(|number| number.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or(text);
    let text = ["FR-", "FR ", "FR", "F-", "F ", "F"]
        .iter()
        .find_map(|prefix| {
            text.get(..prefix.len())
                .filter(|head| head.eq_ignore_ascii_case(prefix))
                .map(|_| &text[prefix.len()..])
                .filter(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .unwrap_or(text);
    // A town written after the code: letters only from the first letter on.
    let (text, town) = match text.find(char::is_alphabetic) {
        Some(at) if at > 0 && !text[at..].contains(|c: char| c.is_ascii_digit()) => {
            let town = text[at..].split_whitespace().collect::<Vec<_>>().join(" ");
            (&text[..at], Some(town))
        }
        _ => (text, None),
    };
    // Spaces, no-break spaces and dots people put between thousands.
    let digits: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}' | '.'))
        .collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NOT_ONE.to_owned());
    }
    match digits.len() {
        5 => Ok((digits, town)),
        // A spreadsheet dropped the leading zero, unless no place has the code it gives.
        4 if territory::is_postal_code(&format!("0{digits}")) => Ok((format!("0{digits}"), town)),
        4 => Err(format!(
            "four digits, and 0{digits} is no French postal code either: kept as written, \
             without commune; check the code"
        )),
        _ => Err(NOT_ONE.to_owned()),
    }
}

/// Tags from a comma-separated list, whose items may be double-quoted (Mailchimp writes
/// `"sympathisant","jeunes"`).
fn parse_tags(text: &str) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    let mut push = |tag: &str| {
        let tag = nfc(trim_blank(tag))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if !tag.is_empty() && !tags.iter().any(|known| same_tag(known, &tag)) {
            tags.push(tag);
        }
    };
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                push(&current);
                current.clear();
            }
            _ => current.push(c),
        }
    }
    push(&current);
    tags
}

fn same_tag(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

fn consent(fields: &mut Fields<'_>, columns: &Columns) -> ConsentStatement {
    let statement = match columns.layout {
        Layout::YesNo => yes_no_consent(fields, columns),
        Layout::NationBuilder => nation_builder_consent(fields, columns),
        Layout::MailchimpSubscribed => mailchimp_subscribed_consent(fields, columns),
        Layout::MailchimpUnsubscribed => mailchimp_unsubscribed_consent(fields, columns),
    };
    not_in_the_future(fields, columns, statement, chrono::Utc::now())
}

/// The cell a statement's time was read from, as written, in the order the
/// layout's reader prefers them.
fn written_time(fields: &mut Fields<'_>, columns: &Columns) -> Option<String> {
    let candidates = match columns.layout {
        Layout::YesNo => [columns.consent_time, None],
        Layout::NationBuilder => [columns.created_at, None],
        Layout::MailchimpSubscribed => [columns.confirm_time, columns.optin_time],
        Layout::MailchimpUnsubscribed => [columns.unsub_time, columns.last_changed],
    };
    candidates
        .into_iter()
        .find_map(|column| Some(fields.get(column, "email_consent_time")?.raw.to_owned()))
}

/// How far ahead of now a statement's date may be (time zones, clocks).
const FUTURE_SLACK: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// A consent dated after `now` is a mistake of the file (a date column
/// shifted, a year mistyped): a grant is not recorded; a withdrawal is, as
/// of `now`, since it always applies. Either way the row says so.
fn not_in_the_future(
    fields: &mut Fields<'_>,
    columns: &Columns,
    statement: ConsentStatement,
    now: DateTime<Utc>,
) -> ConsentStatement {
    let time = match &statement {
        ConsentStatement::Granted { time, .. } | ConsentStatement::Withdrawn { time, .. } => *time,
        ConsentStatement::None => return statement,
    };
    if time <= now + FUTURE_SLACK {
        return statement;
    }
    let shown = written_time(fields, columns)
        .unwrap_or_else(|| time.format("%Y-%m-%d %H:%M UTC").to_string());
    match statement {
        ConsentStatement::Withdrawn { evidence, .. } => {
            let reason = "dated in the future: the withdrawal is recorded as of the import";
            fields.issue("email_consent_time", &shown, reason);
            ConsentStatement::Withdrawn {
                time: now,
                evidence,
            }
        }
        _ => {
            let reason = "dated in the future: consent not recorded; check the date column";
            fields.issue("email_consent_time", &shown, reason);
            ConsentStatement::None
        }
    }
}

/// A yes/no consent column and its date. "oui" with a date grants; "non"
/// with a date withdraws as of that date (the person said no then, and a
/// grant recorded before it no longer holds); "non" alone says the person
/// never agreed, which is no statement: it leaves a later grant alone.
fn yes_no_consent(fields: &mut Fields<'_>, columns: &Columns) -> ConsentStatement {
    let Some(answer) = fields.get(columns.consent, "email_consent") else {
        return ConsentStatement::None;
    };
    let granted = match parse_yes_no(answer.text) {
        Some(granted) => granted,
        None => {
            let reason = format!("not a yes/no answer: write {YES_NO_FORMS}");
            fields.issue("email_consent", answer.raw, reason);
            return ConsentStatement::None;
        }
    };
    let Some(when) = fields.get(columns.consent_time, "email_consent_time") else {
        if granted {
            fields.issue(
                "email_consent",
                answer.raw,
                "consent without a date is not recorded",
            );
        }
        return ConsentStatement::None;
    };
    let Some(time) = parse_instant(when.text) else {
        let reason = format!("not a date and time: write {INSTANT_FORMS}; consent not recorded");
        fields.issue("email_consent_time", when.raw, reason);
        return ConsentStatement::None;
    };

    let mut evidence = vec![("column".to_owned(), columns.consent_header.clone())];
    if let Some(origin) = fields.get(columns.origin, "origin") {
        evidence.push(("origine".to_owned(), origin.text.to_owned()));
    }
    match granted {
        true => ConsentStatement::Granted { time, evidence },
        false => ConsentStatement::Withdrawn { time, evidence },
    }
}

fn nation_builder_consent(fields: &mut Fields<'_>, columns: &Columns) -> ConsentStatement {
    let is_true = |fields: &mut Fields<'_>, column, field| {
        fields
            .get(column, field)
            .is_some_and(|value| parse_yes_no(value.text) == Some(true))
    };
    // A person NationBuilder knows to be dead is never written to, whatever
    // their opt-in said.
    let deceased = is_true(fields, columns.is_deceased, "is_deceased");
    let withdrawn = deceased || is_true(fields, columns.do_not_contact, "do_not_contact");
    let granted = is_true(fields, columns.consent, "email_opt_in");
    if !withdrawn && !granted {
        return ConsentStatement::None;
    }

    let flag = match (deceased, withdrawn) {
        (true, _) => "is_deceased",
        (false, true) => "do_not_contact",
        (false, false) => "email_opt_in",
    };
    let created_at = fields.get(columns.created_at, "created_at");
    let Some((time, created_at)) = created_at.and_then(|v| Some((parse_instant(v.text)?, v.text)))
    else {
        let value = created_at.map_or("", |v| v.raw);
        let reason = match (columns.created_at, created_at) {
            (None, _) => format!(
                "{flag} is true but the file has no created_at column to date it: not recorded"
            ),
            (Some(_), None) => format!("{flag} is true but created_at is empty: not recorded"),
            (Some(_), Some(_)) => {
                format!("{flag} is true but created_at is not a date: not recorded")
            }
        };
        fields.issue("created_at", value, reason);
        return ConsentStatement::None;
    };

    let evidence = vec![
        ("column".to_owned(), flag.to_owned()),
        ("created_at".to_owned(), created_at.to_owned()),
    ];
    if withdrawn {
        ConsentStatement::Withdrawn { time, evidence }
    } else {
        ConsentStatement::Granted { time, evidence }
    }
}

fn mailchimp_subscribed_consent(fields: &mut Fields<'_>, columns: &Columns) -> ConsentStatement {
    let confirm_time = instant(fields, columns.confirm_time, "confirm_time");
    let optin_time = instant(fields, columns.optin_time, "optin_time");
    let Some(time) = confirm_time.or(optin_time) else {
        fields.issue(
            "optin_time",
            "",
            "subscribed without an opt-in time: consent not recorded",
        );
        return ConsentStatement::None;
    };
    let evidence = evidence(
        fields,
        [
            ("optin_time", columns.optin_time),
            ("optin_ip", columns.optin_ip),
            ("confirm_time", columns.confirm_time),
            ("confirm_ip", columns.confirm_ip),
        ],
    );
    ConsentStatement::Granted { time, evidence }
}

fn mailchimp_unsubscribed_consent(fields: &mut Fields<'_>, columns: &Columns) -> ConsentStatement {
    let unsub_time = instant(fields, columns.unsub_time, "unsub_time");
    let Some(time) = unsub_time.or_else(|| instant(fields, columns.last_changed, "last_changed"))
    else {
        fields.issue(
            "unsub_time",
            "",
            "unsubscribed without a date: withdrawal not recorded",
        );
        return ConsentStatement::None;
    };
    let evidence = evidence(
        fields,
        [
            ("unsub_campaign", columns.unsub_campaign),
            ("unsub_reason", columns.unsub_reason),
        ],
    );
    ConsentStatement::Withdrawn { time, evidence }
}

/// The instant in `column`; a value that is not one is reported.
fn instant(
    fields: &mut Fields<'_>,
    column: Option<usize>,
    field: &'static str,
) -> Option<DateTime<Utc>> {
    let value = fields.get(column, field)?;
    let instant = parse_instant(value.text);
    if instant.is_none() {
        let reason = format!("not a date and time: write {INSTANT_FORMS}");
        fields.issue(field, value.raw, reason);
    }
    instant
}

/// (name, value) pairs for the non-blank fields among `named`.
fn evidence<const N: usize>(
    fields: &mut Fields<'_>,
    named: [(&str, Option<usize>); N],
) -> Vec<(String, String)> {
    named
        .into_iter()
        .filter_map(|(name, column)| {
            let value = fields.get(column, "evidence")?;
            Some((name.to_owned(), value.text.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_trimmed_deduplicated_ignoring_case_and_keep_their_spelling() {
        let tags = parse_tags(" donateur, Newsletter,, adhérent ,newsletter, \u{00A0}");

        assert_eq!(tags, ["donateur", "Newsletter", "adhérent"]);
        assert_eq!(
            parse_tags("comité  local,comité\u{a0}local"),
            ["comité local"]
        );
    }

    #[test]
    fn decomposed_tags_are_composed_and_deduplicated() {
        let tags = parse_tags("adhe\u{301}rent, Adh\u{e9}rent, comite\u{301}");

        assert_eq!(tags, ["adh\u{e9}rent", "comit\u{e9}"]);
    }

    #[test]
    fn quoted_mailchimp_tags_are_unquoted_and_may_hold_commas() {
        let tags = parse_tags(r#""porte-à-porte","R&D","comité, 2026","jeunes""#);

        assert_eq!(tags, ["porte-à-porte", "R&D", "comité, 2026", "jeunes"]);
    }

    fn day(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).unwrap()
    }

    /// A French Excel row: e-mail, birth date, consent and its date.
    fn read_french(birth: &str, consent: &str, consent_time: &str) -> ImportRow {
        let columns = Columns {
            email: Some(0),
            birth_date: Some(1),
            consent: Some(2),
            consent_time: Some(3),
            consent_header: "Consentement e-mail".to_owned(),
            width: 4,
            ..Columns::default()
        };
        let record = ByteRecord::from(vec!["ada@example.org", birth, consent, consent_time]);
        match read(&record, 2, &columns, "UTF-8", "FR") {
            RowOutcome::Row(row) => row,
            other => panic!("expected a row, got {other:?}"),
        }
    }

    fn issue(row: &ImportRow) -> (&str, &str, &str) {
        let issue = &row.issues[0];
        (issue.field, issue.value.as_str(), issue.reason.as_str())
    }

    #[test]
    fn a_birth_date_is_read_in_every_form_a_french_spreadsheet_writes() {
        for raw in [
            "18/02/1981",
            "18.02.1981",
            "18-02-1981",
            "1981-02-18",
            "18/02/1981 00:00",
            "18/02/1981 00:00:00",
            "1981-02-18 00:00:00",
            "29635",
            "29635.0",
        ] {
            let row = read_french(raw, "", "");

            assert_eq!(row.birth_date, Some(day(1981, 2, 18)), "{raw}");
            assert!(row.issues.is_empty(), "{raw}: {:?}", row.issues);
        }
    }

    #[test]
    fn a_year_alone_as_birth_date_is_reported_and_the_row_kept() {
        let row = read_french("1981", "", "");

        assert_eq!(row.birth_date, None);
        assert_eq!(
            row.email.as_ref().map(EmailAddress::as_str),
            Some("ada@example.org")
        );
        assert_eq!(
            issue(&row),
            (
                "birth_date",
                "1981",
                "a year alone, not a date: give the full date, as 18/02/1981"
            )
        );
    }

    #[test]
    fn a_birth_date_with_a_time_of_day_is_reported() {
        let row = read_french("18/02/1981 14:30", "", "");

        assert_eq!(row.birth_date, None);
        assert_eq!(
            issue(&row),
            (
                "birth_date",
                "18/02/1981 14:30",
                "a date with a time of day (14:30): give the date alone, as 18/02/1981"
            )
        );
    }

    #[test]
    fn a_birth_date_that_is_not_a_date_lists_the_forms() {
        let row = read_french("18/02/81", "", "");

        assert_eq!(row.birth_date, None);
        assert!(
            issue(&row).2.contains("write the year in full"),
            "{:?}",
            row.issues
        );

        let row = read_french("le 18 février", "", "");
        assert_eq!(
            issue(&row).2,
            "not a date: write it dd/mm/yyyy, dd.mm.yyyy, dd-mm-yyyy or yyyy-mm-dd"
        );
    }

    #[test]
    fn a_birth_date_after_today_or_before_1900_is_implausible() {
        let today = day(2026, 5, 10);

        assert_eq!(
            plausible_birth_date(day(2026, 5, 11), today),
            Err("in the future: check the day/month order or the year".to_owned())
        );
        assert_eq!(
            plausible_birth_date(day(1899, 12, 31), today),
            Err("before 1900: check the year".to_owned())
        );
        assert_eq!(plausible_birth_date(today, today), Ok(today));
        assert_eq!(
            plausible_birth_date(day(1900, 1, 1), today),
            Ok(day(1900, 1, 1))
        );
    }

    #[test]
    fn a_birth_date_in_the_future_is_reported_and_the_row_kept() {
        let tomorrow = Utc::now().date_naive() + chrono::Days::new(1);
        let raw = tomorrow.format("%d/%m/%Y").to_string();

        let row = read_french(&raw, "", "");

        assert_eq!(row.birth_date, None);
        assert!(row.email.is_some());
        assert_eq!(
            issue(&row),
            (
                "birth_date",
                raw.as_str(),
                "in the future: check the day/month order or the year"
            )
        );
    }

    #[test]
    fn a_birth_date_before_1900_is_reported() {
        let row = read_french("18.02.1881", "", "");

        assert_eq!(row.birth_date, None);
        assert_eq!(
            issue(&row),
            ("birth_date", "18.02.1881", "before 1900: check the year")
        );
    }

    #[test]
    fn french_excel_true_grants_consent_and_false_withdraws_it() {
        let granted = read_french("", "VRAI", "01.09.2024");
        let refused = read_french("", "faux", "01.09.2024");

        let ConsentStatement::Granted { time, .. } = granted.consent else {
            panic!("{:?}", granted.consent);
        };
        assert_eq!(time.to_rfc3339(), "2024-08-31T22:00:00+00:00");
        let ConsentStatement::Withdrawn { time, .. } = refused.consent else {
            panic!("{:?}", refused.consent);
        };
        assert_eq!(time.to_rfc3339(), "2024-08-31T22:00:00+00:00");
        assert!(granted.issues.is_empty() && refused.issues.is_empty());
    }

    #[test]
    fn an_answer_that_is_not_yes_or_no_lists_the_answers() {
        let row = read_french("", "peut-être", "01/09/2024");

        assert_eq!(row.consent, ConsentStatement::None);
        assert_eq!(
            issue(&row),
            (
                "email_consent",
                "peut-être",
                "not a yes/no answer: write oui/non, vrai/faux, yes/no, true/false, o/n, y/n \
                 or 1/0"
            )
        );
    }

    #[test]
    fn a_consent_date_that_is_not_one_lists_the_forms() {
        let row = read_french("", "oui", "29635");

        assert_eq!(row.consent, ConsentStatement::None);
        assert_eq!(issue(&row).0, "email_consent_time");
        assert_eq!(
            issue(&row).2,
            "not a date and time: write dd/mm/yyyy HH:MM (French time), yyyy-mm-dd HH:MM:SS \
             (UTC) or a date alone (midnight, French time); consent not recorded"
        );
    }
}
