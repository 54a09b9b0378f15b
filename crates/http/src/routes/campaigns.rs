//! Crowdfunding campaigns: many small contributions toward a goal by a deadline.
//!
//! - **All-or-nothing**: each contribution is a ledger hold (wallet → the campaign's pot). At
//!   the deadline a scheduled job captures every contribution (one chain each: post the hold,
//!   split it by the creator's fee plan) if the held total reached the goal, and releases
//!   them all otherwise. The decision is the same however often the job runs: captured and
//!   held contributions count alike.
//! - **Keep-what-you-raise**: each contribution is paid at once (one chain: wallet → pot →
//!   creator, platform fee, rounding).
//!
//! Progress (raised, backers, status) is public: anyone with the campaign's id reads it
//! without a key, and a backer checks that a contribution is counted with its id. Raised and
//! backers are summed over the contributions whose funding transfer is in the ledger (a scan:
//! fine for thousands of contributions, not for millions). Contributions to one campaign are
//! serialized with its end, so none slips past the deadline job.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use farthing_ledger::{Amount, Transfer, TransferFlags, TransferId};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::json_response;
use crate::extract::ApiJson;
use crate::extract::Caller;
use crate::extract::IdempotencyKey;
use crate::extract::Key;
use crate::routes::positive_amount;
use farthing_products::accounts::CODE_CONTRIBUTION;
use farthing_products::ids::{decode_id, encode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_service::assets::{asset_by_id, by_code};
use farthing_service::campaigns::{contribution_status, funding_id, view, CampaignView};
use farthing_service::charges::merchant_exists;
use farthing_service::charges::priced;
use farthing_service::holds::{link_chain, split_transfers, submit_chain};
use farthing_service::state::to_json;
use farthing_service::state::SharedState;
use farthing_service::submit::LedgerAccount;
use farthing_store::records::{
    CampaignMode, CampaignRecord, ContributionRecord, JobKind, CAMPAIGNS, CONTRIBUTIONS,
    CONTRIBUTIONS_BY_CAMPAIGN,
};
use farthing_store::util::derived_id;
use farthing_store::util::random_id;
use farthing_store::util::rfc3339;
use farthing_store::util::sha256;
use farthing_store::{Changes, RecordWrite, Scope};

const ENDS_IN_MIN_S: u64 = 60;
const ENDS_IN_MAX_S: u64 = 365 * 86_400;
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCampaign {
    pub name: String,
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "500.00")]
    pub goal: String,
    #[schema(pattern = r"^[A-Z0-9_]{1,15}$", example = "USD")]
    pub asset: String,
    /// Seconds until the deadline (60 to 31,536,000).
    pub ends_in_seconds: u64,
    pub mode: CampaignMode,
    /// The creator (`mer_…`); only with an operator key (a merchant key creates its own).
    #[serde(default)]
    pub merchant: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Contribute {
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "5.00")]
    pub amount: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ContributionView {
    pub id: String,
    pub object: &'static str,
    pub campaign: String,
    pub amount: String,
    /// In the campaign's total (its funding transfer is in the ledger).
    pub counted: bool,
    /// `held`, `captured`, `released` (all-or-nothing), `paid` (keep-what-you-raise), or
    /// `failed` (never funded).
    pub status: &'static str,
    pub created: String,
}

