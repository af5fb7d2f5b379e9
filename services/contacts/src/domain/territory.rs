//! French territory derived from a postal code.

/// The département of a French postal code ("75011" → "75", "20090" → "2A",
/// "97110" → "971"), `None` when the code is not five digits.
pub fn departement_of(postal_code: &str) -> Option<String> {
    let code = postal_code.trim();
    if code.len() != 5 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let departement = match &code[..2] {
        "97" | "98" => code[..3].to_owned(),
        // Corse: 200xx–201xx is Corse-du-Sud, 202xx–206xx Haute-Corse.
        "20" if code < "20200" => "2A".to_owned(),
        "20" => "2B".to_owned(),
        prefix => prefix.to_owned(),
    };
    Some(departement)
}

#[cfg(test)]
mod tests {
    use super::departement_of;

    #[test]
    fn departements_come_from_the_postal_code() {
        assert_eq!(departement_of("75011").as_deref(), Some("75"));
        assert_eq!(departement_of("02820").as_deref(), Some("02"));
        assert_eq!(departement_of("20090").as_deref(), Some("2A"));
        assert_eq!(departement_of("20200").as_deref(), Some("2B"));
        assert_eq!(departement_of("97110").as_deref(), Some("971"));
        assert_eq!(departement_of("7501"), None);
        assert_eq!(departement_of("B-1000"), None);
    }
}
