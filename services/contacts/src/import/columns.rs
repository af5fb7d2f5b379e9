//! Where each field of a preset sits in a file, resolved once from the header.

use super::{ColumnMapping, ImportError, Preset};
use crate::domain::custom_field::{Definition, Definitions};
use crate::domain::header_key;

/// How a file states consent, which decides how a row's consent is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Layout {
    /// A yes/no column and a time column.
    #[default]
    YesNo,
    /// NationBuilder's `email_opt_in` and `do_not_contact` flags, dated by `created_at`.
    NationBuilder,
    /// Mailchimp opt-in and confirmation times and IPs.
    MailchimpSubscribed,
    /// Mailchimp unsubscribe time, campaign and reason.
    MailchimpUnsubscribed,
}

/// Column indexes of the fields of one file; `None` when the file has no such column.
#[derive(Debug, Default)]
pub(crate) struct Columns {
    pub(crate) layout: Layout,
    pub(crate) first_name: Option<usize>,
    pub(crate) last_name: Option<usize>,
    pub(crate) email: Option<usize>,
    /// Read when the row's `email` cell is empty, invalid or flagged bad
    /// (NationBuilder's `email1` beside its `email`).
    pub(crate) email_fallback: Option<usize>,
    pub(crate) email_is_bad: Option<usize>,
    /// The column `email_is_bad` qualifies (NationBuilder's `email1`).
    pub(crate) email_flagged: Option<usize>,
    pub(crate) phone: Option<usize>,
    pub(crate) address_line1: Option<usize>,
    pub(crate) postal_code: Option<usize>,
    pub(crate) city: Option<usize>,
    pub(crate) country: Option<usize>,
    pub(crate) birth_date: Option<usize>,
    pub(crate) tags: Option<usize>,
    pub(crate) consent: Option<usize>,
    pub(crate) consent_time: Option<usize>,
    /// The consent column's header as spelled in the file, for evidence.
    pub(crate) consent_header: String,
    pub(crate) origin: Option<usize>,
    pub(crate) created_at: Option<usize>,
    pub(crate) do_not_contact: Option<usize>,
    pub(crate) is_deceased: Option<usize>,
    pub(crate) optin_time: Option<usize>,
    pub(crate) optin_ip: Option<usize>,
    pub(crate) confirm_time: Option<usize>,
    pub(crate) confirm_ip: Option<usize>,
    pub(crate) last_changed: Option<usize>,
    pub(crate) unsub_time: Option<usize>,
    pub(crate) unsub_campaign: Option<usize>,
    pub(crate) unsub_reason: Option<usize>,
    pub(crate) external_id: Option<usize>,
    /// The system that `external_id` identifies people in, e.g. "nationbuilder".
    pub(crate) external_system: &'static str,
    /// The columns of custom fields, with their definitions.
    pub(crate) custom: Vec<(usize, Definition)>,
    /// Custom fields whose key or label heads a column read as another field
    /// (a field labelled "Ville" beside the preset's city), by (column, key):
    /// they are not filled from it.
    pub(crate) shadowed: Vec<(usize, String)>,
    /// How many columns the header names.
    pub(crate) width: usize,
    /// Columns repeating the header of the e-mail or phone column: not read,
    /// they may hold the only address of a row that is then rejected.
    pub(crate) contact_repeats: Vec<usize>,
}

impl Columns {
    /// Finds the columns of `preset` among `headers`, or says which needed one is missing.
    pub(crate) fn resolve(
        preset: &Preset,
        headers: &[String],
        file: &str,
    ) -> Result<Self, ImportError> {
        let resolved = Self::resolve_as(preset, headers, file).map(|mut columns| {
            columns.width = headers.len();
            columns.contact_repeats = columns.contact_repeats(headers);
            columns
        });
        match resolved {
            Err(ImportError::MissingColumn {
                file,
                preset: chosen,
                column,
                or_phone,
                found,
                fits: None,
            }) => Err(ImportError::MissingColumn {
                fits: Self::preset_fitting(preset, headers, &file),
                file,
                preset: chosen,
                column,
                or_phone,
                found,
            }),
            other => other,
        }
    }

    /// The columns of `preset`, without looking for a preset that fits better.
    fn resolve_as(preset: &Preset, headers: &[String], file: &str) -> Result<Self, ImportError> {
        let header = Header {
            keys: headers.iter().map(|h| header_key(h)).collect(),
            headers,
            file,
            preset: preset.name(),
        };
        match preset {
            Preset::FrExcel => fr_excel(&header),
            Preset::NationBuilder => nation_builder(&header),
            Preset::MailchimpSubscribed => mailchimp(&header, Layout::MailchimpSubscribed),
            Preset::MailchimpUnsubscribed => mailchimp(&header, Layout::MailchimpUnsubscribed),
            Preset::Custom(mapping) => custom(&header, mapping),
        }
    }

