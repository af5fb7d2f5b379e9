use std::fmt;

use phonenumber::country::Id;
use phonenumber::metadata::DATABASE;
use phonenumber::{ParseError, Type};

use super::{FieldError, is_blank, trim_blank};

/// A phone number that libphonenumber considers valid, held in E.164 form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber {
    e164: String,
}

/// Regions sharing the French ten-digit national plan (trunk prefix 0, disjoint ranges).
const FRENCH_PLAN: [Id; 6] = [Id::FR, Id::GP, Id::MQ, Id::GF, Id::RE, Id::YT];

impl PhoneNumber {
    /// Parses `raw` in national or international form.
    ///
    /// A national number is read in `default_region`; for France, a postal code of an
    /// overseas territory (971 to 978) selects that territory's region instead. Since
    /// metropolitan and overseas France share one numbering plan, a national number that is
    /// valid only in another region of that plan (a Réunion mobile held by someone living in
    /// Lyon) is read in that region.
    pub fn parse(
        raw: &str,
        default_region: Id,
        postal_code: Option<&str>,
    ) -> Result<Self, FieldError> {
        let cleaned = clean(raw);
        if cleaned.is_empty() {
            return Err(FieldError::new("empty phone number"));
        }
        if !cleaned.bytes().any(|b| b.is_ascii_digit()) {
            return Err(FieldError::new("not a phone number: no digits"));
        }

        let region = match postal_code.and_then(overseas_region) {
            Some(overseas) if default_region == Id::FR => overseas,
            _ => default_region,
        };
        let number = phonenumber::parse(Some(region), &cleaned)
            .map_err(|error| FieldError::new(explain_parse(&error, region)))?;
        if number.is_valid() {
            return Ok(Self::from_valid(&number));
        }

        // Only ten-digit national numbers (0 and nine digits) can belong to the shared plan.
        let ten_digit_national = cleaned.len() == 10 && cleaned.starts_with('0');
        let plan_digits = ten_digit_national && cleaned.bytes().all(|b| b.is_ascii_digit());
        if plan_digits && FRENCH_PLAN.contains(&default_region) {
            let national = &cleaned[1..];
            let elsewhere = FRENCH_PLAN
                .iter()
                .filter(|other| **other != region && may_belong(**other, national))
                .filter_map(|other| phonenumber::parse(Some(*other), &cleaned).ok())
                .find(phonenumber::PhoneNumber::is_valid);
            if let Some(number) = elsewhere {
                return Ok(Self::from_valid(&number));
            }
        }
        Err(FieldError::new(explain_invalid(&number, region)))
    }

    /// The number in E.164 form, e.g. `+33612345678`.
    pub fn as_str(&self) -> &str {
        &self.e164
    }

    fn from_valid(number: &phonenumber::PhoneNumber) -> Self {
        let national = number.national();
        let zeros = "0".repeat(usize::from(national.zeros()));
        Self {
            e164: format!("+{}{zeros}{}", number.code().value(), national.value()),
        }
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.e164)
    }
}

impl AsRef<str> for PhoneNumber {
    fn as_ref(&self) -> &str {
        &self.e164
    }
}

/// Whether `national` matches the general pattern of a region sharing `region`'s calling
/// code: a cheap test that spares a full parse for most numbers that belong nowhere.
fn may_belong(region: Id, national: &str) -> bool {
    let Some(meta) = DATABASE.by_id(region.as_ref()) else {
        return true;
    };
    DATABASE
        .by_code(&meta.country_code())
        .is_none_or(|sharing| {
            sharing
                .iter()
                .any(|meta| meta.descriptors().general().is_match(national))
        })
}

/// The region of a French overseas postal code (971xx to 978xx), if it is one.
fn overseas_region(postal_code: &str) -> Option<Id> {
    let code = trim_blank(postal_code);
    if code.len() != 5 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match &code[..3] {
        "971" => Some(Id::GP),
        "972" => Some(Id::MQ),
        "973" => Some(Id::GF),
        "974" => Some(Id::RE),
        "975" => Some(Id::PM),
        "976" => Some(Id::YT),
        "977" => Some(Id::BL),
        "978" => Some(Id::MF),
        _ => None,
    }
}

/// `raw` trimmed and without the "(0)" of `+33 (0)6…`; when it holds only digits and
/// separators, just its digits and leading `+` (which libphonenumber parses fastest).
fn clean(raw: &str) -> String {
    let trimmed = trim_blank(raw).replace("(0)", "");
    let separator = |c: char| is_blank(c) || matches!(c, '.' | '-' | '/' | '(' | ')');
    let plain = trimmed
        .char_indices()
        .all(|(at, c)| c.is_ascii_digit() || separator(c) || (c == '+' && at == 0));
    if plain {
        trimmed.chars().filter(|c| !separator(*c)).collect()
    } else {
        trimmed
            .chars()
            .map(|c| if is_blank(c) { ' ' } else { c })
            .collect()
    }
}

fn explain_parse(error: &ParseError, region: Id) -> String {
    let region = region.as_ref();
    match error {
        ParseError::NoNumber => "not a phone number".to_owned(),
        ParseError::InvalidCountryCode => "unknown country calling code".to_owned(),
        ParseError::TooShortAfterIdd | ParseError::TooShortNsn => {
            format!("phone number too short for {region}")
        }
        ParseError::TooLong => format!("phone number too long for {region}"),
        other => format!("not a phone number: {other}"),
    }
}

