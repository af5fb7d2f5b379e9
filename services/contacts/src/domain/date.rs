//! Calendar dates as French supporter spreadsheets write them: year first
//! (`1981-02-18`), day first with `/`, `.` or `-` (`18/02/1981`,
//! `18.02.1981`, `18-2-1981`), with the midnight time Excel adds to a date
//! cell it exports with a time (`18/02/1981 00:00`), or as the Excel serial
//! day number a date cell becomes when exported unformatted (`29635`).
//!
//! The import (birth dates, the dates of consent instants) and custom date
//! fields read dates here, so that a value one accepts the other accepts too.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc, Weekday};

use super::{FieldError, trim_blank};

/// The written forms of a date, for the texts that ask for one.
pub const DATE_FORMS: &str = "dd/mm/yyyy, dd.mm.yyyy, dd-mm-yyyy or yyyy-mm-dd";

/// The order of a written date: the import reads a time written after a
/// day-first date as French time and one after a year-first date as UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// `yyyy-mm-dd`, as machines write it.
    YearFirst,
    /// `dd/mm/yyyy`, `dd.mm.yyyy` or `dd-mm-yyyy`, as people in France write it.
    DayFirst,
}

/// The calendar date in `raw`, or why it is not one.
///
/// A time after the date is accepted only when it is midnight: that is how
/// Excel exports a date cell formatted with a time, while any other time
/// means the column holds instants, not dates. A number is an Excel serial
/// day only with five digits (years 1927 to 2173), so that a year alone
/// (`1981`) or a count is never read as a day of 1905.
///
/// Each error's reason reads on its own and after a value and "is"
/// (`"1981" is a year alone, not a date: …`); callers name the field.
pub fn parse_date(raw: &str) -> Result<NaiveDate, FieldError> {
    let text = trim_blank(raw);
    if let Some(number) = whole_number(text) {
        return excel_serial_day(number).ok_or_else(|| not_a_day_number(number));
    }

    let (date, time) = split_time(text);
    let date = calendar_date(date)
        .map(|(date, _)| date)
        .map_err(|shape| shape.error())?;
    let Some(time) = time else {
        return Ok(date);
    };
    match time_of_day(time) {
        Some(NaiveTime::MIN) => Ok(date),
        Some(_) => Err(FieldError::new(format!(
            "a date with a time of day ({time}): give the date alone, as 18/02/1981"
        ))),
        None => Err(Shape::Unknown.error()),
    }
}

/// The date part of `raw` and the time written after it (after a space or
/// ISO 8601's `T`), if any.
pub fn split_time(raw: &str) -> (&str, Option<&str>) {
    match raw.split_once([' ', 'T']) {
        Some((date, time)) => (date, Some(time.trim_start())),
        None => (raw, None),
    }
}

/// The date written in `raw` without a time, and the order it is written in.
pub fn calendar_date(raw: &str) -> Result<(NaiveDate, Order), Shape> {
    let (separator, [first, second, third]) = parts(raw).ok_or(Shape::Unknown)?;
    let short = |part: &str| (1..=2).contains(&part.len());
    let (year, month, day, order) = match (first.len(), third.len()) {
        (4, _) if separator == '-' && short(second) && short(third) => {
            (first, second, third, Order::YearFirst)
        }
        (_, 4) if short(first) && short(second) => (third, second, first, Order::DayFirst),
        (_, 2) if short(first) && short(second) => return Err(Shape::TwoDigitYear),
        _ => return Err(Shape::Unknown),
    };

    let number = |part: &str| part.parse::<u32>().map_err(|_| Shape::Unknown);
    let year = i32::try_from(number(year)?).map_err(|_| Shape::Unknown)?;
    if year < 1000 {
        return Err(Shape::Unknown);
    }
    NaiveDate::from_ymd_opt(year, number(month)?, number(day)?)
        .map(|date| (date, order))
        .ok_or(Shape::NoSuchDay)
}

