//! Payouts: a merchant's earnings leave for its bank account through the payout rail — on
//! demand, or when they reach the merchant's threshold. The money leaves the earnings account
//! (one chain, with the optional reserve held back) before the rail is asked; a failed payout
//! returns it with a second chain and says why.
//!
//! The reserve is a rolling one: what a payout held back returns to the earnings
//! `reserve_days` later (a scheduled job, one chain), unless the payout failed (its return
//! chain already gave it back).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use farthing_ledger::{Amount, AssetId};
use farthing_products::fees::{mul_div, RoundingRule};
use farthing_products::processor::{PayoutOutcome, PayoutRequest};
use serde::{Deserialize, Serialize};

use crate::app::{json_response, random_id, rfc3339, to_json, ApiJson, Principal, SharedState};
use crate::error::ApiError;
use crate::ids::{decode_id, encode_id, IdKind};
use crate::money::format_amount;
use crate::products::ledger::{
    chain_id, CODE_PAYOUT, CODE_PAYOUT_RETURN, CODE_RESERVE_HOLD, CODE_RESERVE_RELEASE,
};
use crate::products::records::{
    JobKind, MerchantSettings, PayoutRecord, PayoutSchedule, MERCHANT_SETTINGS, PAYOUTS,
    PAYOUTS_BY_MERCHANT, RESERVE_DAYS_DEFAULT,
};
use crate::products::{
    available, run_chain, run_chain_recorded, ChainOutcome, LedgerAccount, Leg, Role,
};
use crate::routes::charges::merchant_settings;
use crate::routes::customers::positive_amount;
use crate::service::assets::{asset_by_id, by_code};
use crate::store::{Changes, RecordWrite};
use crate::webhooks::{event_write, EventKind};

/// The reserve is rounded down (named: the merchant is paid the rounding unit, not held).
const RESERVE_ROUNDING: RoundingRule = RoundingRule::Down;

fn visible_merchant(
    state: &SharedState,
    principal: &Principal,
    id: &str,
) -> Result<u128, ApiError> {
    decode_id(IdKind::Merchant, id)
        .filter(|m| principal.can_see(*m))
        .filter(|m| matches!(state.store.merchant(*m), Ok(Some(_))))
        .ok_or_else(|| ApiError::not_found(Some("id"), "merchant"))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPayoutSettings {
    #[schema(pattern = r"^[A-Z0-9_]{1,15}$", example = "USD")]
    pub asset: String,
    /// The bank account number. Sandbox: 000123456789 succeeds, 000111111116 fails
    /// (`no_account`), 000111111113 fails (`account_closed`).
    pub bank_account: String,
    /// Pay out automatically when earnings reach this (0 = never by threshold).
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "10.00")]
    #[serde(default)]
    pub threshold: Option<String>,
    #[serde(default = "manual")]
    pub schedule: PayoutSchedule,
    /// Part of each payout held back as a reserve, in basis points.
    #[serde(default)]
    pub reserve_bps: u32,
    /// Days each payout's reserve is held before it returns to the earnings (1 to 3650;
    /// default 90).
    #[serde(default)]
    pub reserve_days: Option<u32>,
}

/// The longest a reserve may be held: ten years.
const RESERVE_DAYS_MAX: u32 = 3650;

