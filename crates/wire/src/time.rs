//! Timestamps in the two text forms the protocol carries, without a calendar crate.
//!
//! `X-Amz-Date` uses `YYYYMMDDTHHMMSSZ`; message `CreatedDate` and every reply date use
//! `YYYY-MM-DDTHH:MM:SS.mmmZ` (24 characters, UTC). `TokenExpirationDate` is a JSON number
//! of seconds since the epoch and needs no helper.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a timestamp could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed timestamp {0:?}, expected YYYY-MM-DDTHH:MM:SS.mmmZ")]
pub struct TimestampError(pub String);

/// Calendar fields of a UTC instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
}

/// Formats `at` as `YYYYMMDDTHHMMSSZ`, the `X-Amz-Date` form.
pub fn amz_date(at: SystemTime) -> String {
    let c = civil(at);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// Formats `at` as `YYYY-MM-DDTHH:MM:SS.mmmZ`, the form of `CreatedDate` and reply dates.
pub fn iso8601_millis(at: SystemTime) -> String {
    let c = civil(at);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis
    )
}

/// Reads `YYYY-MM-DDTHH:MM:SS.mmmZ` (the fraction may have 0 to 9 digits).
pub fn parse_iso8601(text: &str) -> Result<SystemTime, TimestampError> {
    let bad = || TimestampError(text.to_owned());
    let body = text.strip_suffix('Z').ok_or_else(bad)?;
    let (date, clock) = body.split_once('T').ok_or_else(bad)?;
    let (clock, fraction) = clock.split_once('.').unwrap_or((clock, ""));

    let date: Vec<&str> = date.split('-').collect();
    let clock: Vec<&str> = clock.split(':').collect();
    let ([year, month, day], [hour, minute, second]) = (date.as_slice(), clock.as_slice()) else {
        return Err(bad());
    };
    let number = |s: &str, max: u32| s.parse::<u32>().ok().filter(|v| *v <= max).ok_or_else(bad);
    let year: i64 = year.parse().map_err(|_| bad())?;
    let (month, day) = (number(month, 12)?, number(day, 31)?);
    let (hour, minute, second) = (number(hour, 23)?, number(minute, 59)?, number(second, 60)?);
    if month == 0 || day == 0 || fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }

    let nanos: u32 = format!("{fraction:0<9}").parse().map_err(|_| bad())?;
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    let seconds = u64::try_from(seconds).map_err(|_| bad())?;
    Ok(UNIX_EPOCH + Duration::new(seconds, nanos))
}

fn civil(at: SystemTime) -> Civil {
    // Instants before 1970 never occur in this protocol; they print as the epoch.
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let total = since.as_secs();
    let days = i64::try_from(total / 86_400).unwrap_or(i64::MAX / 2);
    let rest = u32::try_from(total % 86_400).unwrap_or_default();
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: rest / 3600,
        minute: rest % 3600 / 60,
        second: rest % 60,
        millis: since.subsec_millis(),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (eras of 400 years).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both values are small by construction (day 1..=31, month 1..=12).
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(seconds * 1000 + millis)
    }

    #[test]
    fn formats_the_suite_signing_time() {
        assert_eq!(amz_date(at(1_440_938_160, 0)), "20150830T123600Z");
    }

    #[test]
    fn formats_reply_dates_with_milliseconds() {
        assert_eq!(
            iso8601_millis(at(1_796_302_255, 333)),
            "2026-12-03T12:50:55.333Z"
        );
        assert_eq!(
            iso8601_millis(at(951_782_400, 7)),
            "2000-02-29T00:00:00.007Z"
        );
    }

    #[test]
    fn parses_what_it_formats() {
        for (seconds, millis) in [
            (0, 0),
            (951_782_400, 7),
            (1_796_302_255, 333),
            (4_102_444_800, 999),
        ] {
            let text = iso8601_millis(at(seconds, millis));

            assert_eq!(parse_iso8601(&text), Ok(at(seconds, millis)), "{text}");
        }
    }

    #[test]
    fn rejects_malformed_timestamps() {
        for text in [
            "2026-12-03 12:50:55Z",
            "2026-13-03T12:50:55.000Z",
            "2026-12-03T12:50:55",
            "",
        ] {
            assert!(parse_iso8601(text).is_err(), "{text}");
        }
    }
}
