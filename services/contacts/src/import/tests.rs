//! The import layer against the shared real files and against small crafted inputs.

use std::path::PathBuf;
use std::sync::OnceLock;

use chrono::{DateTime, NaiveDate, Utc};

use super::*;

fn shared_path(name: &str) -> PathBuf {
    [env!("CARGO_MANIFEST_DIR"), "../../data/contacts", name]
        .iter()
        .collect()
}

/// A shared file read to its end, with what the reader said about it.
struct SharedRead {
    outcomes: Vec<RowOutcome>,
    encoding: &'static str,
    delimiter: u8,
    bytes_read: u64,
}

fn read_shared(name: &str, preset: Preset) -> SharedRead {
    let path = shared_path(name);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = ImportReader::open(file, preset, name).unwrap();
    SharedRead {
        outcomes: read_all(&mut reader),
        encoding: reader.encoding(),
        delimiter: reader.delimiter(),
        bytes_read: reader.bytes_read(),
    }
}

// Each shared file is read once per test run, whatever the number of tests looking at it.

fn excel() -> &'static SharedRead {
    static READ: OnceLock<SharedRead> = OnceLock::new();
    READ.get_or_init(|| read_shared(EXCEL, Preset::FrExcel))
}

fn nation_builder() -> &'static SharedRead {
    static READ: OnceLock<SharedRead> = OnceLock::new();
    READ.get_or_init(|| read_shared(NATION_BUILDER, Preset::NationBuilder))
}

fn subscribed() -> &'static SharedRead {
    static READ: OnceLock<SharedRead> = OnceLock::new();
    READ.get_or_init(|| read_shared(SUBSCRIBED, Preset::MailchimpSubscribed))
}

fn unsubscribed() -> &'static SharedRead {
    static READ: OnceLock<SharedRead> = OnceLock::new();
    READ.get_or_init(|| read_shared(UNSUBSCRIBED, Preset::MailchimpUnsubscribed))
}

const EXCEL: &str = "adherents-export-excel-fr.csv";
const NATION_BUILDER: &str = "nationbuilder-people-export.csv";
const SUBSCRIBED: &str = "mailchimp-audience-subscribed.csv";
const UNSUBSCRIBED: &str = "mailchimp-audience-unsubscribed.csv";

fn read_all<R: Read>(reader: &mut ImportReader<R>) -> Vec<RowOutcome> {
    let outcomes = std::iter::from_fn(|| reader.next_row()).collect();
    assert!(reader.take_error().is_none());
    outcomes
}

fn read_str(input: &[u8], preset: Preset) -> Vec<RowOutcome> {
    read_all(&mut ImportReader::open(input, preset, "inline.csv").unwrap())
}

fn row(outcome: &RowOutcome) -> &ImportRow {
    match outcome {
        RowOutcome::Row(row) => row,
        other => panic!("expected a row, got {other:?}"),
    }
}

fn line_of(outcome: &RowOutcome) -> u64 {
    match outcome {
        RowOutcome::Empty { line } | RowOutcome::Rejected { line, .. } => *line,
        RowOutcome::Row(row) => row.line,
    }
}

fn utc(raw: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(raw)
        .unwrap()
        .with_timezone(&Utc)
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn email_only() -> Preset {
    Preset::Custom(ColumnMapping {
        first_name: Some("name".to_owned()),
        email: Some("email".to_owned()),
        ..ColumnMapping::default()
    })
}

/// What a whole file gave, counted.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    rows: u64,
    empty: u64,
    rejected: u64,
    email_warnings: u64,
    phone_warnings: u64,
    granted: u64,
    withdrawn: u64,
}

fn tally(outcomes: &[RowOutcome]) -> Tally {
    let mut tally = Tally::default();
    for outcome in outcomes {
        match outcome {
            RowOutcome::Empty { .. } => tally.empty += 1,
            RowOutcome::Rejected { .. } => tally.rejected += 1,
            RowOutcome::Row(row) => {
                let warned = |field| row.issues.iter().any(|issue| issue.field == field);
                tally.rows += 1;
                tally.email_warnings += u64::from(warned("email"));
                tally.phone_warnings += u64::from(warned("phone"));
                match row.consent {
                    ConsentStatement::None => {}
                    ConsentStatement::Granted { .. } => tally.granted += 1,
                    ConsentStatement::Withdrawn { .. } => tally.withdrawn += 1,
                }
            }
        }
    }
    tally
}

// The expected figures below were computed independently, with Python's csv module and
// the `phonenumbers` port of libphonenumber over the same files and rules.

#[test]
fn the_french_excel_export_gives_the_expected_figures() {
    let read = excel();

    assert_eq!((read.encoding, read.delimiter), ("windows-1252", b';'));
    let size = std::fs::metadata(shared_path(EXCEL)).unwrap().len();
    assert_eq!(read.bytes_read, size);
    let expected = Tally {
        rows: 20_372,
        empty: 3,
        rejected: 128,
        email_warnings: 256,
        phone_warnings: 3_846,
        // Grants on rows with a valid e-mail: another 206 come without one.
        granted: 16_532,
        withdrawn: 0,
    };
    assert_eq!(tally(&read.outcomes), expected);
    let empty_lines: Vec<u64> = read.outcomes.iter().rev().take(3).map(line_of).collect();
    assert_eq!(empty_lines, [20_504, 20_503, 20_502]);
}

#[test]
fn the_french_excel_export_rows_are_read_field_by_field() {
    let outcomes = &excel().outcomes;

    let first = row(&outcomes[0]);
    assert_eq!(first.line, 2);
    assert_eq!(first.first_name.as_deref(), Some("Catherine"));
    assert_eq!(first.last_name.as_deref(), Some("Vaillant"));
    assert_eq!(
        first.email.as_ref().unwrap().as_str(),
        "catherine.vaillant@example.org"
    );
    assert_eq!(first.phone.as_ref().unwrap().as_str(), "+33760861315");
    assert_eq!(
        first.address_line1.as_deref(),
        Some("48, boulevard Ollivier")
    );
    assert_eq!(first.postal_code.as_deref(), Some("56120"));
    assert_eq!(first.city.as_deref(), Some("Josselin"));
    assert_eq!(first.country.as_deref(), Some("FR"));
    assert_eq!(first.birth_date, NaiveDate::from_ymd_opt(1981, 4, 25));
    assert_eq!(first.tags, ["donateur", "newsletter", "adhérent"]);
    assert_eq!(first.consent, ConsentStatement::None);
    assert_eq!(first.external_id, None);
    assert!(first.issues.is_empty());

    let consented = row(&outcomes[1]);
    assert_eq!(consented.first_name.as_deref(), Some("Étienne"));
    let expected = ConsentStatement::Granted {
        time: utc("2026-09-17T08:04:00Z"),
        evidence: pairs(&[
            ("column", "Consentement e-mail"),
            ("origine", "formulaire site"),
        ]),
    };
    assert_eq!(consented.consent, expected);
}

#[test]
fn a_short_excel_row_keeps_what_it_has() {
    let outcomes = &excel().outcomes;

    let short = row(&outcomes[21]);

    assert_eq!(short.line, 23);
    assert_eq!(short.first_name.as_deref(), Some("Nathalie"));
    assert_eq!(short.phone, None);
    let expected = ConsentStatement::Granted {
        time: utc("2023-06-05T20:11:00Z"),
        evidence: pairs(&[("column", "Consentement e-mail")]),
    };
    assert_eq!(short.consent, expected);
    assert!(short.issues.is_empty());
}

