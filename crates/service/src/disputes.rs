//! Disputes (chargebacks). The card processor takes back a top-up or a tab settlement; the
//! charges that money paid for are reversed to the processor, debiting the merchants concerned.
//!
//! Attribution, named and fixed:
//! - a **top-up**: first what is still unspent in the wallet, then the wallet charges made since
//!   the top-up, newest first;
//! - a **tab settlement**: the tab charges it paid for (made after the previous settlement and
//!   up to this one), newest first.
//!
//! Each charge gives back by the proportional reversal of `farthing_products::fees` (the
//! merchant or payees, the platform's fee and the rounding remainder, pro rata). A merchant
//! whose earnings cannot cover its part owes the rest (its debt account, which its next payouts
//! recover first: see `crate::payouts`). What no charge covers
//! is the platform's loss. All of it is ONE chain. The allocation is
//! `farthing_products::rules::dispute`'s; this module finds the charges, locks and loads them,
//! looks the earnings up, and records and books what the rule planned.
//!
//! The plan (a [`DisputeRecord`], `booked: false`) is recorded before its chain; once the chain
//! commits, the dispute and the charges it reversed are written in one transaction
//! (`booked: true`). A retry finds the plan and finishes it, or plans again after a refusal.

use farthing_ledger::memory::HistoryError;
use farthing_ledger::{Amount, Asset, AssetId};
use farthing_products::ids::ChargeId;
use farthing_products::ids::DisputeId;
use farthing_products::ids::{CustomerId, MerchantId};
use farthing_products::ids::{SettlementId, TopupId};
use farthing_products::rules::dispute::{
    self as rule, merchants_involved, plan_dispute, DisputeError, DisputePlan, DisputedCharge,
    Uncovered,
};
use serde::Serialize;

