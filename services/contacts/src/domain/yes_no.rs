//! Yes/no answers as supporter files and users write them.
//!
//! One list serves the import's yes/no columns (consent, a bad-address flag)
//! and boolean custom fields: both are filled from the same spreadsheets,
//! where one answer must mean the same thing in every column. It holds
//! French and English words, French Excel's `VRAI`/`FAUX` (how it writes
//! TRUE and FALSE), the `O`/`N` and `Y`/`N` of abbreviated columns, and 1/0.
//! None of them can be mistaken for the other answer, so a short form
//! accepted in a custom field costs nothing.

/// The accepted answers, for the texts that ask for one.
pub const YES_NO_FORMS: &str = "oui/non, vrai/faux, yes/no, true/false, o/n, y/n or 1/0";

const YES: [&str; 7] = ["oui", "vrai", "yes", "true", "o", "y", "1"];
const NO: [&str; 6] = ["non", "faux", "no", "false", "n", "0"];

/// `true` for a yes, `false` for a no, in any case; `None` for anything else.
pub fn parse_yes_no(text: &str) -> Option<bool> {
    let text = super::trim_blank(text);
    if YES.iter().any(|yes| text.eq_ignore_ascii_case(yes)) {
        Some(true)
    } else if NO.iter().any(|no| text.eq_ignore_ascii_case(no)) {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yes_and_no_are_understood_in_french_english_and_french_excel() {
        for yes in [
            "oui", "OUI", "Vrai", "VRAI", "yes", "True", "O", "y", "1", " vrai ",
        ] {
            assert_eq!(parse_yes_no(yes), Some(true), "{yes:?}");
        }
        for no in ["non", "Faux", "FAUX", "No", "false", "N", "0"] {
            assert_eq!(parse_yes_no(no), Some(false), "{no:?}");
        }
    }

    #[test]
    fn anything_else_is_no_answer() {
        for other in ["", "peut-être", "vraiment", "x", "2", "oui non", "ja"] {
            assert_eq!(parse_yes_no(other), None, "{other:?}");
        }
    }
}
