//! Pure scheduling: UTC calendar periods, retry backoff, and the index of due work.
//!
//! Subscriptions renew and tabs settle on calendar periods ([`Interval`]); webhooks, payouts and
//! charges retry with a [`Backoff`]; the scheduler asks a [`DueQueue`] what is due now. None of
//! this reads the clock: the driver passes the current [`Timestamp`] in.
//!
//! Times are [`Timestamp`]s, nanoseconds since the Unix epoch as a `u64`, which reaches into
//! the year 2554; a result outside `0..=u64::MAX` nanoseconds is a [`ScheduleError`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use farthing_ledger::Timestamp;
use serde::{Deserialize, Serialize};
use time::{Date, Month};

pub const NANOS_PER_SECOND: u64 = 1_000_000_000;
pub const NANOS_PER_DAY: u64 = 86_400 * NANOS_PER_SECOND;
const DAYS_PER_WEEK: i64 = 7;
/// 1970-01-01 was a Thursday: three days after a Monday.
const EPOCH_DAYS_AFTER_MONDAY: i64 = 3;
/// The Julian day number of 1970-01-01.
const EPOCH_JULIAN_DAY: i64 = 2_440_588;

/// A calendar period, in UTC.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    /// From 00:00 UTC to the next 00:00 UTC.
    Day,
    /// From Monday 00:00 UTC (ISO 8601 weeks).
    Week,
    /// From the 1st of the month, 00:00 UTC.
    Month,
}

impl Interval {
    pub const fn code(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
        }
    }
}

/// A calendar computation whose result is not a representable [`Timestamp`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    #[error("{operation}: the result falls outside 1970-01-01 to 2554-07-21 UTC")]
    OutOfRange { operation: &'static str },
}

/// The start of the period that contains `t`. For [`Interval::Week`] in the first days of
/// 1970 that start (Monday 1969-12-29) precedes the epoch, which is an error.
pub fn period_start(t: Timestamp, interval: Interval) -> Result<Timestamp, ScheduleError> {
    let operation = "period_start";
    to_timestamp(period_start_ns(t, interval, operation)?, operation)
}

/// The start of the period after the one that contains `t`: when a daily, weekly or monthly
/// job next runs.
pub fn next_period_start(t: Timestamp, interval: Interval) -> Result<Timestamp, ScheduleError> {
    let operation = "next_period_start";
    let start = period_start_ns(t, interval, operation)?;
    to_timestamp(add_interval_ns(start, interval, 1, operation)?, operation)
}

/// `t` plus `n` intervals, keeping the time of day.
///
/// A month later is the same day of the month, clamped to the month's last day: Jan 31 + 1
/// month = Feb 28 (Feb 29 in a leap year), Mar 31 + 1 month = Apr 30. Clamping makes month
/// addition non-associative: (Jan 31 + 1 month) + 1 month = Mar 28, but Jan 31 + 2 months =
/// Mar 31. So a recurring schedule must compute its k-th occurrence as `anchor + k` intervals
/// from its original anchor, never by adding one interval to the previous occurrence.
pub fn add_interval(t: Timestamp, interval: Interval, n: u32) -> Result<Timestamp, ScheduleError> {
    let operation = "add_interval";
    to_timestamp(
        add_interval_ns(i128::from(t.0), interval, n, operation)?,
        operation,
    )
}

/// Nanoseconds (possibly before the epoch) as a `Timestamp`, if representable.
fn to_timestamp(ns: i128, operation: &'static str) -> Result<Timestamp, ScheduleError> {
    u64::try_from(ns)
        .map(Timestamp)
        .map_err(|_| ScheduleError::OutOfRange { operation })
}

/// `t` as whole days since the epoch and nanoseconds into that day.
fn split_days(t_ns: i128) -> (i64, i128) {
    let day_ns = i128::from(NANOS_PER_DAY);
    // The quotient of an i128 nanosecond count that came from u64 arithmetic fits in i64.
    let days = t_ns.div_euclid(day_ns) as i64;
    (days, t_ns.rem_euclid(day_ns))
}

fn days_to_ns(days: i64) -> i128 {
    i128::from(days) * i128::from(NANOS_PER_DAY)
}

