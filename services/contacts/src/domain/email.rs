use std::fmt;

use email_address::{Error as SyntaxError, Options};

use super::{FieldError, is_blank, nfc, trim_blank};

/// A syntactically valid e-mail address, spelled as given, with a lowercased matching key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress {
    address: String,
    key: String,
}

impl EmailAddress {
    /// Parses `raw`, ignoring blank characters at both ends; an accent typed
    /// as a letter and a combining mark is composed, so that one address
    /// written both ways is one person.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let address = nfc(trim_blank(raw));
        check(&address).map_err(|why| FieldError::new(format!("not an e-mail address: {why}")))?;
        Ok(Self {
            key: address.to_lowercase(),
            address,
        })
    }

    /// The address as it was spelled.
    pub fn as_str(&self) -> &str {
        &self.address
    }

    /// The lowercased address, used to recognise the same person across spellings.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The common mailbox domain this address's domain is one keystroke
    /// from (`gmail.con`, `hotmial.fr`), when it is not one itself: mail
    /// to it bounces, and a bounce costs the sender its reputation.
    pub fn likely_misspelt_domain(&self) -> Option<&'static str> {
        let (_, domain) = self.key.rsplit_once('@')?;
        if COMMON_DOMAINS.contains(&domain) || NEIGHBOURS.contains(&domain) {
            return None;
        }
        COMMON_DOMAINS
            .into_iter()
            .find(|common| one_keystroke_apart(domain, common))
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address)
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.address
    }
}

/// The address in a cell written as mail programs copy one: `Marie Dupont
/// <marie@example.org>` or `mailto:marie@example.org`; any other cell as it is.
pub fn unwrap_address(cell: &str) -> &str {
    let cell = trim_blank(cell);
    let inner = match cell.rfind('<') {
        Some(open) if cell.ends_with('>') => trim_blank(&cell[open + 1..cell.len() - 1]),
        _ => cell,
    };
    match inner.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("mailto:") => {
            let link = &inner[7..];
            link.split_once('?')
                .map_or(link, |(address, _query)| address)
        }
        _ => inner,
    }
}

/// The mailbox providers most French supporter files hold, long enough
/// that a name one keystroke away is rarely anyone's own domain.
const COMMON_DOMAINS: [&str; 11] = [
    "gmail.com",
    "hotmail.fr",
    "hotmail.com",
    "yahoo.fr",
    "yahoo.com",
    "orange.fr",
    "wanadoo.fr",
    "laposte.net",
    "outlook.fr",
    "outlook.com",
    "icloud.com",
];

/// Real domains one keystroke from a common one.
const NEIGHBOURS: [&str; 4] = ["mail.com", "email.com", "ymail.com", "cloud.com"];

/// Whether one substitution, insertion, deletion or swap of two neighbours
/// turns `a` into `b` (and `a` is not `b`).
fn one_keystroke_apart(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let start = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[start..], &b[start..]);
    match (a.len(), b.len()) {
        (0, 0) => false,
        (m, n) if m == n => {
            a[1..] == b[1..] || (m >= 2 && a[0] == b[1] && a[1] == b[0] && a[2..] == b[2..])
        }
        (m, n) if m == n + 1 => a[1..] == *b,
        (m, n) if m + 1 == n => *a == b[1..],
        _ => false,
    }
}

fn check(address: &str) -> Result<(), &'static str> {
    if address.is_empty() {
        return Err("empty");
    }
    if address.contains(is_blank) {
        return Err("contains a space");
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Err("missing @");
    };
    if local.contains('@') && !local.starts_with('"') {
        return Err("more than one @");
    }
    if local.is_empty() {
        return Err("nothing before the @");
    }
    if domain.is_empty() {
        return Err("nothing after the @");
    }
    if !domain.contains('.') {
        return Err("the domain has no dot");
    }

    let options = Options::default()
        .with_required_tld()
        .without_display_text()
        .without_domain_literal();
    email_address::EmailAddress::parse_with_options(address, options).map_err(explain)?;

    // The syntax crate accepts any atom character in a domain label; host names do not.
    let label_ok = |label: &str| label.chars().all(|c| c.is_alphanumeric() || c == '-');
    if !domain.split('.').all(label_ok) {
        return Err("invalid character in the domain");
    }
    Ok(())
}

