//! Crowdfunding campaigns: progress and the deadline job. An all-or-nothing campaign's
//! contributions are ledger holds that `end` captures (goal reached) or releases (not); a
//! keep-what-you-raise contribution is paid at once. Raised and backers are summed over the
//! contributions whose funding transfer is in the ledger.
//!
//! The decisions (what the deadline does, progress, status, whether a contribution is taken)
//! are the pure rules of [`farthing_products::rules::campaign`]; this module reads the
//! contributions from the store and the ledger, calls them and submits what they planned.
//!
//! The API's operations: [`create`], [`get`], [`contribute`] and [`contribution`].

use farthing_ledger::{
    Amount, Asset, AssetId, PendingStatus, Timestamp, Transfer, TransferFlags, TransferId,
};
use farthing_products::ids::{CampaignId, ContributionId};
use farthing_products::ids::{CustomerId, MerchantId};
use serde::Serialize;

use crate::assets::asset_by_id;
use crate::charges::merchant_exists;
use crate::charges::{fee_plan, price_error};
use crate::error::{Reason, ServiceError};
use crate::state::{to_json, Principal, Reply, SharedState};
use crate::submit::LedgerAccount;
use crate::submit::{leg_transfers, link_chain, submit_transfer_chain};
use farthing_products::accounts::{chain_id, CODE_CONTRIBUTION};
use farthing_products::ids::{encode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_products::rules::campaign::{
    self as rule, CampaignEnded, Contribution, ContributionStatus, EndStep,
};
use farthing_products::rules::charge::price;
use farthing_store::outbox::{event_write, EventKind};
use farthing_store::records::{
    CampaignRecord, ContributionRecord, JobKind, CAMPAIGNS, CONTRIBUTIONS,
    CONTRIBUTIONS_BY_CAMPAIGN,
};
use farthing_store::util::{derived_id, random_id, rfc3339, sha256};
use farthing_store::{Changes, RecordWrite};

/// All-or-nothing or keep-what-you-raise (a field of [`NewCampaign`]).
pub use farthing_store::records::CampaignMode;

/// Contributions one campaign may have (the progress scan reads them all).
const CONTRIBUTIONS_MAX: usize = 100_000;
const ENDS_IN_MIN_S: u64 = 60;
const ENDS_IN_MAX_S: u64 = 365 * 86_400;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CampaignView {
    pub id: String,
    pub object: &'static str,
    pub name: String,
    pub merchant: String,
    pub asset: String,
    pub goal: String,
    pub raised: String,
    /// Distinct customers whose contributions are counted.
    pub backers: u64,
    pub goal_reached: bool,
    pub mode: CampaignMode,
    /// `active` until the deadline, then `succeeded` (goal reached) or `failed`.
    pub status: &'static str,
    pub deadline: String,
    pub created: String,
}

pub fn funding_id(contribution: u128) -> TransferId {
    TransferId(chain_id(contribution, "contribution", 0))
}

/// A contribution's status from the ledger.
pub fn contribution_status(
    state: &SharedState,
    c: &CampaignRecord,
    ctb: u128,
) -> ContributionStatus {
    let Some(t) = state.engine.lookup_transfer(funding_id(ctb)) else {
        return ContributionStatus::Failed;
    };
    match (c.mode, t.hold_status) {
        (CampaignMode::KeepWhatYouRaise, _) => ContributionStatus::Paid,
        (_, Some(PendingStatus::Pending)) => ContributionStatus::Held,
        (_, Some(PendingStatus::Posted)) => ContributionStatus::Captured,
        _ => ContributionStatus::Released,
    }
}

/// The campaign's contributions, each with its status from the ledger.
fn contributions(
    state: &SharedState,
    c: &CampaignRecord,
) -> Result<Vec<Contribution>, ServiceError> {
    let (ids, _) = state
        .store
        .indexed(CONTRIBUTIONS_BY_CAMPAIGN, c.id, None, CONTRIBUTIONS_MAX)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(r) = state
            .store
            .record::<ContributionRecord>(CONTRIBUTIONS, id)?
        {
            out.push(Contribution {
                id: r.id.0,
                customer: r.customer,
                amount: r.amount,
                status: contribution_status(state, c, id),
            });
        }
    }
    Ok(out)
}