#[test]
fn a_padded_email_is_kept_and_a_bad_phone_is_reported() {
    let outcomes = &excel().outcomes;

    let padded = row(&outcomes[34]);

    assert_eq!(padded.line, 36);
    assert_eq!(
        padded.email.as_ref().unwrap().as_str(),
        "martine.hubert@example.net"
    );
    assert_eq!(padded.phone, None);
    assert_eq!(padded.issues.len(), 1);
    assert_eq!(padded.issues[0].field, "phone");
    assert_eq!(padded.issues[0].value, "07 03 27 52 30");
    assert_eq!(
        padded.issues[0].reason,
        "not a valid phone number for FR: no such number range"
    );
}

#[test]
fn a_row_with_no_way_to_reach_the_person_is_rejected_with_all_its_issues() {
    let outcomes = &excel().outcomes;

    let RowOutcome::Rejected { line, issues } = &outcomes[56] else {
        panic!("expected a rejection, got {:?}", outcomes[56]);
    };

    assert_eq!(*line, 58);
    let fields: Vec<&str> = issues.iter().map(|issue| issue.field).collect();
    assert_eq!(fields, ["email", "phone", "contact"]);
    assert_eq!(issues[0].value, "etienne.delorme@@example.net");
    assert_eq!(issues[0].reason, "not an e-mail address: more than one @");
    assert_eq!(
        issues[2].reason,
        "nothing to reach this person by: no valid e-mail or phone"
    );
}

#[test]
fn the_nationbuilder_export_gives_the_expected_figures() {
    let read = nation_builder();

    assert_eq!((read.encoding, read.delimiter), ("UTF-8", b','));
    let expected = Tally {
        rows: 5_076,
        empty: 0,
        rejected: 49,
        email_warnings: 73,
        phone_warnings: 932,
        // Grants on rows with a valid e-mail: another 53 come without one.
        granted: 4_099,
        withdrawn: 54,
    };
    assert_eq!(tally(&read.outcomes), expected);
}

#[test]
fn nationbuilder_rows_after_a_multi_line_note_start_on_the_right_line() {
    let outcomes = &nation_builder().outcomes;
    let line_of_id = |id: &str| {
        outcomes
            .iter()
            .filter_map(|outcome| match outcome {
                RowOutcome::Row(row) => Some(row),
                _ => None,
            })
            .find(|row| row.external_id.as_ref().is_some_and(|(_, x)| x == id))
            .map(|row| row.line)
    };

    assert_eq!(line_of_id("1094"), Some(96));
    assert_eq!(line_of_id("1095"), Some(98));
    assert_eq!(line_of_id("6124"), Some(5176));
}

#[test]
fn a_cell_of_two_addresses_gives_the_first_and_names_the_second() {
    let input = "Prénom;Nom;E-mail\n\
                 Lina;Aubert;\"lina.a@example.org; lina.b@example.org\"\n\
                 Max;Aubert;max.a@example.org, max.b@example.org\n\
                 Léo;Aubert;leo@@example.org / leo@example.org\n\
                 Eva;Aubert;\"Aubert, Eva\" <eva@example.org>\n\
                 Théo;Hamon;\"Théo Hamon <theo@example.org>, Anne Hamon <anne@example.org>\"\n\
                 Ugo;Inizan;\"ugo.inizan@gmail.con; ugo@example.org\"\n";

    let outcomes = read_str(input.as_bytes(), Preset::FrExcel);

    let address = |n: usize| {
        let row = row(&outcomes[n]);
        let reasons: Vec<String> = row.issues.iter().map(|i| i.reason.clone()).collect();
        (row.email.as_ref().unwrap().as_str().to_owned(), reasons)
    };
    let (lina, reasons) = address(0);
    assert_eq!(lina, "lina.a@example.org");
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].starts_with("a second address, lina.b@example.org,"),
        "{reasons:?}"
    );
    assert_eq!(address(1).0, "max.a@example.org");
    let (leo, reasons) = address(2);
    assert_eq!(leo, "leo@example.org", "the first valid one");
    assert_eq!(reasons.len(), 1, "the invalid one is named: {reasons:?}");
    let (eva, reasons) = address(3);
    assert_eq!(eva, "eva@example.org");
    assert!(reasons.is_empty(), "{reasons:?}");
    let (theo, reasons) = address(4);
    assert_eq!(theo, "theo@example.org");
    assert_eq!(reasons.len(), 1, "the names are no addresses: {reasons:?}");
    assert!(reasons[0].contains("anne@example.org"), "{reasons:?}");
    let (ugo, reasons) = address(5);
    assert_eq!(ugo, "ugo@example.org", "the one without a likely typo");
    assert!(reasons[0].contains("ugo.inizan@gmail.con"), "{reasons:?}");
}

#[test]
fn a_nationbuilder_export_with_email_and_email1_reads_email_then_email1() {
    let input = "nationbuilder_id,first_name,email,email1,email1_is_bad,email_opt_in,is_deceased,\
                 created_at\n\
                 1,Léa,,lea@example.org,,true,false,2024-01-02T10:00:00+01:00\n\
                 2,Ana,ana@example.org,ana@example.net,,true,,2024-01-02T10:00:00+01:00\n\
                 3,Max,max@example.org,,,true,true,2024-01-02T10:00:00+01:00\n\
                 4,Yann,yann@example.org,yann@@example.org,,,,\n\
                 5,Yves,yves@example.org,yves.old@example.org,true,,,\n\
                 6,Zoé,,zoe@example.org,true,,,\n\
                 7,Rémi,REMI@example.org,remi@example.org,,,,\n";

    let outcomes = read_str(input.as_bytes(), Preset::NationBuilder);

    let address = |n: usize| {
        let row = row(&outcomes[n]);
        let reasons: Vec<&str> = row.issues.iter().map(|i| i.reason.as_str()).collect();
        (row.email.as_ref().map(|e| e.as_str().to_owned()), reasons)
    };
    assert_eq!(address(0).0.as_deref(), Some("lea@example.org"));
    let (ana, reasons) = address(1);
    assert_eq!(
        ana.as_deref(),
        Some("ana@example.org"),
        "email, the primary, first"
    );
    assert!(
        reasons[0].starts_with("a second address, ana@example.net, not imported"),
        "{reasons:?}"
    );
    assert_eq!(address(3).0.as_deref(), Some("yann@example.org"));
    let (yves, reasons) = address(4);
    assert_eq!(yves.as_deref(), Some("yves@example.org"));
    assert!(reasons[0].contains("email1_is_bad"), "{reasons:?}");
    assert!(
        matches!(outcomes[5], RowOutcome::Rejected { .. }),
        "{:?}",
        outcomes[5]
    );
    assert_eq!(address(6), (Some("REMI@example.org".to_owned()), vec![]));
    assert!(matches!(
        row(&outcomes[0]).consent,
        ConsentStatement::Granted { .. }
    ));
    let ConsentStatement::Withdrawn { evidence, .. } = &row(&outcomes[2]).consent else {
        panic!(
            "a deceased person is never granted: {:?}",
            row(&outcomes[2]).consent
        );
    };
    assert_eq!(evidence[0], ("column".to_owned(), "is_deceased".to_owned()));
    let reader = ImportReader::open(input.as_bytes(), Preset::NationBuilder, "nb.csv").unwrap();
    assert!(
        reader.unread_columns().is_empty(),
        "{:?}",
        reader.unread_columns()
    );
}

#[test]
fn short_french_address_headers_are_read_as_the_address() {
    for (postal, town) in [
        ("CP", "Commune"),
        ("C.P.", "Localité"),
        ("Code postal", "Ville"),
    ] {
        let input = format!(
            "Prénom;Nom;E-mail;Adresse postale;{postal};{town}\n\
             Marie;Dupont;marie@example.org;3 rue Lafayette;56120;Josselin\n"
        );

        let outcomes = read_str(input.as_bytes(), Preset::FrExcel);

        let marie = row(&outcomes[0]);
        assert_eq!(
            marie.address_line1.as_deref(),
            Some("3 rue Lafayette"),
            "{postal}"
        );
        assert_eq!(marie.postal_code.as_deref(), Some("56120"), "{postal}");
        assert_eq!(marie.city.as_deref(), Some("Josselin"), "{town}");
        assert_eq!(marie.place.and_then(|p| p.commune), Some("56091"), "{town}");
    }
}

