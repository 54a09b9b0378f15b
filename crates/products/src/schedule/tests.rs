use super::*;
use proptest::prelude::*;
use time::macros::datetime;
use time::OffsetDateTime;

/// A UTC date-time as a Timestamp.
fn at(datetime: OffsetDateTime) -> Timestamp {
    Timestamp(u64::try_from(datetime.unix_timestamp_nanos()).unwrap())
}

fn check_add(from: OffsetDateTime, interval: Interval, n: u32, expected: OffsetDateTime) {
    assert_eq!(
        add_interval(at(from), interval, n),
        Ok(at(expected)),
        "{from} + {n} {interval:?}"
    );
}

fn check_period(
    t: OffsetDateTime,
    interval: Interval,
    start: OffsetDateTime,
    next: OffsetDateTime,
) {
    assert_eq!(
        period_start(at(t), interval),
        Ok(at(start)),
        "start of {t} {interval:?}"
    );
    assert_eq!(
        next_period_start(at(t), interval),
        Ok(at(next)),
        "next after {t} {interval:?}"
    );
}

#[test]
fn months_clamp_to_the_last_day() {
    check_add(
        datetime!(2023-01-31 12:00 UTC),
        Interval::Month,
        1,
        datetime!(2023-02-28 12:00 UTC),
    );
    check_add(
        datetime!(2024-01-31 12:00 UTC),
        Interval::Month,
        1,
        datetime!(2024-02-29 12:00 UTC),
    );
    check_add(
        datetime!(2024-03-31 00:00 UTC),
        Interval::Month,
        1,
        datetime!(2024-04-30 00:00 UTC),
    );
    check_add(
        datetime!(2024-01-31 00:00 UTC),
        Interval::Month,
        2,
        datetime!(2024-03-31 00:00 UTC),
    );
    check_add(
        datetime!(2023-12-15 08:30:01.5 UTC),
        Interval::Month,
        1,
        datetime!(2024-01-15 08:30:01.5 UTC),
    );
    check_add(
        datetime!(2024-02-29 00:00 UTC),
        Interval::Month,
        12,
        datetime!(2025-02-28 00:00 UTC),
    );
    check_add(
        datetime!(2024-02-29 00:00 UTC),
        Interval::Month,
        48,
        datetime!(2028-02-29 00:00 UTC),
    );
    // 2100 is not a leap year (divisible by 100, not by 400); 2000 was.
    check_add(
        datetime!(2100-01-31 00:00 UTC),
        Interval::Month,
        1,
        datetime!(2100-02-28 00:00 UTC),
    );
    check_add(
        datetime!(2000-01-31 00:00 UTC),
        Interval::Month,
        1,
        datetime!(2000-02-29 00:00 UTC),
    );
    check_add(
        datetime!(2024-05-10 00:00 UTC),
        Interval::Month,
        0,
        datetime!(2024-05-10 00:00 UTC),
    );
}

#[test]
fn month_addition_is_not_associative_so_schedules_add_from_the_anchor() {
    let anchor = at(datetime!(2023-01-31 00:00 UTC));
    let stepwise = add_interval(
        add_interval(anchor, Interval::Month, 1).unwrap(),
        Interval::Month,
        1,
    );
    assert_eq!(stepwise, Ok(at(datetime!(2023-03-28 00:00 UTC))));
    assert_eq!(
        add_interval(anchor, Interval::Month, 2),
        Ok(at(datetime!(2023-03-31 00:00 UTC)))
    );
}

#[test]
fn days_and_weeks_are_fixed_lengths_in_utc() {
    check_add(
        datetime!(2024-02-28 23:59 UTC),
        Interval::Day,
        1,
        datetime!(2024-02-29 23:59 UTC),
    );
    check_add(
        datetime!(2024-12-31 10:00 UTC),
        Interval::Day,
        1,
        datetime!(2025-01-01 10:00 UTC),
    );
    check_add(
        datetime!(2024-12-30 10:00 UTC),
        Interval::Week,
        1,
        datetime!(2025-01-06 10:00 UTC),
    );
    check_add(
        datetime!(2024-01-01 00:00 UTC),
        Interval::Week,
        52,
        datetime!(2024-12-30 00:00 UTC),
    );
}

