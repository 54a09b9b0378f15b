//! Crowdfunding campaigns: progress and the deadline job. An all-or-nothing campaign's
//! contributions are ledger holds that `end` captures (goal reached) or releases (not); a
//! keep-what-you-raise contribution is paid at once. Raised and backers are summed over the
//! contributions whose funding transfer is in the ledger.
//!
//! The API's operations: [`create`], [`get`], [`contribute`] and [`contribution`].

use farthing_ledger::{Amount, Asset, AssetId, PendingStatus, Transfer, TransferFlags, TransferId};
use serde::Serialize;

use crate::assets::asset_by_id;
use crate::charges::{merchant_exists, priced};
use crate::error::ServiceError;
use crate::holds::{link_chain, split_transfers, submit_chain};
use crate::state::{to_json, Principal, Reply, SharedState};
use crate::submit::LedgerAccount;
use farthing_products::accounts::{chain_id, CODE_CONTRIBUTION};
use farthing_products::ids::{encode_id, IdKind};
use farthing_products::money::format_amount;
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
pub fn contribution_status(state: &SharedState, c: &CampaignRecord, ctb: u128) -> &'static str {
    let Some(t) = state.engine.lookup_transfer(funding_id(ctb)) else {
        return "failed";
    };
    match (c.mode, t.hold_status) {
        (CampaignMode::KeepWhatYouRaise, _) => "paid",
        (_, Some(PendingStatus::Pending)) => "held",
        (_, Some(PendingStatus::Posted)) => "captured",
        _ => "released",
    }
}

/// The campaign's contributions and which of them count.
fn contributions(
    state: &SharedState,
    c: &CampaignRecord,
) -> Result<Vec<(ContributionRecord, &'static str)>, ServiceError> {
    let (ids, _) = state
        .store
        .indexed(CONTRIBUTIONS_BY_CAMPAIGN, c.id, None, CONTRIBUTIONS_MAX)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(r) = state
            .store
            .record::<ContributionRecord>(CONTRIBUTIONS, id)?
        {
            let status = contribution_status(state, c, id);
            out.push((r, status));
        }
    }
    Ok(out)
}