#[test]
fn a_french_phone_bank_list_without_addresses_is_read_by_its_numbers() {
    let input = "Prénom;Nom;Téléphone portable;Code postal\nMarie;Dupont;06 12 34 56 78;33000\n";

    let outcomes = read_str(input.as_bytes(), Preset::FrExcel);

    let marie = row(&outcomes[0]);
    assert_eq!(marie.phone.as_ref().unwrap().as_str(), "+33612345678");
    assert!(marie.email.is_none());
    let neither = "Prénom;Nom;Code postal\nMarie;Dupont;33000\n";
    let error = ImportReader::open(neither.as_bytes(), Preset::FrExcel, "a.csv").err();
    assert!(
        matches!(&error, Some(ImportError::MissingColumn { column, .. }) if column == "E-mail"),
        "{error:?}"
    );
    let message = error.unwrap().to_string();
    assert!(
        message.contains("needs a column \"E-mail\" or a phone column (\"Téléphone portable\""),
        "{message}"
    );
    for header in ["Tél. portable", "Tél", "Téléphone fixe"] {
        let input = format!("Prénom;Nom;{header}\nMarie;Dupont;06 12 34 56 78\n");
        let outcomes = read_str(input.as_bytes(), Preset::FrExcel);
        assert!(row(&outcomes[0]).phone.is_some(), "{header}");
    }
}

#[test]
fn nationbuilder_flags_become_consent_dated_by_creation() {
    let outcomes = &nation_builder().outcomes;

    let opted_in = row(&outcomes[0]);
    assert_eq!(
        opted_in.external_id,
        Some(("nationbuilder".into(), "1000".into()))
    );
    assert_eq!(opted_in.birth_date, NaiveDate::from_ymd_opt(1952, 11, 5));
    let granted = ConsentStatement::Granted {
        time: utc("2025-10-14T03:39:45Z"),
        evidence: pairs(&[
            ("column", "email_opt_in"),
            ("created_at", "2025-10-14T04:39:45+01:00"),
        ]),
    };
    assert_eq!(opted_in.consent, granted);

    let do_not_contact = outcomes
        .iter()
        .find(|o| line_of(o) == 347)
        .map(row)
        .unwrap();
    assert_eq!(
        do_not_contact.phone.as_ref().unwrap().as_str(),
        "+262692357059"
    );
    let withdrawn = ConsentStatement::Withdrawn {
        time: utc("2022-04-18T04:38:03Z"),
        evidence: pairs(&[
            ("column", "do_not_contact"),
            ("created_at", "2022-04-18T05:38:03+01:00"),
        ]),
    };
    assert_eq!(do_not_contact.consent, withdrawn);
}

#[test]
fn the_mailchimp_subscribed_export_gives_the_expected_figures() {
    let read = subscribed();
    let outcomes = &read.outcomes;

    assert_eq!((read.encoding, read.delimiter), ("UTF-8", b','));
    let expected = Tally {
        rows: 5_026,
        empty: 0,
        rejected: 99,
        email_warnings: 0,
        phone_warnings: 0,
        granted: 5_026,
        withdrawn: 0,
    };
    assert_eq!(tally(outcomes), expected);

    let first = row(&outcomes[0]);
    assert_eq!(
        first.email.as_ref().unwrap().as_str(),
        "raymond.charpentier@mail.example.fr"
    );
    assert_eq!(
        first.external_id,
        Some(("mailchimp".into(), "8444e8f608".into()))
    );
    assert_eq!(first.tags, ["sympathisant"]);
    let granted = ConsentStatement::Granted {
        time: utc("2025-12-30T19:53:51Z"),
        evidence: pairs(&[
            ("optin_time", "2025-12-30 19:53:51"),
            ("optin_ip", "192.0.2.58"),
            ("confirm_time", "2025-12-30 19:53:51"),
            ("confirm_ip", "192.0.2.58"),
        ]),
    };
    assert_eq!(first.consent, granted);
    assert_eq!(
        row(&outcomes[1]).tags,
        ["porte-à-porte", "jeunes", "bénévole"]
    );
}

#[test]
fn the_mailchimp_unsubscribed_export_gives_the_expected_figures() {
    let outcomes = &unsubscribed().outcomes;

    let expected = Tally {
        rows: 396,
        empty: 0,
        rejected: 4,
        email_warnings: 0,
        phone_warnings: 0,
        granted: 0,
        withdrawn: 396,
    };
    assert_eq!(tally(outcomes), expected);
    let withdrawn = ConsentStatement::Withdrawn {
        time: utc("2022-07-26T00:51:59Z"),
        evidence: pairs(&[
            ("unsub_campaign", "Lettre d'information"),
            ("unsub_reason", "I no longer want to receive these emails"),
        ]),
    };
    assert_eq!(row(&outcomes[0]).consent, withdrawn);
}

#[test]
fn lines_ending_in_a_lone_carriage_return_are_counted() {
    let outcomes = read_str(
        b"name;email\rAda;ada@example.org\rBob;bob@example.org\r",
        email_only(),
    );

    let lines: Vec<u64> = outcomes.iter().map(line_of).collect();

    assert_eq!(lines, [2, 3]);
    assert_eq!(row(&outcomes[1]).first_name.as_deref(), Some("Bob"));
}

#[test]
fn a_record_after_a_quoted_multi_line_field_starts_on_its_physical_line() {
    let input = b"name,email\r\n\"Ada\r\nLovelace\",ada@example.org\r\n\"B\nob\",bob@example.org\n\
        Cy,cy@example.org\n";

    let outcomes = read_str(input, email_only());

    let lines: Vec<u64> = outcomes.iter().map(line_of).collect();
    assert_eq!(lines, [2, 4, 6]);
    assert_eq!(
        row(&outcomes[0]).first_name.as_deref(),
        Some("Ada Lovelace"),
        "a name is its words, whatever spaces them"
    );
}

#[test]
fn a_tab_separated_file_is_read() {
    let mut reader = ImportReader::open(
        &b"name\temail\nAda\tada@example.org\n"[..],
        email_only(),
        "t",
    )
    .unwrap();

    let outcomes = read_all(&mut reader);

    assert_eq!(reader.delimiter(), b'\t');
    assert_eq!(
        row(&outcomes[0]).email.as_ref().unwrap().as_str(),
        "ada@example.org"
    );
}

#[test]
fn fields_missing_from_a_short_row_are_empty() {
    let input = "Prénom;Nom;E-mail;Téléphone portable;Code postal;Ville\n\
        Jean;Dupont;jean@example.org\n"
        .as_bytes();

    let outcomes = read_str(input, Preset::FrExcel);

    let short = row(&outcomes[0]);
    assert_eq!(short.last_name.as_deref(), Some("Dupont"));
    assert_eq!((short.phone.as_ref(), short.city.as_ref()), (None, None));
    assert!(short.issues.is_empty());
}

#[test]
fn rows_of_blank_fields_are_empty_and_never_contacts() {
    let input =
        "Prénom;Nom;E-mail\nJean;Dupont;jean@example.org\n;;;;\n ; \u{00A0};\t\n\n".as_bytes();

    let outcomes = read_str(input, Preset::FrExcel);

    assert_eq!(
        outcomes[1..],
        [RowOutcome::Empty { line: 3 }, RowOutcome::Empty { line: 4 }]
    );
}

