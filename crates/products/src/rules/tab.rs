//! When a post-pay tab settles, and for how much.
//!
//! Charges accrue on a tab up to its limit (the ledger refuses beyond: `tab_limit_exceeded`).
//! The tab settles everything it owes as one card charge when:
//!
//! - a charge takes what it owes to its threshold or above ([`settles_after_charge`]);
//! - its period (UTC day, week or month) ends, unless it is frozen ([`period_end`]);
//! - a retry of a declined settlement is due;
//! - the customer changes the payment method of a frozen tab.
//!
//! A declined settlement freezes the tab (charges to it are refused, `tab_frozen`) and
//! schedules a retry by [`SETTLEMENT_RETRY`]'s backoff; after the last attempt the tab stays
//! frozen until the customer changes the payment method. A paid settlement unfreezes it.

use std::time::Duration;

use farthing_ledger::{Amount, Timestamp};

use crate::schedule::{next_period_start, Backoff, Interval, ScheduleError};

/// Settlement retries: the first an hour after the decline, then doubling up to a day; eight
/// attempts in all (the first and seven retries, over about three and a half days).
pub const SETTLEMENT_RETRY_BASE_S: u32 = 3600;
pub const SETTLEMENT_RETRY_FACTOR: u32 = 2;
pub const SETTLEMENT_RETRY_MAX_S: u32 = 86_400;
pub const SETTLEMENT_RETRY_ATTEMPTS_MAX: u32 = 8;

/// The backoff of settlement retries (the constants above).
pub fn settlement_retry() -> Backoff {
    // The constants satisfy Backoff's checks; the test below proves it.
    match Backoff::new(
        SETTLEMENT_RETRY_BASE_S,
        SETTLEMENT_RETRY_FACTOR,
        SETTLEMENT_RETRY_MAX_S,
        SETTLEMENT_RETRY_ATTEMPTS_MAX,
    ) {
        Ok(backoff) => backoff,
        Err(error) => unreachable!("settlement retry constants: {error}"),
    }
}

/// A tab's settlement period.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TabPeriod {
    Day,
    Week,
    Month,
}

impl TabPeriod {
    pub const fn code(self) -> &'static str {
        match self {
            TabPeriod::Day => "day",
            TabPeriod::Week => "week",
            TabPeriod::Month => "month",
        }
    }

    fn interval(self) -> Interval {
        match self {
            TabPeriod::Day => Interval::Day,
            TabPeriod::Week => Interval::Week,
            TabPeriod::Month => Interval::Month,
        }
    }
}

/// Why a tab's terms are refused. Code `threshold_above_limit` (parameter
/// `settlement_threshold`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, thiserror::Error)]
#[error("settlement_threshold must not exceed limit")]
pub struct ThresholdAboveLimit;

impl ThresholdAboveLimit {
    pub const fn code(&self) -> &'static str {
        "threshold_above_limit"
    }
}

/// Used by `service/tabs.rs: open`.
pub fn check_terms(limit: Amount, threshold: Amount) -> Result<(), ThresholdAboveLimit> {
    if threshold > limit {
        return Err(ThresholdAboveLimit);
    }
    Ok(())
}

/// Why a charge to a tab is refused before it reaches the ledger. Code `tab_frozen`
/// (parameter `source`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, thiserror::Error)]
#[error("the customer's tab is frozen until its last settlement is paid")]
pub struct TabFrozen;

impl TabFrozen {
    pub const fn code(&self) -> &'static str {
        "tab_frozen"
    }
}

/// Used by `service/charges.rs` for a charge to a tab.
pub fn accepts_charges(frozen: bool) -> Result<(), TabFrozen> {
    if frozen {
        return Err(TabFrozen);
    }
    Ok(())
}

/// Whether a charge that left the tab owing `owed` settles it now.
///
/// Used by `service/charges.rs: execute`, after a charge to a tab.
pub fn settles_after_charge(owed: Amount, threshold: Amount) -> bool {
    owed >= threshold
}