/// `HH:MM` or `HH:MM:SS`, the hour possibly on one digit.
pub fn time_of_day(raw: &str) -> Option<NaiveTime> {
    let numbers: Vec<&str> = raw.split(':').collect();
    let fits =
        |part: &&str| (1..=2).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit());
    if !(2..=3).contains(&numbers.len()) || !numbers.iter().all(fits) {
        return None;
    }
    let number = |at: usize| numbers.get(at).map_or(Some(0), |part| part.parse().ok());
    NaiveTime::from_hms_opt(number(0)?, number(1)?, number(2)?)
}

/// Why a text is not a calendar date, as far as its shape tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Not three numbers in one of the accepted orders.
    Unknown,
    /// Day and month first, and a year on two digits: 19xx or 20xx?
    TwoDigitYear,
    /// The right shape, but no such day (`31/02/1981`, month 13).
    NoSuchDay,
}

impl Shape {
    /// The error a user reads, saying what to write instead.
    pub fn error(self) -> FieldError {
        FieldError::new(match self {
            Shape::Unknown => format!("not a date: write it {DATE_FORMS}"),
            Shape::TwoDigitYear => {
                "not a date: its year has two digits (19.. or 20..?); write the year in full, \
                 as 18/02/1981"
                    .to_owned()
            }
            Shape::NoSuchDay => {
                "not a date: there is no such day; check the day and the month".to_owned()
            }
        })
    }
}

/// The separator and the three all-digit parts of `raw`, if it is made of
/// exactly that.
fn parts(raw: &str) -> Option<(char, [&str; 3])> {
    let separator = raw.chars().find(|c| !c.is_ascii_digit())?;
    if !matches!(separator, '-' | '/' | '.') {
        return None;
    }
    let mut parts = raw.split(separator);
    let mut found = [""; 3];
    for slot in &mut found {
        let part = parts.next()?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = part;
    }
    parts.next().is_none().then_some((separator, found))
}

/// The number `text` is made of: digits, possibly followed by the `.0` or
/// `,0` of a spreadsheet that exported a whole number as a decimal one.
fn whole_number(text: &str) -> Option<&str> {
    let digits = text
        .strip_suffix(".0")
        .or_else(|| text.strip_suffix(",0"))
        .unwrap_or(text);
    let is_number = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    is_number.then_some(digits)
}

/// The day an Excel serial number of the 1900 date system stands for, when
/// `digits` is one a date column can hold: five digits.
///
/// Day 1 is 1900-01-01 in Excel, which also counts a 29 February 1900 that
/// never was; counting from 1899-12-30 is right from day 61 (1900-03-01) on,
/// which every five-digit number is.
fn excel_serial_day(digits: &str) -> Option<NaiveDate> {
    if digits.len() != 5 {
        return None;
    }
    let days: i64 = digits.parse().ok()?;
    NaiveDate::from_ymd_opt(1899, 12, 30)?.checked_add_signed(Duration::days(days))
}

/// Why a number that is not an Excel serial day is not a date.
fn not_a_day_number(digits: &str) -> FieldError {
    match digits.len() {
        4 => FieldError::new("a year alone, not a date: give the full date, as 18/02/1981"),
        _ => Shape::Unknown.error(),
    }
}