    /// The columns, other than the ones read, under the e-mail or the phone column's header.
    fn contact_repeats(&self, headers: &[String]) -> Vec<usize> {
        let keys: Vec<String> = [self.email, self.phone]
            .into_iter()
            .flatten()
            .map(|at| header_key(&headers[at]))
            .collect();
        (0..headers.len())
            .filter(|&at| !self.reads(at) && keys.contains(&header_key(&headers[at])))
            .collect()
    }

    /// Another preset the header has every needed column of, for a file
    /// imported with the wrong one.
    fn preset_fitting(
        chosen: &Preset,
        headers: &[String],
        file: &str,
    ) -> Option<(&'static str, &'static str)> {
        [
            Preset::FrExcel,
            Preset::NationBuilder,
            Preset::MailchimpSubscribed,
            Preset::MailchimpUnsubscribed,
        ]
        .into_iter()
        .filter(|other| other != chosen)
        .find(|other| Self::resolve_as(other, headers, file).is_ok())
        .map(|preset| (preset.name(), preset.api_name()))
    }
}

impl Columns {
    /// Whether any field is read from column `index`.
    pub(crate) fn reads(&self, index: usize) -> bool {
        let fixed = [
            self.first_name,
            self.last_name,
            self.email,
            self.email_fallback,
            self.email_is_bad,
            self.phone,
            self.address_line1,
            self.postal_code,
            self.city,
            self.country,
            self.birth_date,
            self.tags,
            self.consent,
            self.consent_time,
            self.origin,
            self.created_at,
            self.do_not_contact,
            self.is_deceased,
            self.optin_time,
            self.optin_ip,
            self.confirm_time,
            self.confirm_ip,
            self.last_changed,
            self.unsub_time,
            self.unsub_campaign,
            self.unsub_reason,
            self.external_id,
        ];
        fixed.contains(&Some(index)) || self.custom.iter().any(|(at, _)| *at == index)
    }

    /// Adds the custom field columns: those `mapping` names as (key, header),
    /// then every other column whose header is the key or the label of a
    /// field not yet read, unless a person's own field is read from it (a
    /// field labelled "Ville" does not copy every city: it is noted in
    /// `shadowed`). A mapped key must be defined and its header present.
    pub(crate) fn resolve_custom(
        &mut self,
        fields: &Definitions,
        mapping: &[(String, String)],
        headers: &[String],
        file: &str,
    ) -> Result<(), ImportError> {
        let header = Header {
            keys: headers.iter().map(|h| header_key(h)).collect(),
            headers,
            file,
            preset: "custom",
        };
        for (key, name) in mapping {
            let key = key.strip_prefix("custom:").unwrap_or(key);
            let Some(definition) = fields.get(key) else {
                return Err(header.wrong(format!(
                    "the mapping names the custom field {key:?}, which is not defined; \
                     the fields are: {}",
                    fields.keys()
                )));
            };
            self.custom
                .push((header.require(name)?, definition.clone()));
        }
        for (column, name) in headers.iter().enumerate() {
            let Some(definition) = fields.by_header(name) else {
                continue;
            };
            let filled = self.custom.iter().any(|(_, d)| d.key() == definition.key());
            if filled {
                continue;
            }
            if self.reads(column) {
                self.shadowed.push((column, definition.key().to_owned()));
            } else {
                self.custom.push((column, definition.clone()));
            }
        }
        Ok(())
    }
}

fn fr_excel(header: &Header<'_>) -> Result<Columns, ImportError> {
    let consent = header.find(&["Consentement e-mail", "Consentement email"]);
    const EMAIL: [&str; 3] = ["E-mail", "Email", "Courriel"];
    // Mobile numbers first: they can take SMS.
    let phone = header.find(&[
        "Téléphone portable",
        "Tél. portable",
        "Tél portable",
        "Téléphone mobile",
        "Tél. mobile",
        "Portable",
        "Mobile",
        "Téléphone",
        "Tél.",
        "Tél",
        "Téléphone fixe",
        "Tél. fixe",
    ]);
    // A phone-bank list has numbers and no addresses: one of the two will do.
    let email = match phone {
        Some(_) => header.find(&EMAIL),
        None => Some(header.require_any(&EMAIL).map_err(|mut error| {
            if let ImportError::MissingColumn { or_phone, .. } = &mut error {
                *or_phone = true;
            }
            error
        })?),
    };
    Ok(Columns {
        first_name: Some(header.require("Prénom")?),
        last_name: Some(header.require("Nom")?),
        email,
        phone,
        address_line1: header.find(&["Adresse", "Adresse postale", "Adresse 1"]),
        postal_code: header.find(&["Code postal", "CP", "C.P.", "Code post."]),
        city: header.find(&["Ville", "Commune", "Localité"]),
        birth_date: header.find(&["Date de naissance"]),
        tags: header.find(&["Étiquettes", "Tags"]),
        consent,
        consent_header: header.spelling(consent),
        consent_time: header.find(&["Date du consentement"]),
        origin: header.find(&["Origine"]),
        ..Columns::default()
    })
}

