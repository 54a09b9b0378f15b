//! Time-based product work: tab period ends and settlement retries. What is due at time `t` is
//! a pure question (`farthing_products::schedule::DueQueue::due` over the stored jobs); the
//! driver here runs it. Jobs are stored, so due work survives restarts; every job's effect is
//! idempotent (a settlement's ledger ids derive from the tab and its settlement number, its
//! processor key from the attempt), so a job re-run after a crash changes nothing twice.
//!
//! When a tab settles, for how much, what a decline does and when its period ends are the pure
//! rules of [`farthing_products::rules::tab`]; `settle_tab` and the period end job read the tab,
//! call them and record what they decided.

use farthing_products::ids::SettlementId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use farthing_ledger::{Amount, AssetId, Timestamp};
use farthing_products::processor::{ProcessorCharge, ProcessorOutcome};
use farthing_products::rules::tab::{self as rule, Settlement, SettlementTrigger, TabState};
use farthing_products::schedule::{next_period_start, DueQueue, Interval, ScheduleError};

use crate::error::{Reason, ServiceError};
use crate::state::SharedState;
use crate::submit::owed;
use farthing_products::accounts::{chain_id, CODE_TAB_SETTLEMENT};
use farthing_products::rules::payout::PayoutRefusal;
use farthing_store::outbox::{event_write, EventKind};
use farthing_store::records::{
    JobKind, JobRecord, SettlementRecord, SettlementStatus, TabPeriod, TabRecord, JOBS,
    SETTLEMENTS, SETTLEMENTS_BY_TAB, TABS,
};
use farthing_store::util::derived_id;
use farthing_store::util::now_ns;
use farthing_store::{Changes, RecordWrite};

/// How often the driver looks for due work.
pub const TICK_MS: u64 = 1000;

/// The products' clock: real time, plus an offset that only `--test-clock` lets the operator
/// move forward (so tests move time instead of sleeping).
#[derive(Default)]
pub struct ProductClock {
    offset_ns: AtomicU64,
    pub settable: bool,
}

impl ProductClock {
    pub fn new(settable: bool) -> ProductClock {
        ProductClock {
            offset_ns: AtomicU64::new(0),
            settable,
        }
    }

    pub fn now(&self) -> u64 {
        now_ns().saturating_add(self.offset_ns.load(Ordering::SeqCst))
    }

    /// The offset the clock was moved by, in nanoseconds.
    pub fn offset_ns(&self) -> u64 {
        self.offset_ns.load(Ordering::SeqCst)
    }

    /// Starts from an offset stored by an earlier run.
    pub fn restore(&self, offset_ns: u64) {
        self.offset_ns.store(offset_ns, Ordering::SeqCst);
    }

    pub fn advance(&self, seconds: u64) {
        self.offset_ns
            .fetch_add(seconds.saturating_mul(1_000_000_000), Ordering::SeqCst);
    }
}

/// A stored tab period as the tab rules name it.
fn tab_period(period: TabPeriod) -> rule::TabPeriod {
    match period {
        TabPeriod::Day => rule::TabPeriod::Day,
        TabPeriod::Week => rule::TabPeriod::Week,
        TabPeriod::Month => rule::TabPeriod::Month,
    }
}

fn period_error(error: ScheduleError) -> ServiceError {
    ServiceError::internal(format!("period: {error}"))
}

/// The id of a tab's job of one kind (one pending job per tab and kind).
pub fn job_id(kind: JobKind) -> u128 {
    let (tag, entity) = match kind {
        JobKind::TabPeriodEnd { tab } => ("tab_period_end", tab.0),
        JobKind::TabRetry { tab } => ("tab_retry", tab.0),
        JobKind::Payout { merchant } => ("payout", merchant.0),
        JobKind::ReserveRelease { payout } => ("reserve_release", payout.0),
        JobKind::PayoutRail { payout } => ("payout_rail", payout.0),
        JobKind::HoldExpiry { hold } => ("hold_expiry", hold.0),
        JobKind::CampaignEnd { campaign } => ("campaign_end", campaign.0),
        JobKind::SubscriptionRenewal { subscription } => ("subscription_renewal", subscription.0),
        JobKind::TabThreshold { tab } => ("tab_threshold", tab.0),
        JobKind::AutoTopup { customer, asset } => {
            return derived_id(customer.0, &format!("auto_topup:{asset}"), "job", 0);
        }
        JobKind::ThresholdPayout { merchant, asset } => {
            return derived_id(merchant.0, &format!("threshold_payout:{asset}"), "job", 0);
        }
    };
    derived_id(entity, tag, "job", 0)
}

