//! Dates and instants as written in supporter files.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc, Weekday};

/// Parses an instant written as RFC 3339, as `yyyy-mm-dd HH:MM[:SS]` (UTC, as machine exports
/// write it), or as `dd/mm/yyyy[ HH:MM[:SS]]` (French local time, as people write it).
pub(crate) fn parse_instant(raw: &str) -> Option<DateTime<Utc>> {
    let instant = match DateTime::parse_from_rfc3339(raw) {
        Ok(instant) => instant.with_timezone(&Utc),
        Err(_) => {
            let (date, time) = raw.split_once([' ', 'T']).unwrap_or((raw, ""));
            let time = if time.is_empty() {
                NaiveTime::MIN
            } else {
                parse_time(time)?
            };
            match (year_first(date), day_first(date)) {
                (Some(date), _) => date.and_time(time).and_utc(),
                (_, Some(date)) => paris_to_utc(date.and_time(time)),
                _ => return None,
            }
        }
    };
    Some(instant).filter(|instant| instant.year() >= 1900)
}

/// Parses a calendar date written `yyyy-mm-dd` or `dd/mm/yyyy`.
pub(crate) fn parse_date(raw: &str) -> Option<NaiveDate> {
    year_first(raw).or_else(|| day_first(raw))
}

/// `yyyy-mm-dd`.
fn year_first(raw: &str) -> Option<NaiveDate> {
    let [year, month, day] = numbers(raw, '-', [4, 2, 2])?;
    NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)
}

/// `dd/mm/yyyy`, the day and month possibly on one digit.
fn day_first(raw: &str) -> Option<NaiveDate> {
    let [day, month, year] = numbers(raw, '/', [2, 2, 4])?;
    if year < 1000 {
        return None;
    }
    NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)
}

/// `HH:MM` or `HH:MM:SS`.
fn parse_time(raw: &str) -> Option<NaiveTime> {
    let (hour_minute, second) = match numbers(raw, ':', [2, 2, 2]) {
        Some([hour, minute, second]) => ([hour, minute], second),
        None => (numbers(raw, ':', [2, 2])?, 0),
    };
    NaiveTime::from_hms_opt(hour_minute[0], hour_minute[1], second)
}

/// The N numbers of `raw` separated by `separator`, each of at most `widths` digits (the
/// four-digit ones exactly).
fn numbers<const N: usize>(raw: &str, separator: char, widths: [usize; N]) -> Option<[u32; N]> {
    let mut parts = raw.split(separator);
    let mut values = [0; N];
    for (value, width) in values.iter_mut().zip(widths) {
        let part = parts.next()?;
        let fits = if width == 4 {
            part.len() == 4
        } else {
            (1..=width).contains(&part.len())
        };
        if !fits || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *value = part.parse().ok()?;
    }
    parts.next().is_none().then_some(values)
}

/// The instant of a Europe/Paris wall-clock time, under the EU summer-time rule.
///
/// Summer time (UTC+2) runs from 01:00 UTC on the last Sunday of March to 01:00 UTC on the
/// last Sunday of October; UTC+1 otherwise. A time skipped by the spring change is read as
/// winter time (02:30 becomes 03:30 summer time); a time repeated in autumn is taken as the
/// first one, in summer time.
pub(crate) fn paris_to_utc(local: NaiveDateTime) -> DateTime<Utc> {
    let as_summer = (local - Duration::hours(2)).and_utc();
    let as_winter = (local - Duration::hours(1)).and_utc();
    if is_summer_time(as_summer) {
        as_summer
    } else {
        as_winter
    }
}

fn is_summer_time(instant: DateTime<Utc>) -> bool {
    let year = instant.year();
    let start = last_sunday(year, 3)
        .and_hms_opt(1, 0, 0)
        .map(|t| t.and_utc());
    let end = last_sunday(year, 10)
        .and_hms_opt(1, 0, 0)
        .map(|t| t.and_utc());
    match (start, end) {
        (Some(start), Some(end)) => start <= instant && instant < end,
        _ => false,
    }
}

fn last_sunday(year: i32, month: u32) -> NaiveDate {
    let first_of_next = NaiveDate::from_ymd_opt(year, month + 1, 1).unwrap_or(NaiveDate::MAX);
    let last = first_of_next.pred_opt().unwrap_or(first_of_next);
    let back = last.weekday().days_since(Weekday::Sun);
    last - Duration::days(i64::from(back))
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
    fn dates_are_read_in_both_orders() {
        let expected = NaiveDate::from_ymd_opt(1981, 4, 25);

        assert_eq!(parse_date("25/04/1981"), expected);
        assert_eq!(parse_date("1981-04-25"), expected);
        assert_eq!(parse_date("25/4/1981"), expected);
        assert_eq!(parse_date("25/04/81"), None);
        assert_eq!(parse_date("31/02/1981"), None);
    }
}