fn explain_invalid(number: &phonenumber::PhoneNumber, default: Id) -> String {
    let region = number.country().id().unwrap_or(default);
    let national = number.national();
    let digits = national.value().checked_ilog10().map_or(1, |log| log + 1) as usize;
    let digits = digits + usize::from(national.zeros());
    let lengths = possible_lengths(region);
    let name = region.as_ref();
    match (lengths.iter().min(), lengths.iter().max()) {
        (Some(&min), _) if digits < usize::from(min) => {
            format!("phone number too short for {name}")
        }
        (_, Some(&max)) if digits > usize::from(max) => {
            format!("phone number too long for {name}")
        }
        _ => format!("not a valid phone number for {name}: no such number range"),
    }
}

/// The lengths of national significant numbers of any type in `region`.
fn possible_lengths(region: Id) -> Vec<u16> {
    const TYPES: [Type; 10] = [
        Type::FixedLine,
        Type::Mobile,
        Type::TollFree,
        Type::PremiumRate,
        Type::SharedCost,
        Type::PersonalNumber,
        Type::Voip,
        Type::Pager,
        Type::Uan,
        Type::Voicemail,
    ];
    let Some(meta) = DATABASE.by_id(region.as_ref()) else {
        return Vec::new();
    };
    TYPES
        .iter()
        .filter_map(|kind| meta.descriptors().get(*kind))
        .flat_map(|descriptor| descriptor.possible_length().iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e164(raw: &str, postal_code: Option<&str>) -> String {
        PhoneNumber::parse(raw, Id::FR, postal_code)
            .unwrap_or_else(|error| panic!("{raw:?} rejected: {error}"))
            .as_str()
            .to_owned()
    }

    fn reason(raw: &str, postal_code: Option<&str>) -> String {
        PhoneNumber::parse(raw, Id::FR, postal_code)
            .unwrap_err()
            .reason
    }

    #[test]
    fn every_french_format_found_in_exports_gives_the_same_number() {
        let formats = [
            "06 12 34 56 78",
            "06.12.34.56.78",
            "0612345678",
            "+33 6 12 34 56 78",
            "+33612345678",
            "0033 6 12 34 56 78",
            "0033612345678",
            "+33 (0)6 12 34 56 78",
            "+33 (0)612345678",
            "06-12-34-56-78",
            "\u{00A0}06\u{00A0}12\u{202F}34 56 78\u{200B}",
        ];

        for raw in formats {
            assert_eq!(e164(raw, None), "+33612345678", "from {raw:?}");
        }
    }

    /// The ways people write the French number whose nine significant digits are `nsn`.
    fn written_forms(nsn: &str) -> Vec<String> {
        let national = format!("0{nsn}");
        let pairs: Vec<&str> = (0..5).map(|i| &national[i * 2..i * 2 + 2]).collect();
        let (head, tail) = (&nsn[..1], pairs[1..].join(" "));
        vec![
            pairs.join(" "),
            pairs.join("."),
            pairs.join("-"),
            pairs.join("\u{00A0}"),
            national.clone(),
            format!("+33 {head} {tail}"),
            format!("+33{nsn}"),
            format!("0033 {head} {tail}"),
            format!("0033{nsn}"),
            format!("+33 (0){head} {tail}"),
            format!("+33 (0){nsn}"),
            format!("\u{200B} {national}\u{202F}"),
        ]
    }

    #[test]
    fn every_written_form_of_a_french_number_gives_its_e164_form() {
        for nsn in [
            "612345678",
            "756123456",
            "142685300",
            "491234567",
            "970123456",
        ] {
            for raw in written_forms(nsn) {
                assert_eq!(e164(&raw, None), format!("+33{nsn}"), "from {raw:?}");
            }
        }
    }

    #[test]
    fn an_overseas_postal_code_selects_the_overseas_region() {
        let cases = [
            ("0690 12 34 56", "97110", "+590690123456"),
            ("0696 12 34 56", "97200", "+596696123456"),
            ("0694 20 12 34", "97300", "+594694201234"),
            ("0692 12 34 56", "97400", "+262692123456"),
            ("0639 40 12 34", "97600", "+262639401234"),
            ("0590 12 34 56", "97110", "+590590123456"),
        ];

        for (raw, postal_code, expected) in cases {
            assert_eq!(
                e164(raw, Some(postal_code)),
                expected,
                "{raw} in {postal_code}"
            );
        }
    }

    #[test]
    fn an_overseas_mobile_held_in_metropolitan_france_is_read_in_its_own_region() {
        assert_eq!(e164("06 90 12 34 56", Some("75011")), "+590690123456");
        assert_eq!(e164("06 12 34 56 78", Some("97400")), "+33612345678");
    }

    #[test]
    fn a_default_region_other_than_france_reads_national_numbers_there() {
        let number = PhoneNumber::parse("0470 12 34 56", Id::BE, Some("97110")).unwrap();

        assert_eq!(number.as_str(), "+32470123456");
    }

    #[test]
    fn invalid_numbers_are_rejected_with_a_reason() {
        let cases = [
            ("", "empty phone number"),
            ("\u{00A0} ", "empty phone number"),
            ("pas de téléphone", "not a phone number: no digits"),
            ("076172770", "phone number too short for FR"),
            ("06 12 34 56 78 9", "phone number too long for FR"),
            (
                "07 01 23 45 67",
                "not a valid phone number for FR: no such number range",
            ),
            (
                "+33 6 90 12 34 56",
                "not a valid phone number for FR: no such number range",
            ),
            ("12", "phone number too short for FR"),
            ("+999 123 456", "unknown country calling code"),
        ];

        for (raw, expected) in cases {
            assert_eq!(reason(raw, None), expected, "for {raw:?}");
        }
    }
}
