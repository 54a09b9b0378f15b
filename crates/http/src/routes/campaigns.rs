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
//!
//! The handlers parse and render; the operations are [`farthing_service::campaigns`]'s.

use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::extract::Caller;
use crate::extract::IdempotencyKey;
use crate::extract::Key;
use crate::routes::positive_amount;
use farthing_products::ids::{decode_id, IdKind};
use farthing_service::assets::{asset_by_id, by_code};
use farthing_service::campaigns::{
    self, CampaignMode, CampaignView, ContributionView, NewCampaign,
};
use farthing_service::state::SharedState;

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

/// A `cmp_…` id; anything else names no campaign (404).
fn campaign_id(text: &str) -> Result<u128, ApiError> {
    decode_id(IdKind::Campaign, text).ok_or_else(|| ApiError::not_found(Some("id"), "campaign"))
}

#[utoipa::path(post, path = "/v1/campaigns", operation_id = "campaigns.create", tag = "campaigns", request_body = CreateCampaign, params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry")), responses((status = 201, description = "the campaign (a merchant key, or the operator naming the merchant)", body = CampaignView), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request, raw): ApiJson<CreateCampaign>,
) -> Result<Response, ApiError> {
    principal.require_write()?;
    let merchant = campaigns::creator(&state, &principal, request.merchant.as_deref())?;
    farthing_service::merchants::check_name(&request.name)?;
    let asset = by_code(&state, &request.asset, "asset")?;
    let goal = positive_amount(&request.goal, &asset, "goal")?;
    let campaign = NewCampaign {
        merchant,
        name: request.name,
        asset,
        goal,
        ends_in_seconds: request.ends_in_seconds,
        mode: request.mode,
    };
    let reply = campaigns::create(&state, &principal, key, &raw, campaign).await?;
    Ok(crate::extract::reply(reply))
}

#[utoipa::path(get, path = "/v1/campaigns/{id}", operation_id = "campaigns.get", tag = "campaigns", security(()), params(("id" = String, Path, description = "cmp_… id")), responses((status = 200, description = "the campaign's progress: public, no key needed", body = CampaignView), crate::error::ReadErrors))]
pub async fn get(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<axum::Json<CampaignView>, ApiError> {
    Ok(axum::Json(campaigns::get(&state, campaign_id(&id)?)?))
}

#[utoipa::path(get, path = "/v1/campaigns/{id}/contributions/{contribution}", operation_id = "campaigns.contributions.get", tag = "campaigns", security(()), params(("id" = String, Path, description = "cmp_… id"), ("contribution" = String, Path, description = "ctb_… id, as the backer received it")), responses((status = 200, description = "whether the contribution is counted: public, no key needed (the id is the backer's proof)", body = ContributionView), crate::error::ReadErrors))]
pub async fn get_contribution(
    State(state): State<SharedState>,
    Path((id, contribution)): Path<(String, String)>,
) -> Result<axum::Json<ContributionView>, ApiError> {
    let c = campaigns::campaign(&state, campaign_id(&id)?)?;
    let ctb = decode_id(IdKind::Contribution, &contribution)
        .ok_or_else(|| ApiError::not_found(Some("contribution"), "contribution"))?;
    Ok(axum::Json(campaigns::contribution(&state, &c, ctb)?))
}

#[utoipa::path(post, path = "/v1/campaigns/{id}/contributions", operation_id = "campaigns.contributions.create", tag = "campaigns", request_body = Contribute, params(("id" = String, Path, description = "cmp_… id"), ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: contributed once")), responses((status = 201, description = "the contribution (customer token only): held until the deadline (all-or-nothing) or paid (keep-what-you-raise)", body = ContributionView), crate::error::WriteErrors))]
pub async fn contribute(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<String>,
    ApiJson(request, raw): ApiJson<Contribute>,
) -> Result<Response, ApiError> {
    let customer = campaigns::backer(&caller)?;
    let c = campaigns::campaign(&state, campaign_id(&id)?)?;
    let asset = asset_by_id(&state, c.asset)?;
    let amount = positive_amount(&request.amount, &asset, "amount")?;
    let reply = campaigns::contribute(&state, customer, &c, amount, key, &raw).await?;
    Ok(crate::extract::reply(reply))
}
