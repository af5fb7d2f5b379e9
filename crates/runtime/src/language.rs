//! The languages Muster writes to the public in: the pages a person sees
//! when subscribing and the confirmation e-mail that follows. Each service
//! holds its own texts; this module only names the languages, so that a
//! language chosen by the gateway travels to messaging as a plain tag.

/// A language Muster's public pages and e-mails are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    French,
    English,
}

/// Countries whose organizations write in French unless told otherwise:
/// France, Monaco and the French overseas territories with a code of their own.
const FRENCH_COUNTRIES: &[&str] = &[
    "FR", "MC", "GP", "MQ", "GF", "RE", "YT", "PM", "BL", "MF", "WF", "PF", "NC", "TF",
];

impl Language {
    /// Every language, in the order the pages offer them.
    pub const ALL: [Language; 2] = [Language::French, Language::English];

    /// The BCP 47 primary tag: `fr` or `en`, as `<html lang>` wants it.
    pub fn tag(self) -> &'static str {
        match self {
            Language::French => "fr",
            Language::English => "en",
        }
    }

    /// The language a tag or range names by its primary subtag (`fr-CA` is
    /// French), ignoring case; `None` for any other language.
    pub fn from_tag(tag: &str) -> Option<Self> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or_default();
        Self::ALL
            .into_iter()
            .find(|language| primary.eq_ignore_ascii_case(language.tag()))
    }

    /// The language an organization working in `country` (ISO 3166-1
    /// alpha-2) writes in by default: French where French is the official
    /// language, else English.
    pub fn for_country(country: &str) -> Self {
        let country = country.trim();
        if FRENCH_COUNTRIES
            .iter()
            .any(|c| c.eq_ignore_ascii_case(country))
        {
            Language::French
        } else {
            Language::English
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_is_read_by_its_primary_subtag() {
        assert_eq!(Language::from_tag("fr"), Some(Language::French));
        assert_eq!(Language::from_tag("FR-ca"), Some(Language::French));
        assert_eq!(Language::from_tag(" en_GB "), Some(Language::English));
        assert_eq!(Language::from_tag("de"), None);
        assert_eq!(Language::from_tag("fry"), None, "Frisian is not French");
        assert_eq!(Language::from_tag(""), None);
    }

    #[test]
    fn french_is_the_default_in_france_and_its_overseas_territories() {
        assert_eq!(Language::for_country("FR"), Language::French);
        assert_eq!(Language::for_country("re"), Language::French);
        assert_eq!(Language::for_country("NC"), Language::French);
        assert_eq!(Language::for_country("GB"), Language::English);
        assert_eq!(Language::for_country("DE"), Language::English);
        assert_eq!(Language::for_country(""), Language::English);
    }
}