#[test]
fn a_utf8_byte_order_mark_does_not_hide_the_first_header() {
    let input = "\u{FEFF}E-mail;Prénom;Nom\nada@example.org;Ada;Lovelace\n".as_bytes();
    let mut reader = ImportReader::open(input, Preset::FrExcel, "bom.csv").unwrap();

    let outcomes = read_all(&mut reader);

    assert_eq!(reader.encoding(), "UTF-8");
    assert_eq!(
        row(&outcomes[0]).email.as_ref().unwrap().as_str(),
        "ada@example.org"
    );
}

#[test]
fn a_windows_1252_file_decodes_its_accents() {
    let input = b"Pr\xe9nom;Nom;E-mail\r\nH\xe9l\xe8ne;Dupr\xe9;helene@example.org\r\n";
    let mut reader = ImportReader::open(&input[..], Preset::FrExcel, "cp1252.csv").unwrap();

    let outcomes = read_all(&mut reader);

    assert_eq!(reader.encoding(), "windows-1252");
    assert_eq!(row(&outcomes[0]).first_name.as_deref(), Some("Hélène"));
    assert_eq!(row(&outcomes[0]).last_name.as_deref(), Some("Dupré"));
}

#[test]
fn undecodable_bytes_are_reported_and_not_stored() {
    let input = b"Pr\xc3\xa9nom;Nom;E-mail\nH\xc3\xa9l\xc3\xa8ne;Dupr\xe9;helene@example.org\n";
    let mut reader = ImportReader::open(&input[..], Preset::FrExcel, "stray.csv").unwrap();

    let outcomes = read_all(&mut reader);

    assert_eq!(reader.encoding(), "UTF-8");
    let helene = row(&outcomes[0]);
    assert_eq!(helene.first_name.as_deref(), Some("Hélène"));
    assert_eq!(helene.last_name, None);
    assert_eq!(helene.issues.len(), 1);
    assert_eq!(helene.issues[0].field, "last_name");
    assert_eq!(helene.issues[0].value, "Dupr\u{FFFD}");
    assert_eq!(
        helene.issues[0].reason,
        "undecodable bytes: the file is not in UTF-8; re-export it as UTF-8"
    );
}

#[test]
fn consent_without_a_date_is_not_recorded_and_is_reported() {
    let input = "Prénom;Nom;E-mail;Consentement e-mail;Date du consentement\n\
        Ada;L;ada@example.org;oui;\nBob;M;bob@example.org;non;\n"
        .as_bytes();

    let outcomes = read_str(input, Preset::FrExcel);

    let ada = row(&outcomes[0]);
    assert_eq!(ada.consent, ConsentStatement::None);
    assert_eq!(ada.issues[0].field, "email_consent");
    assert_eq!(
        ada.issues[0].reason,
        "consent without a date is not recorded"
    );
    assert!(row(&outcomes[1]).issues.is_empty());
}

#[test]
fn a_consent_dated_in_the_future_is_not_a_grant_and_a_withdrawal_counts_from_now() {
    let input = "nationbuilder_id,email,email_opt_in,do_not_contact,created_at\n\
        1,ada@example.org,true,false,2999-03-01T10:00:00+01:00\n\
        2,bob@example.org,false,true,2999-03-01T10:00:00+01:00\n\
        3,cy@example.org,true,false,2026-03-01T10:00:00+01:00\n"
        .as_bytes();
    let before = Utc::now();

    let outcomes = read_str(input, Preset::NationBuilder);

    let ada = row(&outcomes[0]);
    assert_eq!(ada.consent, ConsentStatement::None);
    assert_eq!(
        (ada.issues[0].field, ada.issues[0].value.as_str()),
        ("email_consent_time", "2999-03-01T10:00:00+01:00"),
        "the date as the file wrote it"
    );
    match &row(&outcomes[1]).consent {
        ConsentStatement::Withdrawn { time, .. } => assert!(*time >= before && *time <= Utc::now()),
        other => panic!("{other:?}"),
    }
    assert!(row(&outcomes[1]).issues[0].reason.contains("future"));
    assert!(matches!(
        row(&outcomes[2]).consent,
        ConsentStatement::Granted { .. }
    ));
    assert!(row(&outcomes[2]).issues.is_empty());

    let french = "Prénom;Nom;E-mail;Consentement e-mail;Date du consentement\n\
                  Ada;L;ada@example.org;oui;01/01/2099\n";
    let outcomes = read_str(french.as_bytes(), Preset::FrExcel);
    assert_eq!(row(&outcomes[0]).issues[0].value, "01/01/2099");
}

#[test]
fn a_custom_mapping_reads_consent_in_any_accepted_time_format() {
    let preset = Preset::Custom(ColumnMapping {
        email: Some("Mail".to_owned()),
        email_consent: Some("Opt-in".to_owned()),
        email_consent_time: Some("Quand".to_owned()),
        country: Some("Pays".to_owned()),
        phone: Some("Tel".to_owned()),
        ..ColumnMapping::default()
    });
    let input = "mail,opt-in,quand,pays,tel\n\
        a@example.org,yes,2024-05-01T10:00:00+02:00,BE,0470 12 34 56\n\
        b@example.org,Y,2024-05-01 08:00,,\n\
        c@example.org,o,01/05/2024 10:00,fr,\n\
        d@example.org,1,01/05/2024,Belgique,\n"
        .as_bytes();

    let outcomes = read_str(input, preset);

    let times: Vec<Option<DateTime<Utc>>> = outcomes
        .iter()
        .map(|outcome| match &row(outcome).consent {
            ConsentStatement::Granted { time, evidence } => {
                assert_eq!(*evidence, pairs(&[("column", "opt-in")]));
                Some(*time)
            }
            _ => None,
        })
        .collect();
    let eight = Some(utc("2024-05-01T08:00:00Z"));
    assert_eq!(
        times,
        [eight, eight, eight, Some(utc("2024-04-30T22:00:00Z"))]
    );
    assert_eq!(
        row(&outcomes[0]).phone.as_ref().unwrap().as_str(),
        "+32470123456"
    );
    assert_eq!(row(&outcomes[0]).country.as_deref(), Some("BE"));
    assert_eq!(row(&outcomes[1]).country.as_deref(), Some("FR"));
    assert_eq!(row(&outcomes[2]).country.as_deref(), Some("FR"));
    assert_eq!(row(&outcomes[3]).country, None);
    assert_eq!(row(&outcomes[3]).issues[0].field, "country");
}

#[test]
fn an_email_flagged_bad_in_nationbuilder_is_dropped_with_a_warning() {
    let input = b"nationbuilder_id,email1,email1_is_bad,mobile_number\n\
        7,ada@example.org,true,06 12 34 56 78\n";

    let outcomes = read_str(input, Preset::NationBuilder);

    let ada = row(&outcomes[0]);
    assert_eq!(ada.email, None);
    assert_eq!(ada.phone.as_ref().unwrap().as_str(), "+33612345678");
    assert_eq!(ada.issues[0].field, "email");
}

#[test]
fn an_invalid_birth_date_is_a_warning_only() {
    let input = b"Pr\xc3\xa9nom;Nom;E-mail;Date de naissance\nAda;L;ada@example.org;31/02/1990\n";

    let outcomes = read_str(input, Preset::FrExcel);

    let ada = row(&outcomes[0]);
    assert_eq!(ada.birth_date, None);
    assert_eq!(ada.issues[0].field, "birth_date");
    assert_eq!(ada.issues[0].value, "31/02/1990");
}

#[test]
fn an_empty_file_has_no_header() {
    let error = ImportReader::open(&b"\r\n\r\n"[..], Preset::FrExcel, "vide.csv").err();

    assert!(
        matches!(error, Some(ImportError::NoHeader { .. })),
        "{error:?}"
    );
}

