//! Payouts: a merchant's earnings leave for its bank account through the payout rail — on
//! demand (`pay_out`), when they reach the merchant's threshold ([`maybe_threshold_payout`])
//! or on the merchant's schedule (the scheduler's payout job). The money leaves the earnings
//! account (one chain, with the optional reserve held back) before the rail is asked; a failed
//! payout returns it with a second chain and says why. A payout is `pending` from its record
//! (written before its chain) until the rail settles it: while the rail answers that the
//! transfer is in flight or that it is unavailable, the payout's rail job asks again on a
//! backoff (`ask_rail_again`), and the same job finishes a payout a crash interrupted. What a payout held back returns to the
//! earnings `reserve_days` later (`release_reserve`, a scheduled job, one chain).
//!
//! A merchant that owes chargebacks its earnings could not cover (its debt account) pays that
//! debt first: a payout's chain moves what it owes from the earnings to the debt account, and
//! only what is left is paid out (and held back as a reserve).
//!
//! What a payout takes, holds back and books is decided by `farthing_products::rules::payout`;
//! this module loads the merchant's terms, earnings and debt, records the payout, submits the
//! rule's legs and asks the rail.

use farthing_ledger::{Amount, Asset, AssetId, Timestamp};
use farthing_products::ids::MerchantId;
use farthing_products::ids::PayoutId;
use farthing_products::processor::{PayoutOutcome, PayoutRequest};
use farthing_products::rules::payout::{
    self as rule, after_rail, payout_return, plan_payout, reserve_release, threshold_payout_due,
    Earnings, PayoutRefusal, PayoutTermsError, PayoutTrigger, RailStep, RESERVE_DAYS_DEFAULT,
};
use farthing_products::schedule::NANOS_PER_SECOND;
use serde::Serialize;

