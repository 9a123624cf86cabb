//! Schedule triggers' cron expressions (the standard five fields) and IANA time zone names,
//! looked up in a time zone database compiled into the binary, so no file is ever read.
//!
//! A [`CronSpec`] is a set of civil times; [`next_fire_after`] walks civil times in the
//! schedule's zone and turns them into instants, so the daylight-saving rules live in one
//! place:
//!
//! - A civil time that a forward shift skips (02:30 on a spring-forward night) fires once, at
//!   the instant it would name had the clock not moved: 03:30 after a one-hour shift.
//! - A civil time that a backward shift repeats (01:30 on a fall-back night) fires once, at
//!   its first occurrence.
//! - Two civil times naming one instant fire once.

use jiff::civil::{Date, DateTime};
use jiff::tz::{TimeZone, TimeZoneDatabase};
use jiff::{SignedDuration, Timestamp, ToSpan};
use std::sync::OnceLock;

/// Longest cron expression accepted, in bytes; real ones are a few dozen.
pub const CRON_LEN_MAX: usize = 256;

/// One of the five fields: its name for messages, its bounds, and its three-letter names.
struct Field {
    name: &'static str,
    min: u8,
    max: u8,
    /// Names for the values `min..`, matched without regard to ASCII case.
    names: &'static [&'static str],
}

const MINUTE: Field = Field { name: "minute", min: 0, max: 59, names: &[] };
const HOUR: Field = Field { name: "hour", min: 0, max: 23, names: &[] };
const DAY_OF_MONTH: Field = Field { name: "day-of-month", min: 1, max: 31, names: &[] };
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
};
/// 0 and 7 are both Sunday.
const DAY_OF_WEEK: Field = Field {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

/// Days [`next_fire_after`] searches ahead: a schedule for February 29th may wait eight
/// years (2096 to 2104), and every valid expression fires within that.
const SEARCH_DAYS_MAX: i64 = 8 * 366 + 2;

/// The longest the clock can jump forward in a day, so the earliest civil time whose
/// forward-shifted instant can still lie ahead is no further back than this.
const SHIFT_LOOKBACK: SignedDuration = SignedDuration::from_hours(24);

/// Longest month, by month number (February in a leap year).
const DAYS_IN_MONTH_MAX: [u8; 13] = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// A parsed cron expression: the allowed values of each field as bitsets (bit n = value n).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CronSpec {
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    /// Bit 0 is Sunday; a written 7 is stored as 0.
    days_of_week: u64,
    /// A day field is restricted unless it starts with `*`. When both are restricted, a day
    /// matching either one is enough (the classic cron rule); otherwise both must match.
    day_of_month_restricted: bool,
    day_of_week_restricted: bool,
}

/// Parses a five-field cron expression: `minute hour day-of-month month day-of-week`, each a
/// list of `*`, values, ranges `a-b` and steps `*/n`, `a-b/n` or `a/n` (from a to the end).
/// The error says what is wrong, for logs and `details`; the API message is the reference's.
pub fn parse_cron(source: &str) -> Result<CronSpec, String> {
    if source.len() > CRON_LEN_MAX {
        return Err(format!("cron expression is longer than {CRON_LEN_MAX} characters"));
    }
    let fields: Vec<&str> = source.split_ascii_whitespace().collect();
    if fields.first().is_some_and(|f| f.starts_with('@')) {
        return Err("macros such as @daily are not supported: write the five fields".to_owned());
    }
    let [minute, hour, day_of_month, month, day_of_week] = fields[..] else {
        return Err(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
            fields.len()
        ));
    };

    let (days_of_week, day_of_week_restricted) = parse_field(day_of_week, &DAY_OF_WEEK)?;
    let (days_of_month, day_of_month_restricted) = parse_field(day_of_month, &DAY_OF_MONTH)?;
    let spec = CronSpec {
        minutes: parse_field(minute, &MINUTE)?.0,
        hours: parse_field(hour, &HOUR)?.0,
        days_of_month,
        months: parse_field(month, &MONTH)?.0,
        days_of_week: fold_sunday(days_of_week),
        day_of_month_restricted,
        day_of_week_restricted,
    };
    if !spec.has_a_day() {
        return Err("the day-of-month never occurs in the chosen months".to_owned());
    }
    Ok(spec)
}

