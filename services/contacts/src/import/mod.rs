//! Reading supporter files (CSV exports of spreadsheets and other tools) into parsed rows.
//!
//! This layer is pure: it decodes, splits and parses, and says what it could not use and
//! why. Storing the rows and merging them with known people is the caller's business.

mod columns;
mod decode;
pub mod job;
mod row;
mod shared_phone;
mod time;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::io::Read;

use chrono::{DateTime, NaiveDate, Utc};
use csv::ByteRecord;

use crate::domain::custom_field::Definitions;
use crate::domain::{EmailAddress, PhoneNumber};
use columns::Columns;
use decode::Decoding;

/// A record spanning more physical lines than this is a quote left open.
const MAX_RECORD_LINES: u64 = 200;

/// The records read ahead of the first row, to tell whether the file's rows
/// have as many fields as its header or one more (see `shifted`) before the
/// first of them is judged.
const LOOK_AHEAD: usize = 64;

/// The layout of a file: a known export format, or columns named by the user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant, reason = "one per import, not worth a box")]
pub enum Preset {
    /// A French spreadsheet saved by Excel as "CSV (séparateur: point-virgule)".
    FrExcel,
    /// A NationBuilder people export.
    NationBuilder,
    /// A Mailchimp audience export of subscribed contacts.
    MailchimpSubscribed,
    /// A Mailchimp audience export of unsubscribed contacts.
    MailchimpUnsubscribed,
    /// Columns named by the user.
    Custom(ColumnMapping),
}

impl Preset {
    /// The name of the format, as shown to users.
    pub fn name(&self) -> &'static str {
        match self {
            Preset::FrExcel => "French Excel",
            Preset::NationBuilder => "NationBuilder",
            Preset::MailchimpSubscribed => "Mailchimp subscribed",
            Preset::MailchimpUnsubscribed => "Mailchimp unsubscribed",
            Preset::Custom(_) => "custom",
        }
    }

    /// The name the API and the CLI take (`--preset nationbuilder`).
    pub fn api_name(&self) -> &'static str {
        match self {
            Preset::FrExcel => "fr_excel",
            Preset::NationBuilder => "nationbuilder",
            Preset::MailchimpSubscribed => "mailchimp_subscribed",
            Preset::MailchimpUnsubscribed => "mailchimp_unsubscribed",
            Preset::Custom(_) => "custom",
        }
    }
}

/// For each contact field, the header of the column that holds it, if any.
///
/// Headers match case-insensitively, ignoring surrounding spaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnMapping {
    /// Column of the first name.
    pub first_name: Option<String>,
    /// Column of the last name.
    pub last_name: Option<String>,
    /// Column of the e-mail address.
    pub email: Option<String>,
    /// Column of the phone number.
    pub phone: Option<String>,
    /// Column of the first address line.
    pub address_line1: Option<String>,
    /// Column of the postal code.
    pub postal_code: Option<String>,
    /// Column of the city.
    pub city: Option<String>,
    /// Column of the ISO 3166 alpha-2 country code.
    pub country: Option<String>,
    /// Column of the birth date (`dd/mm/yyyy`, `dd.mm.yyyy`, `dd-mm-yyyy`, `yyyy-mm-dd` or an
    /// Excel serial day; see [`crate::domain::date`]).
    pub birth_date: Option<String>,
    /// Column of the comma-separated tags.
    pub tags: Option<String>,
    /// Column saying whether the person agreed to receive e-mail (oui, vrai, yes, true, o, y
    /// or 1 for yes; see [`crate::domain::yes_no`]).
    pub email_consent: Option<String>,
    /// Column of the time of that agreement.
    pub email_consent_time: Option<String>,
    /// Column of the person's identifier in the source system.
    pub external_id: Option<String>,
    /// (custom field key, header) pairs; a header naming a field's key or
    /// label is read without being listed here.
    pub custom_fields: Vec<(String, String)>,
}

/// What one record of the file gave.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "the large variant is the common one"
)]
pub enum RowOutcome {
    /// A record with every field blank; not a contact.
    Empty {
        /// Line of the file where the record starts.
        line: u64,
    },
    /// A record that cannot become a contact, and why.
    Rejected {
        /// Line of the file where the record starts.
        line: u64,
        /// Every problem found, the last one saying why the row was refused.
        issues: Vec<RowIssue>,
    },
    /// A contact, possibly with values left out (see its `issues`).
    Row(ImportRow),
}