use crate::assets::asset_by_id;
use crate::charges::{charge_split, load_charge, reversed_so_far};
use crate::error::ServiceError;
use crate::state::{to_json, Reply, SharedState};
use crate::submit::{available, run_chain, ChainOutcome, LedgerAccount, Leg, ObjectGuard};
use farthing_products::accounts::{chain_id, CODE_CHARGE, CODE_TIP};
use farthing_products::ids::{encode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_store::records::{
    ChargeRecord, DisputeRecord, SettlementRecord, SettlementStatus, TabRecord, TopupRecord,
    TopupStatus, CHARGES, DISPUTES, SETTLEMENTS, SETTLEMENTS_BY_TAB, TABS, TOPUPS,
};
use farthing_store::util::derived_id;
use farthing_store::util::rfc3339;
use farthing_store::{Changes, RecordWrite};

/// Ledger transfers of a wallet or tab scanned back to attribute a dispute.
const CHARGES_SCANNED_MAX: usize = 100_000;
/// Transfers read per history page while scanning.
const HISTORY_PAGE: usize = 1000;
/// Settlements of one tab read to find the one before the disputed one.
const SETTLEMENTS_SCANNED_MAX: usize = 100_000;

/// What the processor takes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisputeSource {
    /// A top-up (`tu_…`).
    Topup(u128),
    /// A tab settlement (`stl_…`).
    Settlement(u128),
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DebitView {
    /// `mer_…` or `ch_…`.
    pub id: String,
    pub amount: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DisputeView {
    pub id: String,
    pub object: &'static str,
    pub topup: Option<String>,
    pub settlement: Option<String>,
    pub customer: String,
    pub amount: String,
    pub asset: String,
    pub reason: String,
    /// Taken back from what was still unspent in the wallet.
    pub from_wallet: String,
    /// Each merchant concerned, and what it was debited.
    pub merchants: Vec<DebitView>,
    /// Each charge reversed, and by how much.
    pub charges: Vec<DebitView>,
    pub created: String,
}

pub fn dispute_view(state: &SharedState, d: &DisputeRecord) -> Result<DisputeView, ServiceError> {
    let asset = asset_by_id(state, d.asset)?;
    let s = asset.scale;
    Ok(DisputeView {
        id: encode_id(IdKind::Dispute, d.id.0),
        object: "dispute",
        topup: d.topup.map(|t| encode_id(IdKind::Topup, t.0)),
        settlement: d.settlement.map(|t| encode_id(IdKind::Settlement, t.0)),
        customer: encode_id(IdKind::Customer, d.customer.0),
        amount: format_amount(d.amount, s),
        asset: asset.code.to_string(),
        reason: d.reason.clone(),
        from_wallet: format_amount(d.from_wallet, s),
        merchants: debits(IdKind::Merchant, &d.merchants, s),
        charges: debits(IdKind::Charge, &d.charges, s),
        created: rfc3339(d.created_ns),
    })
}

/// A dispute's (id, amount taken) list as the API shows it, amounts at `scale`.
fn debits<I: Into<u128> + Copy>(kind: IdKind, list: &[(I, String)], scale: u8) -> Vec<DebitView> {
    list.iter()
        .map(|(id, amount)| DebitView {
            id: encode_id(kind, (*id).into()),
            amount: format_amount(Amount(amount.parse().unwrap_or(0)), scale),
        })
        .collect()
}

fn answer(state: &SharedState, status: u16, d: &DisputeRecord) -> Result<Reply, ServiceError> {
    Ok(Reply {
        status,
        body: to_json(&dispute_view(state, d)?)?,
    })
}

/// Opens the dispute of `source` (one per top-up or settlement) and books its chargeback (201).
/// Already booked: the same dispute (200). `reason` defaults to `general`.
pub async fn create_dispute(
    state: &SharedState,
    source: DisputeSource,
    reason: Option<String>,
) -> Result<Reply, ServiceError> {
    // The charges a dispute draws on are listed from the store: every answered one first.
    state.products.journal.settle_all().await?;
    let what = disputed(state, source)?;
    // One dispute per top-up or settlement: the id derives from it.
    let id = derived_id(what.source, "dispute", "dispute", 0);
    let _guard = state.products.lock(what.customer.0).await;
    // The plan is recorded before its chain. Found again: booked (the same dispute), or its
    // chain committed before a crash (finish it), or refused (plan again, as a new attempt).
    let mut attempt = 0;
    if let Some(existing) = state.store.record::<DisputeRecord>(DISPUTES, id)? {
        if existing.booked {
            return answer(state, 200, &existing);
        }
        if plan_committed(state, &existing) {
            let mut guards = Vec::with_capacity(existing.charges.len());
            for (charge, _) in &existing.charges {
                guards.push(state.products.lock(charge.0).await);
            }
            let booked = finish(state, existing).await?;
            drop(guards);
            return answer(state, 201, &booked);
        }
        attempt = existing.attempt + 1;
    }
    let asset = asset_by_id(state, what.asset)?;
    let plan = plan(state, &what, &asset).await?;
    let record = DisputeRecord {
        id: DisputeId(id),
        topup: matches!(source, DisputeSource::Topup(_)).then_some(TopupId(what.source)),
        settlement: matches!(source, DisputeSource::Settlement(_))
            .then_some(SettlementId(what.source)),
        customer: what.customer,
        asset: what.asset,
        amount: Amount(what.amount),
        reason: reason.unwrap_or_else(|| "general".into()),
        from_wallet: plan.allocation.from_wallet,
        merchants: plan
            .allocation
            .merchants
            .iter()
            .map(|(m, a)| (*m, a.0.to_string()))
            .collect(),
        charges: plan
            .allocation
            .charges
            .iter()
            .map(|(c, a)| (ChargeId(*c), a.0.to_string()))
            .collect(),
        created_ns: state.products.clock.now(),
        attempt,
        legs: plan.allocation.legs.len() as u64,
        booked: false,
    };
    state
        .commit(Changes {
            records: vec![RecordWrite::put(DISPUTES, id, &record)?],
            ..Changes::default()
        })
        .await?;
    book(state, &record, &plan.allocation.legs, &asset).await?;
    let record = finish(state, record).await?;
    drop(plan.guards);
    answer(state, 201, &record)
}

/// What is disputed: its id, customer, asset, amount, and the charges it paid for (newest
/// first), and whether the wallet is drawn on first.
struct Disputed {
    source: u128,
    customer: CustomerId,
    asset: u32,
    amount: u128,
    wallet_first: bool,
    charges: Vec<ChargeRecord>,
}

fn disputed(state: &SharedState, source: DisputeSource) -> Result<Disputed, ServiceError> {
    match source {
        DisputeSource::Topup(id) => {
            let missing = || ServiceError::not_found(Some("topup"), "top-up");
            let t: TopupRecord = state.store.record(TOPUPS, id)?.ok_or_else(missing)?;
            if t.status != TopupStatus::Succeeded {
                return Err(missing());
            }
            let wallet = LedgerAccount::Wallet {
                customer: t.customer,
            };
            let charges = charges_paid_from(state, wallet, t.asset)?
                .into_iter()
                .filter(|c| c.created_ns >= t.created_ns)
                .collect();
            Ok(Disputed {
                source: id,
                customer: t.customer,
                asset: t.asset,
                amount: t.amount.0,
                wallet_first: true,
                charges,
            })
        }
        DisputeSource::Settlement(id) => {
            let missing = || ServiceError::not_found(Some("settlement"), "settlement");
            let s: SettlementRecord = state.store.record(SETTLEMENTS, id)?.ok_or_else(missing)?;
            if s.status != SettlementStatus::Succeeded {
                return Err(missing());
            }
            let tab: TabRecord = state.store.record(TABS, s.tab)?.ok_or_else(missing)?;
            // The charges it paid for: after the previous paid settlement, up to this one.
            let (ids, _) =
                state
                    .store
                    .indexed(SETTLEMENTS_BY_TAB, tab.id, None, SETTLEMENTS_SCANNED_MAX)?;
            let mut previous = 0;
            for other in ids {
                if let Some(o) = state.store.record::<SettlementRecord>(SETTLEMENTS, other)? {
                    if o.status == SettlementStatus::Succeeded && o.number + 1 == s.number {
                        previous = o.created_ns;
                    }
                }
            }
            let account = LedgerAccount::Tab {
                tab: tab.id,
                limit: tab.limit.0,
            };
            let charges = charges_paid_from(state, account, tab.asset)?
                .into_iter()
                .filter(|c| c.created_ns > previous && c.created_ns <= s.created_ns)
                .collect();
            Ok(Disputed {
                source: id,
                customer: tab.customer,
                asset: tab.asset,
                amount: s.amount.0,
                wallet_first: false,
                charges,
            })
        }
    }
}

/// The succeeded charges paid from `account` (a wallet or a tab), newest first, found from the
/// ledger's history of the account (each charge's legs carry its id as `user_data`), at most
/// [`CHARGES_SCANNED_MAX`] transfers back.
fn charges_paid_from(
    state: &SharedState,
    account: LedgerAccount,
    asset: u32,
) -> Result<Vec<ChargeRecord>, ServiceError> {
    let account = account.id(AssetId(asset));
    let mut ids = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut cursor = None;
    let mut scanned = 0;
    while scanned < CHARGES_SCANNED_MAX {
        let page = match state
            .engine
            .account_transfers(account, cursor, HISTORY_PAGE)
        {
            Ok(page) => page,
            Err(HistoryError::AccountNotFound) => break,
            Err(e) => return Err(ServiceError::internal(format!("account history: {e}"))),
        };
        scanned += page.transfers.len();
        for t in &page.transfers {
            let paid = t.debit_account_id == account && matches!(t.code, CODE_CHARGE | CODE_TIP);
            if paid && seen.insert(t.user_data) {
                ids.push(t.user_data);
            }
        }
        cursor = page.transfers.last().map(|t| t.id);
        if !page.has_more {
            break;
        }
    }
    let mut charges = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(c) = state.store.record::<ChargeRecord>(CHARGES, id)? {
            charges.push(c);
        }
    }
    Ok(charges)
}

/// A dispute's plan, and the locks of the charges it drew on.
struct Plan<'a> {
    allocation: DisputePlan,
    /// Held until the dispute is booked.
    guards: Vec<ObjectGuard<'a>>,
}

