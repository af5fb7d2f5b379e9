//! Cells of the CSV files Muster writes, made safe to open in a spreadsheet.
//!
//! Spreadsheet programs evaluate a cell that starts with `=`, `+`, `-` or `@`
//! as a formula, some read a leading `|` as a DDE call, some treat a leading
//! TAB or carriage return the same way, and some fold the full-width forms
//! `＝` `＋` `－` `＠` (U+FF1D, U+FF0B, U+FF0D, U+FF20) into their ASCII
//! counterparts before evaluating, so a name such as
//! `=HYPERLINK("http://evil","click")` typed into a form would run when an
//! organizer opens an export (CSV or formula injection). Every CSV cell the
//! project writes goes through [`neutralize`], which puts an apostrophe in
//! front of such a cell: spreadsheets then show it as text, and a person
//! reading the file sees the original value after the apostrophe. Values that
//! start otherwise are written unchanged.

use std::borrow::Cow;

/// Characters that make a spreadsheet read a cell as a formula.
const FORMULA_STARTS: &[char] = &[
    '=', '+', '-', '@', '|', '\t', '\r', '\u{FF1D}', '\u{FF0B}', '\u{FF0D}', '\u{FF20}',
];

/// `cell`, prefixed with `'` when it starts like a formula.
pub fn neutralize(cell: &str) -> Cow<'_, str> {
    match cell.starts_with(FORMULA_STARTS) {
        true => Cow::Owned(format!("'{cell}")),
        false => Cow::Borrowed(cell),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_formula_gets_a_leading_apostrophe() {
        assert_eq!(
            neutralize("=HYPERLINK(\"http://x\",\"y\")"),
            "'=HYPERLINK(\"http://x\",\"y\")"
        );
        let cells = [
            "+1",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "|calc!A0",
            "＝HYPERLINK(\"http://x\")",
            "＋1",
            "－2",
            "＠SUM(A1)",
        ];
        for cell in cells {
            assert_eq!(neutralize(cell), format!("'{cell}"), "{cell:?}");
        }
    }

    #[test]
    fn ordinary_values_are_unchanged() {
        let cells = [
            "",
            "Jean",
            "jean@example.org",
            "2024-01-01",
            "a=b",
            " =x",
            "a|b",
            "a＝b",
            "Ｊean",
        ];
        for cell in cells {
            assert!(matches!(neutralize(cell), Cow::Borrowed(_)), "{cell:?}");
            assert_eq!(neutralize(cell), cell);
        }
    }
}