#[test]
fn a_file_whose_line_breaks_were_stripped_is_refused_not_imported_empty() {
    // What `curl -d @file` sends: the lines joined, the last header cell
    // and the first row's first cell run together.
    let input = "Nom;Prénom;E-mail;Code postalDupont;Marie;marie@example.org;33000\
                 Martin;Paul;paul@example.org;75011";

    let error = ImportReader::open(input.as_bytes(), Preset::FrExcel, "adherents.csv").err();

    let Some(ImportError::JoinedLines { column, .. }) = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*column, 6);
    let message = error.unwrap().to_string();
    assert!(message.contains("--data-binary"), "{message}");
    assert!(
        !message.contains("marie"),
        "no address in the reason: {message}"
    );
}

#[test]
fn a_one_line_file_of_joined_rows_is_refused_whatever_its_header_holds() {
    let one_person = "Nom;Prénom;E-mailDupont;Marie;marie@example.org";
    let phones = "Prénom;Nom;Téléphone portable;Code postalMarie;Dupont;06 12 34 56 78;33000";
    for input in [one_person, phones] {
        let error = ImportReader::open(input.as_bytes(), Preset::FrExcel, "a.csv").err();
        assert!(
            matches!(error, Some(ImportError::JoinedLines { .. })),
            "{input}: {error:?}"
        );
    }
    // A header alone, with or without its line break, is an empty file.
    for input in [
        "Prénom;Nom;Téléphone portable",
        "Prénom;Nom;Téléphone portable\r\n",
    ] {
        assert!(ImportReader::open(input.as_bytes(), Preset::FrExcel, "a.csv").is_ok());
    }
    // A headerless file of several lines is a person's row, not joined lines.
    let headerless = "Marie;Dupont;06 12 34 56 78\nPaul;Martin;06 12 34 56 79\n";
    let error = ImportReader::open(headerless.as_bytes(), Preset::FrExcel, "a.csv").err();
    assert!(
        matches!(error, Some(ImportError::MissingColumn { .. })),
        "{error:?}"
    );
}

#[test]
fn a_header_naming_an_address_column_with_an_at_sign_is_still_a_header() {
    let input = "Nom;Prénom;E-mail;@ perso;Courriel@\nDupont;Marie;marie@example.org;;\n";

    let outcomes = read_str(input.as_bytes(), Preset::FrExcel);

    assert_eq!(
        row(&outcomes[0]).email.as_ref().unwrap().as_str(),
        "marie@example.org"
    );
}

#[test]
fn an_address_as_a_mail_program_copies_it_is_read_and_a_misspelt_domain_is_warned() {
    let input = "Nom;Prénom;E-mail\n\
                 Dupont;Marie;Marie Dupont <marie@example.org>\n\
                 Martin;Paul;mailto:paul@example.org\n\
                 Durand;Luc;luc@gmail.con\n";

    let outcomes = read_str(input.as_bytes(), Preset::FrExcel);

    let address = |n: usize| {
        row(&outcomes[n])
            .email
            .as_ref()
            .unwrap()
            .as_str()
            .to_owned()
    };
    assert_eq!(address(0), "marie@example.org");
    assert!(row(&outcomes[0]).issues.is_empty());
    assert_eq!(address(1), "paul@example.org");
    let luc = row(&outcomes[2]);
    assert_eq!(address(2), "luc@gmail.con", "imported as written");
    assert_eq!(luc.issues[0].field, "email");
    assert!(
        luc.issues[0].reason.contains("gmail.com"),
        "{:?}",
        luc.issues
    );
}

#[test]
fn a_title_above_the_header_is_skipped_and_lines_keep_their_numbers() {
    let input = "Adhérents au 1er décembre;;;\n\
                 ;;;\n\
                 Nom;Prénom;E-mail;Ville\n\
                 Dupont;Marie;marie@example.org;Bordeaux\n";

    let mut reader = ImportReader::open(input.as_bytes(), Preset::FrExcel, "a.csv").unwrap();

    assert_eq!(reader.titles(), ["Adhérents au 1er décembre"]);
    assert_eq!(reader.header_line(), 3);
    let outcomes = read_all(&mut reader);
    assert_eq!(row(&outcomes[0]).line, 4);
    assert_eq!(row(&outcomes[0]).city.as_deref(), Some("Bordeaux"));
}

#[test]
fn a_title_without_separators_is_skipped_too() {
    let input = b"Export des adh\xe9rents - F\xe9d\xe9ration du Rh\xf4ne\r\n\
                  G\xe9n\xe9r\xe9 le 03/12/2026\r\n\
                  Pr\xe9nom;Nom;E-mail\r\n\
                  Marie;Dupont;marie@example.org\r\n";

    let mut reader = ImportReader::open(&input[..], Preset::FrExcel, "a.csv").unwrap();

    assert_eq!(reader.delimiter(), b';');
    assert_eq!(
        reader.titles(),
        [
            "Export des adhérents - Fédération du Rhône",
            "Généré le 03/12/2026"
        ]
    );
    assert_eq!(reader.header_line(), 3);
    let outcomes = read_all(&mut reader);
    assert_eq!(row(&outcomes[0]).line, 4);
    assert_eq!(row(&outcomes[0]).last_name.as_deref(), Some("Dupont"));
}

#[test]
fn a_header_after_a_separator_line_is_on_line_two() {
    let reader = ImportReader::open(
        "sep=;\nNom;Prénom;E-mail\n".as_bytes(),
        Preset::FrExcel,
        "a.csv",
    )
    .unwrap();

    assert_eq!(reader.header_line(), 2);
    assert!(reader.titles().is_empty());
}

#[test]
fn a_line_of_one_address_is_no_title_and_a_bad_header_below_a_title_is_named() {
    let person = "marie@example.org\nNom;Prénom;E-mail\n";
    let error = ImportReader::open(person.as_bytes(), Preset::FrExcel, "a.csv").err();
    assert!(
        matches!(&error, Some(ImportError::MissingColumn { found, .. }) if found[0].contains('@')),
        "{error:?}"
    );

    let missing = "Export du 01/12;;\nNom;Courriel;Ville\n";
    let error = ImportReader::open(missing.as_bytes(), Preset::FrExcel, "a.csv").err();
    assert!(
        matches!(&error, Some(ImportError::MissingColumn { found, .. }) if found[0] == "Nom"),
        "the header's own error, not the title's: {error:?}"
    );

    let title = "Export du 01/12";
    let only_a_title = format!("{title};;\n");
    let error = ImportReader::open(only_a_title.as_bytes(), Preset::FrExcel, "a.csv").err();
    assert!(
        matches!(&error, Some(ImportError::MissingColumn { found, .. }) if found[0] == title),
        "{error:?}"
    );
}

#[test]
fn a_file_that_fails_midway_reports_the_read_error() {
    struct Failing(Vec<u8>);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::Error::other("disk on fire"));
            }
            let len = buf.len().min(self.0.len());
            buf[..len].copy_from_slice(&self.0[..len]);
            self.0.drain(..len);
            Ok(len)
        }
    }
    let mut input = b"name,email\n".to_vec();
    input.resize(decode::SAMPLE_LEN + 10, b'x');
    let mut reader = ImportReader::open(Failing(input), email_only(), "f.csv").unwrap();

    while reader.next_row().is_some() {}

    assert!(matches!(
        reader.take_error(),
        Some(ImportError::Unreadable { .. })
    ));
}

#[test]
fn an_organization_abroad_reads_national_numbers_and_rows_in_its_own_country() {
    let preset = Preset::Custom(ColumnMapping {
        email: Some("email".to_owned()),
        phone: Some("phone".to_owned()),
        ..ColumnMapping::default()
    });
    let input: &[u8] = b"email,phone\nzoe@example.org,0470 12 34 56\n";
    let mut reader = ImportReader::open(input, preset, "be.csv")
        .unwrap()
        .with_default_country("be");
    let rows = read_all(&mut reader);
    let row = row(&rows[0]);
    assert_eq!(row.phone.as_ref().map(|p| p.as_str()), Some("+32470123456"));
    assert_eq!(row.country.as_deref(), Some("BE"));
}