fn period_start_ns(
    t: Timestamp,
    interval: Interval,
    operation: &'static str,
) -> Result<i128, ScheduleError> {
    let (days, _) = split_days(i128::from(t.0));
    let start_day = match interval {
        Interval::Day => days,
        Interval::Week => days - (days + EPOCH_DAYS_AFTER_MONDAY).rem_euclid(DAYS_PER_WEEK),
        Interval::Month => {
            let date = date_from_days(days, operation)?;
            days - i64::from(date.day()) + 1
        }
    };
    Ok(days_to_ns(start_day))
}

fn add_interval_ns(
    t_ns: i128,
    interval: Interval,
    n: u32,
    operation: &'static str,
) -> Result<i128, ScheduleError> {
    let (days, time_of_day) = split_days(t_ns);
    let n = i64::from(n);
    let new_days = match interval {
        Interval::Day => days + n,
        Interval::Week => days + n * DAYS_PER_WEEK,
        Interval::Month => add_months(days, n, operation)?,
    };
    Ok(days_to_ns(new_days) + time_of_day)
}

/// Days since the epoch of the date `months` calendar months after `days`, with the day of the
/// month clamped to the target month's length.
fn add_months(days: i64, months: i64, operation: &'static str) -> Result<i64, ScheduleError> {
    let out_of_range = ScheduleError::OutOfRange { operation };
    let date = date_from_days(days, operation)?;
    let month_index = i64::from(date.year()) * 12 + i64::from(u8::from(date.month())) - 1 + months;
    let year = i32::try_from(month_index.div_euclid(12)).map_err(|_| out_of_range)?;
    // Cannot fail: 1 to 12.
    let month =
        Month::try_from((month_index.rem_euclid(12) + 1) as u8).map_err(|_| out_of_range)?;
    let day = date.day().min(month.length(year));
    let new_date = Date::from_calendar_date(year, month, day).map_err(|_| out_of_range)?;
    Ok(i64::from(new_date.to_julian_day()) - EPOCH_JULIAN_DAY)
}

fn date_from_days(days: i64, operation: &'static str) -> Result<Date, ScheduleError> {
    let out_of_range = ScheduleError::OutOfRange { operation };
    let julian_day = i32::try_from(days + EPOCH_JULIAN_DAY).map_err(|_| out_of_range)?;
    Date::from_julian_day(julian_day).map_err(|_| out_of_range)
}

/// The most attempts a [`Backoff`] may allow. Bounds how long work can keep retrying.
pub const BACKOFF_ATTEMPTS_MAX: u32 = 1_000;

/// How far jitter moves a delay either way, in percent.
pub const JITTER_PERCENT: u64 = 20;

/// Exponential retry backoff: after the `k`-th failure, wait `base_s * factor^(k-1)` seconds,
/// at most `max_s`, and give up once `max_attempts` attempts have failed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Backoff {
    base_s: u32,
    factor: u32,
    max_s: u32,
    max_attempts: u32,
}

/// Why backoff parameters are not usable. Each names the field at fault.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackoffError {
    #[error("factor must be at least 1, got 0")]
    FactorZero,
    #[error("max_s ({max_s}) must be at least base_s ({base_s})")]
    MaxBelowBase { base_s: u32, max_s: u32 },
    #[error("max_attempts must be between 1 and {BACKOFF_ATTEMPTS_MAX}, got {max_attempts}")]
    MaxAttemptsOutOfRange { max_attempts: u32 },
}

impl Backoff {
    pub fn new(
        base_s: u32,
        factor: u32,
        max_s: u32,
        max_attempts: u32,
    ) -> Result<Backoff, BackoffError> {
        if factor == 0 {
            return Err(BackoffError::FactorZero);
        }
        if max_s < base_s {
            return Err(BackoffError::MaxBelowBase { base_s, max_s });
        }
        if max_attempts == 0 || max_attempts > BACKOFF_ATTEMPTS_MAX {
            return Err(BackoffError::MaxAttemptsOutOfRange { max_attempts });
        }
        Ok(Backoff {
            base_s,
            factor,
            max_s,
            max_attempts,
        })
    }

    pub fn base_s(&self) -> u32 {
        self.base_s
    }

    pub fn factor(&self) -> u32 {
        self.factor
    }