/// Plans the chargeback of `what` (see the module's attribution rules) with
/// [`plan_dispute`]: locks and loads the charges newest first, as many as the rule draws on
/// ([`Uncovered`]), then looks up the earnings of the merchants they paid.
async fn plan<'a>(
    state: &'a SharedState,
    what: &Disputed,
    asset: &Asset,
) -> Result<Plan<'a>, ServiceError> {
    let wallet = LedgerAccount::Wallet {
        customer: what.customer,
    };
    let disputed = rule::Disputed {
        customer: what.customer,
        amount: Amount(what.amount),
        wallet_available: what
            .wallet_first
            .then(|| available(&state.engine, wallet.id(asset.id))),
    };
    let mut uncovered = Uncovered::new(&disputed);
    let mut charges = Vec::new();
    let mut guards = Vec::new();
    for charge in &what.charges {
        if uncovered.is_zero() {
            break;
        }
        guards.push(state.products.lock(charge.id.0).await);
        let Some(charge) = load_charge(state, charge.id.0).await? else {
            continue;
        };
        let charge = DisputedCharge {
            id: charge.id.0,
            reversed_so_far: reversed_so_far(state, &charge)?,
            split: charge_split(&charge)?,
        };
        uncovered = uncovered.after(&charge);
        charges.push(charge);
    }
    let earnings = merchants_involved(&charges)
        .into_iter()
        .map(|merchant| {
            let account = LedgerAccount::Earnings {
                merchant: MerchantId(merchant),
            }
            .id(asset.id);
            (merchant, available(&state.engine, account))
        })
        .collect();
    let allocation = plan_dispute(&disputed, &charges, &earnings)?;
    Ok(Plan { allocation, guards })
}

