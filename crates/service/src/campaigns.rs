//! Crowdfunding campaigns: progress and the deadline job. An all-or-nothing campaign's
//! contributions are ledger holds that `end` captures (goal reached) or releases (not); a
//! keep-what-you-raise contribution is paid at once. Raised and backers are summed over the
//! contributions whose funding transfer is in the ledger.

use farthing_ledger::{Amount, AssetId, PendingStatus, Transfer, TransferFlags, TransferId};
use serde::Serialize;

use crate::assets::asset_by_id;
use crate::charges::priced;
use crate::error::ServiceError;
use crate::holds::{link_chain, split_transfers, submit_chain};
use crate::state::SharedState;
use crate::submit::LedgerAccount;
use farthing_products::accounts::{chain_id, CODE_CONTRIBUTION};
use farthing_products::ids::{encode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_store::outbox::{event_write, EventKind};
use farthing_store::records::{
    CampaignMode, CampaignRecord, ContributionRecord, CAMPAIGNS, CONTRIBUTIONS,
    CONTRIBUTIONS_BY_CAMPAIGN,
};
use farthing_store::util::rfc3339;
use farthing_store::RecordWrite;

/// Contributions one campaign may have (the progress scan reads them all).
const CONTRIBUTIONS_MAX: usize = 100_000;

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