/// A contact read from one record, with only valid values.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRow {
    /// Physical line (1-based, header on line 1) where the record starts.
    pub line: u64,
    /// First name, trimmed, as given.
    pub first_name: Option<String>,
    /// Last name, trimmed, as given.
    pub last_name: Option<String>,
    /// E-mail address.
    pub email: Option<EmailAddress>,
    /// Phone number.
    pub phone: Option<PhoneNumber>,
    /// First address line.
    pub address_line1: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// City.
    pub city: Option<String>,
    /// ISO 3166 alpha-2 country code; "FR" when the file does not say.
    pub country: Option<String>,
    /// Where a French postal code (and the town, among the communes sharing
    /// the code) places the person.
    pub place: Option<crate::domain::territory::Place>,
    /// Birth date.
    pub birth_date: Option<NaiveDate>,
    /// Tags: trimmed, without empty ones or repeats (ignoring case), spelling kept.
    pub tags: Vec<String>,
    /// What the file says about e-mail consent.
    pub consent: ConsentStatement,
    /// Identifier in the source system, as (system, id), e.g. ("nationbuilder", "1000").
    pub external_id: Option<(String, String)>,
    /// Custom field values by key, canonical JSON.
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
    /// Values left out of this row, and why.
    pub issues: Vec<RowIssue>,
}

/// What a file says about a person's consent to receive e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentStatement {
    /// The file says nothing usable about consent.
    None,
    /// Consent was given at `time`; `evidence` lists where the file says so.
    Granted {
        /// When consent was given.
        time: DateTime<Utc>,
        /// (name, value) pairs backing the statement, e.g. ("optin_ip", "192.0.2.58").
        evidence: Vec<(String, String)>,
    },
    /// Consent was withdrawn at `time`; `evidence` lists where the file says so.
    Withdrawn {
        /// When consent was withdrawn.
        time: DateTime<Utc>,
        /// (name, value) pairs backing the statement, e.g. ("unsub_reason", "Other").
        evidence: Vec<(String, String)>,
    },
}

/// A value of a record that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowIssue {
    /// Line of the file where the record starts.
    pub line: u64,
    /// The field concerned, e.g. "email", "phone", "birth_date"; "contact" for the row.
    pub field: &'static str,
    /// The value as found in the file.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Why a whole file cannot be imported.
/// The header a file was found with, as an error shows it, unless its first
/// line is a person's row (it holds an e-mail address): that is personal
/// data, kept with the import's error and never erased with the person.
fn described(found: &[String]) -> String {
    const SHOWN: usize = 30;
    if found.iter().any(|cell| cell.contains('@')) {
        return "its first line holds an e-mail address: it is a person's row, not a header; \
                add the header line the format names and import the file again"
            .to_owned();
    }
    // Control characters are shown escaped: the message reaches terminals.
    let shown: Vec<String> = found
        .iter()
        .take(SHOWN)
        .map(|cell| {
            let cell: String = cell.chars().take(80).collect();
            cell.chars()
                .map(|c| match c.is_control() {
                    true => c.escape_debug().to_string(),
                    false => c.to_string(),
                })
                .collect()
        })
        .collect();
    let more = match found.len().saturating_sub(SHOWN) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    format!("the header has: {}{more}", shown.join(", "))
}

/// The advice to import with the preset the header fits, if any.
/// What a French Excel file may have instead of an e-mail column.
const PHONE_WOULD_DO: &str = " or a phone column (\"Téléphone portable\", \"Portable\", \
    \"Téléphone\"…)";