pub fn view(state: &SharedState, c: &CampaignRecord) -> Result<CampaignView, ServiceError> {
    let asset = asset_by_id(state, c.asset)?;
    let (raised, backers) = rule::progress(&contributions(state, c)?);
    let status = rule::status(
        Timestamp(state.products.clock.now()),
        Timestamp(c.deadline_ns),
        c.ended,
        raised,
        c.goal,
    );
    Ok(CampaignView {
        id: encode_id(IdKind::Campaign, c.id.0),
        object: "campaign",
        name: c.name.clone(),
        merchant: encode_id(IdKind::Merchant, c.merchant.0),
        asset: asset.code.to_string(),
        goal: format_amount(c.goal, asset.scale),
        raised: format_amount(raised, asset.scale),
        backers,
        goal_reached: raised >= c.goal,
        mode: c.mode,
        status: status.code(),
        deadline: rfc3339(c.deadline_ns),
        created: rfc3339(c.created_ns),
    })
}

/// The deadline job of an all-or-nothing campaign: captures every held contribution if the
/// goal was reached, releases them all if not. Each step has its own ids, so a rerun after a
/// crash finishes what is left.
pub async fn end(state: &SharedState, campaign: u128) -> Result<Option<RecordWrite>, ServiceError> {
    let Some(c) = state.store.record::<CampaignRecord>(CAMPAIGNS, campaign)? else {
        return Ok(None);
    };
    let _guard = state.products.lock(c.id.0).await;
    // Closed before any money moves, under the campaign's lock: a contribution after this is
    // refused even if the clock reads before the deadline (a clock set back, a restart).
    if !c.ended {
        let closed = CampaignRecord {
            ended: true,
            ..c.clone()
        };
        state
            .store
            .write_records(&[RecordWrite::put(CAMPAIGNS, c.id, &closed)?], &[])?;
    }
    let asset = asset_by_id(state, c.asset)?;
    let plan = fee_plan(state, c.merchant, &asset)?;
    let outcome = rule::plan_end(c.goal, (&plan, c.merchant.0), &contributions(state, &c)?)
        .map_err(price_error)?;
    for step in &outcome.steps {
        let mut transfers = match step {
            EndStep::Capture {
                contribution,
                amount,
                ..
            } => {
                let first = chain_id(*contribution, "capture", 0);
                let post = Transfer {
                    id: TransferId(first),
                    debit_account_id: farthing_ledger::AccountId(0),
                    credit_account_id: farthing_ledger::AccountId(0),
                    amount: *amount,
                    pending_id: funding_id(*contribution),
                    user_data: *contribution,
                    timeout_s: 0,
                    asset: AssetId(0),
                    code: CODE_CONTRIBUTION,
                    flags: TransferFlags::POST_PENDING,
                };
                let mut chain = vec![post];
                // The split's ids follow the post's.
                chain.extend(leg_transfers(
                    &step.split_legs(c.id.0),
                    asset.id,
                    first.wrapping_add(1),
                    *contribution,
                ));
                chain
            }
            EndStep::Release { contribution } => vec![Transfer {
                id: TransferId(chain_id(*contribution, "release", 0)),
                debit_account_id: farthing_ledger::AccountId(0),
                credit_account_id: farthing_ledger::AccountId(0),
                amount: Amount::ZERO,
                pending_id: funding_id(*contribution),
                user_data: *contribution,
                timeout_s: 0,
                asset: AssetId(0),
                code: CODE_CONTRIBUTION,
                flags: TransferFlags::VOID_PENDING,
            }],
        };
        link_chain(&mut transfers);
        submit_transfer_chain(state, transfers, None).await?;
    }
    // The outcome's event commits with the job's deletion: a rerun after a crash emits it
    // once, when it finishes.
    let view = view(state, &c)?;
    let kind = if outcome.goal_reached {
        EventKind::CampaignSucceeded
    } else {
        EventKind::CampaignFailed
    };
    event_write(
        &state.store,
        kind,
        Some(c.merchant),
        state.products.clock.now(),
        || Ok(view),
    )
}

