//! Text forms of the typed values conditions compare: numbers, dates, IP ranges, base64.

use std::net::IpAddr;

const MILLIS_PER_DAY: i64 = 86_400_000;

/// Parses a decimal number as policies write them: optional sign, digits, optional
/// fraction and exponent. Words such as `inf` or `NaN` are not numbers here.
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let mantissa = body.split(['e', 'E']).next().unwrap_or_default();
    let has_digit = mantissa.chars().any(|c| c.is_ascii_digit());
    let allowed = body
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if !has_digit || !allowed {
        return None;
    }
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Formats a number the way a person would write it: integers without a fraction.
pub(crate) fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{n:.0}")
    } else {
        n.to_string()
    }
}

/// Parses a W3C ISO 8601 date (`2024`, `2024-05`, `2024-05-06`, `2024-05-06T07:08Z`,
/// `2024-05-06T07:08:09.123+02:00`) or epoch seconds, into milliseconds since the epoch.
/// A time without a zone is taken as UTC.
pub(crate) fn parse_date(text: &str) -> Option<i64> {
    let text = text.trim();
    // Four digits alone are a year; any other plain number counts epoch seconds.
    if text.len() != 4
        && let Some(seconds) = parse_number(text)
    {
        return epoch_seconds_to_millis(seconds);
    }
    let (date, time) = match text.split_once(['T', 't']) {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };

    let days = parse_calendar_date(date)?;
    let millis = match time {
        Some(time) => parse_time_of_day(time)?,
        None => 0,
    };
    days.checked_mul(MILLIS_PER_DAY)?.checked_add(millis)
}

fn epoch_seconds_to_millis(seconds: f64) -> Option<i64> {
    let millis = (seconds * 1000.0).round();
    // The bound keeps the conversion exact and far beyond any real date.
    if millis.abs() > 1e17 {
        return None;
    }
    #[expect(clippy::cast_possible_truncation, reason = "bounded just above")]
    Some(millis as i64)
}

/// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, as days since 1970-01-01.
fn parse_calendar_date(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let year = fixed_digits(parts.next()?, 4)?;
    let month = parts.next().map_or(Some(1), |m| fixed_digits(m, 2))?;
    let day = parts.next().map_or(Some(1), |d| fixed_digits(d, 2))?;
    if parts.next().is_some() || !(1..=12).contains(&month) {
        return None;
    }
    if day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// `hh:mm`, `hh:mm:ss` or `hh:mm:ss.fff`, then `Z`, `±hh:mm` or nothing, as milliseconds
/// after midnight UTC (possibly negative or past a day once the offset is applied).
fn parse_time_of_day(text: &str) -> Option<i64> {
    let (clock, offset) = split_zone(text)?;
    let mut parts = clock.split(':');
    let hours = fixed_digits(parts.next()?, 2)?;
    let minutes = fixed_digits(parts.next()?, 2)?;
    let seconds = match parts.next() {
        Some(s) => parse_seconds(s)?,
        None => 0,
    };
    if parts.next().is_some() || hours > 23 || minutes > 59 {
        return None;
    }
    Some((hours * 60 + minutes) * 60_000 + seconds - offset)
}

/// Splits off the zone designator; returns the clock text and the offset in milliseconds.
fn split_zone(text: &str) -> Option<(&str, i64)> {
    if let Some(clock) = text.strip_suffix(['Z', 'z']) {
        return Some((clock, 0));
    }
    let Some(at) = text.rfind(['+', '-']) else {
        return Some((text, 0));
    };
    let (clock, zone) = text.split_at(at);
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let (hours, minutes) = zone[1..].split_once(':')?;
    let hours = fixed_digits(hours, 2)?;
    let minutes = fixed_digits(minutes, 2)?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some((clock, sign * (hours * 60 + minutes) * 60_000))
}

/// `ss` or `ss.fff…` (any number of fraction digits, kept to milliseconds).
fn parse_seconds(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let seconds = fixed_digits(whole, 2)?;
    if seconds > 60 || !fraction.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if text.contains('.') && fraction.is_empty() {
        return None;
    }
    let millis = fraction
        .chars()
        .chain("000".chars())
        .take(3)
        .try_fold(0, |acc, c| Some(acc * 10 + i64::from(c.to_digit(10)?)))?;
    Some(seconds * 1000 + millis)
}

fn fixed_digits(text: &str, width: usize) -> Option<i64> {
    if text.len() != width || !text.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the usual era-based formula).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Formats milliseconds since the epoch as `YYYY-MM-DDThh:mm:ssZ` (with `.fff` when the
/// time has milliseconds).
pub(crate) fn format_date(millis: i64) -> String {
    let days = millis.div_euclid(MILLIS_PER_DAY);
    let in_day = millis.rem_euclid(MILLIS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let (seconds, fraction) = (in_day / 1000, in_day % 1000);
    let clock = format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    if fraction == 0 {
        format!("{year:04}-{month:02}-{day:02}T{clock}Z")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{clock}.{fraction:03}Z")
    }
}

/// An IP range: the network address and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, an IPv6 range, or a bare address (a range of one address).
    pub fn parse(text: &str) -> Option<Cidr> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: IpAddr = address.parse().ok()?;
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => p.parse().ok()?,
            Some(_) => return None,
            None => width,
        };
        (prefix <= width).then_some(Cidr { network, prefix })
    }

    /// Whether `address` lies in the range (an IPv4 address never lies in an IPv6 range).
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address) {
            (IpAddr::V4(net), IpAddr::V4(addr)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(addr) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(addr)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(addr) & mask
            }
            _ => false,
        }
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Decodes standard base64; padding is optional, whitespace is not allowed.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let body = text.trim_end_matches('=');
    if text.len() - body.len() > 2 || body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for byte in body.bytes() {
        let index = BASE64.iter().position(|&b| b == byte)?;
        buffer = (buffer << 6) | u32::try_from(index).ok()?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xFF).ok()?);
        }
    }
    Some(out)
}

