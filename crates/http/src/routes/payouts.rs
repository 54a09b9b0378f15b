//! Payouts: a merchant's earnings leave for its bank account through the payout rail — on
//! demand, or when they reach the merchant's threshold. The money leaves the earnings account
//! (one chain, with the optional reserve held back) before the rail is asked; a failed payout
//! returns it with a second chain and says why.
//!
//! The reserve is a rolling one: what a payout held back returns to the earnings
//! `reserve_days` later (a scheduled job, one chain), unless the payout failed (its return
//! chain already gave it back).
//!
//! The handlers parse and render; paying out and releasing reserves are
//! [`farthing_service::payouts`] operations (the scheduler runs them too).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use farthing_ledger::Amount;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::json_response;
use crate::extract::ApiJson;
use crate::extract::Key;
use crate::routes::positive_amount;
use farthing_products::ids::{decode_id, encode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_service::assets::{asset_by_id, by_code};
use farthing_service::charges::merchant_settings;
use farthing_service::payouts::{pay_out, payout_view, PayoutView};
use farthing_service::state::to_json;
use farthing_service::state::Principal;
use farthing_service::state::SharedState;
use farthing_service::submit::{available, LedgerAccount};
use farthing_store::records::{
    MerchantSettings, PayoutRecord, PayoutSchedule, MERCHANT_SETTINGS, PAYOUTS,
    PAYOUTS_BY_MERCHANT, RESERVE_DAYS_DEFAULT,
};
use farthing_store::{Changes, RecordWrite};

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
    Key(principal): Key,
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
                    farthing_service::scheduler::payout_interval(settings.payout_schedule)
                {
                    let next = farthing_products::schedule::next_period_start(
                        farthing_ledger::Timestamp(state.products.clock.now()),
                        interval,
                    )
                    .map_err(|e| ApiError::internal(format!("period: {e}")))?;
                    writes.push(farthing_service::scheduler::job_write(
                        farthing_store::records::JobKind::Payout { merchant },
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
    Key(principal): Key,
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

#[utoipa::path(post, path = "/v1/merchants/{id}/payouts", operation_id = "merchants.payouts.create", tag = "payouts", request_body = CreatePayout, params(("id" = String, Path, description = "mer_… id"), ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: paid out once")), responses((status = 201, description = "the payout: paid, or failed with the funds returned", body = PayoutView), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    Key(principal): Key,
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
    let key = crate::extract::idempotency_key(&headers)?;
    let keyed = key.as_ref().map(|key| {
        (
            farthing_store::util::derived_id(principal.tenant(), key, "payout", 0),
            farthing_store::util::sha256(&[b"payouts", &merchant.to_le_bytes(), &raw]),
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
    Key(principal): Key,
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