#[test]
fn periods_start_at_midnight_monday_and_the_first() {
    // 2024-03-14 was a Thursday.
    let t = datetime!(2024-03-14 15:16:17.123456789 UTC);
    check_period(
        t,
        Interval::Day,
        datetime!(2024-03-14 00:00 UTC),
        datetime!(2024-03-15 00:00 UTC),
    );
    check_period(
        t,
        Interval::Week,
        datetime!(2024-03-11 00:00 UTC),
        datetime!(2024-03-18 00:00 UTC),
    );
    check_period(
        t,
        Interval::Month,
        datetime!(2024-03-01 00:00 UTC),
        datetime!(2024-04-01 00:00 UTC),
    );
    // On a boundary, the period starts there.
    let monday = datetime!(2024-03-18 00:00 UTC);
    check_period(
        monday,
        Interval::Week,
        monday,
        datetime!(2024-03-25 00:00 UTC),
    );
    // Sunday night belongs to the week that began the Monday before.
    check_period(
        datetime!(2024-03-17 23:59:59.999999999 UTC),
        Interval::Week,
        datetime!(2024-03-11 00:00 UTC),
        monday,
    );
    check_period(
        datetime!(2024-02-29 12:00 UTC),
        Interval::Month,
        datetime!(2024-02-01 00:00 UTC),
        datetime!(2024-03-01 00:00 UTC),
    );
    check_period(
        datetime!(2024-12-31 23:00 UTC),
        Interval::Month,
        datetime!(2024-12-01 00:00 UTC),
        datetime!(2025-01-01 00:00 UTC),
    );
}

#[test]
fn the_first_week_of_1970_starts_before_the_epoch() {
    // 1970-01-01 was a Thursday; its week began Monday 1969-12-29.
    assert_eq!(
        period_start(Timestamp(0), Interval::Week),
        Err(ScheduleError::OutOfRange {
            operation: "period_start"
        })
    );
    assert_eq!(
        next_period_start(Timestamp(0), Interval::Week),
        Ok(at(datetime!(1970-01-05 00:00 UTC)))
    );
    assert_eq!(
        period_start(Timestamp(0), Interval::Month),
        Ok(Timestamp(0))
    );
    assert_eq!(period_start(Timestamp(0), Interval::Day), Ok(Timestamp(0)));
}

#[test]
fn results_past_2554_are_errors_not_panics() {
    let last = Timestamp(u64::MAX);
    for interval in [Interval::Day, Interval::Week, Interval::Month] {
        assert!(period_start(last, interval).is_ok());
        assert_eq!(
            next_period_start(last, interval),
            Err(ScheduleError::OutOfRange {
                operation: "next_period_start"
            })
        );
        assert_eq!(
            add_interval(Timestamp(0), interval, u32::MAX),
            Err(ScheduleError::OutOfRange {
                operation: "add_interval"
            })
        );
    }
}

#[test]
fn interval_codes_are_stable() {
    for interval in [Interval::Day, Interval::Week, Interval::Month] {
        let json = serde_json::to_string(&interval).unwrap();
        assert_eq!(json, format!("\"{}\"", interval.code()));
        assert_eq!(serde_json::from_str::<Interval>(&json).unwrap(), interval);
    }
}

fn secs(s: u64) -> Option<Duration> {
    Some(Duration::from_secs(s))
}

#[test]
fn backoff_grows_caps_and_stops() {
    let backoff = Backoff::new(2, 3, 60, 6).unwrap();
    assert_eq!(backoff.delay(0), secs(0));
    assert_eq!(backoff.delay(1), secs(2));
    assert_eq!(backoff.delay(2), secs(6));
    assert_eq!(backoff.delay(3), secs(18));
    assert_eq!(backoff.delay(4), secs(54));
    assert_eq!(backoff.delay(5), secs(60));
    // The sixth attempt was the last.
    assert_eq!(backoff.delay(6), None);
    assert_eq!(backoff.delay(u32::MAX), None);
}