fn fold_sunday(days_of_week: u64) -> u64 {
    let sunday_as_seven = days_of_week & (1 << 7) != 0;
    (days_of_week & !(1 << 7)) | u64::from(sunday_as_seven)
}

/// A field's bitset, and whether it restricts (does not start with `*`).
fn parse_field(text: &str, field: &Field) -> Result<(u64, bool), String> {
    let mut bits = 0;
    for item in text.split(',') {
        bits |= parse_item(item, field).map_err(|e| format!("{} field: {e}", field.name))?;
    }
    Ok((bits, !text.starts_with('*')))
}

fn parse_item(item: &str, field: &Field) -> Result<u64, String> {
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(parse_step(step, field)?)),
        None => (item, None),
    };
    let (first, last) = match range.split_once('-') {
        _ if range == "*" => (field.min, field.max),
        Some((first, last)) => (parse_value(first, field)?, parse_value(last, field)?),
        None if step.is_some() => (parse_value(range, field)?, field.max),
        None => {
            let value = parse_value(range, field)?;
            (value, value)
        }
    };
    if first > last {
        return Err(format!("range {range:?} runs backwards"));
    }
    let step = usize::from(step.unwrap_or(1));
    Ok((first..=last).step_by(step).fold(0, |bits, value| bits | 1 << value))
}

fn parse_step(text: &str, field: &Field) -> Result<u8, String> {
    let step = parse_number(text).filter(|&n| (1..=field.max).contains(&n));
    step.ok_or_else(|| format!("step {text:?} is not a number from 1 to {}", field.max))
}

fn parse_value(text: &str, field: &Field) -> Result<u8, String> {
    let named = field.names.iter().position(|name| name.eq_ignore_ascii_case(text));
    let value = match named {
        Some(index) => field.min + index as u8,
        None => parse_number(text).ok_or_else(|| format!("{text:?} is not a value"))?,
    };
    if !(field.min..=field.max).contains(&value) {
        return Err(format!("{value} is outside {}-{}", field.min, field.max));
    }
    Ok(value)
}

/// One to three ASCII digits (leading zeros allowed, as in `05`).
fn parse_number(text: &str) -> Option<u8> {
    let digits = !text.is_empty() && text.len() <= 3 && text.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| text.parse().ok()).flatten()
}

fn has(bits: u64, value: u8) -> bool {
    value < 64 && bits & (1 << value) != 0
}

impl CronSpec {
    /// Whether the schedule fires at this civil minute. `day_of_week` is 0-6 from Sunday (7 is
    /// also Sunday); values out of range never match.
    pub fn matches(
        &self,
        minute: u8,
        hour: u8,
        day_of_month: u8,
        month: u8,
        day_of_week: u8,
    ) -> bool {
        has(self.minutes, minute)
            && has(self.hours, hour)
            && has(self.months, month)
            && self.day_matches(day_of_month, day_of_week)
    }

    /// [`matches`](Self::matches) for a civil date-time in the schedule's zone; seconds are
    /// ignored.
    pub fn matches_civil(&self, at: DateTime) -> bool {
        let civil = |n: i8| u8::try_from(n).unwrap_or(u8::MAX);
        let weekday = civil(at.weekday().to_sunday_zero_offset());
        self.matches(
            civil(at.minute()),
            civil(at.hour()),
            civil(at.day()),
            civil(at.month()),
            weekday,
        )
    }

    fn day_matches(&self, day_of_month: u8, day_of_week: u8) -> bool {
        let by_month_day = has(self.days_of_month, day_of_month);
        let by_weekday = day_of_week <= 7 && has(self.days_of_week, day_of_week % 7);
        if self.day_of_month_restricted && self.day_of_week_restricted {
            by_month_day || by_weekday
        } else {
            by_month_day && by_weekday
        }
    }

    /// Whether the schedule fires on some minute of `date`.
    fn fires_on(&self, date: Date) -> bool {
        let civil = |n: i8| u8::try_from(n).unwrap_or(u8::MAX);
        let weekday = civil(date.weekday().to_sunday_zero_offset());
        has(self.months, civil(date.month())) && self.day_matches(civil(date.day()), weekday)
    }