fn nation_builder(header: &Header<'_>) -> Result<Columns, ImportError> {
    Ok(Columns {
        layout: Layout::NationBuilder,
        external_id: Some(header.require("nationbuilder_id")?),
        external_system: "nationbuilder",
        first_name: header.find(&["first_name"]),
        last_name: header.find(&["last_name"]),
        // `email` is the person's primary address, one of the numbered
        // `email1`…; an export may carry either or both.
        email: Some(header.require_any(&["email", "email1"])?),
        email_fallback: header.find(&["email"]).and(header.find(&["email1"])),
        email_is_bad: header.find(&["email1_is_bad"]),
        email_flagged: header.find(&["email1"]),
        phone: header.find(&["mobile_number"]),
        address_line1: header.find(&["primary_address1"]),
        postal_code: header.find(&["primary_zip"]),
        city: header.find(&["primary_city"]),
        country: header.find(&["primary_country_code"]),
        birth_date: header.find(&["born_at"]),
        tags: header.find(&["tag_list"]),
        consent: header.find(&["email_opt_in"]),
        do_not_contact: header.find(&["do_not_contact"]),
        is_deceased: header.find(&["is_deceased"]),
        created_at: header.find(&["created_at"]),
        ..Columns::default()
    })
}

fn mailchimp(header: &Header<'_>, layout: Layout) -> Result<Columns, ImportError> {
    let unsub_time = header.find(&["UNSUB_TIME"]);
    if layout == Layout::MailchimpSubscribed {
        for (column, status) in [("UNSUB_TIME", "unsubscribed"), ("CLEAN_TIME", "cleaned")] {
            if header.find(&[column]).is_some() {
                return Err(header.wrong(format!(
                    "its {column} column marks an export of {status} contacts"
                )));
            }
        }
    } else if unsub_time.is_none() {
        header.require("UNSUB_TIME")?;
    }
    Ok(Columns {
        layout,
        email: Some(header.require("Email Address")?),
        first_name: header.find(&["First Name"]),
        last_name: header.find(&["Last Name"]),
        phone: header.find(&["Phone Number"]),
        tags: header.find(&["TAGS"]),
        optin_time: header.find(&["OPTIN_TIME"]),
        optin_ip: header.find(&["OPTIN_IP"]),
        confirm_time: header.find(&["CONFIRM_TIME"]),
        confirm_ip: header.find(&["CONFIRM_IP"]),
        last_changed: header.find(&["LAST_CHANGED"]),
        unsub_time,
        unsub_campaign: header.find(&["UNSUB_CAMPAIGN_TITLE"]),
        unsub_reason: header.find(&["UNSUB_REASON"]),
        // EUID identifies the member across the account; LEID only within
        // one audience, and two exports (subscribed, unsubscribed) reuse
        // LEIDs for different people, who would then be merged as one.
        external_id: header.find(&["EUID"]),
        external_system: "mailchimp",
        ..Columns::default()
    })
}

fn custom(header: &Header<'_>, mapping: &ColumnMapping) -> Result<Columns, ImportError> {
    let column = |name: &Option<String>| match name {
        Some(name) => header.require(name).map(Some),
        None => Ok(None),
    };
    let consent = column(&mapping.email_consent)?;
    Ok(Columns {
        first_name: column(&mapping.first_name)?,
        last_name: column(&mapping.last_name)?,
        email: column(&mapping.email)?,
        phone: column(&mapping.phone)?,
        address_line1: column(&mapping.address_line1)?,
        postal_code: column(&mapping.postal_code)?,
        city: column(&mapping.city)?,
        country: column(&mapping.country)?,
        birth_date: column(&mapping.birth_date)?,
        tags: column(&mapping.tags)?,
        consent,
        consent_header: header.spelling(consent),
        consent_time: column(&mapping.email_consent_time)?,
        external_id: column(&mapping.external_id)?,
        external_system: "custom",
        ..Columns::default()
    })
}

/// The header line of a file, for looking columns up.
struct Header<'a> {
    headers: &'a [String],
    keys: Vec<String>,
    file: &'a str,
    preset: &'static str,
}