fn explain(error: SyntaxError) -> &'static str {
    match error {
        SyntaxError::MissingSeparator => "missing @",
        SyntaxError::LocalPartEmpty => "nothing before the @",
        SyntaxError::DomainEmpty => "nothing after the @",
        SyntaxError::DomainTooFew => "the domain has no dot",
        SyntaxError::SubDomainEmpty => "empty label in the domain (dot at an end or doubled)",
        SyntaxError::LocalPartTooLong => "too long before the @",
        SyntaxError::DomainTooLong | SyntaxError::SubDomainTooLong => "domain too long",
        SyntaxError::InvalidCharacter => "invalid character or misplaced dot",
        SyntaxError::UnsupportedDomainLiteral => "an IP address instead of a domain",
        _ => "invalid syntax",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(raw: &str) -> String {
        EmailAddress::parse(raw).unwrap_err().reason
    }

    #[test]
    fn an_address_copied_from_a_mail_program_is_unwrapped() {
        for cell in [
            "Marie Dupont <marie@example.org>",
            "\"Dupont, Marie\" < marie@example.org >",
            "mailto:marie@example.org",
            "MAILTO:marie@example.org",
            "<mailto:marie@example.org>",
            "MAILTO:marie@example.org?subject=Adh%C3%A9sion",
            "<mailto:marie@example.org?cc=paul@example.org&body=Bonjour>",
            " marie@example.org ",
        ] {
            assert_eq!(unwrap_address(cell), "marie@example.org", "{cell:?}");
        }
        for cell in ["marie@example.org>", "a <b", "mailto", "é"] {
            assert_eq!(unwrap_address(cell), cell, "{cell:?}");
        }
    }

    #[test]
    fn a_domain_one_keystroke_from_a_common_one_is_flagged() {
        let misspelt = |raw: &str| EmailAddress::parse(raw).unwrap().likely_misspelt_domain();
        for (raw, common) in [
            ("a@gmail.con", "gmail.com"),
            ("a@gmial.com", "gmail.com"),
            ("a@Gmail.co", "gmail.com"),
            ("a@gmaill.com", "gmail.com"),
            ("a@hotmial.fr", "hotmail.fr"),
            ("a@hotmail.fe", "hotmail.fr"),
            ("a@orange.fe", "orange.fr"),
            ("a@wanadou.fr", "wanadoo.fr"),
            ("a@yahoo.ff", "yahoo.fr"),
        ] {
            assert_eq!(misspelt(raw), Some(common), "{raw}");
        }
        for raw in [
            "a@gmail.com",
            "a@hotmail.com",
            "a@yahoo.com",
            "a@mail.com",
            "a@ymail.com",
            "a@email.com",
            "a@cloud.com",
            "a@example.org",
            "a@free.fr",
            "a@gmx.fr",
            "a@outlook.be",
        ] {
            assert_eq!(misspelt(raw), None, "{raw}");
        }
    }

    #[test]
    fn an_address_keeps_its_spelling_and_its_key_is_lowercased() {
        let email = EmailAddress::parse("Noemi.Andre@Example.Org").unwrap();

        assert_eq!(email.as_str(), "Noemi.Andre@Example.Org");
        assert_eq!(email.key(), "noemi.andre@example.org");
    }

    #[test]
    fn a_decomposed_accent_is_composed_so_both_spellings_are_one_key() {
        let decomposed = EmailAddress::parse("E\u{301}lodie@example.org").unwrap();
        let composed = EmailAddress::parse("\u{e9}lodie@example.org").unwrap();

        assert_eq!(decomposed.key(), composed.key());
        assert_eq!(decomposed.as_str(), "\u{c9}lodie@example.org");
    }

    #[test]
    fn blank_characters_around_an_address_are_trimmed() {
        let padded = [
            "  marc.roux@example.org ",
            "marc.roux@example.org\u{00A0}",
            "\u{202F}marc.roux@example.org\u{2007}",
            "\u{200B}marc.roux@example.org\u{200D}",
            "\u{FEFF}\tmarc.roux@example.org\u{200C}\r\n",
        ];

        for raw in padded {
            let email = EmailAddress::parse(raw).unwrap();
            assert_eq!(email.as_str(), "marc.roux@example.org", "from {raw:?}");
        }
    }

    #[test]
    fn invalid_forms_are_rejected_with_a_reason() {
        let cases = [
            ("", "not an e-mail address: empty"),
            (" \u{00A0} ", "not an e-mail address: empty"),
            ("marc.roux.example.org", "not an e-mail address: missing @"),
            (
                "marc.roux@@example.org",
                "not an e-mail address: more than one @",
            ),
            (
                "marc roux@example.org",
                "not an e-mail address: contains a space",
            ),
            (
                "marc.roux@exa\u{00A0}mple.org",
                "not an e-mail address: contains a space",
            ),
            (
                "marc.roux@localhost",
                "not an e-mail address: the domain has no dot",
            ),
            (
                "@example.org",
                "not an e-mail address: nothing before the @",
            ),
            ("marc.roux@", "not an e-mail address: nothing after the @"),
            (
                "marc.roux.@example.org",
                "not an e-mail address: invalid character or misplaced dot",
            ),
            (
                ".marc@example.org",
                "not an e-mail address: invalid character or misplaced dot",
            ),
            (
                "marc..roux@example.org",
                "not an e-mail address: invalid character or misplaced dot",
            ),
            (
                "marc@example..org",
                "not an e-mail address: empty label in the domain (dot at an end or doubled)",
            ),
            (
                "marc@example.org.",
                "not an e-mail address: empty label in the domain (dot at an end or doubled)",
            ),
            (
                "marc@exa_mple.org",
                "not an e-mail address: invalid character in the domain",
            ),
            (
                "Marc <marc@example.org>",
                "not an e-mail address: contains a space",
            ),
            (
                "marc@[192.0.2.1]",
                "not an e-mail address: an IP address instead of a domain",
            ),
        ];

        for (raw, expected) in cases {
            assert_eq!(reason(raw), expected, "for {raw:?}");
        }
    }

    const BLANKS: [&str; 9] = [
        " ", "\u{00A0}", "\u{202F}", "\u{2007}", "\u{200B}", "\u{200C}", "\u{FEFF}", "\t", "\r\n",
    ];
    const ADDRESSES: [&str; 4] = [
        "a@b.co",
        "Jean.Dupont@Example.ORG",
        "o'neil+tag@mail.example.fr",
        "ÉLODIE@exemple.test",
    ];

    #[test]
    fn any_blank_padding_of_a_valid_address_gives_the_same_address_and_key() {
        let pads = std::iter::once(String::new())
            .chain(BLANKS.iter().map(|b| (*b).to_owned()))
            .chain([BLANKS.concat()]);
        let pads: Vec<String> = pads.collect();

        for address in ADDRESSES {
            for left in &pads {
                for right in &pads {
                    let email = EmailAddress::parse(&format!("{left}{address}{right}")).unwrap();
                    assert_eq!(email.as_str(), address);
                    assert_eq!(email.key(), address.to_lowercase());
                }
            }
        }
    }

    #[test]
    fn a_blank_character_anywhere_inside_an_address_is_refused() {
        for address in ADDRESSES {
            let inner = address.char_indices().skip(1).map(|(at, _)| at);
            for (at, blank) in inner.flat_map(|at| BLANKS.iter().map(move |b| (at, b))) {
                let raw = format!("{}{blank}{}", &address[..at], &address[at..]);
                assert!(EmailAddress::parse(&raw).is_err(), "accepted {raw:?}");
            }
        }
    }

    #[test]
    fn unusual_but_valid_addresses_are_accepted() {
        for raw in [
            "o'neil+news@mail.example.fr",
            "élodie@exemple.test",
            "a@b.co",
        ] {
            assert_eq!(EmailAddress::parse(raw).unwrap().as_str(), raw);
        }
    }
}