fn fitting(fits: Option<&(&'static str, &'static str)>) -> String {
    fits.map_or_else(String::new, |(name, api_name)| {
        format!("; the header fits the {name} format: import the file with the preset {api_name}")
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file has no header line.
    #[error("{file}: no header line, the file is empty")]
    NoHeader {
        /// The file concerned.
        file: String,
    },
    /// The file is a spreadsheet workbook, not a CSV file.
    #[error(
        "{file}: it is {kind}, not a CSV file: save it from the spreadsheet as \"CSV UTF-8\" \
         (or \"CSV (séparateur: point-virgule)\") and import that"
    )]
    Workbook {
        /// The file concerned.
        file: String,
        /// "an Excel workbook (.xlsx)", …
        kind: &'static str,
    },
    /// A column that the chosen format needs is not in the header.
    #[error(
        "{file}: the {preset} format needs a column {column:?}{}; {}{}",
        if *or_phone { PHONE_WOULD_DO } else { "" },
        described(found),
        fitting(fits.as_ref())
    )]
    MissingColumn {
        /// The file concerned.
        file: String,
        /// The chosen format.
        preset: &'static str,
        /// The header that was looked for.
        column: String,
        /// Whether a phone column would do instead.
        or_phone: bool,
        /// The headers of the file.
        found: Vec<String>,
        /// Another format the header has every needed column of, as (name
        /// shown, name the API takes).
        fits: Option<(&'static str, &'static str)>,
    },
    /// The header shows that the file is not in the chosen format.
    #[error("{file}: not a {preset} file: {reason}")]
    WrongPreset {
        /// The file concerned.
        file: String,
        /// The chosen format.
        preset: &'static str,
        /// What gives it away.
        reason: String,
    },
    /// The header line goes on with people's values: the file's line breaks
    /// were lost on the way, as `curl -d @FILE` strips them.
    #[error(
        "{file}: the header line goes on with people's values (an address or a number in \
         column {column}): the file's line breaks were lost on the way, as curl -d strips them; \
         send the file as it is (curl --data-binary @FILE); a file of one person needs the \
         header line above its row"
    )]
    JoinedLines {
        /// The file concerned.
        file: String,
        /// The first column holding an address, 1-based.
        column: usize,
    },
    /// The file could not be read.
    #[error("{file}: the file could not be read")]
    Unreadable {
        /// The file concerned.
        file: String,
        /// The read error.
        #[source]
        cause: std::io::Error,
    },
}

/// Reads the records of a supporter file one by one, in constant memory.
pub struct ImportReader<R: Read> {
    csv: csv::Reader<Decoding<R>>,
    record: ByteRecord,
    columns: Columns,
    encoding: &'static str,
    delimiter: u8,
    file: String,
    failure: Option<ImportError>,
    default_country: String,
    /// The header line, kept to find custom field columns.
    headers: Vec<String>,
    /// Its line number in the file.
    header_line: u64,
    /// The lines of one cell above the header, skipped as titles.
    titles: Vec<String>,
    /// Custom field columns the mapping names, as (key, header).
    custom_mapping: Vec<(String, String)>,
    /// Columns without a header, with the rows that held a value in them.
    unnamed: Vec<(usize, u64)>,
    /// Rows with as many fields as the header, and rows with more but all
    /// of them empty: which kind is the file's own, to tell a shifted row.
    rows_of_width: u64,
    rows_longer: u64,
    /// The first records, read ahead with the line each ends on, and the
    /// error that stopped reading them, if any.
    ahead: VecDeque<(ByteRecord, u64)>,
    ahead_error: Option<csv::Error>,
    read_ahead: bool,
    /// How many of those records have the header's width, and how many one
    /// more, empty, field: counted with the rows read so far.
    ahead_of_width: u64,
    ahead_longer: u64,
}

/// The line a record starts on, given the line the reader is on after it.
/// The record's own position is where reading began, before the blank
/// lines the reader skips; counting back from its end, by its line breaks
/// and the one that ended it, finds its first line. (A last record with no
/// line break after it, right after blank lines, is placed one line early.)
fn start_line(record: &ByteRecord, end_line: u64) -> u64 {
    let began = record.position().map_or(0, csv::Position::line);
    let breaks = record.as_slice().iter().filter(|&&b| b == b'\n').count() as u64;
    began.max(end_line.saturating_sub(1 + breaks))
}

/// How a record's width compares with the header's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Width {
    /// As many fields as the header.
    Header,
    /// More fields, all of those beyond the header's empty.
    OneEmptyMore,
    Other,
}

fn width_of(record: &ByteRecord, width: usize) -> Width {
    let length = record.len();
    if length == width {
        Width::Header
    } else if length > width
        && record
            .iter()
            .skip(width)
            .all(|field| field.trim_ascii().is_empty())
    {
        Width::OneEmptyMore
    } else {
        Width::Other
    }
}

/// Whether a header cell is an e-mail address: something before an `@`, a
/// dot after it, no spaces. A header names a column; it is never one.
fn looks_like_an_address(cell: &str) -> bool {
    cell.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !domain.ends_with('.')
            && !cell.chars().any(char::is_whitespace)
    })
}

/// The most lines of one cell (a title, a date, blank) read above a header.
const MAX_TITLE_LINES: usize = 5;