pub fn job_write(kind: JobKind, due_ns: u64) -> Result<RecordWrite, ServiceError> {
    let id = job_id(kind);
    Ok(RecordWrite::put(JOBS, id, &JobRecord { id, due_ns, kind })?)
}

/// The interval of a payout schedule; `None` for manual payouts.
pub fn payout_interval(schedule: farthing_store::records::PayoutSchedule) -> Option<Interval> {
    use farthing_store::records::PayoutSchedule;
    match schedule {
        PayoutSchedule::Manual => None,
        PayoutSchedule::Daily => Some(Interval::Day),
        PayoutSchedule::Weekly => Some(Interval::Week),
        PayoutSchedule::Monthly => Some(Interval::Month),
    }
}

/// The end of the tab's current period, from `now`: when a tab opened now first settles.
pub fn first_period_end(period: TabPeriod, now: u64) -> Result<u64, ServiceError> {
    rule::first_period_end(tab_period(period), Timestamp(now))
        .map(|t| t.0)
        .map_err(period_error)
}

/// Settles what the tab owes as ONE card charge, if [`rule::settlement`] says so. On success
/// the tab is paid (and unfrozen); on a decline it is frozen and a retry is scheduled by
/// [`rule::declined`]. Holds the tab's lock.
pub async fn settle_tab(
    state: &SharedState,
    tab_id: u128,
    trigger: SettlementTrigger,
) -> Result<Option<SettlementRecord>, ServiceError> {
    let _guard = state.products.lock(tab_id).await;
    let Some(mut tab) = state.store.record::<TabRecord>(TABS, tab_id)? else {
        return Ok(None);
    };
    let asset = crate::assets::asset_by_id(state, tab.asset)?;
    let account = tab.account();
    // A settlement whose chain committed before a crash kept its record from being saved:
    // count it now, or the next one would reuse its ids.
    let committed = chain_id(tab.id.0, "settlement", tab.settled);
    if state
        .engine
        .lookup_transfer(farthing_ledger::TransferId(committed))
        .is_some()
    {
        tab.settled += 1;
        tab.frozen = false;
        tab.frozen_reason = None;
        tab.failed_attempts = 0;
        state
            .commit(Changes {
                records: vec![RecordWrite::put(TABS, tab.id, &tab)?],
                ..Changes::default()
            })
            .await?;
    }
    let standing = TabState {
        owed: owed(&state.engine, account.id(asset.id)),
        threshold: tab.threshold,
        frozen: tab.frozen,
    };
    let amount = match rule::settlement(trigger, &standing) {
        Settlement::Charge { amount } => amount,
        // Another settlement took it below the threshold while this one waited for the lock.
        Settlement::BelowThreshold => return Ok(None),
        // Nothing owed (refunds, or a retry after it was paid): nothing to freeze for.
        Settlement::NothingOwed { unfreeze } => {
            if unfreeze {
                unfreeze_paid(state, &mut tab).await?;
            }
            return Ok(None);
        }
    };
    let now = state.products.clock.now();
    let attempt_key = format!("{:032x}:{}:{}", tab.id.0, tab.settled, tab.failed_attempts);
    let id = derived_id(tab.id.0, &attempt_key, "settlement", 0);
    let outcome = state.products.processor.charge(&ProcessorCharge {
        idempotency_key: format!("settlement_{id:032x}"),
        payment_method: tab.payment_method.clone(),
        amount,
        asset_scale: asset.scale,
        description: "farthing tab settlement".into(),
    });
    let mut record = SettlementRecord {
        id: SettlementId(id),
        tab: tab.id,
        number: tab.settled,
        amount,
        processor_fee: Amount::ZERO,
        status: SettlementStatus::Failed,
        failure_code: None,
        trigger,
        created_ns: now,
    };
    let mut writes = Vec::new();
    match outcome {
        ProcessorOutcome::Succeeded { fee, .. } => {
            // One settlement number commits once, whatever the attempts.
            let first = chain_id(tab.id.0, "settlement", tab.settled);
            record.status = SettlementStatus::Succeeded;
            record.processor_fee = fee;
            let event = event_write(&state.store, EventKind::TabSettled, None, now, || {
                Ok::<_, ServiceError>(crate::tabs::settlement_event(&tab, &record, &asset))
            })?;
            state
                .products
                .book_card_charge(
                    &state.engine,
                    account,
                    (amount, fee),
                    CODE_TAB_SETTLEMENT,
                    (first, asset.id, id),
                    event,
                )
                .await?;
            tab.settled += 1;
            tab.frozen = false;
            tab.frozen_reason = None;
            tab.failed_attempts = 0;
            writes.push(RecordWrite::Delete {
                table: JOBS,
                id: job_id(JobKind::TabRetry { tab: tab.id }),
            });
        }
        ProcessorOutcome::Failed { reason, .. } => {
            record.failure_code = Some(reason.code().to_string());
            let declined = rule::declined(tab.failed_attempts, Timestamp(now));
            tab.frozen = true;
            tab.frozen_reason = Some(format!("settlement declined: {}", reason.code()));
            tab.failed_attempts = declined.failed_attempts;
            if let Some(due) = declined.retry_at {
                writes.push(job_write(JobKind::TabRetry { tab: tab.id }, due.0)?);
            }
            writes.extend(event_write(
                &state.store,
                EventKind::TabSettlementFailed,
                None,
                now,
                || Ok::<_, ServiceError>(crate::tabs::settlement_event(&tab, &record, &asset)),
            )?);
        }
    }
    writes.push(RecordWrite::put(SETTLEMENTS, record.id, &record)?);
    writes.push(RecordWrite::Index {
        index: SETTLEMENTS_BY_TAB,
        parent: tab.id.0,
        id: record.id.0,
    });
    writes.push(RecordWrite::put(TABS, tab.id, &tab)?);
    state
        .commit(Changes {
            records: writes,
            ..Changes::default()
        })
        .await?;
    Ok(Some(record))
}