impl From<DisputeError> for ServiceError {
    /// A stored charge is inconsistent: an internal error, as the rule's code says.
    fn from(e: DisputeError) -> ServiceError {
        ServiceError::internal(e.to_string())
    }
}

/// Books a recorded plan's chain; a refusal leaves the plan to be planned again.
async fn book(
    state: &SharedState,
    record: &DisputeRecord,
    legs: &[Leg],
    asset: &Asset,
) -> Result<(), ServiceError> {
    let mut accounts: Vec<LedgerAccount> = legs.iter().map(|l| l.debit).collect();
    accounts.push(LedgerAccount::ProcessorClearing);
    accounts.dedup();
    state
        .products
        .ensure_accounts(&state.engine, &accounts, asset.id)
        .await?;
    match run_chain(
        &state.engine,
        chain_id(record.id.0, "dispute", record.attempt),
        legs,
        asset.id,
        record.id.0,
    )
    .await?
    {
        ChainOutcome::Committed { .. } => Ok(()),
        ChainOutcome::Refused { result, .. } => Err(ServiceError::refused(
            "dispute_not_booked",
            format!("the dispute could not be booked ({result}); try again"),
        )),
    }
}

/// Whether the chain of a recorded plan is in the ledger (any of its legs is: zero-amount
/// legs are left out of the chain but keep their ids).
fn plan_committed(state: &SharedState, d: &DisputeRecord) -> bool {
    let first = chain_id(d.id.0, "dispute", d.attempt);
    (0..d.legs).any(|i| {
        state
            .engine
            .lookup_transfer(farthing_ledger::TransferId(
                first.wrapping_add(u128::from(i)),
            ))
            .is_some()
    })
}

/// Books a plan whose chain committed: the charges it reversed and the dispute, marked
/// booked, in ONE store transaction, so a crash leaves either the plan (finished by a retry)
/// or all of it. The caller holds the locks of the customer and of those charges.
async fn finish(
    state: &SharedState,
    mut record: DisputeRecord,
) -> Result<DisputeRecord, ServiceError> {
    record.booked = true;
    let mut writes = vec![RecordWrite::put(DISPUTES, record.id, &record)?];
    for (charge, taken) in &record.charges {
        let taken: u128 = taken
            .parse()
            .map_err(|_| ServiceError::internal("a dispute's charge amount"))?;
        let mut charge = load_charge(state, charge.0)
            .await?
            .ok_or_else(|| ServiceError::internal("a disputed charge is missing"))?;
        charge.disputed = charge.disputed.saturating_add(Amount(taken));
        writes.push(RecordWrite::put(CHARGES, charge.id, &charge)?);
    }
    state
        .commit(Changes {
            records: writes,
            ..Changes::default()
        })
        .await?;
    Ok(record)
}
