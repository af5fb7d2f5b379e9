//! Which language a public page speaks: the visitor's browser says which
//! languages it reads (`Accept-Language`, RFC 9110 §12.5.4), the
//! organization's country says which one it writes in.

use muster_runtime::language::Language;

/// The longest header read; a browser's is far shorter.
const MAX_HEADER_CHARS: usize = 1_000;

/// The language of a page: of ours, the one `accept_language` ranks highest
/// (equal weights go to the one listed first, then to `default`); `default`
/// when the header names none of ours, or is missing or unreadable.
pub fn negotiate(accept_language: Option<&str>, default: Language) -> Language {
    let header = accept_language.unwrap_or_default();
    if header.len() > MAX_HEADER_CHARS {
        return default;
    }
    let ranges: Vec<(&str, f32)> = header.split(',').filter_map(weighted).collect();

    let mut best: Option<(f32, usize, Language)> = None;
    for language in Language::ALL {
        let Some((weight, position)) = weight_of(language, &ranges) else {
            continue;
        };
        if weight <= 0.0 {
            continue;
        }
        // Two languages share a position only through `*`: the default wins.
        let better = best.is_none_or(|(w, p, _)| {
            weight > w || (weight == w && (position < p || (position == p && language == default)))
        });
        if better {
            best = Some((weight, position, language));
        }
    }
    best.map_or(default, |(.., language)| language)
}

/// The weight the ranges give `language` and the position of the range
/// that gives it: the heaviest range naming it, else the `*` range.
fn weight_of(language: Language, ranges: &[(&str, f32)]) -> Option<(f32, usize)> {
    let mut named: Option<(f32, usize)> = None;
    let mut any: Option<(f32, usize)> = None;
    for (position, &(range, weight)) in ranges.iter().enumerate() {
        let slot = if range == "*" {
            &mut any
        } else if Language::from_tag(range) == Some(language) {
            &mut named
        } else {
            continue;
        };
        if slot.is_none_or(|(w, _)| weight > w) {
            *slot = Some((weight, position));
        }
    }
    named.or(any)
}

/// One `range;q=weight` item: its range and weight (1 when not given);
/// `None` when it cannot be read, so that it counts for nothing.
fn weighted(item: &str) -> Option<(&str, f32)> {
    let mut parts = item.split(';');
    let range = parts.next()?.trim();
    if range.is_empty() {
        return None;
    }
    let mut weight = 1.0;
    for parameter in parts {
        let (name, value) = parameter.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("q") {
            weight = quality(value.trim())?;
        }
    }
    Some((range, weight))
}

/// A `qvalue`: 0 to 1 with at most three decimals.
fn quality(text: &str) -> Option<f32> {
    let (whole, decimals) = text.split_once('.').unwrap_or((text, ""));
    let well_formed = matches!(whole, "0" | "1")
        && decimals.len() <= 3
        && decimals.bytes().all(|b| b.is_ascii_digit());
    let weight: f32 = text.parse().ok()?;
    (well_formed && weight <= 1.0).then_some(weight)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Language::{English, French};

    #[test]
    fn the_organization_speaks_when_the_visitor_names_no_language_of_ours() {
        assert_eq!(negotiate(None, French), French);
        assert_eq!(negotiate(Some(""), English), English);
        assert_eq!(negotiate(Some("de-DE,de;q=0.9"), French), French);
        assert_eq!(negotiate(Some("*"), French), French);
        assert_eq!(negotiate(Some("*"), English), English);
        assert_eq!(negotiate(Some("garbage;;;"), French), French);
    }

    #[test]
    fn a_british_browser_gets_english_from_a_french_organization() {
        assert_eq!(negotiate(Some("en-GB,en;q=0.9"), French), English);
        assert_eq!(negotiate(Some("en-GB,en;q=0.9,fr;q=0.8"), French), English);
    }

    #[test]
    fn the_weights_decide_not_the_order() {
        assert_eq!(negotiate(Some("en;q=0.5, fr;q=0.8"), English), French);
        assert_eq!(negotiate(Some("fr-FR;q=0.2,en-US;q=0.7"), French), English);
        assert_eq!(
            negotiate(Some("FR-ca ; Q=1.0, en;q=0.999"), English),
            French
        );
    }

    #[test]
    fn equal_weights_go_to_the_language_listed_first() {
        assert_eq!(negotiate(Some("en, fr"), French), English);
        assert_eq!(negotiate(Some("fr, en"), English), French);
    }

    #[test]
    fn a_language_we_write_beats_an_unknown_one_the_visitor_prefers() {
        assert_eq!(negotiate(Some("de, en;q=0.3"), French), English);
        assert_eq!(negotiate(Some("es;q=0.9, *;q=0.1"), English), English);
    }

    #[test]
    fn a_refused_language_is_not_chosen() {
        assert_eq!(negotiate(Some("fr;q=0, en;q=0.1"), French), English);
        assert_eq!(negotiate(Some("fr;q=0, *"), French), English);
        assert_eq!(
            negotiate(Some("en;q=0, fr;q=0"), English),
            English,
            "nothing acceptable: the organization's language"
        );
    }

    #[test]
    fn an_unreadable_weight_makes_its_range_count_for_nothing() {
        assert_eq!(negotiate(Some("en;q=2, fr;q=0.1"), English), French);
        assert_eq!(negotiate(Some("en;q=high, fr;q=0.1"), English), French);
        assert_eq!(negotiate(Some("en;q=0.0001, fr;q=0.1"), English), French);
        assert_eq!(negotiate(Some("en;q=-1, fr;q=0.1"), English), French);
        assert_eq!(negotiate(Some("en;q=NaN, fr;q=0.1"), English), French);
        let long = format!("en, {}", "x, ".repeat(MAX_HEADER_CHARS));
        assert_eq!(negotiate(Some(&long), French), French);
    }
}