impl Header<'_> {
    /// The first column named like one of `names`.
    fn find(&self, names: &[&str]) -> Option<usize> {
        names.iter().find_map(|name| {
            let key = header_key(name);
            self.keys.iter().position(|k| *k == key)
        })
    }

    fn require(&self, name: &str) -> Result<usize, ImportError> {
        self.require_any(&[name])
    }

    /// The first column named like one of `names`; the error names the first.
    fn require_any(&self, names: &[&str]) -> Result<usize, ImportError> {
        self.find(names).ok_or_else(|| ImportError::MissingColumn {
            file: self.file.to_owned(),
            preset: self.preset,
            column: names[0].to_owned(),
            or_phone: false,
            found: self.headers.to_vec(),
            fits: None,
        })
    }

    fn spelling(&self, column: Option<usize>) -> String {
        column.map_or_else(String::new, |index| self.headers[index].clone())
    }

    fn wrong(&self, reason: String) -> ImportError {
        ImportError::WrongPreset {
            file: self.file.to_owned(),
            preset: self.preset,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn headers_match_ignoring_case_accents_and_padding() {
        let found = headers(&[" PRENOM ", "nom", "\u{FEFF}e-mail", "Telephone portable"]);

        let columns = Columns::resolve(&Preset::FrExcel, &found, "f.csv").unwrap();

        assert_eq!(columns.first_name, Some(0));
        assert_eq!(columns.email, Some(2));
        assert_eq!(columns.phone, Some(3));
        assert_eq!(columns.consent, None);
    }

    #[test]
    fn a_missing_required_column_is_named_with_the_headers_found() {
        let found = headers(&["Prénom", "Nom", "Mail"]);

        let error = Columns::resolve(&Preset::FrExcel, &found, "f.csv").unwrap_err();

        assert_eq!(
            error.to_string(),
            "f.csv: the French Excel format needs a column \"E-mail\" or a phone column \
             (\"Téléphone portable\", \"Portable\", \"Téléphone\"…); \
             the header has: Prénom, Nom, Mail"
        );
    }

    #[test]
    fn a_file_imported_with_the_wrong_preset_is_told_the_one_it_fits() {
        let found = headers(&["nationbuilder_id", "first_name", "email1", "tag_list"]);

        let error = Columns::resolve(&Preset::FrExcel, &found, "nb.csv").unwrap_err();

        assert!(
            error.to_string().ends_with(
                "; the header fits the NationBuilder format: import the file with the preset \
                 nationbuilder"
            ),
            "{error}"
        );
        let unknown = headers(&["Prénom", "Nom", "Mail"]);
        let error = Columns::resolve(&Preset::NationBuilder, &unknown, "f.csv").unwrap_err();
        assert!(!error.to_string().contains("fits"), "{error}");
    }

    #[test]
    fn a_first_line_that_is_a_person_is_not_quoted() {
        let found = headers(&["Mme", "Claire", "Secret", "claire.secret@example.org"]);

        let error = Columns::resolve(&Preset::FrExcel, &found, "f.csv").unwrap_err();

        let message = error.to_string();
        assert!(!message.contains("Claire"), "{message}");
        assert!(message.contains("not a header"), "{message}");
    }

    #[test]
    fn an_unsubscribed_export_is_refused_as_a_subscribed_one() {
        let found = headers(&["Email Address", "OPTIN_TIME", "UNSUB_TIME"]);

        let error = Columns::resolve(&Preset::MailchimpSubscribed, &found, "u.csv").unwrap_err();

        assert!(matches!(error, ImportError::WrongPreset { .. }), "{error}");
    }

    #[test]
    fn a_subscribed_export_is_refused_as_an_unsubscribed_one() {
        let found = headers(&["Email Address", "OPTIN_TIME", "LAST_CHANGED"]);

        let error = Columns::resolve(&Preset::MailchimpUnsubscribed, &found, "s.csv").unwrap_err();

        let missing = match error {
            ImportError::MissingColumn { column, .. } => column,
            other => panic!("expected a missing column, got {other}"),
        };
        assert_eq!(missing, "UNSUB_TIME");
    }

    #[test]
    fn every_column_named_in_a_custom_mapping_must_exist() {
        let mapping = ColumnMapping {
            email: Some("Courriel".to_owned()),
            phone: Some("Mobile".to_owned()),
            ..ColumnMapping::default()
        };
        let found = headers(&["courriel", "Nom"]);

        let error = Columns::resolve(&Preset::Custom(mapping), &found, "c.csv").unwrap_err();

        let missing = match error {
            ImportError::MissingColumn { column, .. } => column,
            other => panic!("expected a missing column, got {other}"),
        };
        assert_eq!(missing, "Mobile");
    }
}