    /// The civil minutes the schedule names, in order, from `from` (inclusive) through
    /// [`SEARCH_DAYS_MAX`] days.
    fn civil_minutes_from(self, from: DateTime) -> impl Iterator<Item = DateTime> {
        let first_day = from.date();
        (0..SEARCH_DAYS_MAX)
            .map_while(move |n| first_day.checked_add(n.days()).ok())
            .filter(move |day| self.fires_on(*day))
            .flat_map(move |day| {
                values_of(self.hours, 23).flat_map(move |hour| {
                    values_of(self.minutes, 59).map(move |minute| day.at(hour, minute, 0, 0))
                })
            })
            .filter(move |at| *at >= from)
    }

    /// Whether some date satisfies the day and month fields, so the schedule fires at all.
    fn has_a_day(&self) -> bool {
        let weekdays_decide = self.day_of_month_restricted && self.day_of_week_restricted;
        weekdays_decide
            || (1..=12u8).any(|month| {
                has(self.months, month)
                    && (1..=DAYS_IN_MONTH_MAX[usize::from(month)])
                        .any(|day| has(self.days_of_month, day))
            })
    }
}

/// The values `0..=max` present in `bits`, as civil-time fields.
fn values_of(bits: u64, max: i8) -> impl Iterator<Item = i8> {
    (0..=max).filter(move |&value| has(bits, value as u8))
}

/// The first instant after `after_ms` (strictly) at which the schedule fires in `zone`, in
/// epoch milliseconds; `None` when there is none within [`SEARCH_DAYS_MAX`] days or the
/// time is out of range. Instants before `after_ms` are never returned, so a scheduler that
/// asks with the current time skips whatever it missed while it was down.
pub fn next_fire_after(spec: &CronSpec, zone: &TimeZone, after_ms: i64) -> Option<i64> {
    let after = Timestamp::from_millisecond(after_ms).ok()?;
    let start = walk_start(zone, after)?;
    let mut best: Option<(Timestamp, DateTime)> = None;
    for civil in spec.civil_minutes_from(start) {
        // Past the civil reading of the best instant, every later civil time is later still.
        if best.is_some_and(|(_, best_civil)| civil > best_civil) {
            break;
        }
        // `compatible`: a skipped time shifts forward, a repeated one takes its first pass.
        let Ok(at) = zone.to_ambiguous_timestamp(civil).compatible() else { continue };
        let earlier_than_best = best.is_none_or(|(best_at, _)| at < best_at);
        if at > after && earlier_than_best {
            best = Some((at, zone.to_datetime(at)));
        }
    }
    best.map(|(at, _)| at.as_millisecond())
}

/// The civil minute the walk starts from: the reading of `after`, moved back by however far
/// the clock jumped forward in the day before, since a civil time inside that jump fires
/// later than it reads.
fn walk_start(zone: &TimeZone, after: Timestamp) -> Option<DateTime> {
    let day_before = after.checked_sub(SHIFT_LOOKBACK).ok()?;
    let jumped_s = zone.to_offset(after).seconds() - zone.to_offset(day_before).seconds();
    let lookback = SignedDuration::from_secs(i64::from(jumped_s.max(0)));
    let reading = zone.to_datetime(after).checked_sub(lookback).ok()?;
    reading.with().second(0).subsec_nanosecond(0).build().ok()
}

/// The time zone database compiled into the binary.
fn bundled_tzdb() -> &'static TimeZoneDatabase {
    static TZDB: OnceLock<TimeZoneDatabase> = OnceLock::new();
    TZDB.get_or_init(TimeZoneDatabase::bundled)
}

/// The zone with this IANA name (looked up without regard to ASCII case, as JavaScript's
/// `Intl` does), from the bundled database.
pub fn time_zone(name: &str) -> Option<TimeZone> {
    // The database answers this name with its placeholder for "no zone".
    let placeholder = name.eq_ignore_ascii_case("Etc/Unknown");
    if placeholder {
        return None;
    }
    bundled_tzdb().get(name).ok()
}

