//! Payouts: a merchant's earnings leave for its bank account through the payout rail — on
//! demand (`pay_out`), when they reach the merchant's threshold ([`maybe_threshold_payout`])
//! or on the merchant's schedule (the scheduler's payout job). The money leaves the earnings
//! account (one chain, with the optional reserve held back) before the rail is asked; a failed
//! payout returns it with a second chain and says why. What a payout held back returns to the
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
use farthing_products::processor::{PayoutOutcome, PayoutRequest};
use farthing_products::rules::payout::{
    self as rule, plan_payout, reserve_release, threshold_payout_due, Earnings, PayoutRefusal,
    PayoutTermsError, PayoutTrigger, RESERVE_DAYS_DEFAULT,
};
use serde::Serialize;

use crate::assets::asset_by_id;
use crate::charges::merchant_settings;
use crate::error::ServiceError;
use crate::state::{Principal, SharedState};
use crate::submit::{available, owed, run_chain, run_chain_recorded, ChainOutcome, LedgerAccount};
use farthing_products::accounts::chain_id;
use farthing_products::ids::{encode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_store::outbox::{event_write, EventKind};
use farthing_store::records::{
    JobKind, MerchantSettings, PayoutRecord, PayoutStatus, MERCHANT_SETTINGS, PAYOUTS,
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
    /// `failed`: the amount sent (and any reserve) is back in the merchant's balance.
    pub status: PayoutStatus,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    /// `manual`, `threshold` or a schedule.
    pub trigger: String,
    pub created: String,
}

pub fn payout_view(state: &SharedState, p: &PayoutRecord) -> Result<PayoutView, ServiceError> {
    let asset = asset_by_id(state, p.asset)?;
    Ok(PayoutView {
        id: encode_id(IdKind::Payout, p.id),
        object: "payout",
        merchant: encode_id(IdKind::Merchant, p.merchant),
        amount: format_amount(Amount(p.amount), asset.scale),
        asset: asset.code.to_string(),
        debt_recovered: format_amount(Amount(p.debt_recovered), asset.scale),
        status: p.status,
        failure_code: p.failure_code.clone(),
        failure_message: p.failure_message.clone(),
        trigger: p.trigger.clone(),
        created: rfc3339(p.created_ns),
    })
}

/// The merchant's stored payout terms, as the payout rule takes them. They were checked when
/// set ([`PayoutTerms::new`]), so a refusal here is a corrupt record.
fn stored_terms(settings: &MerchantSettings) -> Result<rule::PayoutTerms, ServiceError> {
    rule::PayoutTerms::new(
        Amount(settings.payout_threshold),
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
            ServiceError::refused(
                refusal.code(),
                format!(
                    "the merchant has {} available{owing}",
                    format_amount(available, scale)
                ),
            )
            .with_param("amount")
        }
        other => ServiceError::refused(other.code(), other.to_string()),
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

/// Pays out `amount` (or all available less the reserve). `trigger` is a
/// [`PayoutTrigger::code`]. Holds the merchant's lock.
pub async fn pay_out(
    state: &SharedState,
    merchant: u128,
    requested: Option<Amount>,
    trigger: &str,
    keyed: Option<(u128, [u8; 32])>,
) -> Result<PayoutRecord, ServiceError> {
    let trigger = PayoutTrigger::from_code(trigger)
        .ok_or_else(|| ServiceError::internal(format!("payout trigger {trigger:?}")))?;
    let _guard = state.products.lock(merchant).await;
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
        id: keyed.map_or_else(random_id, |(id, _)| id),
        request_hash: keyed.map(|(_, hash)| hash),
        merchant,
        asset: asset.id.0,
        amount: plan.amount.0,
        bank_account: bank_account.clone(),
        status: PayoutStatus::Pending,
        rail_payout_id: None,
        failure_code: None,
        failure_message: None,
        trigger: trigger.code().to_string(),
        created_ns: now,
        debt_recovered: plan.recovered.0,
    };
    let writes = |r: &PayoutRecord| -> Result<Vec<RecordWrite>, ServiceError> {
        Ok(vec![
            RecordWrite::put(PAYOUTS, r.id, r)?,
            RecordWrite::Index {
                index: PAYOUTS_BY_MERCHANT,
                parent: merchant,
                id: r.id,
            },
        ])
    };
    // The release is scheduled with the record, before the chain: it releases only what the
    // chain held (it checks the ledger), so a crash anywhere after leaves no reserve behind.
    let mut first = writes(&record)?;
    if let Some(due) = plan.reserve_release_at {
        first.push(crate::scheduler::job_write(
            JobKind::ReserveRelease { payout: record.id },
            due.0,
        )?);
    }
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
        chain_id(record.id, "payout", 0),
        &plan.legs(merchant),
        asset.id,
        record.id,
    )
    .await?
    {
        ChainOutcome::Committed { .. } => {}
        ChainOutcome::Refused { result, .. } => {
            return Err(ServiceError::refused(
                "insufficient_balance",
                format!("the merchant's balance cannot cover this payout ({result})"),
            )
            .with_param("amount"))
        }
    }
    let outcome = state.products.rail.send(&PayoutRequest {
        idempotency_key: format!("payout_{:032x}", record.id),
        bank_account,
        amount: plan.amount,
        asset_scale: asset.scale,
        description: "farthing payout".into(),
    });
    match outcome {
        PayoutOutcome::Sent { payout_id } => {
            record.status = PayoutStatus::Paid;
            record.rail_payout_id = Some(payout_id);
        }
        PayoutOutcome::Failed { reason, message } => {
            // The rail refused: the money (and the reserve held with it) goes back.
            record.status = PayoutStatus::Failed;
            record.failure_code = Some(reason.code().to_string());
            record.failure_message = Some(message);
            let event = event_write(
                &state.store,
                EventKind::PayoutFailed,
                Some(merchant),
                state.products.clock.now(),
                || payout_view(state, &record),
            )?;
            if let ChainOutcome::Refused { result, .. } = run_chain_recorded(
                &state.engine,
                &state.products.journal,
                event.as_slice(),
                chain_id(record.id, "payout_return", 0),
                &plan.return_legs(merchant),
                asset.id,
                record.id,
            )
            .await?
            {
                return Err(ServiceError::internal(format!(
                    "returning a failed payout: {result}"
                )));
            }
        }
    }
    let mut last = writes(&record)?;
    if record.status == PayoutStatus::Paid {
        // The money left with the payout's chain; the rail's word is what this records.
        last.extend(event_write(
            &state.store,
            EventKind::PayoutPaid,
            Some(merchant),
            state.products.clock.now(),
            || payout_view(state, &record),
        )?);
    }
    state.products.records.write(last).await?;
    Ok(record)
}

