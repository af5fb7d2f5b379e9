//! Parsed contact values: a value of these types that exists is valid.

pub mod custom_field;
pub mod date;
mod email;
mod phone;
pub mod territory;
pub mod yes_no;

pub use email::{EmailAddress, unwrap_address};
pub use phone::PhoneNumber;

/// Why a raw value could not become a domain value, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct FieldError {
    /// What is wrong with the value, e.g. "not an e-mail address: missing @".
    pub reason: String,
}

impl FieldError {
    /// A field error with the given reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// Whether `c` is blank: any Unicode white space or an invisible formatting character.
pub fn is_blank(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{180E}' | '\u{00AD}'
        )
}

/// `raw` without the blank characters (spaces of every kind, invisible ones) at both ends.
pub fn trim_blank(raw: &str) -> &str {
    raw.trim_matches(is_blank)
}

/// `text` in Unicode normalisation form C: an accent typed as a letter followed by a
/// combining mark (as macOS writes file names and some exports) becomes the one precomposed
/// character, so that "adhe\u{301}rent" and "adhérent" are the same tag, name or city.
pub fn nfc(text: &str) -> String {
    use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};
    match is_nfc_quick(text.chars()) {
        IsNormalized::Yes => text.to_owned(),
        _ => text.nfc().collect(),
    }
}

/// A lowercase letter without its accent, for the letters French writes
/// with one; any other character as it is.
pub(crate) fn unaccented(c: char) -> char {
    match c {
        'à' | 'â' | 'ä' | 'á' => 'a',
        'é' | 'è' | 'ê' | 'ë' => 'e',
        'î' | 'ï' | 'í' => 'i',
        'ô' | 'ö' | 'ó' => 'o',
        'ù' | 'û' | 'ü' | 'ú' => 'u',
        'ç' => 'c',
        'ÿ' => 'y',
        c => c,
    }
}

/// The form a file's column header is compared in, with preset columns and
/// custom fields alike: composed, lowercase, without accents, curly
/// apostrophes and dashes made plain, blanks of any kind made one space and
/// trimmed. "Date d’inscription", "date  d'inscription" and "DATE
/// D'INSCRIPTION" are one header.
pub fn header_key(header: &str) -> String {
    let folded: String = nfc(header)
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| match unaccented(c) {
            '\u{2018}' | '\u{2019}' | '\u{02BC}' | '\u{00B4}' | '`' => '\'',
            '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
            c if is_blank(c) => ' ',
            c => c,
        })
        .collect();
    folded
        .split(' ')
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_compare_ignoring_case_accents_apostrophes_and_spacing() {
        let spellings = [
            "Date d'inscription",
            "date d\u{2019}inscription",
            " DATE  D'INSCRIPTION\u{00A0}",
            "Date\u{00A0}d'inscription",
            "Date d\u{2018}inscription",
            "Da\u{0302}te d'inscription",
        ];
        for spelling in spellings {
            assert_eq!(header_key(spelling), "date d'inscription", "{spelling:?}");
        }
        assert_eq!(header_key("E\u{2013}mail"), "e-mail");
        assert_ne!(header_key("Email"), header_key("E-mail"));
    }

    #[test]
    fn decomposed_accents_are_composed() {
        let decomposed = "adhe\u{301}rent Ho\u{302}tel-de\u{301}-Ville";

        assert_eq!(nfc(decomposed), "adh\u{e9}rent H\u{f4}tel-d\u{e9}-Ville");
        assert_ne!(decomposed, nfc(decomposed));
        assert_eq!(nfc("adhérent"), "adhérent");
    }

    #[test]
    fn trimming_removes_every_kind_of_space_and_invisible_character() {
        let raw = "\u{FEFF}\u{200B} \t\u{00A0}Jean\u{202F}Dupont\u{2007}\u{200D}\u{00A0}\r\n";

        assert_eq!(trim_blank(raw), "Jean\u{202F}Dupont");
    }

    #[test]
    fn trimming_a_blank_value_leaves_nothing() {
        assert_eq!(trim_blank(" \u{00A0}\u{200C}\t"), "");
    }
}