/// What asked for a settlement; stored and shown as its [`SettlementTrigger::code`].
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SettlementTrigger {
    Threshold,
    PeriodEnd,
    Retry,
    PaymentMethodUpdated,
}

impl SettlementTrigger {
    /// As the settlement's `trigger` field says it.
    pub const fn code(self) -> &'static str {
        match self {
            SettlementTrigger::Threshold => "threshold",
            SettlementTrigger::PeriodEnd => "period_end",
            SettlementTrigger::Retry => "retry",
            SettlementTrigger::PaymentMethodUpdated => "payment_method_updated",
        }
    }
}

/// A tab as a settlement sees it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TabState {
    /// What the tab owes now (posted debits less posted credits).
    pub owed: Amount,
    pub threshold: Amount,
    pub frozen: bool,
}

/// What a settlement does.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Settlement {
    /// A threshold settlement found the tab below its threshold (another settlement paid it
    /// first): nothing, not even a record.
    BelowThreshold,
    /// Nothing is owed (refunds, or a retry after it was paid). A frozen tab is unfrozen and
    /// its retry job dropped; an open one is left alone.
    NothingOwed { unfreeze: bool },
    /// Charge the card everything owed.
    Charge { amount: Amount },
}

/// Decides a settlement of `tab` asked for by `trigger`.
///
/// Used by `service/scheduler.rs: settle_tab`, before the processor charge.
pub fn settlement(trigger: SettlementTrigger, tab: &TabState) -> Settlement {
    if trigger == SettlementTrigger::Threshold && tab.owed < tab.threshold {
        return Settlement::BelowThreshold;
    }
    if tab.owed.is_zero() {
        return Settlement::NothingOwed {
            unfreeze: tab.frozen,
        };
    }
    Settlement::Charge { amount: tab.owed }
}

/// What a declined settlement leaves: the tab frozen with one more failed attempt, and when
/// the next attempt is due (`None` after the last one: the tab stays frozen until the customer
/// changes the payment method).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Declined {
    pub failed_attempts: u32,
    pub retry_at: Option<Timestamp>,
}

/// Used by `service/scheduler.rs: settle_tab` when the processor declines.
pub fn declined(failed_attempts: u32, now: Timestamp) -> Declined {
    let failed_attempts = failed_attempts.saturating_add(1);
    let retry_at = settlement_retry()
        .delay(failed_attempts)
        .map(|delay| Timestamp(now.0.saturating_add(duration_ns(delay))));
    Declined {
        failed_attempts,
        retry_at,
    }
}

/// Whole nanoseconds of `delay`, saturating at `u64::MAX`.
fn duration_ns(delay: Duration) -> u64 {
    u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX)
}

/// What a period's end does: settle (unless the tab is frozen: it is left to its retries) and
/// schedule the next period's end.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PeriodEnd {
    pub settle: bool,
    pub next_due: Timestamp,
}

/// The period end job that was due at `due` and runs at `now` (late after downtime: the next
/// end follows the later of the two, so missed periods are not replayed one by one).
///
/// Used by `service/scheduler.rs: run_job`, the `JobKind::TabPeriodEnd` arm.
pub fn period_end(
    period: TabPeriod,
    frozen: bool,
    due: Timestamp,
    now: Timestamp,
) -> Result<PeriodEnd, ScheduleError> {
    Ok(PeriodEnd {
        settle: !frozen,
        next_due: first_period_end(period, now.max(due))?,
    })
}

/// The end of the period containing `now`: when a tab opened at `now` first settles by period.
///
/// Used by `service/scheduler.rs: first_period_end` (when a tab opens).
pub fn first_period_end(period: TabPeriod, now: Timestamp) -> Result<Timestamp, ScheduleError> {
    next_period_start(now, period.interval())
}

#[cfg(test)]
mod tests {
    /// Settlements written when the trigger was a string read back as the enum.
    #[test]
    fn a_settlement_trigger_is_stored_as_its_code() {
        for trigger in [
            SettlementTrigger::Threshold,
            SettlementTrigger::PeriodEnd,
            SettlementTrigger::Retry,
            SettlementTrigger::PaymentMethodUpdated,
        ] {
            let stored = format!("\"{}\"", trigger.code());
            assert_eq!(serde_json::to_string(&trigger).unwrap(), stored);
            assert_eq!(
                serde_json::from_str::<SettlementTrigger>(&stored).unwrap(),
                trigger
            );
        }
    }