    pub fn max_s(&self) -> u32 {
        self.max_s
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// How long to wait before the next attempt, once `failed_attempts` attempts have failed;
    /// `None` when that was the last allowed attempt. Zero failures means the first attempt,
    /// which runs at once.
    pub fn delay(&self, failed_attempts: u32) -> Option<Duration> {
        if failed_attempts >= self.max_attempts {
            return None;
        }
        if failed_attempts == 0 {
            return Some(Duration::ZERO);
        }
        Some(Duration::from_secs(self.capped_delay_s(failed_attempts)))
    }

    /// `base_s * factor^(failed_attempts - 1)`, capped at `max_s`, without overflowing: the
    /// loop stops as soon as the cap is reached.
    fn capped_delay_s(&self, failed_attempts: u32) -> u64 {
        let max_s = u64::from(self.max_s);
        let mut delay_s = u64::from(self.base_s);
        for _ in 1..failed_attempts {
            if delay_s >= max_s || self.factor == 1 {
                break;
            }
            delay_s = delay_s.saturating_mul(u64::from(self.factor));
        }
        delay_s.min(max_s)
    }

    /// [`Backoff::delay`] moved by up to ±20% ([`JITTER_PERCENT`]), at millisecond precision,
    /// so that many jobs failing together do not all retry in the same instant.
    ///
    /// The jitter is a deterministic function of `seed` and `failed_attempts` (a SplitMix64
    /// hash), so a replayed schedule is identical; callers pass something stable per job, such
    /// as a hash of its id. The result lies in `[delay - delay/5, delay + delay/5]`
    /// (milliseconds, rounded down), so it may exceed `max_s` by up to 20%.
    pub fn delay_with_jitter(&self, failed_attempts: u32, seed: u64) -> Option<Duration> {
        let delay_ms = self.delay(failed_attempts)?.as_millis();
        // At most u32::MAX seconds in milliseconds: fits in u64.
        let delay_ms = u64::try_from(delay_ms).unwrap_or(u64::MAX);
        let span_ms = delay_ms * JITTER_PERCENT / 100;
        let offset_ms =
            splitmix64(seed ^ splitmix64(u64::from(failed_attempts))) % (2 * span_ms + 1);
        Some(Duration::from_millis(delay_ms - span_ms + offset_ms))
    }
}

/// SplitMix64's output function: a fast, well-mixed 64-bit hash.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Which work is due when: a pure index from keys to due times.
///
/// [`DueQueue::due`] answers "what is due at time t" without removing anything: the driver
/// removes a job ([`DueQueue::cancel`]) only after it has durably run it, so a crash between
/// running and recording re-runs the job rather than losing it (jobs must be idempotent). Each
/// key is scheduled at most once; scheduling it again moves it.
#[derive(Clone, Debug)]
pub struct DueQueue<K: Ord + Clone> {
    by_due: BTreeSet<(Timestamp, K)>,
    due_at: BTreeMap<K, Timestamp>,
}

impl<K: Ord + Clone> Default for DueQueue<K> {
    fn default() -> Self {
        DueQueue {
            by_due: BTreeSet::new(),
            due_at: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Clone> DueQueue<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedules `key` at `due_at`, replacing any earlier schedule of it; returns that.
    pub fn schedule(&mut self, key: K, due_at: Timestamp) -> Option<Timestamp> {
        let previous = self.due_at.insert(key.clone(), due_at);
        if let Some(previous) = previous {
            self.by_due.remove(&(previous, key.clone()));
        }
        self.by_due.insert((due_at, key));
        previous
    }

    /// Removes `key`; returns when it was due, if it was scheduled.
    pub fn cancel(&mut self, key: &K) -> Option<Timestamp> {
        let due_at = self.due_at.remove(key)?;
        self.by_due.remove(&(due_at, key.clone()));
        Some(due_at)
    }

    /// Every key due at or before `now`, earliest first, ties by key.
    pub fn due(&self, now: Timestamp) -> Vec<K> {
        self.iter_due(now).map(|(_, key)| key.clone()).collect()
    }

    /// Like [`DueQueue::due`] but lazy, with due times, so a driver can take a bounded batch.
    pub fn iter_due(&self, now: Timestamp) -> impl Iterator<Item = (Timestamp, &K)> + '_ {
        self.by_due
            .iter()
            .take_while(move |(due_at, _)| *due_at <= now)
            .map(|(due_at, key)| (*due_at, key))
    }

    /// When the earliest scheduled key is due: how long the driver may sleep.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.by_due.first().map(|(due_at, _)| *due_at)
    }

    /// When `key` is due, if it is scheduled.
    pub fn due_at(&self, key: &K) -> Option<Timestamp> {
        self.due_at.get(key).copied()
    }

    pub fn len(&self) -> usize {
        self.due_at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.due_at.is_empty()
    }
}

#[cfg(test)]
mod tests;
