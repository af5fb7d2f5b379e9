//! French territory: postal code → commune (INSEE code) → département →
//! région, from the table in `data/territories.tsv` (derived from Etalab's
//! official geography, Licence Ouverte; see `data/build-territories.py`),
//! and the time zone of overseas places.

use std::collections::HashMap;
use std::sync::LazyLock;

/// Where a postal address is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// The commune's INSEE code ("69123"); `None` when the postal code is
    /// shared by several communes and no town says which.
    pub commune: Option<&'static str>,
    pub departement: &'static str,
    pub region: &'static str,
}

struct Commune {
    code: &'static str,
    name: &'static str,
    folded: String,
    departement: &'static str,
    population: u64,
}

struct Table {
    communes: Vec<Commune>,
    by_postal_code: HashMap<&'static str, Vec<usize>>,
    by_insee_code: HashMap<&'static str, usize>,
    region_of: HashMap<&'static str, &'static str>,
    /// Départements and régions by folded name ("cotes d armor" → "22").
    departement_named: HashMap<String, &'static str>,
    region_named: HashMap<String, &'static str>,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| parse(include_str!("../../data/territories.tsv")));

fn parse(source: &'static str) -> Table {
    let mut table = Table {
        communes: Vec::new(),
        by_postal_code: HashMap::new(),
        by_insee_code: HashMap::new(),
        region_of: HashMap::new(),
        departement_named: HashMap::new(),
        region_named: HashMap::new(),
    };
    for line in source.lines().filter(|line| !line.starts_with('#')) {
        let fields: Vec<&'static str> = line.split('\t').collect();
        match fields.as_slice() {
            ["R", code, name, _, _] => {
                table.region_named.insert(fold(name), code);
            }
            ["D", code, name, region, _] => {
                table.region_of.insert(code, region);
                table
                    .departement_named
                    .insert(without_article(&fold(name)), code);
            }
            ["C", code, name, departement, extra] => {
                let (postal_codes, population) = extra.split_once(';').unwrap_or((extra, "0"));
                let index = table.communes.len();
                table.by_insee_code.insert(code, index);
                table.communes.push(Commune {
                    code,
                    name,
                    folded: fold(name),
                    departement,
                    population: population.parse().unwrap_or(0),
                });
                for postal_code in postal_codes.split(',').filter(|p| !p.is_empty()) {
                    table
                        .by_postal_code
                        .entry(postal_code)
                        .or_default()
                        .push(index);
                }
            }
            _ => {}
        }
    }
    table
}

/// The place of a French postal code; where several communes share it, the
/// one named `city`. Without a town, a shared code places the address in
/// its département and région only: most French postal codes serve several
/// communes, and guessing the largest would put their neighbours in it (a
/// municipal campaign writing to people of the next village). A town that
/// names none of the communes does the same, and [`locate_checked`] says so.
pub fn locate(postal_code: &str, city: Option<&str>) -> Option<Place> {
    locate_checked(postal_code, city).0
}

/// [`locate`], and why `city` names none of the communes of `postal_code`
/// when it does not, listing them. A commune is named by its name, or its
/// name followed by more, as in "Paris 11e" or "Bordeaux Cedex"; an unknown
/// code has no place and nothing to say.
pub fn locate_checked(postal_code: &str, city: Option<&str>) -> (Option<Place>, Option<String>) {
    let table = &*TABLE;
    let Some(candidates) = table.by_postal_code.get(postal_code.trim()) else {
        return (None, None);
    };
    let wanted = city.map(fold).filter(|town| !town.is_empty());
    let mut communes: Vec<&Commune> = candidates.iter().map(|&i| &table.communes[i]).collect();
    communes.sort_by_key(|c| std::cmp::Reverse(c.population));
    // A town names a commune by its name, or its name followed by more, as
    // in "Paris 11e" or "Bordeaux Cedex"; the longest such name wins.
    let named = wanted.as_deref().and_then(|town| {
        communes
            .iter()
            .filter(|c| {
                town.strip_prefix(c.folded.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
            })
            .max_by_key(|c| c.folded.len())
    });
    if let Some(commune) = named {
        return (Some(place_of(commune)), None);
    }
    // Otherwise the département and région, and a commune only where the
    // code serves just one.
    let place = communes.first().map(|largest| Place {
        commune: Some(largest.code).filter(|_| communes.len() == 1),
        ..place_of(largest)
    });
    if wanted.is_none() {
        return (place, None);
    }
    let shown: Vec<&str> = communes.iter().take(5).map(|c| c.name).collect();
    let more = match communes.len().saturating_sub(shown.len()) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    let placed = match place.and_then(|p| p.commune) {
        Some(_) => format!("placed in {}, the code's only commune", shown[0]),
        None => "placed in its département only, in no commune".to_owned(),
    };
    let reason = format!(
        "no commune of postal code {} is called so ({}{more}): {placed}; check the town or \
         the code",
        postal_code.trim(),
        shown.join(", "),
    );
    (place, Some(reason))
}

fn place_of(commune: &Commune) -> Place {
    Place {
        commune: Some(commune.code),
        departement: commune.departement,
        region: TABLE
            .region_of
            .get(commune.departement)
            .copied()
            .unwrap_or(""),
    }
}

/// Whether some French commune has `postal_code` (CEDEX codes, given to
/// companies, are not in the table).
pub fn is_postal_code(postal_code: &str) -> bool {
    TABLE.by_postal_code.contains_key(postal_code)
}

/// The département a filter names, by code as people write it ("9" → "09",
/// "2a" → "2A") or by name ("Gironde" → "33"), or why it names none.
pub fn departement(written: &str) -> Result<String, String> {
    let table = &*TABLE;
    let code = written.trim().to_uppercase();
    let code = match code.len() {
        1 if code.bytes().all(|b| b.is_ascii_digit()) => format!("0{code}"),
        _ => code,
    };
    if table.region_of.contains_key(code.as_str()) {
        return Ok(code);
    }
    if let Some(code) = table
        .departement_named
        .get(&without_article(&fold(written)))
    {
        return Ok((*code).to_owned());
    }
    Err(match code.as_str() {
        "20" | "CORSE" => "Corsica is two départements since 1976 (its number was 20): write \
                 2A (Corse-du-Sud) or 2B (Haute-Corse), or region:94 for both"
            .to_owned(),
        _ => format!(
            "no département {}: write its number (01 to 95, 2A, 2B, or 971 to 988 \
             overseas) or its name",
            clipped(written)
        ),
    })
}

/// The région a filter names, by INSEE code ("53") or by name ("Bretagne"),
/// or why it names none.
pub fn region(written: &str) -> Result<String, String> {
    let table = &*TABLE;
    let code = written.trim();
    if table.region_of.values().any(|region| *region == code) {
        return Ok(code.to_owned());
    }
    // The short names régions go by.
    let short = match fold(written).as_str() {
        "idf" => Some("11"),
        "centre" | "cvl" => Some("24"),
        "bfc" => Some("27"),
        "paca" | "sud" => Some("93"),
        "aura" | "ara" => Some("84"),
        "hdf" => Some("32"),
        "pdl" => Some("52"),
        _ => None,
    };
    match table.region_named.get(&fold(written)).copied().or(short) {
        Some(code) => Ok(code.to_owned()),
        None => Err(format!(
            "no région {}: write its INSEE code (11 Île-de-France, 53 Bretagne, 94 Corse…) \
             or its name",
            clipped(written)
        )),
    }
}

/// The commune a filter names by its INSEE code, or why it names none; a
/// postal code given instead gets the INSEE code to use.
pub fn commune(written: &str) -> Result<String, String> {
    let table = &*TABLE;
    let code = written.trim().to_uppercase();
    if table.by_insee_code.contains_key(code.as_str()) {
        return Ok(code);
    }
    if let Some(hint) = arrondissement(&code) {
        return Err(hint);
    }
    if let Some(named) = commune_named(written) {
        return named;
    }
    let served: Vec<&Commune> = table
        .by_postal_code
        .get(code.as_str())
        .map(|served| served.iter().map(|&i| &table.communes[i]).collect())
        .unwrap_or_default();
    Err(match served.iter().max_by_key(|c| c.population) {
        Some(largest) => format!(
            "{code} is a postal code, not a commune's INSEE code: write commune:{} ({}{}) or \
             postal:{code}",
            largest.code,
            largest.name,
            match served.len() {
                1 => String::new(),
                n => format!(", the largest of the {n} it serves"),
            }
        ),
        None if code.bytes().any(|b| b.is_ascii_digit()) => format!(
            "no current commune has the INSEE code {}: a commune merged into another keeps \
             none of its own; write the current commune's code (75056 is Paris)",
            clipped(written)
        ),
        None => format!(
            "no current commune is called {}: a commune merged into another keeps none of its \
             own name; write the current commune's name or INSEE code",
            clipped(written)
        ),
    })
}

/// The commune a filter names by its name ("Paris", "saint malo"), when
/// only one has it; `None` when none has.
fn commune_named(written: &str) -> Option<Result<String, String>> {
    let table = &*TABLE;
    let wanted = fold(written);
    let named: Vec<&Commune> = table
        .communes
        .iter()
        .filter(|c| c.folded == wanted)
        .collect();
    match named.as_slice() {
        [] => None,
        [one] => Some(Ok(one.code.to_owned())),
        several => {
            let listed: Vec<String> = several
                .iter()
                .take(8)
                .map(|c| format!("{} ({})", c.code, c.departement))
                .collect();
            Some(Err(format!(
                "{} communes are called {}: write the INSEE code of the one meant, among {}",
                several.len(),
                clipped(written),
                listed.join(", ")
            )))
        }
    }
}

/// What to write instead of the INSEE code of a municipal arrondissement of
/// Paris, Lyon or Marseille: people are placed in the commune, and an
/// arrondissement is reached by its postal code.
fn arrondissement(code: &str) -> Option<String> {
    let number: u32 = code.parse().ok()?;
    let (city, commune, postal) = match number {
        75101..=75120 => ("Paris", "75056", 75000 + number - 75100),
        69381..=69389 => ("Lyon", "69123", 69000 + number - 69380),
        13201..=13216 => ("Marseille", "13055", 13000 + number - 13200),
        _ => return None,
    };
    Some(format!(
        "{code} is a municipal arrondissement of {city}: people are placed in the commune; \
         write commune:{commune} for all of {city}, or postal:{postal:05} for the arrondissement"
    ))
}

/// A folded name without its leading article ("la reunion" → "reunion").
fn without_article(folded: &str) -> String {
    ["la ", "le ", "les ", "l "]
        .iter()
        .find_map(|article| folded.strip_prefix(article))
        .unwrap_or(folded)
        .to_owned()
}

/// `written` quoted for an error, cut at 20 characters.
fn clipped(written: &str) -> String {
    let cut: String = written.trim().chars().take(20).collect();
    format!("{cut:?}")
}

/// The IANA time zone of a département (overseas ones differ from Paris).
pub fn time_zone(departement: &str) -> &'static str {
    match departement {
        "971" => "America/Guadeloupe",
        "972" => "America/Martinique",
        "973" => "America/Cayenne",
        "974" => "Indian/Reunion",
        "975" => "America/Miquelon",
        "976" => "Indian/Mayotte",
        "977" => "America/St_Barthelemy",
        "978" => "America/Marigot",
        "986" => "Pacific/Wallis",
        "987" => "Pacific/Tahiti",
        "988" => "Pacific/Noumea",
        _ => "Europe/Paris",
    }
}

/// A name folded for comparison: lowercase, no accents, words joined by
/// single spaces, "st"/"ste" spelled out.
fn fold(name: &str) -> String {
    let plain: String = name
        .to_lowercase()
        .chars()
        .map(|c| match super::unaccented(c) {
            'œ' => 'o',
            c if c.is_alphanumeric() => c,
            _ => ' ',
        })
        .collect();
    plain
        .split_whitespace()
        .map(|word| match word {
            "st" => "saint",
            "ste" => "sainte",
            word => word,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The département of a French postal code ("75011" → "75", "20090" → "2A",
/// "97110" → "971"), `None` when the code is not five digits or its first
/// digits name no département ("99999", "00000", Monaco's "98000").
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
    TABLE
        .region_of
        .contains_key(departement.as_str())
        .then_some(departement)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_town_that_is_no_commune_of_its_postal_code_is_named() {
        for (code, town) in [
            ("75011", "Paris"),
            ("75011", "PARIS 11E"),
            ("33000", "Bordeaux Cedex"),
            ("35400", "St-Malo"),
            ("99999", "Nulle part"),
        ] {
            assert_eq!(locate_checked(code, Some(town)).1, None, "{code} {town}");
        }
        let error = locate_checked("01400", Some("Lyon")).1.unwrap();
        assert!(
            error.starts_with("no commune of postal code 01400 is called so (Châtillon"),
            "{error}"
        );
        assert!(
            locate_checked("75011", Some("Parisot")).1.is_some(),
            "a word, not a prefix"
        );
        // A town that is no commune of a shared code (Lanouée merged into
        // Forges de Lanouée) places no commune: the largest is not guessed.
        let (place, reason) = locate_checked("56120", Some("Lanouée"));
        assert_eq!(
            place.map(|p| (p.commune, p.departement)),
            Some((None, "56"))
        );
        assert!(reason.unwrap().contains("placed in its département only"));
        // A commune's name followed by more names that commune, not the largest.
        let josselin = locate("56120", Some("Josselin Cedex")).unwrap();
        assert_eq!(josselin.commune, Some("56091"));
    }

    #[test]
    fn a_postal_code_shared_by_communes_is_settled_by_the_city_name() {
        let paris = locate("75011", Some("Paris")).unwrap();
        assert_eq!(
            (paris.commune, paris.departement, paris.region),
            (Some("75056"), "75", "11")
        );
        // Without a town, a shared code says the département, not a commune.
        let shared = locate("56120", None).unwrap();
        assert_eq!((shared.commune, shared.departement), (None, "56"));
        assert_eq!(locate("56120", Some("  ")).unwrap().commune, None);
        assert_eq!(locate("33000", None).unwrap().commune, Some("33063"));
        let default = locate("97110", None).unwrap();
        assert_eq!((default.departement, default.region), ("971", "01"));
        assert_eq!(time_zone(default.departement), "America/Guadeloupe");
        assert_eq!(time_zone("69"), "Europe/Paris");
        assert_eq!(locate("00000", None), None);
    }

    #[test]
    fn a_city_spelt_without_accents_or_with_st_still_matches() {
        let candidates = TABLE.by_postal_code.get("56120").unwrap();
        assert!(candidates.len() > 1, "56120 is shared by several communes");
        let josselin = locate("56120", Some("JOSSELIN")).unwrap();
        let code = TABLE.by_insee_code[josselin.commune.unwrap()];
        assert_eq!(TABLE.communes[code].name, "Josselin");
        assert_eq!(fold("St-Étienne-de-Tinée"), "saint etienne de tinee");
    }

    #[test]
    fn departements_come_from_the_postal_code() {
        assert_eq!(departement_of("75011").as_deref(), Some("75"));
        assert_eq!(departement_of("02820").as_deref(), Some("02"));
        assert_eq!(departement_of("20090").as_deref(), Some("2A"));
        assert_eq!(departement_of("20200").as_deref(), Some("2B"));
        assert_eq!(departement_of("97110").as_deref(), Some("971"));
        assert_eq!(departement_of("7501"), None);
        assert_eq!(departement_of("99999"), None);
        assert_eq!(departement_of("00000"), None);
        assert_eq!(departement_of("98000"), None, "Monaco");
        assert_eq!(departement_of("98714").as_deref(), Some("987"));
        assert_eq!(departement_of("B-1000"), None);
    }
}