/// Whether `name` is an IANA time zone name, such as `America/Los_Angeles` or `UTC`.
pub fn is_valid_timezone(name: &str) -> bool {
    time_zone(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(bits: u64) -> Vec<u8> {
        (0..64).filter(|&v| has(bits, v)).collect()
    }

    #[test]
    fn fields_parse_to_sets() {
        let spec = parse_cron("*/15 9-17/4 1,15,31 JAN-mar,Dec mon-FRI").unwrap();
        assert_eq!(values(spec.minutes), [0, 15, 30, 45]);
        assert_eq!(values(spec.hours), [9, 13, 17]);
        assert_eq!(values(spec.days_of_month), [1, 15, 31]);
        assert_eq!(values(spec.months), [1, 2, 3, 12]);
        assert_eq!(values(spec.days_of_week), [1, 2, 3, 4, 5]);

        type FieldOf = fn(&CronSpec) -> u64;
        let cases: &[(&str, FieldOf, &[u8])] = &[
            ("* * * * *", |s| s.minutes, &[]),
            ("5/20 * * * *", |s| s.minutes, &[5, 25, 45]),
            ("05 * * * *", |s| s.minutes, &[5]),
            ("0 0 * * 7", |s| s.days_of_week, &[0]),
            ("0 0 * * 5-7", |s| s.days_of_week, &[0, 5, 6]),
            ("0 0 * * 0,7", |s| s.days_of_week, &[0]),
            ("0 0 * * */2", |s| s.days_of_week, &[0, 2, 4, 6]),
            ("0 0 * * sun", |s| s.days_of_week, &[0]),
            ("0 0 1-31/10 * *", |s| s.days_of_month, &[1, 11, 21, 31]),
            ("0 0 * */3 *", |s| s.months, &[1, 4, 7, 10]),
            ("0 23 * * *", |s| s.hours, &[23]),
            ("  0\t12  *  *  *  ", |s| s.hours, &[12]),
        ];
        for (source, field, expected) in cases {
            let spec = parse_cron(source).unwrap_or_else(|e| panic!("{source}: {e}"));
            if !expected.is_empty() {
                assert_eq!(values(field(&spec)), *expected, "{source}");
            }
        }
        assert_eq!(values(parse_cron("* * * * *").unwrap().minutes).len(), 60);
    }

    #[test]
    fn invalid_expressions_say_why() {
        let cases = [
            ("", "expected 5 fields"),
            ("* * * *", "expected 5 fields"),
            ("0 * * * * *", "found 6"),
            ("@daily", "macros such as @daily are not supported"),
            ("@reboot", "macros"),
            ("60 * * * *", "minute field: 60 is outside 0-59"),
            ("* 24 * * *", "hour field: 24 is outside 0-23"),
            ("* * 0 * *", "day-of-month field: 0 is outside 1-31"),
            ("* * 32 * *", "day-of-month field: 32 is outside 1-31"),
            ("* * * 0 *", "month field: 0 is outside 1-12"),
            ("* * * 13 *", "month field: 13 is outside 1-12"),
            ("* * * * 8", "day-of-week field: 8 is outside 0-7"),
            ("* * * * MONDAY", "day-of-week field: \"MONDAY\" is not a value"),
            ("* * * MON *", "month field: \"MON\" is not a value"),
            ("* * * * JAN", "day-of-week field: \"JAN\" is not a value"),
            ("JAN * * * *", "minute field: \"JAN\" is not a value"),
            ("*/0 * * * *", "minute field: step \"0\" is not a number from 1 to 59"),
            ("*/60 * * * *", "step \"60\""),
            ("*/ * * * *", "step \"\""),
            ("5-1 * * * *", "minute field: range \"5-1\" runs backwards"),
            ("* * * * FRI-MON", "runs backwards"),
            ("1,,2 * * * *", "\"\" is not a value"),
            ("1, * * * *", "\"\" is not a value"),
            ("-1 * * * *", "\"\" is not a value"),
            ("+1 * * * *", "\"+1\" is not a value"),
            ("1-2-3 * * * *", "\"2-3\" is not a value"),
            ("*/5/2 * * * *", "step \"5/2\""),
            ("0005 * * * *", "\"0005\" is not a value"),
            ("? * * * *", "\"?\" is not a value"),
            ("* * ? * MON", "\"?\" is not a value"),
            ("* * L * *", "\"L\" is not a value"),
            ("* * * * 1#2", "\"1#2\" is not a value"),
            ("0 0 30 2 *", "the day-of-month never occurs in the chosen months"),
            ("0 0 31 4,6,9,11 *", "never occurs"),
        ];
        for (source, expected) in cases {
            let error = parse_cron(source).expect_err(source);
            assert!(error.contains(expected), "{source:?}: got {error:?}, wanted {expected:?}");
        }
        assert!(parse_cron(&format!("{} * * * *", "0,".repeat(200))).is_err());
        assert!(parse_cron("0 0 29 2 *").is_ok(), "leap days exist");
        assert!(parse_cron("0 0 30 2 MON").is_ok(), "either day field may match");
    }

    #[test]
    fn matching_follows_the_classic_day_rule() {
        // (expression, minute, hour, day of month, month, day of week, matches)
        let cases = [
            ("* * * * *", 0, 0, 1, 1, 0, true),
            ("30 9 * * *", 30, 9, 17, 6, 3, true),
            ("30 9 * * *", 31, 9, 17, 6, 3, false),
            ("30 9 * * *", 30, 10, 17, 6, 3, false),
            ("0 0 * 6 *", 0, 0, 1, 7, 3, false),
            // only day-of-week restricted: it alone decides
            ("0 9 * * MON-FRI", 0, 9, 14, 3, 1, true),
            ("0 9 * * MON-FRI", 0, 9, 14, 3, 6, false),
            ("0 9 * * 7", 0, 9, 14, 3, 0, true),
            ("0 9 * * 0", 0, 9, 14, 3, 7, true),
            // only day-of-month restricted
            ("0 0 1 * *", 0, 0, 1, 5, 4, true),
            ("0 0 1 * *", 0, 0, 2, 5, 5, false),
            // both restricted: either suffices
            ("0 0 1 * MON", 0, 0, 1, 5, 4, true),
            ("0 0 1 * MON", 0, 0, 8, 5, 1, true),
            ("0 0 1 * MON", 0, 0, 8, 5, 2, false),
            // a field starting with * is not a restriction, so both must match
            ("0 0 */2 * MON", 0, 0, 3, 5, 1, true),
            ("0 0 */2 * MON", 0, 0, 4, 5, 1, false),
            ("0 0 */2 * MON", 0, 0, 3, 5, 2, false),
            // out-of-range inputs never match
            ("* * * * *", 60, 0, 1, 1, 0, false),
            ("* * * * *", 0, 24, 1, 1, 0, false),
            ("* * * * *", 0, 0, 0, 1, 0, false),
            ("* * * * *", 0, 0, 1, 13, 0, false),
            ("* * * * *", 0, 0, 1, 1, 8, false),
            ("* * * * *", 0, 0, 1, 1, 255, false),
        ];
        for (source, minute, hour, dom, month, dow, expected) in cases {
            let spec = parse_cron(source).unwrap();
            let got = spec.matches(minute, hour, dom, month, dow);
            assert_eq!(got, expected, "{source} at {minute} {hour} {dom} {month} {dow}");
        }
    }

    #[test]
    fn matches_civil_date_times() {
        let spec = parse_cron("0 9 * * MON").unwrap();
        // 2026-03-02 is a Monday.
        assert!(spec.matches_civil(jiff::civil::date(2026, 3, 2).at(9, 0, 0, 0)));
        assert!(spec.matches_civil(jiff::civil::date(2026, 3, 2).at(9, 0, 59, 0)));
        assert!(!spec.matches_civil(jiff::civil::date(2026, 3, 3).at(9, 0, 0, 0)));
        assert!(!spec.matches_civil(jiff::civil::date(2026, 3, 2).at(9, 1, 0, 0)));
    }

    /// Epoch milliseconds of an RFC 3339 instant.
    fn ms(instant: &str) -> i64 {
        instant.parse::<Timestamp>().unwrap_or_else(|e| panic!("{instant}: {e}")).as_millisecond()
    }

    fn next(cron: &str, zone: &str, after: &str) -> Option<String> {
        let spec = parse_cron(cron).unwrap();
        let zone = time_zone(zone).unwrap();
        let next_ms = next_fire_after(&spec, &zone, ms(after))?;
        Some(Timestamp::from_millisecond(next_ms).unwrap().to_string())
    }

    #[test]
    fn next_fire_is_strictly_after_the_given_instant() {
        // (cron, zone, after, next)
        let cases = [
            ("0 9 * * *", "UTC", "2026-03-02T08:59:59.999Z", "2026-03-02T09:00:00Z"),
            ("0 9 * * *", "UTC", "2026-03-02T09:00:00Z", "2026-03-03T09:00:00Z"),
            ("0 9 * * *", "UTC", "2026-03-02T09:00:30Z", "2026-03-03T09:00:00Z"),
            ("* * * * *", "UTC", "2026-03-02T09:00:30Z", "2026-03-02T09:01:00Z"),
            ("0 9 * * MON", "UTC", "2026-03-02T09:00:00Z", "2026-03-09T09:00:00Z"),
            ("0 0 1 * MON", "UTC", "2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z"),
            ("0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z", "2028-02-29T00:00:00Z"),
            ("0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z"),
            ("*/15 9-17 * * MON-FRI", "UTC", "2026-03-06T17:45:00Z", "2026-03-09T09:00:00Z"),
            ("0 9 * * *", "Asia/Kolkata", "2026-03-02T00:00:00Z", "2026-03-02T03:30:00Z"),
            ("0 9 * * *", "America/New_York", "2026-01-15T12:00:00Z", "2026-01-15T14:00:00Z"),
            ("0 9 * * *", "America/New_York", "2026-07-15T12:00:00Z", "2026-07-15T13:00:00Z"),
        ];
        for (cron, zone, after, expected) in cases {
            let got = next(cron, zone, after);
            assert_eq!(got.as_deref(), Some(expected), "{cron} in {zone} after {after}");
        }
    }

    /// America/New_York in 2026: 02:00 EST becomes 03:00 EDT on March 8 (07:00Z), and 02:00
    /// EDT becomes 01:00 EST on November 1 (06:00Z). Europe/Berlin: 02:00 CET becomes 03:00
    /// CEST on March 29 (01:00Z), and 03:00 CEST becomes 02:00 CET on October 25 (01:00Z).
    #[test]
    fn daylight_saving_shifts_neither_skip_nor_double() {
        let cases = [
            // A skipped civil time fires once, shifted forward by the jump...
            ("30 2 * * *", "America/New_York", "2026-03-08T06:00:00Z", "2026-03-08T07:30:00Z"),
            ("30 2 * * *", "America/New_York", "2026-03-08T07:30:00Z", "2026-03-09T06:30:00Z"),
            ("30 2 * * *", "Europe/Berlin", "2026-03-29T00:00:00Z", "2026-03-29T01:30:00Z"),
            ("30 2 * * *", "Europe/Berlin", "2026-03-29T01:30:00Z", "2026-03-30T00:30:00Z"),
            // ...even when asked from inside the hour the jump made.
            ("50 2 * * *", "America/New_York", "2026-03-08T07:10:00Z", "2026-03-08T07:50:00Z"),
            // Every minute: the minute after 01:59 EST is 03:00 EDT.
            ("* * * * *", "America/New_York", "2026-03-08T06:59:00Z", "2026-03-08T07:00:00Z"),
            ("* * * * *", "America/New_York", "2026-03-08T07:00:00Z", "2026-03-08T07:01:00Z"),
            // A repeated civil time fires at its first pass only.
            ("30 1 * * *", "America/New_York", "2026-11-01T04:00:00Z", "2026-11-01T05:30:00Z"),
            ("30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"),
            ("30 1 * * *", "America/New_York", "2026-11-01T06:10:00Z", "2026-11-02T06:30:00Z"),
            ("30 2 * * *", "Europe/Berlin", "2026-10-24T23:00:00Z", "2026-10-25T00:30:00Z"),
            ("30 2 * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"),
            // Hourly: the repeated 01:00 is not run again, the next run is 02:00 EST.
            ("0 * * * *", "America/New_York", "2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z"),
            // Times on either side of a shift are unaffected.
            ("0 9 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29T07:00:00Z"),
            ("0 9 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T08:00:00Z"),
        ];
        for (cron, zone, after, expected) in cases {
            let got = next(cron, zone, after);
            assert_eq!(got.as_deref(), Some(expected), "{cron} in {zone} after {after}");
        }
    }

    #[test]
    fn civil_times_naming_one_instant_fire_once_in_order() {
        // 02:00 is skipped and shifts to 03:00, which is also named; 02:50 shifts to 03:50,
        // also named. Each instant fires once, in time order, not in civil order.
        let mut after = ms("2026-03-08T06:59:00Z");
        let mut fired = Vec::new();
        let spec = parse_cron("0,50 2,3 * * *").unwrap();
        let zone = time_zone("America/New_York").unwrap();
        for _ in 0..3 {
            after = next_fire_after(&spec, &zone, after).unwrap();
            fired.push(Timestamp::from_millisecond(after).unwrap().to_string());
        }
        assert_eq!(fired, ["2026-03-08T07:00:00Z", "2026-03-08T07:50:00Z", "2026-03-09T06:00:00Z"]);
    }

    #[test]
    fn a_year_of_half_hours_fires_each_instant_once() {
        for zone_name in ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe"] {
            let spec = parse_cron("*/30 * * * *").unwrap();
            let zone = time_zone(zone_name).unwrap();
            let zoned = |civil: &str| {
                let civil: DateTime = civil.parse().unwrap();
                zone.to_timestamp(civil).unwrap().as_millisecond()
            };
            let (start, end) = (zoned("2026-01-01T00:00"), zoned("2027-01-01T00:00"));
            let mut fired = Vec::new();
            let mut after = start - 1;
            while let Some(at) = next_fire_after(&spec, &zone, after).filter(|&at| at < end) {
                assert!(at > after, "{zone_name}: {at} after {after}");
                let civil = zone.to_datetime(Timestamp::from_millisecond(at).unwrap());
                assert!(spec.matches_civil(civil), "{zone_name}: {civil} is not a named minute");
                fired.push(at);
                after = at;
            }
            // 365 days of 48 half hours, less the ones a forward jump skips: the skipped
            // civil times shift onto instants that are fired anyway. (Lord Howe jumps by 30
            // minutes, New York and Berlin by an hour.)
            let skipped = if zone_name == "Australia/Lord_Howe" { 1 } else { 2 };
            assert_eq!(fired.len(), 365 * 48 - skipped, "{zone_name}");
        }
    }

    #[test]
    fn next_fire_out_of_range_is_none() {
        let spec = parse_cron("* * * * *").unwrap();
        assert_eq!(next_fire_after(&spec, &TimeZone::UTC, i64::MAX), None);
        let yearly = parse_cron("0 0 1 1 *").unwrap();
        let last_year = ms("9999-06-01T00:00:00Z");
        assert_eq!(next_fire_after(&yearly, &TimeZone::UTC, last_year), None);
    }

    #[test]
    fn time_zones_come_from_the_bundled_database() {
        let valid = [
            "America/Los_Angeles",
            "Europe/Warsaw",
            "Asia/Kolkata",
            "Australia/Lord_Howe",
            "Antarctica/Troll",
            "UTC",
            "Etc/GMT+5",
            "US/Pacific",
            "america/new_york",
        ];
        for name in valid {
            assert!(is_valid_timezone(name), "{name}");
        }
        let invalid = [
            "",
            "PST8",
            "America/Nowhere",
            "Mars/Olympus_Mons",
            "+05:00",
            "UTC+1",
            "Etc/Unknown",
            " UTC",
            "America/Los_Angeles/",
            "../../etc/passwd",
            "/usr/share/zoneinfo/UTC",
        ];
        for name in invalid {
            assert!(!is_valid_timezone(name), "{name:?}");
        }
        let zone = time_zone("america/los_angeles").unwrap();
        assert_eq!(zone.iana_name(), Some("America/Los_Angeles"));
    }
}