/// Whether a header cell is a number (a phone number, a postal code, an id):
/// five digits or more and no letter.
fn looks_like_a_number(cell: &str) -> bool {
    cell.chars().filter(char::is_ascii_digit).count() >= 5 && !cell.chars().any(char::is_alphabetic)
}

/// Whether `record` is the `sep=X` line Excel writes above a CSV's header.
fn is_separator_line(record: &ByteRecord) -> bool {
    let mut fields = record.iter();
    let first = fields.next().unwrap_or_default();
    first.len() <= 5
        && first.to_ascii_lowercase().starts_with(b"sep=")
        && fields.all(<[u8]>::is_empty)
}

/// A column of the file that no field is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadColumn {
    pub header: String,
    /// 1-based, as a spreadsheet counts them.
    pub column: usize,
    /// The column read under the same header, when this one repeats it.
    pub repeats: Option<usize>,
}

/// A custom field named by a column's header that is not filled from it,
/// because the preset reads that column as a person's own field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowedField {
    pub key: String,
    pub header: String,
    /// 1-based, as a spreadsheet counts them.
    pub column: usize,
}

impl<R: Read> ImportReader<R> {
    /// Sniffs encoding (first 64 KiB) and delimiter, reads the header, resolves the preset's
    /// columns.
    pub fn open(source: R, preset: Preset, source_label: &str) -> Result<Self, ImportError> {
        let unreadable = |cause| ImportError::Unreadable {
            file: source_label.to_owned(),
            cause,
        };
        let (decoding, sniffed) = Decoding::sniff(source).map_err(unreadable)?;
        if let Some(kind) = sniffed.workbook {
            return Err(ImportError::Workbook {
                file: source_label.to_owned(),
                kind,
            });
        }
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(sniffed.delimiter)
            .buffer_capacity(64 * 1024)
            .from_reader(decoding);

        let mut header = ByteRecord::new();
        let read_header = |csv: &mut csv::Reader<Decoding<R>>, header: &mut ByteRecord| {
            csv.read_byte_record(header).map_err(|error| {
                unreadable(std::io::Error::new(std::io::ErrorKind::InvalidData, error))
            })
        };
        let mut found = read_header(&mut csv, &mut header)?;
        // Excel's `sep=;` line names the separator (the sniffer read it from
        // that line); the header is the line after it.
        if found && is_separator_line(&header) {
            found = read_header(&mut csv, &mut header)?;
        }
        // The whole file on one line, with people's values in it: its line
        // breaks were lost (`curl -d @FILE` strips them). Read as it is, it
        // is a header that fails, or that imports no one and succeeds.
        // An address is no header even on a line of its own; a number is
        // one only on a line that ends the file.
        let joined = |cells: &[String], last_line: bool| {
            let at = cells.iter().position(|cell| {
                looks_like_an_address(cell) || last_line && looks_like_a_number(cell)
            })?;
            Some(ImportError::JoinedLines {
                file: source_label.to_owned(),
                column: at + 1,
            })
        };
        // A title typed above the header ("Adhérents au 1er décembre") is a
        // line of one cell; the header is the first line after it that the
        // format can read.
        let (mut titles, mut skipped, mut first_error) = (Vec::new(), 0, None);
        let (headers, columns) = loop {
            let headers: Vec<String> = header
                .iter()
                .map(|field| crate::domain::trim_blank(&String::from_utf8_lossy(field)).to_owned())
                .collect();
            let no_header = || ImportError::NoHeader {
                file: source_label.to_owned(),
            };
            if !found {
                return Err(first_error.unwrap_or_else(no_header));
            }
            // No line break after this line: nothing follows it in the file.
            let last_line =
                header.position().map_or(1, csv::Position::line) == csv.position().line();
            let error = match headers.iter().all(String::is_empty) {
                true => no_header(),
                false => match Columns::resolve(&preset, &headers, source_label) {
                    Ok(columns) => match joined(&headers, last_line) {
                        Some(error) => return Err(error),
                        None => break (headers, columns),
                    },
                    Err(error) => error,
                },
            };
            // A header that fails on the file's last line, with values in it.
            if let Some(error) = joined(&headers, last_line).filter(|_| last_line) {
                return Err(error);
            }
            let mut cells = headers.iter().filter(|cell| !cell.is_empty());
            let title = matches!(
                error,
                ImportError::MissingColumn { .. } | ImportError::NoHeader { .. }
            ) && cells.clone().count() <= 1
                && !cells.any(|cell| looks_like_an_address(cell))
                && skipped < MAX_TITLE_LINES;
            if !title {
                return Err(error);
            }
            titles.extend(headers.into_iter().find(|cell| !cell.is_empty()));
            first_error.get_or_insert(error);
            skipped += 1;
            found = read_header(&mut csv, &mut header)?;
        };
        let header_line = start_line(&header, csv.position().line()).max(1);
        let custom_mapping = match preset {
            Preset::Custom(mapping) => mapping.custom_fields,
            _ => Vec::new(),
        };
        let unnamed: Vec<(usize, u64)> = headers
            .iter()
            .enumerate()
            .filter(|(_, name)| name.is_empty())
            .map(|(index, _)| (index, 0))
            .collect();

        let encoding = sniffed.encoding.name();
        tracing::debug!(
            file = source_label,
            encoding,
            delimiter = %char::from(sniffed.delimiter).escape_default(),
            columns = headers.len(),
            "import file opened"
        );
        Ok(Self {
            csv,
            record: ByteRecord::new(),
            columns,
            encoding,
            delimiter: sniffed.delimiter,
            file: source_label.to_owned(),
            failure: None,
            default_country: "FR".to_owned(),
            headers,
            header_line,
            titles,
            custom_mapping,
            unnamed,
            rows_of_width: 0,
            rows_longer: 0,
            ahead: VecDeque::new(),
            ahead_error: None,
            read_ahead: false,
            ahead_of_width: 0,
            ahead_longer: 0,
        })
    }