/// Encodes bytes as standard base64 with padding.
pub(crate) fn encode_base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let group = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[((group >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_iso_dates_and_epoch_seconds_to_the_same_instant() {
        let iso = parse_date("2019-04-25T11:00:00Z");

        assert_eq!(iso, Some(1_556_190_000_000));
        assert_eq!(parse_date("1556190000"), iso);
        assert_eq!(parse_date("2019-04-25T13:00:00+02:00"), iso);
        assert_eq!(parse_date("2019-04-25T11:00:00.000Z"), iso);
        assert_eq!(parse_date("2019-04-25T11:00Z"), iso);
    }

    #[test]
    fn parses_partial_dates_as_the_start_of_the_period() {
        assert_eq!(parse_date("1970"), Some(0));
        assert_eq!(parse_date("2000-03"), parse_date("2000-03-01T00:00:00Z"));
        assert_eq!(parse_date("2024-02-29"), Some(1_709_164_800_000));
    }

    #[test]
    fn rejects_impossible_dates() {
        for text in [
            "2023-02-29",
            "2024-13-01",
            "2024-01-01T24:00Z",
            "yesterday",
            "",
            "20-1-1",
        ] {
            assert_eq!(parse_date(text), None, "{text}");
        }
    }

    #[test]
    fn formats_dates_back_to_iso() {
        assert_eq!(format_date(1_556_190_000_000), "2019-04-25T11:00:00Z");
        assert_eq!(format_date(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn ranges_contain_their_addresses() {
        let range = Cidr::parse("203.0.113.0/24").expect("valid range");

        assert!(range.contains("203.0.113.77".parse().expect("ip")));
        assert!(!range.contains("203.0.114.1".parse().expect("ip")));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .expect("all")
                .contains("8.8.8.8".parse().expect("ip"))
        );
        assert!(
            Cidr::parse("2001:db8::/32")
                .expect("v6")
                .contains("2001:db8::1".parse().expect("ip"))
        );
        assert!(
            !Cidr::parse("::/0")
                .expect("v6")
                .contains("10.0.0.1".parse().expect("ip"))
        );
        assert_eq!(Cidr::parse("10.0.0.1/33"), None);
    }

    #[test]
    fn base64_round_trips() {
        for bytes in [&b""[..], b"a", b"ab", b"abc", b"\x00\xff\x10\x20"] {
            assert_eq!(decode_base64(&encode_base64(bytes)).as_deref(), Some(bytes));
        }
        assert_eq!(decode_base64("QWxs"), Some(b"All".to_vec()));
        assert_eq!(decode_base64("Q!=="), None);
    }

    #[test]
    fn numbers_are_plain_decimals() {
        assert_eq!(parse_number("10.50"), Some(10.5));
        assert_eq!(parse_number("-3e2"), Some(-300.0));
        assert_eq!(parse_number("inf"), None);
        assert_eq!(parse_number("NaN"), None);
        assert_eq!(parse_number(""), None);
        assert_eq!(format_number(3600.0), "3600");
        assert_eq!(format_number(1.5), "1.5");
    }
}