fn manual() -> PayoutSchedule {
    PayoutSchedule::Manual
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
) -> Result<PayoutSettingsView, ApiError> {
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

#[utoipa::path(post, path = "/v1/merchants/{id}/payout_settings", operation_id = "merchants.payout_settings.set", tag = "payouts", request_body = SetPayoutSettings, params(("id" = String, Path, description = "mer_… id")), responses((status = 200, description = "the merchant's payout settings", body = PayoutSettingsView), crate::error::WriteErrors))]
pub async fn set_settings(
    State(state): State<SharedState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(request, _): ApiJson<SetPayoutSettings>,
) -> Result<Response, ApiError> {
    principal.require_write()?;
    let merchant = visible_merchant(&state, &principal, &id)?;
    let asset = by_code(&state, &request.asset, "asset")?;
    if !(4..=17).contains(&request.bank_account.len())
        || !request.bank_account.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(ApiError::invalid(
            "bank_account",
            "invalid_bank_account",
            "bank_account must be 4 to 17 digits",
        ));
    }
    if request.reserve_bps > 10_000 {
        return Err(ApiError::invalid(
            "reserve_bps",
            "invalid_reserve",
            "reserve_bps must be 0 to 10000",
        ));
    }
    let reserve_days = request.reserve_days.unwrap_or(RESERVE_DAYS_DEFAULT);
    if !(1..=RESERVE_DAYS_MAX).contains(&reserve_days) {
        return Err(ApiError::invalid(
            "reserve_days",
            "invalid_reserve_days",
            format!("reserve_days must be 1 to {RESERVE_DAYS_MAX}"),
        ));
    }
    let threshold = match &request.threshold {
        Some(t) => positive_amount(t, &asset, "threshold")?.0,
        None => 0,
    };
    let _guard = state.products.lock(merchant).await;
    let mut settings = merchant_settings(&state, merchant)?;
    settings.bank_account = Some(request.bank_account);
    settings.payout_asset = Some(asset.id.0);
    settings.payout_threshold = threshold;
    settings.payout_schedule = request.schedule;
    settings.reserve_bps = request.reserve_bps;
    settings.reserve_days = reserve_days;
    state
        .commit(Changes {
            records: {
                let mut writes = vec![RecordWrite::put(MERCHANT_SETTINGS, merchant, &settings)?];
                // A schedule starts at the next period's start.
                if let Some(interval) =
                    crate::products::scheduler::payout_interval(settings.payout_schedule)
                {
                    let next = farthing_products::schedule::next_period_start(
                        farthing_ledger::Timestamp(state.products.clock.now()),
                        interval,
                    )
                    .map_err(|e| ApiError::internal(format!("period: {e}")))?;
                    writes.push(crate::products::scheduler::job_write(
                        crate::products::records::JobKind::Payout { merchant },
                        next.0,
                    )?);
                }
                writes
            },
            ..Changes::default()
        })
        .await?;
    state.products.cache.forget_settings(merchant);
    Ok(json_response(
        StatusCode::OK,
        to_json(&settings_view(&state, &settings)?)?,
    ))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BalanceView {
    pub object: &'static str,
    pub merchant: String,
    pub asset: String,
    /// Earnings that can be paid out.
    pub available: String,
    /// Held back as a reserve.
    pub reserved: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssetQuery {
    asset: String,
}

#[utoipa::path(get, path = "/v1/merchants/{id}/balance", operation_id = "merchants.balance.get", tag = "payouts", params(("id" = String, Path, description = "mer_… id"), ("asset" = String, Query, description = "asset code")), responses((status = 200, description = "the merchant's earnings", body = BalanceView), crate::error::ReadErrors))]
pub async fn balance(
    State(state): State<SharedState>,
    principal: Principal,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<BalanceView>, ApiError> {
    let merchant = visible_merchant(&state, &principal, &id)?;
    let query: AssetQuery = crate::routes::parse_query(query.as_deref())?;
    let asset = by_code(&state, &query.asset, "asset")?;
    let earned = available(
        &state.engine,
        LedgerAccount::Earnings { merchant }.id(asset.id),
    );
    let reserved = available(
        &state.engine,
        LedgerAccount::Reserve { merchant }.id(asset.id),
    );
    Ok(axum::Json(BalanceView {
        object: "balance",
        merchant: encode_id(IdKind::Merchant, merchant),
        asset: asset.code.to_string(),
        available: format_amount(earned, asset.scale),
        reserved: format_amount(reserved, asset.scale),
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePayout {
    /// How much to pay out (default: everything available, less the reserve).
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "10.00")]
    pub amount: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PayoutView {
    pub id: String,
    pub object: &'static str,
    pub merchant: String,
    pub amount: String,
    pub asset: String,
    /// `paid` or `failed` (the funds are back in the merchant's balance).
    pub status: String,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    /// `manual`, `threshold` or a schedule.
    pub trigger: String,
    pub created: String,
}

fn payout_view(state: &SharedState, p: &PayoutRecord) -> Result<PayoutView, ApiError> {
    let asset = asset_by_id(state, p.asset)?;
    Ok(PayoutView {
        id: encode_id(IdKind::Payout, p.id),
        object: "payout",
        merchant: encode_id(IdKind::Merchant, p.merchant),
        amount: format_amount(Amount(p.amount), asset.scale),
        asset: asset.code.to_string(),
        status: p.status.clone(),
        failure_code: p.failure_code.clone(),
        failure_message: p.failure_message.clone(),
        trigger: p.trigger.clone(),
        created: rfc3339(p.created_ns),
    })
}

/// Pays out `amount` (or all available less the reserve). Holds the merchant's lock.
pub(crate) async fn pay_out(
    state: &SharedState,
    merchant: u128,
    requested: Option<Amount>,
    trigger: &str,
    keyed: Option<(u128, [u8; 32])>,
) -> Result<PayoutRecord, ApiError> {
    let _guard = state.products.lock(merchant).await;
    // With a key, the payout's id derives from it: a retry finds the payout it already made.
    if let Some((id, request_hash)) = keyed {
        if let Some(existing) = state.store.record::<PayoutRecord>(PAYOUTS, id)? {
            if existing.request_hash != Some(request_hash) || existing.merchant != merchant {
                return Err(ApiError::idempotency(
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
        return Err(ApiError::invalid(
            "bank_account",
            "payout_settings_missing",
            "set the merchant's payout settings first",
        ));
    };
    let asset = asset_by_id(state, asset_id)?;
    let earnings = LedgerAccount::Earnings { merchant };
    let reserve = LedgerAccount::Reserve { merchant };
    let balance = available(&state.engine, earnings.id(asset.id));
    if trigger == "threshold" && balance.0 < settings.payout_threshold {
        // Another payout took the earnings while this one waited for the lock.
        return Err(ApiError::refused(
            "below_threshold",
            "earnings are below the threshold",
        ));
    }
    let reserve_part = |amount: u128| {
        mul_div(
            amount,
            u128::from(settings.reserve_bps),
            10_000,
            RESERVE_ROUNDING,
        )
        .map_err(|e| ApiError::internal(format!("reserve: {e}")))
    };
    let (amount, held) = match requested {
        Some(amount) => (amount.0, reserve_part(amount.0)?),
        None => {
            let held = reserve_part(balance.0)?;
            (balance.0 - held, held)
        }
    };
    if amount == 0
        || amount
            .checked_add(held)
            .is_none_or(|total| total > balance.0)
    {
        return Err(ApiError::refused(
            "insufficient_balance",
            format!(
                "the merchant has {} available",
                format_amount(balance, asset.scale)
            ),
        )
        .with_param("amount"));
    }
    let mut record = PayoutRecord {
        id: keyed.map_or_else(random_id, |(id, _)| id),
        request_hash: keyed.map(|(_, hash)| hash),
        merchant,
        asset: asset.id.0,
        amount,
        bank_account: bank_account.clone(),
        status: "pending".into(),
        rail_payout_id: None,
        failure_code: None,
        failure_message: None,
        trigger: trigger.to_string(),
        created_ns: state.products.clock.now(),
    };
    let writes = |r: &PayoutRecord| -> Result<Vec<RecordWrite>, ApiError> {
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
    if held > 0 {
        let due = u64::from(settings.reserve_days)
            .saturating_mul(86_400_000_000_000)
            .saturating_add(record.created_ns);
        first.push(crate::products::scheduler::job_write(
            JobKind::ReserveRelease { payout: record.id },
            due,
        )?);
    }
    state.products.records.write(first).await?;
    let out = [
        Leg {
            debit: earnings,
            credit: LedgerAccount::PayoutClearing,
            amount: Amount(amount),
            code: CODE_PAYOUT,
            role: Role::Payment,
        },
        Leg {
            debit: earnings,
            credit: reserve,
            amount: Amount(held),
            code: CODE_RESERVE_HOLD,
            role: Role::Payment,
        },
    ];
    state
        .products
        .ensure_accounts(
            &state.engine,
            &[earnings, reserve, LedgerAccount::PayoutClearing],
            asset.id,
        )
        .await?;
    match run_chain(
        &state.engine,
        chain_id(record.id, "payout", 0),
        &out,
        asset.id,
        record.id,
    )
    .await?
    {
        ChainOutcome::Committed { .. } => {}
        ChainOutcome::Refused { result, .. } => {
            return Err(ApiError::refused(
                "insufficient_balance",
                format!("the merchant's balance cannot cover this payout ({result})"),
            )
            .with_param("amount"))
        }
    }
    let outcome = state.products.rail.send(&PayoutRequest {
        idempotency_key: format!("payout_{:032x}", record.id),
        bank_account,
        amount: Amount(amount),
        asset_scale: asset.scale,
        description: "farthing payout".into(),
    });
    match outcome {
        PayoutOutcome::Sent { payout_id } => {
            record.status = "paid".into();
            record.rail_payout_id = Some(payout_id);
        }
        PayoutOutcome::Failed { reason, message } => {
            // The rail refused: the money (and the reserve held with it) goes back.
            let back = [
                Leg {
                    debit: LedgerAccount::PayoutClearing,
                    credit: earnings,
                    amount: Amount(amount),
                    code: CODE_PAYOUT_RETURN,
                    role: Role::Other,
                },
                Leg {
                    debit: reserve,
                    credit: earnings,
                    amount: Amount(held),
                    code: CODE_PAYOUT_RETURN,
                    role: Role::Other,
                },
            ];
            record.status = "failed".into();
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
                &back,
                asset.id,
                record.id,
            )
            .await?
            {
                return Err(ApiError::internal(format!(
                    "returning a failed payout: {result}"
                )));
            }
        }
    }
    let mut last = writes(&record)?;
    if record.status == "paid" {
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
pub(crate) async fn release_reserve(state: &SharedState, payout: u128) -> Result<(), ApiError> {
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
    let Some(held) = held.filter(|_| !returned) else {
        return Ok(());
    };
    let release = [Leg {
        debit: LedgerAccount::Reserve {
            merchant: record.merchant,
        },
        credit: LedgerAccount::Earnings {
            merchant: record.merchant,
        },
        amount: held,
        code: CODE_RESERVE_RELEASE,
        role: Role::Other,
    }];
    match run_chain(
        &state.engine,
        chain_id(payout, "reserve_release", 0),
        &release,
        AssetId(record.asset),
        payout,
    )
    .await?
    {
        ChainOutcome::Committed { .. } => Ok(()),
        ChainOutcome::Refused { result, .. } => Err(ApiError::internal(format!(
            "releasing the reserve of payout {payout:032x}: {result}"
        ))),
    }
}

#[utoipa::path(post, path = "/v1/merchants/{id}/payouts", operation_id = "merchants.payouts.create", tag = "payouts", request_body = CreatePayout, params(("id" = String, Path, description = "mer_… id"), ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: paid out once")), responses((status = 201, description = "the payout: paid, or failed with the funds returned", body = PayoutView), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    principal: Principal,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
    ApiJson(request, raw): ApiJson<CreatePayout>,
) -> Result<Response, ApiError> {
    principal.require_write()?;
    let merchant = visible_merchant(&state, &principal, &id)?;
    let settings = merchant_settings(&state, merchant)?;
    let requested = match (&request.amount, settings.payout_asset) {
        (Some(text), Some(asset)) => Some(positive_amount(
            text,
            &asset_by_id(&state, asset)?,
            "amount",
        )?),
        (Some(_), None) => {
            return Err(ApiError::invalid(
                "bank_account",
                "payout_settings_missing",
                "set the merchant's payout settings first",
            ))
        }
        (None, _) => None,
    };
    let key = crate::app::idempotency_key(&headers)?;
    let keyed = key.as_ref().map(|key| {
        (
            crate::app::derived_id(principal.tenant(), key, "payout", 0),
            crate::app::sha256(&[b"payouts", &merchant.to_le_bytes(), &raw]),
        )
    });
    let record = pay_out(&state, merchant, requested, "manual", keyed).await?;
    Ok(json_response(
        StatusCode::CREATED,
        to_json(&payout_view(&state, &record)?)?,
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PayoutList {
    pub object: &'static str,
    pub data: Vec<PayoutView>,
    pub has_more: bool,
}

#[utoipa::path(get, path = "/v1/merchants/{id}/payouts", operation_id = "merchants.payouts.list", tag = "payouts", params(("id" = String, Path, description = "mer_… id")), responses((status = 200, description = "the merchant's payouts", body = PayoutList), crate::error::ReadErrors))]
pub async fn list(
    State(state): State<SharedState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<axum::Json<PayoutList>, ApiError> {
    let merchant = visible_merchant(&state, &principal, &id)?;
    let (ids, more) = state
        .store
        .indexed(PAYOUTS_BY_MERCHANT, merchant, None, 100)?;
    let mut data = Vec::new();
    for id in ids {
        if let Some(p) = state.store.record::<PayoutRecord>(PAYOUTS, id)? {
            data.push(payout_view(&state, &p)?);
        }
    }
    Ok(axum::Json(PayoutList {
        object: "list",
        data,
        has_more: more,
    }))
}

/// After a charge: pay the merchant out if its earnings reached its threshold.
pub async fn maybe_threshold_payout(state: SharedState, merchant: u128, asset: AssetId) {
    let Ok(settings) = merchant_settings(&state, merchant) else {
        return;
    };
    if settings.payout_threshold == 0 || settings.payout_asset != Some(asset.0) {
        return;
    }
    let balance = available(
        &state.engine,
        LedgerAccount::Earnings { merchant }.id(asset),
    );
    if balance.0 < settings.payout_threshold {
        return;
    }
    match pay_out(&state, merchant, None, "threshold", None).await {
        Err(error) if error.code != "below_threshold" => {
            tracing::warn!(error = %error.message, "threshold payout failed")
        }
        _ => {}
    }
}