    use super::*;
    use crate::schedule::NANOS_PER_SECOND;

    fn tab(owed: u128, threshold: u128, frozen: bool) -> TabState {
        TabState {
            owed: Amount(owed),
            threshold: Amount(threshold),
            frozen,
        }
    }

    /// Decides a settlement and compares it.
    fn check(trigger: SettlementTrigger, tab: TabState, expected: Settlement) {
        assert_eq!(settlement(trigger, &tab), expected);
    }

    #[test]
    fn a_settlement_charges_everything_owed() {
        use SettlementTrigger::*;
        let charge = |amount| Settlement::Charge {
            amount: Amount(amount),
        };
        check(Threshold, tab(500, 500, false), charge(500));
        check(Threshold, tab(499, 500, false), Settlement::BelowThreshold);
        // Other triggers settle whatever is owed, below the threshold too.
        check(PeriodEnd, tab(1, 500, false), charge(1));
        check(Retry, tab(1, 500, true), charge(1));
        check(PaymentMethodUpdated, tab(700, 500, true), charge(700));
    }

    #[test]
    fn nothing_owed_unfreezes_a_frozen_tab() {
        use SettlementTrigger::*;
        check(
            Retry,
            tab(0, 500, true),
            Settlement::NothingOwed { unfreeze: true },
        );
        check(
            PeriodEnd,
            tab(0, 500, false),
            Settlement::NothingOwed { unfreeze: false },
        );
        // A zero threshold with nothing owed is not a charge of zero.
        check(
            Threshold,
            tab(0, 0, false),
            Settlement::NothingOwed { unfreeze: false },
        );
    }

    #[test]
    fn declines_retry_hourly_doubling_to_a_day_then_stop() {
        let now = Timestamp(1_000);
        let hours: Vec<Option<u64>> = (0..SETTLEMENT_RETRY_ATTEMPTS_MAX + 1)
            .map(|failed| {
                declined(failed, now)
                    .retry_at
                    .map(|t| (t.0 - now.0) / (3600 * NANOS_PER_SECOND))
            })
            .collect();
        // The eighth failed attempt is the last: no retry after it.
        let expected = [1, 2, 4, 8, 16, 24, 24].map(Some);
        assert_eq!(hours[..7], expected);
        assert_eq!(hours[7..], [None, None]);
        assert_eq!(declined(2, now).failed_attempts, 3);
    }

    #[test]
    fn a_period_end_settles_open_tabs_and_schedules_the_next() {
        const DAY_NS: u64 = 86_400 * NANOS_PER_SECOND;
        let due = Timestamp(10 * DAY_NS);
        let on_time = period_end(TabPeriod::Day, false, due, due).unwrap();
        assert_eq!(
            on_time,
            PeriodEnd {
                settle: true,
                next_due: Timestamp(11 * DAY_NS)
            }
        );
        // Three days late, frozen: no settlement, and the next end follows now.
        let late = period_end(TabPeriod::Day, true, due, Timestamp(13 * DAY_NS + 5)).unwrap();
        assert_eq!(
            late,
            PeriodEnd {
                settle: false,
                next_due: Timestamp(14 * DAY_NS)
            }
        );
    }

    #[test]
    fn terms_and_frozen_tabs_keep_their_codes() {
        assert_eq!(check_terms(Amount(10), Amount(10)), Ok(()));
        assert_eq!(
            check_terms(Amount(10), Amount(11)).map_err(|e| e.code()),
            Err("threshold_above_limit")
        );
        assert_eq!(accepts_charges(false), Ok(()));
        assert_eq!(
            accepts_charges(true).map_err(|e| e.code()),
            Err("tab_frozen")
        );
        assert!(settles_after_charge(Amount(5), Amount(5)));
        assert!(!settles_after_charge(Amount(4), Amount(5)));
    }
}
