//! Instants as written in supporter files.

use chrono::{DateTime, Datelike, NaiveTime, Utc};

use crate::domain::date::{Order, calendar_date, paris_to_utc, split_time, time_of_day};

/// What [`parse_instant`] reads, for the texts that ask for an instant.
pub(crate) const INSTANT_FORMS: &str = "dd/mm/yyyy HH:MM (French time), yyyy-mm-dd HH:MM:SS \
    (UTC) or a date alone (midnight, French time)";

/// Parses an instant written as RFC 3339, or as a date in any form
/// [`calendar_date`] reads (`yyyy-mm-dd`, `dd/mm/yyyy`, `dd.mm.yyyy`,
/// `dd-mm-yyyy`) followed by an optional `HH:MM[:SS]`.
///
/// A date alone is midnight in France, whichever order it is written in: a
/// consent given "on 01/09/2024" or "on 2024-09-01" was given that French
/// day. A time after a day-first date is French local time, as people write
/// it; after a year-first date it is UTC, as machine exports write it.
pub(crate) fn parse_instant(raw: &str) -> Option<DateTime<Utc>> {
    let instant = match DateTime::parse_from_rfc3339(raw) {
        Ok(instant) => instant.with_timezone(&Utc),
        Err(_) => written_instant(raw)?,
    };
    Some(instant).filter(|instant| instant.year() >= 1900)
}

/// An instant written as a date and an optional time (see [`parse_instant`]).
fn written_instant(raw: &str) -> Option<DateTime<Utc>> {
    let (date, time) = split_time(raw);
    let (date, order) = calendar_date(date).ok()?;
    let Some(time) = time else {
        return Some(paris_to_utc(date.and_time(NaiveTime::MIN)));
    };
    let local = date.and_time(time_of_day(time)?);
    Some(match order {
        Order::YearFirst => local.and_utc(),
        Order::DayFirst => paris_to_utc(local),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(raw: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(raw)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn french_wall_clock_times_become_utc_with_summer_time() {
        let cases = [
            ("17/09/2026 10:04", "2026-09-17T08:04:00Z"),
            ("14/03/2026 19:26", "2026-03-14T18:26:00Z"),
            ("29/03/2026 01:59", "2026-03-29T00:59:00Z"),
            ("29/03/2026 03:00", "2026-03-29T01:00:00Z"),
            ("25/10/2026 01:59", "2026-10-24T23:59:00Z"),
            ("25/10/2026 03:00", "2026-10-25T02:00:00Z"),
            ("31/12/2025", "2025-12-30T23:00:00Z"),
        ];

        for (raw, expected) in cases {
            assert_eq!(parse_instant(raw), Some(utc(expected)), "for {raw}");
        }
    }

    #[test]
    fn a_time_skipped_in_spring_is_read_as_winter_time() {
        assert_eq!(
            parse_instant("29/03/2026 02:30"),
            Some(utc("2026-03-29T01:30:00Z"))
        );
    }

    #[test]
    fn a_time_repeated_in_autumn_is_taken_as_the_first_one() {
        assert_eq!(
            parse_instant("25/10/2026 02:30"),
            Some(utc("2026-10-25T00:30:00Z"))
        );
    }

    #[test]
    fn machine_formats_are_read_as_utc_or_with_their_offset() {
        let cases = [
            ("2025-12-30 19:53:51", "2025-12-30T19:53:51Z"),
            ("2025-12-30T19:53", "2025-12-30T19:53:00Z"),
            ("2025-10-14T04:39:45+01:00", "2025-10-14T03:39:45Z"),
        ];

        for (raw, expected) in cases {
            assert_eq!(parse_instant(raw), Some(utc(expected)), "for {raw}");
        }
    }

    #[test]
    fn things_that_are_not_instants_are_refused() {
        let refused = [
            "",
            "hier",
            "32/01/2026 10:00",
            "2026-02-30 10:00:00",
            "17/09/2026 25:00",
            "17/09/26 10:00",
            "17/09/2026 10",
            "17/09/2026 10:00:00:00",
            "2026-09-17 10:00 extra",
            "0017-09-17 10:00:00",
        ];
        for raw in refused {
            assert_eq!(parse_instant(raw), None, "for {raw:?}");
        }
    }

    #[test]
    fn a_date_alone_is_midnight_in_france_whichever_order_it_is_written_in() {
        let cases = [
            ("2024-09-01", "2024-08-31T22:00:00Z"),
            ("01/09/2024", "2024-08-31T22:00:00Z"),
            ("1/9/2024", "2024-08-31T22:00:00Z"),
            ("01.09.2024", "2024-08-31T22:00:00Z"),
            ("01-09-2024", "2024-08-31T22:00:00Z"),
            ("2025-01-15", "2025-01-14T23:00:00Z"),
            ("15/01/2025", "2025-01-14T23:00:00Z"),
        ];

        for (raw, expected) in cases {
            assert_eq!(parse_instant(raw), Some(utc(expected)), "for {raw}");
        }
    }

    #[test]
    fn a_time_after_a_day_first_date_is_french_time_whatever_the_separator() {
        let cases = [
            ("17.09.2026 10:04", "2026-09-17T08:04:00Z"),
            ("17-09-2026 10:04:30", "2026-09-17T08:04:30Z"),
            ("17-9-2026 10:04", "2026-09-17T08:04:00Z"),
        ];

        for (raw, expected) in cases {
            assert_eq!(parse_instant(raw), Some(utc(expected)), "for {raw}");
        }
    }

    #[test]
    fn a_year_first_date_with_a_time_stays_utc_even_at_midnight() {
        assert_eq!(
            parse_instant("2024-09-01 00:00:00"),
            Some(utc("2024-09-01T00:00:00Z"))
        );
    }

    #[test]
    fn excel_serial_days_and_years_alone_are_not_instants() {
        for raw in ["45536", "45536.0", "2024", "17.09.26 10:00", "17-09-26"] {
            assert_eq!(parse_instant(raw), None, "for {raw:?}");
        }
    }
}