/// A campaign a merchant starts, its amounts parsed.
pub struct NewCampaign {
    /// The creator (see [`creator`]).
    pub merchant: MerchantId,
    pub name: String,
    pub asset: Asset,
    pub goal: Amount,
    /// Seconds until the deadline.
    pub ends_in_seconds: u64,
    pub mode: CampaignMode,
}

/// The merchant a new campaign is for: a merchant key's own, or the one an operator names
/// (`merchant`, a `mer_…` id).
pub fn creator(
    state: &SharedState,
    principal: &Principal,
    merchant: Option<&str>,
) -> Result<MerchantId, ServiceError> {
    match (principal.merchant(), merchant) {
        (Some(own), None) => Ok(own),
        (None, Some(text)) if principal.is_operator() => merchant_exists(state, text, "merchant"),
        (Some(_), Some(_)) => Err(ServiceError::invalid(
            "merchant",
            "not_allowed",
            "a merchant key creates its own campaigns",
        )),
        _ => Err(ServiceError::invalid(
            "merchant",
            "required",
            "name the campaign's merchant",
        )),
    }
}

/// Starts a campaign and schedules its end: 201 with the campaign, once per Idempotency-Key
/// (`key`; `request` is the request's body).
pub async fn create(
    state: &SharedState,
    principal: &Principal,
    key: Option<String>,
    request: &[u8],
    campaign: NewCampaign,
) -> Result<Reply, ServiceError> {
    if !(ENDS_IN_MIN_S..=ENDS_IN_MAX_S).contains(&campaign.ends_in_seconds) {
        return Err(ServiceError::invalid(
            "ends_in_seconds",
            "invalid_deadline",
            format!("ends_in_seconds must be {ENDS_IN_MIN_S} to {ENDS_IN_MAX_S}"),
        ));
    }
    state
        .idempotent(principal.tenant(), key, "campaigns", request, || async {
            let now = state.products.clock.now();
            let record = CampaignRecord {
                id: CampaignId(random_id()),
                merchant: campaign.merchant,
                name: campaign.name,
                asset: campaign.asset.id.0,
                goal: campaign.goal,
                deadline_ns: now.saturating_add(campaign.ends_in_seconds * 1_000_000_000),
                mode: campaign.mode,
                created_ns: now,
                ended: false,
            };
            let mut records = vec![RecordWrite::put(CAMPAIGNS, record.id, &record)?];
            // Both modes end with an event; all-or-nothing also settles its holds then.
            records.push(crate::scheduler::job_write(
                JobKind::CampaignEnd {
                    campaign: record.id,
                },
                record.deadline_ns,
            )?);
            let body = to_json(&view(state, &record)?)?;
            Ok((
                201u16,
                body,
                Changes {
                    records,
                    ..Changes::default()
                },
            ))
        })
        .await
}

/// Campaign `id`; campaigns are public, so anyone who has the id finds it.
pub fn campaign(state: &SharedState, id: u128) -> Result<CampaignRecord, ServiceError> {
    let missing = || ServiceError::not_found(Some("id"), "campaign");
    state.store.record(CAMPAIGNS, id)?.ok_or_else(missing)
}