#[utoipa::path(post, path = "/v1/campaigns", operation_id = "campaigns.create", tag = "campaigns", request_body = CreateCampaign, params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry")), responses((status = 201, description = "the campaign (a merchant key, or the operator naming the merchant)", body = CampaignView), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request, raw): ApiJson<CreateCampaign>,
) -> Result<Response, ApiError> {
    principal.require_write()?;
    let merchant = match (principal.merchant(), &request.merchant) {
        (Some(own), None) => own,
        (None, Some(text)) if principal.is_operator() => merchant_exists(&state, text, "merchant")?,
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "merchant",
                "not_allowed",
                "a merchant key creates its own campaigns",
            ))
        }
        _ => {
            return Err(ApiError::invalid(
                "merchant",
                "required",
                "name the campaign's merchant",
            ))
        }
    };
    crate::routes::check_name(&request.name)?;
    let asset = by_code(&state, &request.asset, "asset")?;
    let goal = positive_amount(&request.goal, &asset, "goal")?;
    if !(ENDS_IN_MIN_S..=ENDS_IN_MAX_S).contains(&request.ends_in_seconds) {
        return Err(ApiError::invalid(
            "ends_in_seconds",
            "invalid_deadline",
            format!("ends_in_seconds must be {ENDS_IN_MIN_S} to {ENDS_IN_MAX_S}"),
        ));
    }
    let state2 = state.clone();
    state
        .idempotent(principal.tenant(), key, "campaigns", &raw, || async move {
            let now = state2.products.clock.now();
            let record = CampaignRecord {
                id: random_id(),
                merchant,
                name: request.name,
                asset: asset.id.0,
                goal: goal.0,
                deadline_ns: now.saturating_add(request.ends_in_seconds * 1_000_000_000),
                mode: request.mode,
                created_ns: now,
                ended: false,
            };
            let mut records = vec![RecordWrite::put(CAMPAIGNS, record.id, &record)?];
            // Both modes end with an event; all-or-nothing also settles its holds then.
            records.push(farthing_service::scheduler::job_write(
                JobKind::CampaignEnd {
                    campaign: record.id,
                },
                record.deadline_ns,
            )?);
            let body = to_json(&view(&state2, &record)?)?;
            Ok((
                StatusCode::CREATED,
                body,
                Changes {
                    records,
                    ..Changes::default()
                },
            ))
        })
        .await
        .map(crate::extract::reply)
}

fn campaign(state: &SharedState, id: &str) -> Result<CampaignRecord, ApiError> {
    let missing = || ApiError::not_found(Some("id"), "campaign");
    let id = decode_id(IdKind::Campaign, id).ok_or_else(missing)?;
    state.store.record(CAMPAIGNS, id)?.ok_or_else(missing)
}

