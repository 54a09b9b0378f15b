//! Charges: booking one (`execute`: its chain, its record and its `charge.succeeded` event,
//! then the follow-up work it triggers: tab settlement, auto top-up, threshold payout), its
//! status and receipt ([`ChargeView`]), the merchant settings (fee plan, payout settings)
//! every charge and payout reads, and the price split (`priced`) every product that pays a
//! merchant uses.

use farthing_ledger::{Amount, Asset, AssetId, TransferResult};
use farthing_products::fees::{split, Share};
use farthing_products::schedule::{period_start, Interval};
use serde::Serialize;

use crate::assets::asset_by_id;
use crate::customers::{allowances_of, maybe_auto_topup};
use crate::error::ServiceError;
use crate::state::Principal;
use crate::state::SharedState;
use crate::submit::{chain_committed, run_chain_recorded, ChainOutcome, LedgerAccount, Leg, Role};
use farthing_products::accounts::{chain_id, CODE_CHARGE, CODE_LIMIT_USE, CODE_TIP};
use farthing_products::fees::{Destination, NetDistribution, PayeeAmount, Split};
use farthing_products::ids::decode_id;
use farthing_products::ids::{encode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_store::outbox::{event_write, EventKind};
use farthing_store::records::{
    AllowancePeriod, AllowanceRecord, ChargeKind, ChargeRecord, MerchantSettings, PayeePart,
    RefundRecord, CHARGES, REFUNDS,
};
use farthing_store::util::rfc3339;
use farthing_store::RecordWrite;

/// A merchant's settings, or the defaults.
pub fn merchant_settings(
    state: &SharedState,
    merchant: u128,
) -> Result<MerchantSettings, ServiceError> {
    Ok((*state.products.cache.settings(&state.store, merchant)?).clone())
}

/// Splits `gross` by the merchant's fee plan and the shares.
pub fn priced(
    state: &SharedState,
    merchant: u128,
    asset: &Asset,
    gross: Amount,
    shares: &[(u128, u32)],
) -> Result<(u128, u128, Vec<PayeePart>, u128), ServiceError> {
    let plan = state
        .products
        .cache
        .settings(&state.store, merchant)?
        .fee_plan(asset.id.0);
    let share_list: Vec<Share> = shares
        .iter()
        .map(|(m, bps)| Share {
            payee: format!("{m:032x}"),
            bps: *bps,
        })
        .collect();
    let split = split(gross, &plan, &share_list).map_err(|e| {
        ServiceError::invalid(
            "shares",
            "invalid_split",
            format!("the split is invalid: {e}"),
        )
    })?;
    let payees = split
        .payees()
        .iter()
        .zip(shares)
        .map(|(p, (m, _))| PayeePart {
            merchant: *m,
            bps: p.bps,
            amount: p.amount.0,
        })
        .collect();
    Ok((
        split.platform_fee().0,
        split.merchant_net().map_or(0, |a| a.0),
        payees,
        split.rounding_remainder().0,
    ))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PayeeView {
    pub merchant: String,
    pub bps: u32,
    pub amount: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RefundView {
    pub id: String,
    pub object: &'static str,
    pub charge: String,
    pub amount: String,
    /// How much of the platform fee was given back.
    pub platform_fee_returned: String,
    pub created: String,
}

/// A charge and its receipt.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChargeView {
    pub id: String,
    pub object: &'static str,
    /// `charge` or `tip`.
    #[serde(rename = "type")]
    pub kind: ChargeKind,
    /// `requires_confirmation`, `succeeded` or `failed`.
    pub status: &'static str,
    pub merchant: String,
    pub customer: String,
    pub amount: String,
    pub asset: String,
    pub platform_fee: String,
    /// The merchant's net when there are no revenue shares.
    pub merchant_net: String,
    pub payees: Vec<PayeeView>,
    /// What flooring the shares left over, booked to the platform's rounding account.
    pub rounding: String,
    pub description: String,
    pub resource_id: Option<String>,
    pub message: Option<String>,
    /// The allowance that consented (`alw_…`), or none when the customer confirmed.
    pub allowance: Option<String>,
    pub amount_refunded: String,
    pub refunds: Vec<RefundView>,
    pub created: String,
}

pub fn refund_view(state: &SharedState, r: &RefundRecord, scale: u8) -> RefundView {
    let _ = state;
    RefundView {
        id: encode_id(IdKind::Refund, r.id),
        object: "refund",
        charge: encode_id(IdKind::Charge, r.charge),
        amount: format_amount(Amount(r.amount), scale),
        platform_fee_returned: format_amount(Amount(r.platform_fee_returned), scale),
        created: rfc3339(r.created_ns),
    }
}

/// The charge's legs as booked (the same every time, so a retry names the same transfers).
fn charge_legs(
    c: &ChargeRecord,
    period: Option<(LedgerAccount, Amount)>,
    cap: Option<LedgerAccount>,
) -> Vec<Leg> {
    let wallet = c.source();
    let code = match c.kind {
        ChargeKind::Charge => CODE_CHARGE,
        ChargeKind::Tip => CODE_TIP,
    };
    let pay = |credit, amount: u128| Leg {
        debit: wallet,
        credit,
        amount: Amount(amount),
        code,
        role: Role::Payment,
    };
    let mut legs = vec![
        pay(
            LedgerAccount::Earnings {
                merchant: c.merchant,
            },
            c.merchant_net,
        ),
        pay(LedgerAccount::PlatformRevenue, c.platform_fee),
    ];
    for p in &c.payees {
        legs.push(pay(
            LedgerAccount::Earnings {
                merchant: p.merchant,
            },
            p.amount,
        ));
    }
    legs.push(pay(LedgerAccount::Rounding, c.rounding));
    let limit = |debit, role| Leg {
        debit,
        credit: LedgerAccount::LimitSink,
        amount: Amount(c.amount),
        code: CODE_LIMIT_USE,
        role,
    };
    if let Some((account, _)) = period {
        legs.push(limit(account, Role::Allowance));
    }
    if let Some(account) = cap {
        legs.push(limit(account, Role::MonthlyCap));
    }
    legs
}

/// `requires_confirmation`, `succeeded` (its chain is in the ledger) or `failed`.
pub fn charge_status(state: &SharedState, c: &ChargeRecord) -> &'static str {
    if c.requires_confirmation {
        "requires_confirmation"
    } else if chain_committed(
        &state.engine,
        chain_id(c.id, "charge", c.attempt),
        &charge_legs(c, None, None),
    ) {
        "succeeded"
    } else {
        "failed"
    }
}

pub fn charge_view(state: &SharedState, c: &ChargeRecord) -> Result<ChargeView, ServiceError> {
    charge_view_as(state, c, charge_status(state, c))
}

/// The charge with a status already known (a chain just committed), so nothing is looked up.
fn charge_view_as(
    state: &SharedState,
    c: &ChargeRecord,
    status: &'static str,
) -> Result<ChargeView, ServiceError> {
    let asset = asset_by_id(state, c.asset)?;
    let s = asset.scale;
    let mut refunds = Vec::new();
    let mut refunded = 0u128;
    for id in &c.refunds {
        if let Some(r) = state.store.record::<RefundRecord>(REFUNDS, *id)? {
            if refund_committed(state, c, &r) {
                refunded += r.amount;
                refunds.push(refund_view(state, &r, s));
            }
        }
    }
    Ok(ChargeView {
        id: encode_id(IdKind::Charge, c.id),
        object: "charge",
        kind: c.kind,
        status,
        merchant: encode_id(IdKind::Merchant, c.merchant),
        customer: encode_id(IdKind::Customer, c.customer),
        amount: format_amount(Amount(c.amount), s),
        asset: asset.code.to_string(),
        platform_fee: format_amount(Amount(c.platform_fee), s),
        merchant_net: format_amount(Amount(c.merchant_net), s),
        payees: c
            .payees
            .iter()
            .map(|p| PayeeView {
                merchant: encode_id(IdKind::Merchant, p.merchant),
                bps: p.bps,
                amount: format_amount(Amount(p.amount), s),
            })
            .collect(),
        rounding: format_amount(Amount(c.rounding), s),
        description: c.description.clone(),
        resource_id: c.resource_id.clone(),
        message: c.message.clone(),
        allowance: c.allowance.map(|a| encode_id(IdKind::Allowance, a)),
        amount_refunded: format_amount(Amount(refunded), s),
        refunds,
        created: rfc3339(c.created_ns),
    })
}

/// The allowance period's key: the UTC day or month the charge falls in.
fn period_key(period: AllowancePeriod, now: u64) -> Result<u64, ServiceError> {
    let interval = match period {
        AllowancePeriod::Day => Interval::Day,
        AllowancePeriod::Month => Interval::Month,
    };
    period_start(farthing_ledger::Timestamp(now), interval)
        .map(|t| t.0)
        .map_err(|e| ServiceError::internal(format!("period: {e}")))
}

/// Books a charge: its chain, with the charge's record journaled in the same log record (so
/// the record is durable exactly when the money is). Returns the view, or the refusal
/// (insufficient funds, allowance or cap exceeded); a refused charge's record says `failed`.
pub async fn execute(
    state: &SharedState,
    charge: &ChargeRecord,
) -> Result<ChargeView, ServiceError> {
    let asset = AssetId(charge.asset);
    let now = state.products.clock.now();
    let period = match charge.allowance {
        Some(id) => {
            let allowance: AllowanceRecord = allowances_of(state, charge.customer)?
                .iter()
                .find(|a| a.id == id)
                .cloned()
                .ok_or_else(|| ServiceError::internal("allowance missing"))?;
            let account = LedgerAccount::AllowancePeriod {
                allowance: id,
                period: period_key(allowance.period, now)?,
            };
            state
                .products
                .ensure_funded(
                    &state.engine,
                    account,
                    Amount(allowance.max_per_period),
                    asset,
                )
                .await?;
            Some((account, Amount(allowance.max_per_period)))
        }
        None => None,
    };
    let customer = state
        .products
        .cache
        .customer(&state.store, charge.customer)?
        .ok_or_else(|| ServiceError::internal("customer missing"))?;
    let cap = match &customer.monthly_cap {
        Some(cap) if cap.asset == charge.asset => {
            let account = LedgerAccount::MonthlyCap {
                customer: customer.id,
                month: period_key(AllowancePeriod::Month, now)?,
            };
            state
                .products
                .ensure_funded(&state.engine, account, Amount(cap.amount), asset)
                .await?;
            Some(account)
        }
        _ => None,
    };
    let legs = charge_legs(charge, period, cap);
    let mut accounts: Vec<LedgerAccount> = legs.iter().flat_map(|l| [l.debit, l.credit]).collect();
    accounts.dedup();
    state
        .products
        .ensure_accounts(&state.engine, &accounts, asset)
        .await?;
    let mut writes = charge_writes(charge)?;
    // The event shows the charge as it is once its chain commits (the event is applied only
    // then).
    writes.extend(event_write(
        &state.store,
        EventKind::ChargeSucceeded,
        Some(charge.merchant),
        now,
        || charge_view_as(state, charge, "succeeded"),
    )?);
    let outcome = run_chain_recorded(
        &state.engine,
        &state.products.journal,
        &writes,
        chain_id(charge.id, "charge", charge.attempt),
        &legs,
        asset,
        charge.id,
    )
    .await?;
    if let ChainOutcome::Refused { role, result } = outcome {
        return Err(refusal(role, result));
    }
    // A tab that reached its threshold is settled now (in the background).
    if let Some((tab_id, _)) = charge.tab {
        if let Some(tab) = state
            .store
            .record::<farthing_store::records::TabRecord>(farthing_store::records::TABS, tab_id)?
        {
            if crate::scheduler::tab_owed(state, &tab).0 >= tab.threshold {
                let state = state.clone();
                tokio::spawn(async move {
                    if let Err(error) =
                        crate::scheduler::settle_tab(&state, tab_id, "threshold").await
                    {
                        tracing::warn!(error = %error.message, "tab settlement failed");
                    }
                });
            }
        }
    }
    // Follow-up work only where it is configured (the cached records say so cheaply).
    if customer
        .auto_topup
        .as_ref()
        .is_some_and(|a| a.enabled && a.asset == charge.asset)
    {
        tokio::spawn(maybe_auto_topup(state.clone(), charge.customer, asset));
    }
    let settings = state
        .products
        .cache
        .settings(&state.store, charge.merchant)?;
    if settings.payout_threshold > 0 && settings.payout_asset == Some(charge.asset) {
        tokio::spawn(crate::payouts::maybe_threshold_payout(
            state.clone(),
            charge.merchant,
            asset,
        ));
    }
    // Not refused: the chain is in the ledger (booked now, or by an earlier attempt).
    charge_view_as(state, charge, "succeeded")
}

fn refusal(role: Role, result: TransferResult) -> ServiceError {
    match (role, result) {
        (Role::Allowance, TransferResult::ExceedsCredits) => ServiceError::refused(
            "allowance_exceeded",
            "this charge would exceed the allowance's budget for the period",
        )
        .with_param("amount"),
        (Role::MonthlyCap, TransferResult::ExceedsCredits) => ServiceError::refused(
            "monthly_cap_exceeded",
            "this charge would exceed the customer's monthly spending cap",
        )
        .with_param("amount"),
        (Role::Payment, TransferResult::ExceedsCredits) => ServiceError::refused(
            "insufficient_funds",
            "the customer's wallet does not hold enough",
        )
        .with_param("amount"),
        (Role::Payment, TransferResult::ExceedsLimit) => ServiceError::refused(
            "tab_limit_exceeded",
            "this charge would take the customer's tab over its limit",
        )
        .with_param("amount"),
        (_, result) => ServiceError::from_transfer(result, ""),
    }
}

/// A charge's record. Lists of a customer's or a merchant's charges come from the ledger's
/// account history (every leg carries the charge id), so the record is the only write.
pub fn charge_writes(c: &ChargeRecord) -> Result<Vec<RecordWrite>, ServiceError> {
    Ok(vec![RecordWrite::put(CHARGES, c.id, c)?])
}

pub fn refund_committed(state: &SharedState, c: &ChargeRecord, r: &RefundRecord) -> bool {
    let first = chain_id(c.id, "refund", r.index).wrapping_add(u128::from(r.first_leg));
    state
        .engine
        .lookup_transfer(farthing_ledger::TransferId(first))
        .is_some()
}

/// The merchant named `text`, or 404 naming `param`.
pub fn merchant_exists(state: &SharedState, text: &str, param: &str) -> Result<u128, ServiceError> {
    find_merchant(state, text)?.ok_or_else(|| ServiceError::not_found(Some(param), "merchant"))
}

/// The merchant named `text`, if it exists; a store error is an error, not a miss.
pub fn find_merchant(state: &SharedState, text: &str) -> Result<Option<u128>, ServiceError> {
    let Some(id) = decode_id(IdKind::Merchant, text) else {
        return Ok(None);
    };
    Ok(state
        .products
        .cache
        .merchant_exists(&state.store, id)?
        .then_some(id))
}

/// A charge's record, once the journal applied every answered write of it (see
/// [`farthing_store::journal`]): every read of a charge goes through here.
pub async fn load_charge(
    state: &SharedState,
    id: u128,
) -> Result<Option<ChargeRecord>, ServiceError> {
    state.products.journal.settle(id).await?;
    Ok(state.store.record(CHARGES, id)?)
}

/// The charge if the caller may see it: its customer, its merchant or a payee, the operator.
pub async fn visible_charge(
    state: &SharedState,
    caller: &Principal,
    id: &str,
) -> Result<ChargeRecord, ServiceError> {
    let missing = || ServiceError::not_found(Some("id"), "charge");
    let id = decode_id(IdKind::Charge, id).ok_or_else(missing)?;
    let charge = load_charge(state, id).await?.ok_or_else(missing)?;
    // Payees see the charges that paid them.
    let visible = caller.can_see_object(charge.merchant, Some(charge.customer))
        || (!caller.is_customer_token()
            && charge.payees.iter().any(|p| caller.can_see(p.merchant)));
    if !visible {
        return Err(missing());
    }
    Ok(charge)
}

/// The split as booked, rebuilt from the record.
/// What refunds (committed ones) and disputes have taken back from a charge so far.
pub fn reversed_so_far(state: &SharedState, charge: &ChargeRecord) -> Result<Amount, ServiceError> {
    let mut reversed = charge.disputed;
    for rid in &charge.refunds {
        if let Some(r) = state.store.record::<RefundRecord>(REFUNDS, *rid)? {
            if refund_committed(state, charge, &r) {
                reversed += r.amount;
            }
        }
    }
    Ok(Amount(reversed))
}

/// The split of a charge as booked, rebuilt from its record.
pub fn booked_split(c: &ChargeRecord) -> Result<Split, ServiceError> {
    let net = if c.payees.is_empty() {
        NetDistribution::Merchant(Amount(c.merchant_net))
    } else {
        NetDistribution::Payees {
            payees: c
                .payees
                .iter()
                .map(|p| PayeeAmount {
                    payee: format!("{:032x}", p.merchant),
                    bps: p.bps,
                    amount: Amount(p.amount),
                })
                .collect(),
            rounding_remainder: Amount(c.rounding),
        }
    };
    Split::from_parts(Amount(c.amount), Amount(c.platform_fee), net)
        .map_err(|e| ServiceError::internal(format!("stored split: {e}")))
}

/// The merchant that received a part of a charge's split: the charging merchant, or a payee
/// (named by its id in hex, as `priced` made it); `None` for the platform's and rounding parts.
pub fn part_merchant(c: &ChargeRecord, destination: &Destination) -> Option<u128> {
    match destination {
        Destination::Merchant => Some(c.merchant),
        Destination::Payee(hex) => Some(u128::from_str_radix(hex, 16).unwrap_or(c.merchant)),
        Destination::Platform | Destination::Rounding => None,
    }
}