/// Campaign `id`'s progress.
pub fn get(state: &SharedState, id: u128) -> Result<CampaignView, ServiceError> {
    view(state, &campaign(state, id)?)
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

fn contribution_view(
    state: &SharedState,
    c: &CampaignRecord,
    r: &ContributionRecord,
) -> Result<ContributionView, ServiceError> {
    let scale = asset_by_id(state, c.asset)?.scale;
    let status = contribution_status(state, c, r.id.0);
    Ok(ContributionView {
        id: encode_id(IdKind::Contribution, r.id.0),
        object: "contribution",
        campaign: encode_id(IdKind::Campaign, c.id.0),
        amount: format_amount(r.amount, scale),
        counted: status.counted(),
        status: status.code(),
        created: rfc3339(r.created_ns),
    })
}

/// Contribution `ctb` to campaign `c` and whether it is counted: public, the id is the
/// backer's proof.
pub fn contribution(
    state: &SharedState,
    c: &CampaignRecord,
    ctb: u128,
) -> Result<ContributionView, ServiceError> {
    let missing = || ServiceError::not_found(Some("contribution"), "contribution");
    let r: ContributionRecord = state
        .store
        .record(CONTRIBUTIONS, ctb)?
        .filter(|r: &ContributionRecord| r.campaign == c.id)
        .ok_or_else(missing)?;
    contribution_view(state, c, &r)
}

/// The API's error for a contribution after the campaign closed.
fn ended_refused(ended: CampaignEnded) -> ServiceError {
    ServiceError::refusal(Reason::CampaignEnded(ended), ended.to_string())
}

/// The customer who contributes: only a customer's own token does.
pub fn backer(caller: &Principal) -> Result<CustomerId, ServiceError> {
    caller.own_customer("a contribution is made")
}

/// `customer` contributes `amount` to campaign `c`: held until the deadline (all-or-nothing)
/// or paid at once (keep-what-you-raise). 201 with the contribution, or 200 for a retry under
/// the same Idempotency-Key (`key`; `request` is the request's body).
pub async fn contribute(
    state: &SharedState,
    customer: CustomerId,
    c: &CampaignRecord,
    amount: Amount,
    key: Option<String>,
    request: &[u8],
) -> Result<Reply, ServiceError> {
    let asset = asset_by_id(state, c.asset)?;
    let request_hash = sha256(&[b"contributions", &c.id.0.to_le_bytes(), request]);
    let ctb = match &key {
        Some(key) => derived_id(customer.0, key, "contribution", 0),
        None => random_id(),
    };
    // One at a time per campaign, and never during its end.
    let _guard = state.products.lock(c.id.0).await;
    let existing = state
        .store
        .record::<ContributionRecord>(CONTRIBUTIONS, ctb)?;
    if let Some(existing) = &existing {
        crate::idempotency::same_request(existing.request_hash, Some(request_hash))?;
        if contribution_status(state, c, ctb).counted() {
            return Ok(Reply {
                status: 201,
                body: to_json(&contribution_view(state, c, existing)?)?,
            });
        }
    }
    // Read again under the lock: the deadline job may have closed it meanwhile.
    let ended = state
        .store
        .record::<CampaignRecord>(CAMPAIGNS, c.id)?
        .is_none_or(|fresh| fresh.ended);
    rule::accepts_contributions(
        Timestamp(state.products.clock.now()),
        Timestamp(c.deadline_ns),
        ended,
    )
    .map_err(ended_refused)?;
    let retry = existing.is_some();
    let record = existing.unwrap_or(ContributionRecord {
        id: ContributionId(ctb),
        campaign: c.id,
        customer,
        amount,
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
                parent: c.id.0,
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
        let plan = fee_plan(state, c.merchant, &asset)?;
        let split = price(amount, &plan, c.merchant, &[]).map_err(price_error)?;
        // The split's ids follow the funding transfer's.
        transfers.extend(leg_transfers(
            &rule::pot_split_legs(c.id.0, &split),
            asset.id,
            funding_id(ctb).0.wrapping_add(1),
            ctb,
        ));
        link_chain(&mut transfers);
    }
    submit_transfer_chain(state, transfers, None).await?;
    Ok(Reply {
        status: if retry { 200 } else { 201 },
        body: to_json(&contribution_view(state, c, &record)?)?,
    })
}