#[test]
fn a_quote_left_open_rejects_its_row_and_says_what_was_swallowed() {
    let mut input = String::from("email,name\nann@example.org,\"Ann\n");
    for n in 0..300 {
        input.push_str(&format!("person{n}@example.org,Person {n}\n"));
    }
    let rows = read_str(input.as_bytes(), email_only());
    let RowOutcome::Rejected { line, issues } = &rows[0] else {
        panic!("expected a rejected row, got {:?}", rows[0]);
    };
    assert_eq!(*line, 2);
    assert!(
        issues[0].reason.contains("closing quote"),
        "{}",
        issues[0].reason
    );
}

#[test]
fn nul_bytes_and_huge_values_are_dropped_with_a_short_report() {
    let huge = "x".repeat(10_000);
    let input = format!("email,name\nann@example.org,A\0nn\nbob@example.org,{huge}\n");
    let rows = read_str(input.as_bytes(), email_only());
    let (ann, bob) = (row(&rows[0]), row(&rows[1]));
    assert_eq!(
        (ann.first_name.as_deref(), bob.first_name.as_deref()),
        (None, None)
    );
    assert!(!ann.issues[0].value.contains('\0'));
    assert!(bob.issues[0].value.chars().count() <= 201);
    assert!(
        bob.issues[0].reason.starts_with("longer than"),
        "{}",
        bob.issues[0].reason
    );
}

#[test]
fn a_quote_left_open_over_fewer_lines_than_a_record_may_span_is_named() {
    let mut input = String::from("email,name\nann@example.org,\"Ann\n");
    for n in 0..100 {
        input.push_str(&format!(
            "row{n}@example.org,A name long enough to pass the limit {n}\n"
        ));
    }
    let rows = read_str(input.as_bytes(), email_only());
    assert_eq!(rows.len(), 1, "the rows after the quote were read into it");
    let ann = row(&rows[0]);
    assert!(
        ann.issues[0].reason.contains("never closed"),
        "{}",
        ann.issues[0].reason
    );
}

#[test]
fn a_quote_closed_by_a_later_quoted_field_is_named_where_it_opened() {
    // Anne's quote is closed by the quote that opens Bob's address: Bob's
    // row and the line before it are read into Anne's first name.
    let input = "Civilité;Prénom;Nom;E-mail;Téléphone portable;Adresse;Code postal;Ville\n\
        Mme;\"Anne;Open;anne@example.org;;;;\n\
        M.;Carl;Lost;carl@example.org;;;;\n\
        M.;Bob;Late;bob@example.org;;\"12; rue B\";75011;Paris\n\
        Mme;Dee;Fine;dee@example.org;;\"3 rue C\nBât. 2\";75012;Paris\n"
        .as_bytes();

    let outcomes = read_str(input, Preset::FrExcel);

    let reasons: Vec<String> = outcomes
        .iter()
        .flat_map(|outcome| match outcome {
            RowOutcome::Row(row) => row.issues.clone(),
            RowOutcome::Rejected { issues, .. } => issues.clone(),
            RowOutcome::Empty { .. } => Vec::new(),
        })
        .map(|issue| format!("line {} {}: {}", issue.line, issue.field, issue.reason))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("line 2 first_name") && r.contains("quote left")),
        "{reasons:#?}"
    );
    let dee = row(outcomes.last().unwrap());
    assert_eq!(dee.address_line1.as_deref(), Some("3 rue C\nBât. 2"));
    assert!(dee.issues.is_empty(), "an address may hold a line break");
}

#[test]
fn the_rows_of_one_person_go_to_one_writer_and_every_writer_has_a_share() {
    let mut csv = String::from("nationbuilder_id,email1,mobile_number\n");
    for n in 0..1_000 {
        csv.push_str(&format!("{n},p{n}@example.org,\n"));
    }
    csv.push_str("2000,P7@Example.org,\n2001,,06 12 34 56 78\n2002,,+33 6 12 34 56 78\n");
    let outcomes = read_str(csv.as_bytes(), Preset::NationBuilder);
    let rows: Vec<&ImportRow> = outcomes.iter().map(row).collect();
    for writers in 1..=job::MAX_WRITERS {
        let of = |r: &ImportRow| job::writer_of(r, writers);
        assert_eq!(of(rows[7]), of(rows[1_000]), "one address, two spellings");
        assert_eq!(
            of(rows[1_001]),
            of(rows[1_002]),
            "one number, two spellings"
        );
        let used: std::collections::BTreeSet<usize> = rows.iter().map(|r| of(r)).collect();
        assert_eq!(used, (0..writers).collect(), "{writers} writers");
    }
}

#[test]
fn french_postal_codes_are_read_as_people_write_them() {
    let input = "Prénom;Nom;E-mail;Code postal;Ville\n\
        A;A;a@example.org;33 000;Bordeaux\n\
        B;B;b@example.org;F-75011;Paris\n\
        C;C;c@example.org;2820;Urvillers\n\
        D;D;d@example.org;69\u{00A0}001;Lyon\n\
        E;E;e@example.org;2a004;Ajaccio\n\
        G;G;g@example.org;750011;Paris\n\
        H;H;h@example.org;33000.0;Bordeaux\n\
        I;I;i@example.org;'02820;Urvillers\n\
        J;J;j@example.org;CEDEX 75008;Paris\n\
        K;K;k@example.org;75008 Cedex 08;Paris\n\
        L;L;l@example.org;99999;Nulle part\n\
        M;M;m@example.org;98000;Monaco\n\
        N;N;n@example.org;33000,0;Bordeaux\n\
        O;O;o@example.org;75011 Paris;\n\
        P;P;p@example.org;F75011;Paris\n\
        Q;Q;q@example.org;=\"02820\";Urvillers\n\
        R;R;r@example.org;7501;Paris\n"
        .as_bytes();

    let outcomes = read_str(input, Preset::FrExcel);

    let rows: Vec<&ImportRow> = outcomes.iter().map(row).collect();
    let codes: Vec<Option<&str>> = rows.iter().map(|r| r.postal_code.as_deref()).collect();
    assert_eq!(
        codes,
        [
            Some("33000"),
            Some("75011"),
            Some("02820"),
            Some("69001"),
            Some("2a004"),
            Some("750011"),
            Some("33000"),
            Some("02820"),
            Some("75008"),
            Some("75008"),
            Some("99999"),
            Some("98000"),
            Some("33000"),
            Some("75011"),
            Some("75011"),
            Some("02820"),
            Some("7501"),
        ]
    );
    let flagged: Vec<u64> = rows
        .iter()
        .filter(|r| r.issues.iter().any(|issue| issue.field == "postal_code"))
        .map(|r| r.line)
        .collect();
    assert_eq!(
        flagged,
        [6, 7, 12, 13, 18],
        "a code that is not one, or of no département, is named"
    );
    let four_digits = &rows[16].issues[0];
    assert!(
        four_digits
            .reason
            .contains("07501 is no French postal code"),
        "a dropped zero is restored only where it gives a real code: {}",
        four_digits.reason
    );
}

#[test]
fn a_postal_code_abroad_is_kept_as_written() {
    let input = "nationbuilder_id,email1,primary_zip,primary_country_code\n\
        1,a@example.org,B-1000,BE\n\
        2,b@example.org,1050 ,BE\n"
        .as_bytes();

    let outcomes = read_str(input, Preset::NationBuilder);

    let rows: Vec<&ImportRow> = outcomes.iter().map(row).collect();
    assert_eq!(rows[0].postal_code.as_deref(), Some("B-1000"));
    assert_eq!(rows[1].postal_code.as_deref(), Some("1050"));
    assert!(rows.iter().all(|r| r.issues.is_empty()));
}