/// Unfreezes a frozen tab that owes nothing and drops its retry job.
async fn unfreeze_paid(state: &SharedState, tab: &mut TabRecord) -> Result<(), ServiceError> {
    tab.frozen = false;
    tab.frozen_reason = None;
    tab.failed_attempts = 0;
    state
        .commit(Changes {
            records: vec![
                RecordWrite::put(TABS, tab.id, tab)?,
                RecordWrite::Delete {
                    table: JOBS,
                    id: job_id(JobKind::TabRetry { tab: tab.id }),
                },
            ],
            ..Changes::default()
        })
        .await
}

/// A job due now: the follow-up work of a request (a tab reaching its threshold, auto top-up,
/// a threshold payout), written with the request's records (in its ledger batch's note, so
/// it is durable exactly when the request is) and run by the scheduler, which [`wake`] starts
/// at once. One job per kind and subject: follow-ups asked for while one waits are one run.
pub fn follow_up(state: &SharedState, kind: JobKind) -> Result<RecordWrite, ServiceError> {
    job_write(kind, state.products.clock.now())
}

/// Makes the driver look for due work now rather than at its next tick.
pub fn wake(state: &SharedState) {
    state.products.scheduler_wake.notify_one();
}

/// Runs every job due at the products' clock's now; returns how many ran.
pub async fn run_due(state: &SharedState) -> Result<usize, ServiceError> {
    // Jobs written in journal notes that were answered must be seen.
    state.products.journal.settle_all().await?;
    let now = state.products.clock.now();
    let jobs: Vec<JobRecord> = state.store.all_records(JOBS)?;
    let mut queue = DueQueue::new();
    let mut by_id = std::collections::HashMap::new();
    for job in jobs {
        queue.schedule(job.id, Timestamp(job.due_ns));
        by_id.insert(job.id, job);
    }
    let due = queue.due(Timestamp(now));
    for id in &due {
        let Some(job) = by_id.remove(id) else {
            continue;
        };
        // One failing job must not hold up the others; it stays due and is tried next tick.
        if let Err(error) = run_job(state, &job, now).await {
            tracing::warn!(job = ?job.kind, error = %error.message, "scheduled job failed");
        }
    }
    Ok(due.len())
}