#[test]
fn backoff_never_overflows() {
    let backoff = Backoff::new(u32::MAX, u32::MAX, u32::MAX, BACKOFF_ATTEMPTS_MAX).unwrap();
    assert_eq!(
        backoff.delay(BACKOFF_ATTEMPTS_MAX - 1),
        secs(u64::from(u32::MAX))
    );
    let constant = Backoff::new(5, 1, 5, BACKOFF_ATTEMPTS_MAX).unwrap();
    assert_eq!(constant.delay(999), secs(5));
    let jittered = backoff.delay_with_jitter(3, u64::MAX).unwrap();
    assert!(jittered.as_secs() <= u64::from(u32::MAX) * 6 / 5);
}

#[test]
fn backoff_validation_names_the_field() {
    assert_eq!(Backoff::new(1, 0, 10, 3), Err(BackoffError::FactorZero));
    assert_eq!(
        Backoff::new(10, 2, 5, 3),
        Err(BackoffError::MaxBelowBase {
            base_s: 10,
            max_s: 5
        })
    );
    assert_eq!(
        Backoff::new(1, 2, 5, 0),
        Err(BackoffError::MaxAttemptsOutOfRange { max_attempts: 0 })
    );
    let error = Backoff::new(1, 2, 5, BACKOFF_ATTEMPTS_MAX + 1).unwrap_err();
    assert!(error.to_string().contains("max_attempts"));
    assert!(Backoff::new(0, 1, 0, 1).is_ok());
}

#[test]
fn jitter_is_deterministic_and_varies_with_seed_and_attempt() {
    let backoff = Backoff::new(10, 2, 3600, 10).unwrap();
    assert_eq!(
        backoff.delay_with_jitter(3, 42),
        backoff.delay_with_jitter(3, 42)
    );
    let by_seed: BTreeSet<Duration> = (0..50)
        .filter_map(|seed| backoff.delay_with_jitter(3, seed))
        .collect();
    assert!(by_seed.len() > 40, "{by_seed:?}");
    assert_ne!(
        backoff.delay_with_jitter(3, 7),
        backoff.delay_with_jitter(4, 7).map(|d| d / 2)
    );
    assert_eq!(backoff.delay_with_jitter(0, 7), Some(Duration::ZERO));
    assert_eq!(backoff.delay_with_jitter(10, 7), None);
}

#[test]
fn due_queue_answers_what_is_due_without_removing_it() {
    let mut queue = DueQueue::new();
    assert_eq!(queue.next_due(), None);
    queue.schedule("webhook-b", Timestamp(20));
    queue.schedule("webhook-a", Timestamp(20));
    queue.schedule("payout", Timestamp(10));
    queue.schedule("renewal", Timestamp(30));
    assert_eq!(queue.next_due(), Some(Timestamp(10)));
    assert_eq!(queue.due(Timestamp(9)), Vec::<&str>::new());
    // Due order, ties by key.
    assert_eq!(
        queue.due(Timestamp(20)),
        vec!["payout", "webhook-a", "webhook-b"]
    );
    assert_eq!(queue.due(Timestamp(20)).len(), 3, "due() removes nothing");
    assert_eq!(queue.cancel(&"payout"), Some(Timestamp(10)));
    assert_eq!(queue.cancel(&"payout"), None);
    // Rescheduling moves the key.
    assert_eq!(
        queue.schedule("webhook-a", Timestamp(40)),
        Some(Timestamp(20))
    );
    assert_eq!(queue.due(Timestamp(35)), vec!["webhook-b", "renewal"]);
    assert_eq!(queue.due_at(&"webhook-a"), Some(Timestamp(40)));
    assert_eq!(queue.len(), 3);
    let first_two: Vec<_> = queue.iter_due(Timestamp(u64::MAX)).take(2).collect();
    assert_eq!(
        first_two,
        vec![(Timestamp(20), &"webhook-b"), (Timestamp(30), &"renewal")]
    );
}

#[derive(Clone, Debug)]
enum QueueOp {
    Schedule(u8, u64),
    Cancel(u8),
}

fn arb_op() -> impl Strategy<Value = QueueOp> {
    prop_oneof![
        (any::<u8>(), 0u64..100).prop_map(|(k, t)| QueueOp::Schedule(k % 16, t)),
        any::<u8>().prop_map(|k| QueueOp::Cancel(k % 16)),
    ]
}