#[utoipa::path(get, path = "/v1/campaigns/{id}", operation_id = "campaigns.get", tag = "campaigns", security(()), params(("id" = String, Path, description = "cmp_… id")), responses((status = 200, description = "the campaign's progress: public, no key needed", body = CampaignView), crate::error::ReadErrors))]
pub async fn get(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<axum::Json<CampaignView>, ApiError> {
    let c = campaign(&state, &id)?;
    Ok(axum::Json(view(&state, &c)?))
}

#[utoipa::path(get, path = "/v1/campaigns/{id}/contributions/{contribution}", operation_id = "campaigns.contributions.get", tag = "campaigns", security(()), params(("id" = String, Path, description = "cmp_… id"), ("contribution" = String, Path, description = "ctb_… id, as the backer received it")), responses((status = 200, description = "whether the contribution is counted: public, no key needed (the id is the backer's proof)", body = ContributionView), crate::error::ReadErrors))]
pub async fn get_contribution(
    State(state): State<SharedState>,
    Path((id, contribution)): Path<(String, String)>,
) -> Result<axum::Json<ContributionView>, ApiError> {
    let c = campaign(&state, &id)?;
    let missing = || ApiError::not_found(Some("contribution"), "contribution");
    let ctb = decode_id(IdKind::Contribution, &contribution).ok_or_else(missing)?;
    let r: ContributionRecord = state
        .store
        .record(CONTRIBUTIONS, ctb)?
        .filter(|r: &ContributionRecord| r.campaign == c.id)
        .ok_or_else(missing)?;
    Ok(axum::Json(contribution_view(&state, &c, &r)?))
}

fn contribution_view(
    state: &SharedState,
    c: &CampaignRecord,
    r: &ContributionRecord,
) -> Result<ContributionView, ApiError> {
    let scale = asset_by_id(state, c.asset)?.scale;
    let status = contribution_status(state, c, r.id);
    Ok(ContributionView {
        id: encode_id(IdKind::Contribution, r.id),
        object: "contribution",
        campaign: encode_id(IdKind::Campaign, c.id),
        amount: format_amount(Amount(r.amount), scale),
        counted: status != "failed",
        status,
        created: rfc3339(r.created_ns),
    })
}

#[utoipa::path(post, path = "/v1/campaigns/{id}/contributions", operation_id = "campaigns.contributions.create", tag = "campaigns", request_body = Contribute, params(("id" = String, Path, description = "cmp_… id"), ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: contributed once")), responses((status = 201, description = "the contribution (customer token only): held until the deadline (all-or-nothing) or paid (keep-what-you-raise)", body = ContributionView), (status = 200, description = "an idempotent retry", body = ContributionView), crate::error::WriteErrors))]
pub async fn contribute(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<String>,
    ApiJson(request, raw): ApiJson<Contribute>,
) -> Result<Response, ApiError> {
    let customer = caller
        .customer()
        .filter(|_| caller.scope() == Scope::Customer)
        .ok_or_else(|| ApiError::forbidden("a contribution is made with the customer's token"))?;
    let c = campaign(&state, &id)?;
    let asset = asset_by_id(&state, c.asset)?;
    let amount = positive_amount(&request.amount, &asset, "amount")?;
    let request_hash = sha256(&[b"contributions", &c.id.to_le_bytes(), &raw]);
    let ctb = match &key {
        Some(key) => derived_id(customer, key, "contribution", 0),
        None => random_id(),
    };
    // One at a time per campaign, and never during its end.
    let _guard = state.products.lock(c.id).await;
    let existing = state
        .store
        .record::<ContributionRecord>(CONTRIBUTIONS, ctb)?;
    if let Some(existing) = &existing {
        if existing.request_hash != Some(request_hash) {
            return Err(ApiError::idempotency(
                "this Idempotency-Key was already used with different parameters",
            ));
        }
        if contribution_status(&state, &c, ctb) != "failed" {
            return Ok(json_response(
                StatusCode::OK,
                to_json(&contribution_view(&state, &c, existing)?)?,
            ));
        }
    }
    // Read again under the lock: the deadline job may have closed it meanwhile.
    let ended = state
        .store
        .record::<CampaignRecord>(CAMPAIGNS, c.id)?
        .is_none_or(|fresh| fresh.ended);
    if ended || state.products.clock.now() >= c.deadline_ns {
        return Err(ApiError::refused(
            "campaign_ended",
            "the campaign's deadline has passed",
        ));
    }
    let retry = existing.is_some();
    let record = existing.unwrap_or(ContributionRecord {
        id: ctb,
        campaign: c.id,
        customer,
        amount: amount.0,
        created_ns: state.products.clock.now(),
        request_hash: Some(request_hash),
    });
    let wallet = LedgerAccount::Wallet { customer };
    let pot = LedgerAccount::Campaign { campaign: c.id };
    state
        .products
        .ensure_accounts(
            &state.engine,
            &[
                wallet,
                pot,
                LedgerAccount::Earnings {
                    merchant: c.merchant,
                },
                LedgerAccount::PlatformRevenue,
                LedgerAccount::Rounding,
            ],
            asset.id,
        )
        .await?;
    // The record first: a contribution the ledger does not have reads as `failed`, uncounted.
    state
        .products
        .records
        .write(vec![
            RecordWrite::put(CONTRIBUTIONS, ctb, &record)?,
            RecordWrite::Index {
                index: CONTRIBUTIONS_BY_CAMPAIGN,
                parent: c.id,
                id: ctb,
            },
        ])
        .await?;
    let mut transfers = vec![Transfer {
        id: funding_id(ctb),
        debit_account_id: wallet.id(asset.id),
        credit_account_id: pot.id(asset.id),
        amount,
        pending_id: TransferId(0),
        user_data: ctb,
        timeout_s: 0,
        asset: asset.id,
        code: CODE_CONTRIBUTION,
        flags: match c.mode {
            CampaignMode::AllOrNothing => TransferFlags::PENDING,
            CampaignMode::KeepWhatYouRaise => TransferFlags::empty(),
        },
    }];
    if c.mode == CampaignMode::KeepWhatYouRaise {
        let (fee, net, _, rounding) = priced(&state, c.merchant, &asset, amount, &[])?;
        transfers.extend(split_transfers(
            pot.id(asset.id),
            c.merchant,
            asset.id,
            (net, fee, rounding),
            funding_id(ctb).0,
            ctb,
        ));
        link_chain(&mut transfers);
    }
    submit_chain(&state, transfers, None).await?;
    let status = if retry {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(json_response(
        status,
        to_json(&contribution_view(&state, &c, &record)?)?,
    ))
}