/// Raised (funded contributions, released ones included: what the backers pledged) and
/// distinct backers.
fn progress(list: &[(ContributionRecord, &'static str)]) -> (u128, u64) {
    let counted = list.iter().filter(|(_, s)| *s != "failed");
    let raised = counted
        .clone()
        .fold(0u128, |sum, (r, _)| sum.saturating_add(r.amount));
    let backers: std::collections::HashSet<u128> = counted.map(|(r, _)| r.customer).collect();
    (raised, backers.len() as u64)
}

pub fn view(state: &SharedState, c: &CampaignRecord) -> Result<CampaignView, ServiceError> {
    let asset = asset_by_id(state, c.asset)?;
    let (raised, backers) = progress(&contributions(state, c)?);
    let now = state.products.clock.now();
    let goal_reached = raised >= c.goal;
    let status = match (now < c.deadline_ns && !c.ended, goal_reached) {
        (true, _) => "active",
        (false, true) => "succeeded",
        (false, false) => "failed",
    };
    Ok(CampaignView {
        id: encode_id(IdKind::Campaign, c.id),
        object: "campaign",
        name: c.name.clone(),
        merchant: encode_id(IdKind::Merchant, c.merchant),
        asset: asset.code.to_string(),
        goal: format_amount(Amount(c.goal), asset.scale),
        raised: format_amount(Amount(raised), asset.scale),
        backers,
        goal_reached,
        mode: c.mode,
        status,
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
    let _guard = state.products.lock(c.id).await;
    // Closed before any money moves, under the campaign's lock: a contribution after this is
    // refused even if the clock reads before the deadline (a clock set back, a restart).
    if !c.ended {
        let closed = CampaignRecord {
            ended: true,
            ..c.clone()
        };
        state
            .store
            .write_records(&[RecordWrite::put(CAMPAIGNS, c.id, &closed)?])?;
    }
    let list = contributions(state, &c)?;
    // Held and captured count alike, so the decision survives a partial earlier run.
    let pledged: u128 = list
        .iter()
        .filter(|(_, s)| *s == "held" || *s == "captured")
        .fold(0u128, |sum, (r, _)| sum.saturating_add(r.amount));
    let succeeded = pledged >= c.goal;
    let asset = asset_by_id(state, c.asset)?;
    let pot = LedgerAccount::Campaign { campaign: c.id }.id(asset.id);
    for (r, status) in list.iter().filter(|(_, s)| *s == "held") {
        debug_assert_eq!(*status, "held");
        let mut transfers = if succeeded {
            let first = chain_id(r.id, "capture", 0);
            let post = Transfer {
                id: TransferId(first),
                debit_account_id: farthing_ledger::AccountId(0),
                credit_account_id: farthing_ledger::AccountId(0),
                amount: Amount(r.amount),
                pending_id: funding_id(r.id),
                user_data: r.id,
                timeout_s: 0,
                asset: AssetId(0),
                code: CODE_CONTRIBUTION,
                flags: TransferFlags::POST_PENDING,
            };
            let (fee, net, _, rounding) = priced(state, c.merchant, &asset, Amount(r.amount), &[])?;
            let mut chain = vec![post];
            chain.extend(split_transfers(
                pot,
                c.merchant,
                asset.id,
                (net, fee, rounding),
                first,
                r.id,
            ));
            chain
        } else {
            vec![Transfer {
                id: TransferId(chain_id(r.id, "release", 0)),
                debit_account_id: farthing_ledger::AccountId(0),
                credit_account_id: farthing_ledger::AccountId(0),
                amount: Amount::ZERO,
                pending_id: funding_id(r.id),
                user_data: r.id,
                timeout_s: 0,
                asset: AssetId(0),
                code: CODE_CONTRIBUTION,
                flags: TransferFlags::VOID_PENDING,
            }]
        };
        link_chain(&mut transfers);
        submit_chain(state, transfers, None).await?;
    }
    // The outcome's event commits with the job's deletion: a rerun after a crash emits it
    // once, when it finishes.
    let view = view(state, &c)?;
    let kind = if view.goal_reached {
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
    pub merchant: u128,
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
) -> Result<u128, ServiceError> {
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
                id: random_id(),
                merchant: campaign.merchant,
                name: campaign.name,
                asset: campaign.asset.id.0,
                goal: campaign.goal.0,
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

/// The customer who contributes: only a customer's own token does.
pub fn backer(caller: &Principal) -> Result<u128, ServiceError> {
    caller
        .customer()
        .filter(|_| caller.is_customer_token())
        .ok_or_else(|| ServiceError::forbidden("a contribution is made with the customer's token"))
}

/// `customer` contributes `amount` to campaign `c`: held until the deadline (all-or-nothing)
/// or paid at once (keep-what-you-raise). 201 with the contribution, or 200 for a retry under
/// the same Idempotency-Key (`key`; `request` is the request's body).
pub async fn contribute(
    state: &SharedState,
    customer: u128,
    c: &CampaignRecord,
    amount: Amount,
    key: Option<String>,
    request: &[u8],
) -> Result<Reply, ServiceError> {
    let asset = asset_by_id(state, c.asset)?;
    let request_hash = sha256(&[b"contributions", &c.id.to_le_bytes(), request]);
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
            return Err(ServiceError::idempotency(
                "this Idempotency-Key was already used with different parameters",
            ));
        }
        if contribution_status(state, c, ctb) != "failed" {
            return Ok(Reply {
                status: 200,
                body: to_json(&contribution_view(state, c, existing)?)?,
            });
        }
    }
    // Read again under the lock: the deadline job may have closed it meanwhile.
    let ended = state
        .store
        .record::<CampaignRecord>(CAMPAIGNS, c.id)?
        .is_none_or(|fresh| fresh.ended);
    if ended || state.products.clock.now() >= c.deadline_ns {
        return Err(ServiceError::refused(
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
        let (fee, net, _, rounding) = priced(state, c.merchant, &asset, amount, &[])?;
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
    submit_chain(state, transfers, None).await?;
    Ok(Reply {
        status: if retry { 200 } else { 201 },
        body: to_json(&contribution_view(state, c, &record)?)?,
    })
}