async fn run_job(state: &SharedState, job: &JobRecord, now: u64) -> Result<(), ServiceError> {
    match job.kind {
        JobKind::TabPeriodEnd { tab } => {
            let Some(record) = state.store.record::<TabRecord>(TABS, tab)? else {
                return delete_job(state, job.id).await;
            };
            // A frozen tab is left to its retries.
            let end = rule::period_end(
                tab_period(record.period),
                record.frozen,
                Timestamp(job.due_ns),
                Timestamp(now),
            )
            .map_err(period_error)?;
            if end.settle {
                // A failure here is the settlement's own business (it freezes the tab and
                // schedules retries); the period still ends.
                let settled = settle_tab(state, tab.0, SettlementTrigger::PeriodEnd).await;
                if let Err(error) = settled {
                    tracing::warn!(error = %error.message, "period-end settlement failed");
                }
            }
            state
                .commit(Changes {
                    records: vec![job_write(job.kind, end.next_due.0)?],
                    ..Changes::default()
                })
                .await
        }
        JobKind::Payout { merchant } => {
            let settings = state.products.cache.settings(&state.store, merchant)?;
            let Some(interval) = payout_interval(settings.payout_schedule) else {
                // Back to manual: the schedule is over.
                return delete_job(state, job.id).await;
            };
            match crate::payouts::pay_out(
                state,
                merchant,
                None,
                farthing_products::rules::payout::PayoutTrigger::Schedule,
                None,
            )
            .await
            {
                Ok(_) => {}
                // Nothing to pay this time is not a failure of the schedule.
                Err(e)
                    if e.refused_by(|r| {
                        matches!(r, Reason::Payout(PayoutRefusal::InsufficientBalance { .. }))
                    }) => {}
                Err(e) => tracing::warn!(error = %e.message, "scheduled payout failed"),
            }
            let next = next_period_start(Timestamp(now.max(job.due_ns)), interval)
                .map_err(|e| ServiceError::internal(format!("period: {e}")))?;
            state
                .commit(Changes {
                    records: vec![job_write(job.kind, next.0)?],
                    ..Changes::default()
                })
                .await
        }
        JobKind::SubscriptionRenewal { subscription } => {
            // The renewal writes the subscription and its next job (or deletes it) itself.
            crate::subscriptions::renew(state, subscription.0).await
        }
        JobKind::CampaignEnd { campaign } => {
            let event = crate::campaigns::end(state, campaign.0).await?;
            state
                .commit(Changes {
                    records: [RecordWrite::Delete {
                        table: JOBS,
                        id: job.id,
                    }]
                    .into_iter()
                    .chain(event)
                    .collect(),
                    ..Changes::default()
                })
                .await
        }
        JobKind::HoldExpiry { hold } => {
            crate::holds::expire(state, hold.0).await?;
            delete_job(state, job.id).await
        }
        JobKind::ReserveRelease { payout } => {
            crate::payouts::release_reserve(state, payout.0).await?;
            delete_job(state, job.id).await
        }
        JobKind::TabThreshold { tab } => {
            use farthing_products::rules::tab::SettlementTrigger as Trigger;
            if let Err(error) = settle_tab(state, tab.0, Trigger::Threshold).await {
                // A decline freezes the tab and schedules its retries itself.
                tracing::warn!(error = %error.message, "tab settlement failed");
            }
            finish_follow_up(state, job).await
        }
        JobKind::AutoTopup { customer, asset } => {
            crate::customers::maybe_auto_topup(state.clone(), customer.0, AssetId(asset)).await;
            finish_follow_up(state, job).await
        }
        JobKind::ThresholdPayout { merchant, asset } => {
            crate::payouts::maybe_threshold_payout(state.clone(), merchant, AssetId(asset)).await;
            finish_follow_up(state, job).await
        }
        // Asks the rail and writes what it answered with the job's next ask or its deletion.
        JobKind::PayoutRail { payout } => crate::payouts::ask_rail_again(state, payout.0).await,
        JobKind::TabRetry { tab } => {
            // The settlement's own commit deletes this job (paid, or nothing owed) or moves it
            // to the next attempt; after the last attempt it deletes it and the tab stays
            // frozen until the customer changes the payment method.
            let before = state.store.record::<JobRecord>(JOBS, job.id)?;
            settle_tab(state, tab.0, SettlementTrigger::Retry).await?;
            if state.store.record::<JobRecord>(JOBS, job.id)? == before {
                delete_job(state, job.id).await?;
            }
            Ok(())
        }
    }
}