use crate::assets::asset_by_id;
use crate::charges::merchant_settings;
use crate::error::{Reason, ServiceError};
use crate::state::{Principal, SharedState};
use crate::submit::{available, owed, run_chain, run_chain_recorded, ChainOutcome, LedgerAccount};
use farthing_products::accounts::chain_id;
use farthing_products::ids::{encode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_store::outbox::{event_write, EventKind};
use farthing_store::records::{
    JobKind, MerchantSettings, PayoutRecord, PayoutStatus, JOBS, MERCHANT_SETTINGS, PAYOUTS,
    PAYOUTS_BY_MERCHANT,
};
use farthing_store::util::{derived_id, random_id, rfc3339, sha256};
use farthing_store::{Changes, RecordWrite};

/// When payouts run by themselves (a field of [`PayoutTerms`]).
pub use farthing_store::records::PayoutSchedule;

/// The most payouts a merchant's list shows.
const PAYOUTS_LIST_MAX: usize = 100;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PayoutView {
    pub id: String,
    pub object: &'static str,
    pub merchant: String,
    /// What was sent to the bank account.
    pub amount: String,
    pub asset: String,
    /// What the payout first took from the earnings to pay down the merchant's chargeback
    /// debt (not sent; it stays paid if the payout fails).
    pub debt_recovered: String,
    /// `pending` until the payout rail settles the transfer (it is asked again a minute later,
    /// doubling to hourly), then `paid`, or `failed`: the amount (and any reserve) is back in
    /// the merchant's balance.
    pub status: PayoutStatus,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    /// `manual`, `threshold` or a schedule.
    pub trigger: PayoutTrigger,
    pub created: String,
}

pub fn payout_view(state: &SharedState, p: &PayoutRecord) -> Result<PayoutView, ServiceError> {
    let asset = asset_by_id(state, p.asset)?;
    Ok(PayoutView {
        id: encode_id(IdKind::Payout, p.id.0),
        object: "payout",
        merchant: encode_id(IdKind::Merchant, p.merchant.0),
        amount: format_amount(p.amount, asset.scale),
        asset: asset.code.to_string(),
        debt_recovered: format_amount(p.debt_recovered, asset.scale),
        status: p.status,
        failure_code: p.failure_code.clone(),
        failure_message: p.failure_message.clone(),
        trigger: p.trigger,
        created: rfc3339(p.created_ns),
    })
}

/// The merchant's stored payout terms, as the payout rule takes them. They were checked when
/// set ([`PayoutTerms::new`]), so a refusal here is a corrupt record.
fn stored_terms(settings: &MerchantSettings) -> Result<rule::PayoutTerms, ServiceError> {
    rule::PayoutTerms::new(
        settings.payout_threshold,
        settings.reserve_bps,
        settings.reserve_days,
    )
    .map_err(|e| ServiceError::internal(format!("stored payout terms: {e}")))
}

/// The API error of a refused payout; amounts are shown in the asset's `scale`.
fn payout_refused(refusal: PayoutRefusal, scale: u8) -> ServiceError {
    match refusal {
        PayoutRefusal::InsufficientBalance { available, debt } => {
            let owing = if debt.is_zero() {
                String::new()
            } else {
                format!(
                    " once its chargeback debt of {} is paid",
                    format_amount(debt, scale)
                )
            };
            ServiceError::refusal(
                Reason::Payout(refusal),
                format!(
                    "the merchant has {} available{owing}",
                    format_amount(available, scale)
                ),
            )
            .with_param("amount")
        }
        other => ServiceError::refusal(Reason::Payout(other), other.to_string()),
    }
}

impl From<PayoutTermsError> for ServiceError {
    fn from(e: PayoutTermsError) -> ServiceError {
        let param = match e {
            PayoutTermsError::ReserveDays { .. } => "reserve_days",
            _ => "reserve_bps",
        };
        ServiceError::invalid(param, e.code(), e.to_string())
    }
}

/// Pays out `amount` (or all available less the reserve), started by `trigger`. Holds the
/// merchant's lock.
pub async fn pay_out(
    state: &SharedState,
    merchant: MerchantId,
    requested: Option<Amount>,
    trigger: PayoutTrigger,
    keyed: Option<(u128, [u8; 32])>,
) -> Result<PayoutRecord, ServiceError> {
    let _guard = state.products.lock(merchant.0).await;
    // With a key, the payout's id derives from it: a retry finds the payout it already made.
    if let Some((id, request_hash)) = keyed {
        if let Some(existing) = state.store.record::<PayoutRecord>(PAYOUTS, id)? {
            if existing.request_hash != Some(request_hash) || existing.merchant != merchant {
                return Err(ServiceError::idempotency(
                    "this Idempotency-Key was already used with different parameters",
                ));
            }
            return Ok(existing);
        }
    }
    let settings = merchant_settings(state, merchant)?;
    let (Some(asset_id), Some(bank_account)) =
        (settings.payout_asset, settings.bank_account.clone())
    else {
        return Err(ServiceError::invalid(
            "bank_account",
            "payout_settings_missing",
            "set the merchant's payout settings first",
        ));
    };
    let asset = asset_by_id(state, asset_id)?;
    let earnings = LedgerAccount::Earnings { merchant };
    let reserve = LedgerAccount::Reserve { merchant };
    let debt = LedgerAccount::MerchantDebt { merchant };
    let now = state.products.clock.now();
    // A threshold payout refused as below the threshold: another payout took the earnings
    // while this one waited for the lock.
    let plan = plan_payout(
        &stored_terms(&settings)?,
        trigger,
        requested,
        merchant_earnings(state, merchant, asset.id),
        Timestamp(now),
    )
    .map_err(|refusal| payout_refused(refusal, asset.scale))?;
    let mut record = PayoutRecord {
        id: PayoutId(keyed.map_or_else(random_id, |(id, _)| id)),
        request_hash: keyed.map(|(_, hash)| hash),
        merchant,
        asset: asset.id.0,
        amount: plan.amount,
        bank_account: bank_account.clone(),
        status: PayoutStatus::Pending,
        rail_payout_id: None,
        failure_code: None,
        failure_message: None,
        trigger,
        created_ns: now,
        debt_recovered: plan.recovered,
        rail_asks: 0,
    };
    // The release is scheduled with the record, before the chain: it releases only what the
    // chain held (it checks the ledger), so a crash anywhere after leaves no reserve behind.
    // So is the rail's job: a crash before the rail's answer is recorded leaves a pending
    // payout that the job finishes ([`ask_rail_again`]).
    let mut first = record_writes(&record)?;
    if let Some(due) = plan.reserve_release_at {
        first.push(crate::scheduler::job_write(
            JobKind::ReserveRelease { payout: record.id },
            due.0,
        )?);
    }
    first.push(crate::scheduler::job_write(
        JobKind::PayoutRail { payout: record.id },
        now.saturating_add(u64::from(rule::RAIL_ASK_BASE_S) * NANOS_PER_SECOND),
    )?);
    state.products.records.write(first).await?;
    state
        .products
        .ensure_accounts(
            &state.engine,
            &[earnings, reserve, debt, LedgerAccount::PayoutClearing],
            asset.id,
        )
        .await?;
    match run_chain(
        &state.engine,
        chain_id(record.id.0, "payout", 0),
        &plan.legs(merchant),
        asset.id,
        record.id.0,
    )
    .await?
    {
        ChainOutcome::Committed { .. } => {}
        ChainOutcome::Refused { result, .. } => {
            // The earnings moved (a chargeback) while the payout was planned: nothing left
            // them, and the payout is not left pending.
            record.status = PayoutStatus::Failed;
            record.failure_code = Some("insufficient_balance".into());
            record.failure_message = Some("the merchant's balance could not cover it".into());
            let mut writes = record_writes(&record)?;
            writes.push(rail_job_done(record.id.0));
            state.products.records.write(writes).await?;
            return Err(ServiceError::refused(
                "insufficient_balance",
                format!("the merchant's balance cannot cover this payout ({result})"),
            )
            .with_param("amount"));
        }
    }
    let writes = ask_rail(state, &mut record, asset.scale).await?;
    state.products.records.write(writes).await?;
    Ok(record)
}

/// A payout's record and its place in the merchant's list.
fn record_writes(r: &PayoutRecord) -> Result<Vec<RecordWrite>, ServiceError> {
    Ok(vec![
        RecordWrite::put(PAYOUTS, r.id, r)?,
        RecordWrite::Index {
            index: PAYOUTS_BY_MERCHANT,
            parent: r.merchant.0,
            id: r.id.0,
        },
    ])
}

/// Deletes payout `payout`'s rail job: the payout is settled.
fn rail_job_done(payout: u128) -> RecordWrite {
    RecordWrite::Delete {
        table: JOBS,
        id: crate::scheduler::job_id(JobKind::PayoutRail {
            payout: PayoutId(payout),
        }),
    }
}

/// Asks the rail about pending payout `record`, whose chain is booked: sends it, or asks its
/// status if the rail took it already. Applies what [`after_rail`] makes of the answer (a
/// failed payout's money goes back with its return chain) and returns the writes that record
/// it: the record, its event, and the rail job's next ask or its deletion. The caller holds
/// the merchant's lock and writes them.
async fn ask_rail(
    state: &SharedState,
    record: &mut PayoutRecord,
    scale: u8,
) -> Result<Vec<RecordWrite>, ServiceError> {
    let request = PayoutRequest {
        idempotency_key: format!("payout_{:032x}", record.id.0),
        bank_account: record.bank_account.clone(),
        amount: record.amount,
        asset_scale: scale,
        description: "farthing payout".into(),
    };
    let outcome = match &record.rail_payout_id {
        Some(taken) => state.products.rail.status(&request, taken),
        None => state.products.rail.send(&request),
    };
    record.rail_asks = record.rail_asks.saturating_add(1);
    // The low bits of the payout's id jitter its asks.
    let step = after_rail(&outcome, record.rail_asks, record.id.0 as u64);
    let now = state.products.clock.now();
    let mut writes = Vec::new();
    match (step, outcome) {
        (RailStep::Paid, PayoutOutcome::Sent { payout_id }) => {
            record.status = PayoutStatus::Paid;
            record.rail_payout_id = Some(payout_id);
            // The money left with the payout's chain; the rail's word is what this records.
            writes.extend(event_write(
                &state.store,
                EventKind::PayoutPaid,
                Some(record.merchant),
                now,
                || payout_view(state, record),
            )?);
        }
        (RailStep::Failed, PayoutOutcome::Failed { reason, message }) => {
            record.status = PayoutStatus::Failed;
            record.failure_code = Some(reason.code().to_string());
            record.failure_message = Some(message);
            return_payout(state, record).await?;
        }
        (RailStep::AskAgain(after), outcome) => {
            if let PayoutOutcome::InFlight { payout_id } = outcome {
                record.rail_payout_id = Some(payout_id);
            }
            let due = now.saturating_add(u64::try_from(after.as_nanos()).unwrap_or(u64::MAX));
            let mut writes = record_writes(record)?;
            writes.push(crate::scheduler::job_write(
                JobKind::PayoutRail { payout: record.id },
                due,
            )?);
            return Ok(writes);
        }
        (step, outcome) => {
            // Unresolved: the rail took the payout and never settled it.
            tracing::error!(
                payout = %encode_id(IdKind::Payout, record.id.0),
                ?step,
                ?outcome,
                "the payout rail never settled a payout it took: it stays pending"
            );
        }
    }
    writes.extend(record_writes(record)?);
    writes.push(rail_job_done(record.id.0));
    Ok(writes)
}

/// Books failed payout `record`'s return chain ([`payout_return`]) with its `payout.failed`
/// event: what was sent, and the reserve unless its release already gave it back.
async fn return_payout(state: &SharedState, record: &PayoutRecord) -> Result<(), ServiceError> {
    let lookup = |purpose: &str, leg: u128| {
        state.engine.lookup_transfer(farthing_ledger::TransferId(
            chain_id(record.id.0, purpose, 0).wrapping_add(leg),
        ))
    };
    let held = lookup("payout", 1).map(|t| t.amount);
    let released = lookup("reserve_release", 0).is_some();
    let event = event_write(
        &state.store,
        EventKind::PayoutFailed,
        Some(record.merchant),
        state.products.clock.now(),
        || payout_view(state, record),
    )?;
    match run_chain_recorded(
        &state.engine,
        &state.products.journal,
        event.as_slice(),
        chain_id(record.id.0, "payout_return", 0),
        &payout_return(record.merchant, record.amount, held, released),
        AssetId(record.asset),
        record.id.0,
    )
    .await?
    {
        ChainOutcome::Committed { .. } => Ok(()),
        ChainOutcome::Refused { result, .. } => Err(ServiceError::internal(format!(
            "returning a failed payout: {result}"
        ))),
    }
}

/// The rail job of payout `payout`: asks the rail again about it while it is pending (see
/// [`ask_rail`]). A pending payout whose chain is not in the ledger was interrupted before
/// its money moved (a crash): it failed, with nothing to return. Holds the merchant's lock.
pub async fn ask_rail_again(state: &SharedState, payout: u128) -> Result<(), ServiceError> {
    let Some(record) = state.store.record::<PayoutRecord>(PAYOUTS, payout)? else {
        return state
            .products
            .records
            .write(vec![rail_job_done(payout)])
            .await
            .map_err(Into::into);
    };
    let _guard = state.products.lock(record.merchant.0).await;
    let Some(mut record) = state.store.record::<PayoutRecord>(PAYOUTS, payout)? else {
        return Ok(());
    };
    let writes = if record.status != PayoutStatus::Pending {
        vec![rail_job_done(payout)]
    } else if state
        .engine
        .lookup_transfer(farthing_ledger::TransferId(chain_id(payout, "payout", 0)))
        .is_none()
    {
        record.status = PayoutStatus::Failed;
        record.failure_code = Some("not_booked".into());
        record.failure_message =
            Some("the payout was interrupted before its money moved; nothing was sent".into());
        let mut writes = record_writes(&record)?;
        writes.extend(event_write(
            &state.store,
            EventKind::PayoutFailed,
            Some(record.merchant),
            state.products.clock.now(),
            || payout_view(state, &record),
        )?);
        writes.push(rail_job_done(payout));
        writes
    } else {
        let scale = asset_by_id(state, record.asset)?.scale;
        ask_rail(state, &mut record, scale).await?
    };
    state.products.records.write(writes).await?;
    Ok(())
}

/// Returns what payout `payout` held back as a reserve to the merchant's earnings: once (the
/// chain's id derives from the payout), and only if the payout's hold leg is in the ledger
/// and its return (a failed payout) is not. Holds the merchant's lock.
pub async fn release_reserve(state: &SharedState, payout: u128) -> Result<(), ServiceError> {
    let Some(record) = state.store.record::<PayoutRecord>(PAYOUTS, payout)? else {
        return Ok(());
    };
    let _guard = state.products.lock(record.merchant.0).await;
    // Leg 1 of the payout's chain holds the reserve; leg 1 of its return gives it back.
    let held = state
        .engine
        .lookup_transfer(farthing_ledger::TransferId(
            chain_id(payout, "payout", 0).wrapping_add(1),
        ))
        .map(|t| t.amount);
    let returned = state
        .engine
        .lookup_transfer(farthing_ledger::TransferId(
            chain_id(payout, "payout_return", 0).wrapping_add(1),
        ))
        .is_some();
    let Some(release) = reserve_release(record.merchant, held, returned) else {
        return Ok(());
    };
    match run_chain(
        &state.engine,
        chain_id(payout, "reserve_release", 0),
        &[release],
        AssetId(record.asset),
        payout,
    )
    .await?
    {
        ChainOutcome::Committed { .. } => Ok(()),
        ChainOutcome::Refused { result, .. } => Err(ServiceError::internal(format!(
            "releasing the reserve of payout {payout:032x}: {result}"
        ))),
    }
}

/// Whether a charge that paid `merchant` in `asset` should start a threshold payout: see
/// [`threshold_payout_due`]. Corrupt terms start none.
pub fn threshold_payout_starts(
    state: &SharedState,
    settings: &MerchantSettings,
    merchant: MerchantId,
    asset: AssetId,
) -> bool {
    let Ok(terms) = stored_terms(settings) else {
        return false;
    };
    let earnings = merchant_earnings(state, merchant, asset);
    threshold_payout_due(&terms, settings.payout_asset == Some(asset.0), earnings)
}

/// The merchant's earnings in `asset` and what it owes after chargebacks, from the ledger.
fn merchant_earnings(state: &SharedState, merchant: MerchantId, asset: AssetId) -> Earnings {
    Earnings {
        available: available(
            &state.engine,
            LedgerAccount::Earnings { merchant }.id(asset),
        ),
        debt: owed(
            &state.engine,
            LedgerAccount::MerchantDebt { merchant }.id(asset),
        ),
    }
}

/// After a charge: pay the merchant out if its earnings reached its threshold.
pub async fn maybe_threshold_payout(state: SharedState, merchant: MerchantId, asset: AssetId) {
    let Ok(settings) = merchant_settings(&state, merchant) else {
        return;
    };
    if !threshold_payout_starts(&state, &settings, merchant, asset) {
        return;
    }
    match pay_out(&state, merchant, None, PayoutTrigger::Threshold, None).await {
        Err(error)
            if !error
                .refused_by(|r| matches!(r, Reason::Payout(PayoutRefusal::BelowThreshold))) =>
        {
            tracing::warn!(error = %error.message, "threshold payout failed")
        }
        _ => {}
    }
}

/// Merchant `id` if the caller may see it and it exists; otherwise 404.
pub fn visible_merchant(
    state: &SharedState,
    principal: &Principal,
    id: u128,
) -> Result<u128, ServiceError> {
    Some(id)
        .filter(|m| principal.can_see(*m))
        .filter(|m| matches!(state.store.merchant(*m), Ok(Some(_))))
        .ok_or_else(|| ServiceError::not_found(Some("id"), "merchant"))
}

/// A merchant's payout terms, checked: a bank account number of 4 to 17 digits, and the
/// reserve terms [`rule::PayoutTerms::new`] checks (the threshold is set beside them).
pub struct PayoutTerms {
    bank_account: String,
    schedule: PayoutSchedule,
    reserve: rule::PayoutTerms,
}

impl PayoutTerms {
    /// `reserve_days` defaults to [`RESERVE_DAYS_DEFAULT`].
    pub fn new(
        bank_account: String,
        schedule: PayoutSchedule,
        reserve_bps: u32,
        reserve_days: Option<u32>,
    ) -> Result<PayoutTerms, ServiceError> {
        if !(4..=17).contains(&bank_account.len())
            || !bank_account.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ServiceError::invalid(
                "bank_account",
                "invalid_bank_account",
                "bank_account must be 4 to 17 digits",
            ));
        }
        let reserve = rule::PayoutTerms::new(
            Amount::ZERO,
            reserve_bps,
            reserve_days.unwrap_or(RESERVE_DAYS_DEFAULT),
        )?;
        Ok(PayoutTerms {
            bank_account,
            schedule,
            reserve,
        })
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PayoutSettingsView {
    pub object: &'static str,
    pub merchant: String,
    pub asset: Option<String>,
    pub bank_account_last4: Option<String>,
    pub threshold: String,
    pub schedule: PayoutSchedule,
    pub reserve_bps: u32,
    pub reserve_days: u32,
}

fn settings_view(
    state: &SharedState,
    s: &MerchantSettings,
) -> Result<PayoutSettingsView, ServiceError> {
    let asset = s.payout_asset.map(|a| asset_by_id(state, a)).transpose()?;
    Ok(PayoutSettingsView {
        object: "payout_settings",
        merchant: encode_id(IdKind::Merchant, s.merchant.0),
        asset: asset.as_ref().map(|a| a.code.to_string()),
        bank_account_last4: s.bank_account.as_ref().map(|b| {
            b.chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect()
        }),
        threshold: format_amount(s.payout_threshold, asset.map_or(0, |a| a.scale)),
        schedule: s.payout_schedule,
        reserve_bps: s.reserve_bps,
        reserve_days: s.reserve_days,
    })
}

/// Sets the merchant's payout settings: paid out in `asset`, automatically when earnings
/// reach `threshold` (never by threshold if `None`) and on the terms' schedule, which starts
/// at the next period's start. Holds the merchant's lock.
pub async fn set_settings(
    state: &SharedState,
    merchant: MerchantId,
    asset: &Asset,
    threshold: Option<Amount>,
    terms: PayoutTerms,
) -> Result<PayoutSettingsView, ServiceError> {
    let _guard = state.products.lock(merchant.0).await;
    let mut settings = merchant_settings(state, merchant)?;
    let reserve = terms
        .reserve
        .with_threshold(threshold.unwrap_or(Amount::ZERO));
    settings.bank_account = Some(terms.bank_account);
    settings.payout_asset = Some(asset.id.0);
    settings.payout_threshold = reserve.threshold();
    settings.payout_schedule = terms.schedule;
    settings.reserve_bps = reserve.reserve_bps();
    settings.reserve_days = reserve.reserve_days();
    let mut records = vec![RecordWrite::put(MERCHANT_SETTINGS, merchant.0, &settings)?];
    if let Some(interval) = crate::scheduler::payout_interval(settings.payout_schedule) {
        let next = farthing_products::schedule::next_period_start(
            farthing_ledger::Timestamp(state.products.clock.now()),
            interval,
        )
        .map_err(|e| ServiceError::internal(format!("period: {e}")))?;
        records.push(crate::scheduler::job_write(
            JobKind::Payout { merchant },
            next.0,
        )?);
    }
    state
        .commit(Changes {
            records,
            ..Changes::default()
        })
        .await?;
    state.products.cache.forget_settings(merchant);
    settings_view(state, &settings)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BalanceView {
    pub object: &'static str,
    pub merchant: String,
    pub asset: String,
    /// The merchant's earnings (its earnings account in the ledger). A payout first pays the
    /// `debt` from them.
    pub available: String,
    /// Held back as a reserve.
    pub reserved: String,
    /// What the merchant owes after chargebacks its earnings could not cover (its debt
    /// account in the ledger), until payouts have recovered it from later earnings.
    pub debt: String,
    /// What a payout can send and hold back now: `available` less `debt`, or zero.
    pub payable: String,
}

/// The merchant's earnings in `asset`: what it has, what a reserve holds back, what it owes
/// and what a payout can take once the debt is paid.
pub fn balance(state: &SharedState, merchant: MerchantId, asset: &Asset) -> BalanceView {
    let earnings = merchant_earnings(state, merchant, asset.id);
    let reserved = available(
        &state.engine,
        LedgerAccount::Reserve { merchant }.id(asset.id),
    );
    BalanceView {
        object: "balance",
        merchant: encode_id(IdKind::Merchant, merchant.0),
        asset: asset.code.to_string(),
        available: format_amount(earnings.available, asset.scale),
        reserved: format_amount(reserved, asset.scale),
        debt: format_amount(earnings.debt, asset.scale),
        payable: format_amount(earnings.payable(), asset.scale),
    }
}

/// The asset the merchant is paid out in; an error until its payout settings are set.
pub fn payout_asset(state: &SharedState, merchant: MerchantId) -> Result<Asset, ServiceError> {
    match merchant_settings(state, merchant)?.payout_asset {
        Some(asset) => asset_by_id(state, asset),
        None => Err(ServiceError::invalid(
            "bank_account",
            "payout_settings_missing",
            "set the merchant's payout settings first",
        )),
    }
}

/// Pays the merchant out on demand: `requested` (or all available less the reserve). With
/// an Idempotency-Key (`key`; `request` is the request's body) a retry gets the same payout.
pub async fn create(
    state: &SharedState,
    principal: &Principal,
    merchant: MerchantId,
    requested: Option<Amount>,
    key: Option<String>,
    request: &[u8],
) -> Result<PayoutView, ServiceError> {
    let keyed = key.as_ref().map(|key| {
        (
            derived_id(principal.tenant(), key, "payout", 0),
            sha256(&[b"payouts", &merchant.0.to_le_bytes(), request]),
        )
    });
    let record = pay_out(state, merchant, requested, PayoutTrigger::Manual, keyed).await?;
    payout_view(state, &record)
}

/// The merchant's payouts (the first [`PAYOUTS_LIST_MAX`]) and whether there are more.
pub fn list(
    state: &SharedState,
    merchant: MerchantId,
) -> Result<(Vec<PayoutView>, bool), ServiceError> {
    let (ids, more) =
        state
            .store
            .indexed(PAYOUTS_BY_MERCHANT, merchant.0, None, PAYOUTS_LIST_MAX)?;
    let mut data = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(p) = state.store.record::<PayoutRecord>(PAYOUTS, id)? {
            data.push(payout_view(state, &p)?);
        }
    }
    Ok((data, more))
}