/// Returns what payout `payout` held back as a reserve to the merchant's earnings: once (the
/// chain's id derives from the payout), and only if the payout's hold leg is in the ledger
/// and its return (a failed payout) is not. Holds the merchant's lock.
pub async fn release_reserve(state: &SharedState, payout: u128) -> Result<(), ServiceError> {
    let Some(record) = state.store.record::<PayoutRecord>(PAYOUTS, payout)? else {
        return Ok(());
    };
    let _guard = state.products.lock(record.merchant).await;
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
    merchant: u128,
    asset: AssetId,
) -> bool {
    let Ok(terms) = stored_terms(settings) else {
        return false;
    };
    let earnings = merchant_earnings(state, merchant, asset);
    threshold_payout_due(&terms, settings.payout_asset == Some(asset.0), earnings)
}

/// The merchant's earnings in `asset` and what it owes after chargebacks, from the ledger.
fn merchant_earnings(state: &SharedState, merchant: u128, asset: AssetId) -> Earnings {
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
pub async fn maybe_threshold_payout(state: SharedState, merchant: u128, asset: AssetId) {
    let Ok(settings) = merchant_settings(&state, merchant) else {
        return;
    };
    if !threshold_payout_starts(&state, &settings, merchant, asset) {
        return;
    }
    match pay_out(&state, merchant, None, "threshold", None).await {
        Err(error) if error.code != "below_threshold" => {
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
        merchant: encode_id(IdKind::Merchant, s.merchant),
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
        threshold: format_amount(Amount(s.payout_threshold), asset.map_or(0, |a| a.scale)),
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
    merchant: u128,
    asset: &Asset,
    threshold: Option<Amount>,
    terms: PayoutTerms,
) -> Result<PayoutSettingsView, ServiceError> {
    let _guard = state.products.lock(merchant).await;
    let mut settings = merchant_settings(state, merchant)?;
    let reserve = terms
        .reserve
        .with_threshold(threshold.unwrap_or(Amount::ZERO));
    settings.bank_account = Some(terms.bank_account);
    settings.payout_asset = Some(asset.id.0);
    settings.payout_threshold = reserve.threshold().0;
    settings.payout_schedule = terms.schedule;
    settings.reserve_bps = reserve.reserve_bps();
    settings.reserve_days = reserve.reserve_days();
    let mut records = vec![RecordWrite::put(MERCHANT_SETTINGS, merchant, &settings)?];
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
pub fn balance(state: &SharedState, merchant: u128, asset: &Asset) -> BalanceView {
    let earnings = merchant_earnings(state, merchant, asset.id);
    let reserved = available(
        &state.engine,
        LedgerAccount::Reserve { merchant }.id(asset.id),
    );
    BalanceView {
        object: "balance",
        merchant: encode_id(IdKind::Merchant, merchant),
        asset: asset.code.to_string(),
        available: format_amount(earnings.available, asset.scale),
        reserved: format_amount(reserved, asset.scale),
        debt: format_amount(earnings.debt, asset.scale),
        payable: format_amount(earnings.payable(), asset.scale),
    }
}

/// The asset the merchant is paid out in; an error until its payout settings are set.
pub fn payout_asset(state: &SharedState, merchant: u128) -> Result<Asset, ServiceError> {
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
    merchant: u128,
    requested: Option<Amount>,
    key: Option<String>,
    request: &[u8],
) -> Result<PayoutView, ServiceError> {
    let keyed = key.as_ref().map(|key| {
        (
            derived_id(principal.tenant(), key, "payout", 0),
            sha256(&[b"payouts", &merchant.to_le_bytes(), request]),
        )
    });
    let record = pay_out(state, merchant, requested, "manual", keyed).await?;
    payout_view(state, &record)
}

/// The merchant's payouts (the first [`PAYOUTS_LIST_MAX`]) and whether there are more.
pub fn list(state: &SharedState, merchant: u128) -> Result<(Vec<PayoutView>, bool), ServiceError> {
    let (ids, more) = state
        .store
        .indexed(PAYOUTS_BY_MERCHANT, merchant, None, PAYOUTS_LIST_MAX)?;
    let mut data = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(p) = state.store.record::<PayoutRecord>(PAYOUTS, id)? {
            data.push(payout_view(state, &p)?);
        }
    }
    Ok((data, more))
}