    /// Reads the organization's custom fields too: the columns the mapping
    /// names, and every other column whose header is a field's key or label.
    pub fn with_custom_fields(mut self, fields: &Definitions) -> Result<Self, ImportError> {
        self.columns
            .resolve_custom(fields, &self.custom_mapping, &self.headers, &self.file)?;
        Ok(self)
    }

    /// The header's line number in the file (after a `sep=` line or titles).
    pub fn header_line(&self) -> u64 {
        self.header_line
    }

    /// The lines of one cell read above the header as titles, as written.
    pub fn titles(&self) -> &[String] {
        &self.titles
    }

    /// The columns with a header that no field is read from, in file order;
    /// a header that repeats an earlier one says which.
    pub fn unread_columns(&self) -> Vec<UnreadColumn> {
        // The first column of each header, compared as headers are (a file may have
        // tens of thousands of columns: no comparing each with all before).
        let mut first: std::collections::HashMap<String, usize> = Default::default();
        let mut unread = Vec::new();
        for (index, name) in self.headers.iter().enumerate() {
            let earlier = *first
                .entry(crate::domain::header_key(name))
                .or_insert(index);
            if name.is_empty() || self.columns.reads(index) {
                continue;
            }
            unread.push(UnreadColumn {
                header: name.clone(),
                column: index + 1,
                repeats: (earlier < index).then_some(earlier + 1),
            });
        }
        unread
    }

    /// The custom fields that a column's header names but that are not filled
    /// from it, another field reading that column, in file order.
    pub fn shadowed_fields(&self) -> Vec<ShadowedField> {
        self.columns
            .shadowed
            .iter()
            .map(|(index, key)| ShadowedField {
                key: key.clone(),
                header: self.headers[*index].clone(),
                column: index + 1,
            })
            .collect()
    }

    /// The columns without a header that held a value in some row read so
    /// far, 1-based, with how many rows did: their values are not imported.
    pub fn unnamed_values(&self) -> Vec<(usize, u64)> {
        self.unnamed
            .iter()
            .filter(|(_, rows)| *rows > 0)
            .map(|(index, rows)| (index + 1, *rows))
            .collect()
    }

    /// Reads rows without a country, and national phone numbers, as being in
    /// `country` (ISO 3166-1 alpha-2) instead of France.
    pub fn with_default_country(mut self, country: &str) -> Self {
        self.default_country = country.to_ascii_uppercase();
        self
    }