#[test]
fn the_columns_no_field_reads_are_named() {
    use crate::domain::custom_field::{Definition, Definitions, FieldType};
    let input = "Prénom;Nom;E-mail;Section;;Notes internes;Année;e-mail;\n\
        Ada;Lovelace;ada@example.org;Nord;x;y;2020;ada@old.example;\n\
        Bob;Byron;bob@example.org;Sud;;;2021;;\n"
        .as_bytes();
    let year = Definition::new("annee", "Année", FieldType::Number, &[]).unwrap();
    let mut reader = ImportReader::open(input, Preset::FrExcel, "inline.csv")
        .unwrap()
        .with_custom_fields(&Definitions::new([year]))
        .unwrap();

    let unread = |header: &str, column: usize, repeats: Option<usize>| UnreadColumn {
        header: header.into(),
        column,
        repeats,
    };
    assert_eq!(
        reader.unread_columns(),
        [
            unread("Section", 4, None),
            unread("Notes internes", 6, None),
            unread("e-mail", 8, Some(3)),
        ]
    );
    read_all(&mut reader);
    assert_eq!(
        reader.unnamed_values(),
        [(5, 1)],
        "the blank header of column 5 held one value; column 9 none"
    );
}

#[test]
fn a_row_whose_only_address_is_under_a_repeated_header_points_to_it() {
    let input = "Prénom;Nom;E-mail;Ville;E-mail\n\
        Ada;Lovelace;;Lyon;ada@example.org\n\
        Bob;Byron;;Paris;\n"
        .as_bytes();

    let outcomes = read_str(input, Preset::FrExcel);

    let reasons: Vec<&str> = outcomes
        .iter()
        .map(|outcome| match outcome {
            RowOutcome::Rejected { issues, .. } => issues[0].reason.as_str(),
            other => panic!("expected a rejection, got {other:?}"),
        })
        .collect();
    assert!(
        reasons[0].contains("column 5 repeats their header and is not read"),
        "{}",
        reasons[0]
    );
    assert_eq!(
        reasons[1],
        "nothing to reach this person by: no valid e-mail or phone"
    );
}

#[test]
fn a_custom_field_labelled_like_a_column_the_preset_reads_does_not_copy_it() {
    use crate::domain::custom_field::{Definition, Definitions, FieldType};
    let input = "Prénom;Nom;E-mail;Ville;Antenne\n\
        Ada;Lovelace;ada@example.org;Lyon;Croix-Rousse\n"
        .as_bytes();
    let town = Definition::new("ville", "Ville", FieldType::Text, &[]).unwrap();
    let branch = Definition::new("antenne", "Antenne", FieldType::Text, &[]).unwrap();
    let mut reader = ImportReader::open(input, Preset::FrExcel, "inline.csv")
        .unwrap()
        .with_custom_fields(&Definitions::new([town, branch]))
        .unwrap();

    let outcomes = read_all(&mut reader);

    let ada = row(&outcomes[0]);
    assert_eq!(ada.city.as_deref(), Some("Lyon"));
    let keys: Vec<&str> = ada.custom_fields.keys().map(String::as_str).collect();
    assert_eq!(keys, ["antenne"]);
}

#[test]
fn names_and_towns_are_spaced_once_between_words() {
    let input = "Prénom;Nom;E-mail;Ville\n\
        Jean\u{00A0} Pierre;Le  Gall;jp@example.org;Saint-Malo  \n\
        Ada;\"De\nla Tour\";ada@example.org;Le\tHavre\n"
        .as_bytes();

    let outcomes = read_str(input, Preset::FrExcel);

    let names: Vec<(Option<&str>, Option<&str>, Option<&str>)> = outcomes
        .iter()
        .map(row)
        .map(|r| {
            (
                r.first_name.as_deref(),
                r.last_name.as_deref(),
                r.city.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            (Some("Jean Pierre"), Some("Le Gall"), Some("Saint-Malo")),
            (Some("Ada"), Some("De la Tour"), Some("Le Havre")),
        ]
    );
}

#[test]
fn an_address_left_open_over_the_rows_below_it_is_named() {
    let input = "Prénom;Nom;E-mail;Adresse;Code postal\n\
        Ana;Open;ana@example.org;\"12 rue X;75011\n\
        Bob;Lost;bob@example.org;1 rue Y;75012\n\
        Cy;Lost;cy@example.org;2 rue Z;75013\n"
        .as_bytes();

    let outcomes = read_str(input, Preset::FrExcel);

    assert_eq!(outcomes.len(), 1, "the rows below are inside Ana's address");
    let ana = row(&outcomes[0]);
    assert_eq!(
        ana.address_line1, None,
        "other people's rows are not an address"
    );
    assert!(
        ana.issues
            .iter()
            .any(|i| i.field == "address_line1" && i.reason.contains("quote")),
        "{:?}",
        ana.issues
    );

    let input = "Prénom;Nom;E-mail;Adresse;Code postal\n\
        Cy;Fine;cy@example.org;\"3 rue C\nBât. 2, esc. B\";75013\n"
        .as_bytes();
    let cy = row(&read_str(input, Preset::FrExcel)[0]).clone();
    assert_eq!(cy.address_line1.as_deref(), Some("3 rue C\nBât. 2, esc. B"));
    assert!(cy.issues.is_empty(), "{:?}", cy.issues);
}

#[test]
fn a_row_with_values_past_the_last_column_is_rejected_not_stored_shifted() {
    let input = "Prénom;Nom;E-mail;Code postal\n\
        A;Ragged;ragged@example.org;33000;extra;more\n\
        B;Trailing;trailing@example.org;33000;;\n"
        .as_bytes();

    let outcomes = read_str(input, Preset::FrExcel);

    let RowOutcome::Rejected { issues, .. } = &outcomes[0] else {
        panic!("expected a rejection, got {:?}", outcomes[0]);
    };
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].field, "row");
    assert_eq!(issues[0].value, "extra | more");
    assert!(
        issues[0].reason.contains("the row is not imported"),
        "{issues:?}"
    );
    assert!(
        row(&outcomes[1]).issues.is_empty(),
        "empty trailing fields are nothing"
    );
}

#[test]
fn a_missing_column_error_escapes_control_characters_and_names_a_workbook() {
    let escape = "Pr\u{1b}]0;title\u{7};Nom\nx;y\n";
    let error = ImportReader::open(escape.as_bytes(), Preset::FrExcel, "esc.csv")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("Pr\\u{1b}]0"), "{error}");
    assert!(
        !error.contains('\u{1b}') && !error.contains('\u{7}'),
        "{error}"
    );

    let workbooks: [(&[u8], &str); 3] = [
        (
            b"PK\x03\x04\x14\x00\x06\x00;rest\n",
            "an Excel workbook (.xlsx)",
        ),
        (
            b"PK\x03\x04\x14\x00\x00\x08mimetypeapplication/vnd.oasis.opendocument.spreadsheet",
            "an OpenDocument spreadsheet (.ods)",
        ),
        (
            b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1\x00\x00",
            "an Excel 97-2003 workbook (.xls)",
        ),
    ];
    for (bytes, kind) in workbooks {
        let error = ImportReader::open(bytes, Preset::FrExcel, "liste")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.starts_with(&format!("liste: it is {kind}, not a CSV file")),
            "{error}"
        );
    }
}

#[test]
fn a_town_that_is_no_commune_of_its_postal_code_is_named_on_its_row() {
    let input = "Prénom;Nom;E-mail;Code postal;Ville\n\
        A;A;a@example.org;01400;Lyon\n\
        B;B;b@example.org;75011;Paris 11e\n\
        C;C;c@example.org;01400;\n"
        .as_bytes();

    let outcomes = read_str(input, Preset::FrExcel);

    let issues: Vec<(u64, &str)> = outcomes
        .iter()
        .map(row)
        .flat_map(|r| r.issues.iter().map(|i| (i.line, i.field)))
        .collect();
    assert_eq!(issues, [(2, "city")]);
    assert_eq!(
        row(&outcomes[0]).city.as_deref(),
        Some("Lyon"),
        "kept as written"
    );
}