proptest! {
    #[test]
    fn due_queue_matches_a_simple_model(ops in prop::collection::vec(arb_op(), 0..64), now in 0u64..110) {
        let mut queue = DueQueue::new();
        let mut model: BTreeMap<u8, u64> = BTreeMap::new();
        for op in ops {
            match op {
                QueueOp::Schedule(k, t) => {
                    prop_assert_eq!(queue.schedule(k, Timestamp(t)), model.insert(k, t).map(Timestamp));
                }
                QueueOp::Cancel(k) => {
                    prop_assert_eq!(queue.cancel(&k), model.remove(&k).map(Timestamp));
                }
            }
        }
        let mut expected: Vec<(u64, u8)> = model.iter().filter(|(_, t)| **t <= now).map(|(k, t)| (*t, *k)).collect();
        expected.sort_unstable();
        let expected: Vec<u8> = expected.into_iter().map(|(_, k)| k).collect();
        prop_assert_eq!(queue.due(Timestamp(now)), expected);
        prop_assert_eq!(queue.next_due(), model.values().min().copied().map(Timestamp));
        prop_assert_eq!(queue.len(), model.len());
    }

    #[test]
    fn periods_contain_their_time(t in 0u64..=u64::MAX - 40 * NANOS_PER_DAY) {
        let t = Timestamp(t);
        for interval in [Interval::Day, Interval::Week, Interval::Month] {
            let next = next_period_start(t, interval).unwrap();
            prop_assert!(next > t);
            match period_start(t, interval) {
                Ok(start) => {
                    prop_assert!(start <= t);
                    prop_assert_eq!(start.0 % NANOS_PER_DAY, 0);
                    // The start is its own period's start, and the next period follows it.
                    prop_assert_eq!(period_start(start, interval), Ok(start));
                    prop_assert_eq!(add_interval(start, interval, 1), Ok(next));
                }
                Err(_) => prop_assert!(interval == Interval::Week && t.0 < 4 * NANOS_PER_DAY),
            }
        }
        let week_start = next_period_start(t, Interval::Week).unwrap();
        let weekday = OffsetDateTime::from_unix_timestamp_nanos(i128::from(week_start.0)).unwrap().weekday();
        prop_assert_eq!(weekday, time::Weekday::Monday);
        let month_start = next_period_start(t, Interval::Month).unwrap();
        let day = OffsetDateTime::from_unix_timestamp_nanos(i128::from(month_start.0)).unwrap().day();
        prop_assert_eq!(day, 1);
    }

    #[test]
    fn adding_months_agrees_with_the_calendar(
        t in 0u64..=u64::MAX / 2,
        n in 0u32..1200,
    ) {
        let from = OffsetDateTime::from_unix_timestamp_nanos(i128::from(t)).unwrap();
        let to = OffsetDateTime::from_unix_timestamp_nanos(i128::from(add_interval(Timestamp(t), Interval::Month, n).unwrap().0)).unwrap();
        let months = (to.year() - from.year()) * 12 + i32::from(u8::from(to.month())) - i32::from(u8::from(from.month()));
        prop_assert_eq!(months, i32::try_from(n).unwrap());
        prop_assert_eq!(to.time(), from.time());
        prop_assert_eq!(to.day(), from.day().min(to.month().length(to.year())));
    }

    #[test]
    fn delays_never_decrease_and_stay_in_bounds(
        base_s in 0u32..1000,
        factor in 1u32..10,
        extra in 0u32..100_000,
        max_attempts in 1u32..=BACKOFF_ATTEMPTS_MAX,
        seed in any::<u64>(),
    ) {
        let max_s = base_s.saturating_add(extra);
        let backoff = Backoff::new(base_s, factor, max_s, max_attempts).unwrap();
        let mut previous = Duration::ZERO;
        for attempt in 0..max_attempts.min(40) {
            let delay = backoff.delay(attempt).unwrap();
            prop_assert!(delay >= previous);
            prop_assert!(delay <= Duration::from_secs(u64::from(max_s)));
            let jittered = backoff.delay_with_jitter(attempt, seed).unwrap();
            let span = delay.as_millis() / 5;
            prop_assert!(jittered.as_millis() + span >= delay.as_millis());
            prop_assert!(jittered.as_millis() <= delay.as_millis() + span);
            previous = delay;
        }
        prop_assert_eq!(backoff.delay(max_attempts), None);
        prop_assert_eq!(backoff.delay_with_jitter(max_attempts, seed), None);
    }
}