    /// The encoding the file was read in, e.g. "UTF-8" or "windows-1252".
    pub fn encoding(&self) -> &'static str {
        self.encoding
    }

    /// The field delimiter: `b','`, `b';'` or `b'\t'`.
    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }

    /// Raw bytes taken from the source so far (read ahead of the rows returned by a buffer).
    pub fn bytes_read(&self) -> u64 {
        self.csv.get_ref().bytes_read()
    }

    /// The next record, or `None` at the end of the file or on a read error (see
    /// [`ImportReader::take_error`]).
    pub fn next_row(&mut self) -> Option<RowOutcome> {
        if !self.read_ahead {
            self.read_ahead();
        }
        let end_line = match self.ahead.pop_front() {
            Some((record, end_line)) => {
                self.record = record;
                end_line
            }
            None => {
                if let Some(error) = self.ahead_error.take() {
                    self.fail(error);
                    return None;
                }
                match self.csv.read_byte_record(&mut self.record) {
                    Ok(true) => self.csv.position().line(),
                    Ok(false) => return None,
                    Err(error) => {
                        self.fail(error);
                        return None;
                    }
                }
            }
        };
        for (index, rows) in &mut self.unnamed {
            let held = self.record.get(*index).is_some_and(|field| {
                std::str::from_utf8(field)
                    .map_or(true, |text| !crate::domain::trim_blank(text).is_empty())
            });
            *rows += u64::from(held);
        }
        let line = start_line(&self.record, end_line);
        let spanned = end_line.saturating_sub(line);
        if spanned > MAX_RECORD_LINES {
            // Far more line breaks than any real field holds: a quote was
            // opened and never closed, and swallowed the rows after it.
            let reason = format!(
                "a quoted field opened on this line runs over {spanned} lines: a closing quote \
                 is probably missing, and the rows it swallowed are not imported; fix the \
                 quote and import the file again (rows already imported merge)"
            );
            let issue = RowIssue {
                line,
                field: "row",
                value: String::new(),
                reason,
            };
            return Some(RowOutcome::Rejected {
                line,
                issues: vec![issue],
            });
        }
        if let Some(rejected) = self.shifted(line) {
            return Some(rejected);
        }
        Some(row::read(
            &self.record,
            line,
            &self.columns,
            self.encoding,
            &self.default_country,
        ))
    }

    /// Reads the first records ahead, counting their widths.
    fn read_ahead(&mut self) {
        self.read_ahead = true;
        while self.ahead.len() < LOOK_AHEAD {
            let mut record = ByteRecord::new();
            match self.csv.read_byte_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(error) => {
                    self.ahead_error = Some(error);
                    break;
                }
            }
            if !row::is_blank(&record) {
                match width_of(&record, self.columns.width) {
                    Width::Header => self.ahead_of_width += 1,
                    Width::OneEmptyMore => self.ahead_longer += 1,
                    Width::Other => {}
                }
            }
            self.ahead.push_back((record, self.csv.position().line()));
        }
    }

    /// Ends the reading on a read error, kept for [`ImportReader::take_error`].
    fn fail(&mut self, error: csv::Error) {
        let cause = match error.into_kind() {
            csv::ErrorKind::Io(cause) => cause,
            other => std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{other:?}")),
        };
        self.failure = Some(ImportError::Unreadable {
            file: self.file.clone(),
            cause,
        });
    }

    /// The rejection of the current record when it has one field more than
    /// the header, empty, while the file's rows (those before it, and the
    /// first ones read ahead) mostly have as many fields as the header: a
    /// separator inside an unquoted field (an address with a ';') shifted its
    /// values by one, and the empty last column spilled over. A file whose
    /// rows all end with an extra separator is read as is.
    fn shifted(&mut self, line: u64) -> Option<RowOutcome> {
        if row::is_blank(&self.record) {
            return None;
        }
        let width = self.columns.width;
        let length = self.record.len();
        let kind = width_of(&self.record, width);
        // The rows read ahead count from the first row on, so that the first
        // rows are judged as the others are.
        let shifted = kind == Width::OneEmptyMore
            && self.rows_of_width + self.ahead_of_width > self.rows_longer + self.ahead_longer;
        match kind {
            Width::Header => self.rows_of_width += 1,
            Width::OneEmptyMore => self.rows_longer += 1,
            Width::Other => {}
        }
        if !shifted {
            return None;
        }
        let reason = format!(
            "{} field(s) more than the header, where the file's rows have as many as it: a \
             separator inside a field (an address with a ';') shifted the row's values, so the \
             row is not imported: quote that field and import the file again",
            length - width
        );
        let issue = RowIssue {
            line,
            field: "row",
            value: String::new(),
            reason,
        };
        Some(RowOutcome::Rejected {
            line,
            issues: vec![issue],
        })
    }

    /// The read error that ended [`ImportReader::next_row`] early, if any: a file is complete
    /// only when `next_row` returned `None` and this returns `None` too.
    pub fn take_error(&mut self) -> Option<ImportError> {
        self.failure.take()
    }
}