/// Deletes a follow-up job that ran, unless a request asked for it again meanwhile (then it
/// runs again: what it looks at changed after this run looked).
async fn finish_follow_up(state: &SharedState, job: &JobRecord) -> Result<(), ServiceError> {
    let store = std::sync::Arc::clone(&state.store);
    let job = job.clone();
    tokio::task::spawn_blocking(move || store.delete_if_unchanged(JOBS, job.id, &job))
        .await
        .map_err(|e| ServiceError::internal(format!("store task failed: {e}")))??;
    Ok(())
}

/// Deletes a job that is done.
async fn delete_job(state: &SharedState, id: u128) -> Result<(), ServiceError> {
    state
        .commit(Changes {
            records: vec![RecordWrite::Delete { table: JOBS, id }],
            ..Changes::default()
        })
        .await
}

/// Runs due work every [`TICK_MS`], forever (the task ends with the runtime).
pub async fn drive(state: std::sync::Weak<crate::state::AppState>) {
    let mut tick = tokio::time::interval(Duration::from_millis(TICK_MS));
    // Its own `Arc`: waiting on it holds no reference to the state, so shutdown can drop it.
    let Some(wake) = state
        .upgrade()
        .map(|s| std::sync::Arc::clone(&s.products.scheduler_wake))
    else {
        return;
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = wake.notified() => {}
        }
        let Some(state) = state.upgrade() else {
            return;
        };
        if let Err(error) = run_due(&state).await {
            tracing::warn!(error = %error.message, "scheduled work failed; retrying next tick");
        }
    }
}

/// What a tab owes now.
pub fn tab_owed(state: &SharedState, tab: &TabRecord) -> Amount {
    owed(
        &state.engine,
        tab.account().id(farthing_ledger::AssetId(tab.asset)),
    )
}

/// How often stored idempotency responses past their retention are deleted, and how many one
/// write transaction deletes.
pub const IDEMPOTENCY_PRUNE_INTERVAL_S: u64 = 600;

pub const IDEMPOTENCY_PRUNE_BATCH: usize = 10_000;

/// Deletes stored Idempotency-Key responses older than the retention, forever (the task ends
/// with the runtime). It holds only the store, so shutdown can still drop the engine.
pub async fn prune_idempotency_records(
    store: std::sync::Arc<farthing_store::Store>,
    retention_hours: u64,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(IDEMPOTENCY_PRUNE_INTERVAL_S));
    loop {
        tick.tick().await;
        let retention_ns = retention_hours.saturating_mul(3_600_000_000_000);
        let cutoff = now_ns().saturating_sub(retention_ns);
        loop {
            let store = std::sync::Arc::clone(&store);
            let pruned = tokio::task::spawn_blocking(move || {
                store.prune_idempotency(cutoff, IDEMPOTENCY_PRUNE_BATCH)
            })
            .await;
            match pruned {
                Ok(Ok(n)) if n == IDEMPOTENCY_PRUNE_BATCH => continue,
                Ok(Ok(n)) => {
                    if n > 0 {
                        tracing::info!(pruned = n, "expired idempotency records deleted");
                    }
                    break;
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "pruning idempotency records failed; retrying later");
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "pruning task failed; retrying later");
                    break;
                }
            }
        }
    }
}