/// The instant of a Europe/Paris wall-clock time, under the EU summer-time rule.
///
/// Summer time (UTC+2) runs from 01:00 UTC on the last Sunday of March to 01:00 UTC on the
/// last Sunday of October; UTC+1 otherwise. A time skipped by the spring change is read as
/// winter time (02:30 becomes 03:30 summer time); a time repeated in autumn is taken as the
/// first one, in summer time.
pub fn paris_to_utc(local: NaiveDateTime) -> DateTime<Utc> {
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

    fn day(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).unwrap()
    }

    fn reason(raw: &str) -> String {
        parse_date(raw).unwrap_err().reason
    }

    #[test]
    fn a_date_is_read_year_first_or_day_first_with_any_french_separator() {
        for raw in [
            "1981-02-18",
            "18/02/1981",
            "18/2/1981",
            "18.02.1981",
            "18.2.1981",
            "18-02-1981",
            "18-2-1981",
            " 18.02.1981\u{a0}",
        ] {
            assert_eq!(parse_date(raw), Ok(day(1981, 2, 18)), "{raw:?}");
        }
    }

    #[test]
    fn a_date_exported_with_a_midnight_time_is_that_date() {
        for raw in [
            "18/02/1981 00:00",
            "18/02/1981 00:00:00",
            "1981-02-18 00:00:00",
            "1981-02-18T00:00:00",
            "18.02.1981 0:00",
        ] {
            assert_eq!(parse_date(raw), Ok(day(1981, 2, 18)), "{raw:?}");
        }
    }

    #[test]
    fn a_date_with_another_time_of_day_is_refused_saying_so() {
        assert_eq!(
            reason("18/02/1981 10:30"),
            "a date with a time of day (10:30): give the date alone, as 18/02/1981"
        );
        assert!(reason("1981-02-18 00:00:01").contains("time of day (00:00:01)"));
        assert!(reason("18/02/1981 25:00").starts_with("not a date: write it dd/mm/yyyy"));
    }

    #[test]
    fn a_five_digit_number_is_an_excel_serial_day() {
        assert_eq!(parse_date("29635"), Ok(day(1981, 2, 18)));
        assert_eq!(parse_date("29635.0"), Ok(day(1981, 2, 18)));
        assert_eq!(parse_date("29635,0"), Ok(day(1981, 2, 18)));
        assert_eq!(parse_date("10000"), Ok(day(1927, 5, 18)));
        assert_eq!(parse_date("45000"), Ok(day(2023, 3, 15)));
        assert_eq!(parse_date("99999"), Ok(day(2173, 10, 13)));
    }

    #[test]
    fn a_year_alone_is_refused_asking_for_the_full_date() {
        for raw in ["1981", "1981.0", "1981,0"] {
            assert_eq!(
                reason(raw),
                "a year alone, not a date: give the full date, as 18/02/1981",
                "{raw:?}"
            );
        }
    }

    #[test]
    fn other_numbers_are_not_dates() {
        for raw in ["61", "981", "123456", "29635.5", "29635.00", "029635"] {
            assert!(reason(raw).starts_with("not a date: write it"), "{raw:?}");
        }
    }

    #[test]
    fn a_two_digit_year_is_refused_asking_for_the_year_in_full() {
        for raw in ["18/02/81", "18.02.81", "18-02-81"] {
            assert!(reason(raw).contains("write the year in full"), "{raw:?}");
        }
    }

    #[test]
    fn a_day_the_calendar_does_not_have_is_refused_naming_day_and_month() {
        for raw in ["31/02/1981", "1981-13-01", "29.02.1981", "00-01-1981"] {
            assert_eq!(
                reason(raw),
                "not a date: there is no such day; check the day and the month",
                "{raw:?}"
            );
        }
    }

    #[test]
    fn other_shapes_are_refused_listing_the_forms() {
        for raw in [
            "",
            "hier",
            "18 février 1981",
            "1981/02/18",
            "1981.02.18",
            "18/02-1981",
            "18/02/1981/1",
            "181/02/1981",
            "0981-02-18",
            "18/02/01981",
            "-18-02-1981",
            "18/02/1981 à midi",
        ] {
            assert_eq!(
                reason(raw),
                "not a date: write it dd/mm/yyyy, dd.mm.yyyy, dd-mm-yyyy or yyyy-mm-dd",
                "{raw:?}"
            );
        }
    }

    #[test]
    fn the_order_of_a_date_is_told() {
        assert_eq!(
            calendar_date("2024-09-01"),
            Ok((day(2024, 9, 1), Order::YearFirst))
        );
        assert_eq!(
            calendar_date("01-09-2024"),
            Ok((day(2024, 9, 1), Order::DayFirst))
        );
    }
}