#[test]
fn a_town_written_after_the_postal_code_places_a_row_without_a_town() {
    let input = "Prénom;Nom;E-mail;Code postal;Ville\n\
        A;A;a@example.org;56120 Josselin;\n\
        B;B;b@example.org;56120  Forges de Lanouée;Josselin\n\
        C;C;c@example.org;75008 CEDEX 08;\n"
        .as_bytes();

    let outcomes = read_str(input, Preset::FrExcel);

    let a = row(&outcomes[0]);
    assert_eq!(
        (a.postal_code.as_deref(), a.city.as_deref()),
        (Some("56120"), Some("Josselin"))
    );
    assert_eq!(a.place.and_then(|p| p.commune), Some("56091"));
    let b = row(&outcomes[1]);
    assert_eq!(
        b.city.as_deref(),
        Some("Josselin"),
        "the row's own town first"
    );
    let c = row(&outcomes[2]);
    assert_eq!(c.city, None, "CEDEX is no town");
}

#[test]
fn an_excel_separator_line_above_the_header_is_read_as_such() {
    let input = "sep=;\nPrénom;Nom;E-mail\nAda;Lovelace;ada@example.org\n".as_bytes();

    let outcomes = read_str(input, Preset::FrExcel);

    let ada = row(&outcomes[0]);
    assert_eq!(
        (ada.line, ada.email.as_ref().map(|e| e.as_str())),
        (3, Some("ada@example.org"))
    );
    assert!(ada.issues.is_empty(), "{:?}", ada.issues);
}

#[test]
fn a_dated_no_withdraws_and_a_bare_no_says_nothing() {
    let input = "Prénom;Nom;E-mail;Consentement e-mail;Date du consentement\n\
        Ada;L;ada@example.org;non;01/10/2024\n\
        Bob;M;bob@example.org;non;\n"
        .as_bytes();

    let outcomes = read_str(input, Preset::FrExcel);

    let ada = row(&outcomes[0]);
    let ConsentStatement::Withdrawn { time, .. } = &ada.consent else {
        panic!("a dated no is a withdrawal: {:?}", ada.consent);
    };
    assert_eq!(time.to_rfc3339(), "2024-09-30T22:00:00+00:00");
    let bob = row(&outcomes[1]);
    assert!(
        matches!(bob.consent, ConsentStatement::None),
        "{:?}",
        bob.consent
    );
    assert!(ada.issues.is_empty() && bob.issues.is_empty());
}

#[test]
fn a_consent_on_a_row_without_a_valid_address_is_named_not_recorded() {
    let input = "Prénom;Nom;E-mail;Téléphone;Consentement e-mail;Date du consentement\n\
        Ada;L;;06 12 34 56 78;oui;01/10/2024\n\
        Bob;M;bob@@example.org;06 12 34 56 79;oui;01/10/2024\n"
        .as_bytes();

    let outcomes = read_str(input, Preset::FrExcel);

    for outcome in &outcomes {
        let person = row(outcome);
        assert_eq!(person.consent, ConsentStatement::None);
        assert!(
            person.issues.iter().any(|i| i.field == "email_consent"
                && i.reason
                    .starts_with("a grant of e-mail consent without a valid e-mail")),
            "{:?}",
            person.issues
        );
    }
}

#[test]
fn a_row_shifted_over_an_empty_last_column_is_rejected_unless_every_row_is_longer() {
    let shifted = "Prénom;Nom;E-mail;Adresse;Code postal;Don\n\
        Ada;L;ada@example.org;1 rue A;75001;\n\
        Bob;M;bob@example.org;12; rue B;75002;\n"
        .as_bytes();

    let outcomes = read_str(shifted, Preset::FrExcel);

    assert!(
        matches!(outcomes[0], RowOutcome::Row(_)),
        "{:?}",
        outcomes[0]
    );
    let RowOutcome::Rejected { line, issues } = &outcomes[1] else {
        panic!("a shifted row is rejected: {:?}", outcomes[1]);
    };
    assert_eq!(*line, 3);
    assert!(
        issues[0].reason.contains("shifted the row's values"),
        "{issues:?}"
    );

    let trailing = "Prénom;Nom;E-mail\n\
        Ada;L;ada@example.org;\n\
        Bob;M;bob@example.org;\n"
        .as_bytes();
    let outcomes = read_str(trailing, Preset::FrExcel);
    assert!(
        outcomes.iter().all(|o| matches!(o, RowOutcome::Row(_))),
        "{outcomes:?}"
    );
    // The first row is judged by the rows read after it too.
    let first = "Prénom;Nom;E-mail;Adresse;Code postal;Don\n\
        Bob;M;bob@example.org;12; rue B;75002;\n\
        Ada;L;ada@example.org;1 rue A;75001;\n\
        Cy;N;cy@example.org;2 rue C;75003;10\n"
        .as_bytes();
    let outcomes = read_str(first, Preset::FrExcel);
    assert!(
        matches!(&outcomes[0], RowOutcome::Rejected { line: 2, .. }),
        "{:?}",
        outcomes[0]
    );
    assert!(
        outcomes[1..]
            .iter()
            .all(|o| matches!(o, RowOutcome::Row(_))),
        "{outcomes:?}"
    );
}

#[test]
fn blank_lines_keep_every_line_number_true() {
    let input = "Export des adhérents\n\n\nPrénom;Nom;E-mail\nA;B;a@b.fr\n\n\n\
                 C;D;\"c@d.fr\"\n\"E\nE\";F;e@f.fr\n\nG;H;g@h.fr\n";

    let mut reader = ImportReader::open(input.as_bytes(), Preset::FrExcel, "a.csv").unwrap();

    assert_eq!(reader.header_line(), 4);
    let lines: Vec<u64> = read_all(&mut reader).iter().map(|o| row(o).line).collect();
    assert_eq!(lines, [5, 8, 9, 12]);
}

#[test]
fn a_courtesy_title_is_no_first_name_and_two_people_in_one_cell_are_named() {
    let input = "Prénom;Nom;Téléphone\n\
                 Mme;Martin;02 97 22 11 00\n\
                 M. et Mme;Martin;02 97 22 11 00\n\
                 Mme Marie;Martin;02 97 22 11 00\n\
                 Jean et Marie;Martin;02 97 22 11 00\n\
                 Maxime;Martin;02 97 22 11 00\n\
                 Marie Me;Martin;02 97 22 11 00\n";

    let outcomes = read_str(input.as_bytes(), Preset::FrExcel);

    let first = |n: usize| {
        let row = row(&outcomes[n]);
        let reasons: Vec<&str> = row.issues.iter().map(|i| i.reason.as_str()).collect();
        (row.first_name.as_deref(), reasons)
    };
    let no_first_name = "a courtesy title, not a first name: the row has no first name";
    assert_eq!(first(0), (None, vec![no_first_name]));
    assert_eq!(first(1), (None, vec![no_first_name]));
    let (marie, reasons) = first(2);
    assert_eq!(marie, Some("Marie"));
    assert!(
        reasons[0].starts_with("a courtesy title before"),
        "{reasons:?}"
    );
    let (couple, reasons) = first(3);
    assert_eq!(couple, Some("Jean et Marie"));
    assert!(reasons[0].starts_with("names two people"), "{reasons:?}");
    assert_eq!(first(4), (Some("Maxime"), vec![]));
    assert_eq!(
        first(5),
        (Some("Marie Me"), vec![]),
        "only titles before the name"
    );
}
