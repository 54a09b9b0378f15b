//! Charges: making one (`create_charge`, `tip`, `confirm`: who pays whom, with whose consent),
//! booking it (`execute`: its chain, its record and its `charge.succeeded` event, then the
//! follow-up work it triggers: tab settlement, auto top-up, threshold payout), refunding it
//! (`refund`), its status and receipt ([`ChargeView`]), the merchant settings (fee plan, payout
//! settings) every charge and payout reads, and the price split (`priced`) every product that
//! pays a merchant uses.
//!
//! The rules live in `farthing_products::rules`: consent and budgets in [`allowance`], the
//! split, the legs and the refund plan in [`charge`]. This module loads what they need, calls
//! them, and books or records what they decided; the ledger enforces the budgets.

use farthing_ledger::{Amount, Asset, AssetId, Timestamp, TransferResult};
use farthing_products::fees::{FeePlan, FeePlanError};
use farthing_products::ids::AllowanceId;
use farthing_products::ids::ChargeId;
use farthing_products::ids::RefundId;
use farthing_products::ids::TabId;
use farthing_products::ids::{CustomerId, MerchantId};
use farthing_products::rules::allowance::{
    self, Allowance, BudgetPeriod, Caller, ChargeRefusal, Consent, ConsentRefusal, ConsentRequest,
    MonthlyCap,
};
use farthing_products::rules::charge::{
    self, ChargeSplit, ChargeStatus, PriceError, RefundPlan, RefundRefusal,
};
use farthing_products::schedule::ScheduleError;
use serde::{Deserialize, Serialize};

use crate::assets::asset_by_id;
use crate::customers::allowances_of;
use crate::error::{Reason, ServiceError};
use crate::state::SharedState;
use crate::state::{to_json, Principal, Reply};
use crate::submit::{
    chain_committed, run_chain_recorded, ChainOutcome, LedgerAccount, ObjectGuard, Role,
};
use farthing_products::accounts::chain_id;
use farthing_products::ids::{encode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_store::outbox::{event_write, EventKind};
use farthing_store::records::MonthlyCap as MonthlyCapRecord;
use farthing_store::records::{
    AllowancePeriod, AllowanceRecord, ChargeKind, ChargeRecord, FeePlanRecord, MerchantSettings,
    PayeePart, RefundRecord, CHARGES, MERCHANT_SETTINGS, REFUNDS,
};
use farthing_store::util::rfc3339;
use farthing_store::util::{derived_id, random_id, sha256, time_ordered_id};
use farthing_store::{Changes, RecordWrite, Scope};

/// A merchant's settings, or the defaults.
pub fn merchant_settings(
    state: &SharedState,
    merchant: MerchantId,
) -> Result<MerchantSettings, ServiceError> {
    Ok((*state.products.cache.settings(&state.store, merchant)?).clone())
}

/// Splits `gross` by the merchant's fee plan for `asset` and the revenue `shares` (merchant id,
/// bps), by [`charge::price`].
pub fn price(
    state: &SharedState,
    merchant: MerchantId,
    asset: &Asset,
    gross: Amount,
    shares: &[(MerchantId, u32)],
) -> Result<ChargeSplit, ServiceError> {
    let plan = fee_plan(state, merchant, asset)?;
    charge::price(gross, &plan, merchant, shares).map_err(price_error)
}

/// `merchant`'s fee plan for `asset`.
pub fn fee_plan(
    state: &SharedState,
    merchant: MerchantId,
    asset: &Asset,
) -> Result<FeePlan, ServiceError> {
    let settings = state.products.cache.settings(&state.store, merchant)?;
    Ok(settings.fee_plan(asset.id.0))
}

/// A split that cannot be priced: `invalid_split`, naming the shares.
pub fn price_error(error: PriceError) -> ServiceError {
    ServiceError::invalid("shares", error.code(), error.to_string())
}

/// [`price`] as a record keeps it: (platform fee, merchant net, payees, rounding).
pub fn priced(
    state: &SharedState,
    merchant: MerchantId,
    asset: &Asset,
    gross: Amount,
    shares: &[(MerchantId, u32)],
) -> Result<(Amount, Amount, Vec<PayeePart>, Amount), ServiceError> {
    let split = price(state, merchant, asset, gross, shares)?;
    Ok((
        split.platform_fee(),
        split.merchant_net(),
        payee_parts(&split),
        split.rounding(),
    ))
}

/// The payees' parts of a split, as a charge's record keeps them.
fn payee_parts(split: &ChargeSplit) -> Vec<PayeePart> {
    split
        .payees()
        .iter()
        .map(|p| PayeePart {
            merchant: p.merchant,
            bps: p.bps,
            amount: p.amount,
        })
        .collect()
}

/// The split of a charge as booked, rebuilt from its record (checked: a record whose parts do
/// not add up is an internal error, and is never booked).
pub fn charge_split(c: &ChargeRecord) -> Result<ChargeSplit, ServiceError> {
    let payees = c
        .payees
        .iter()
        .map(|p| charge::PayeePart {
            merchant: p.merchant,
            bps: p.bps,
            amount: p.amount,
        })
        .collect();
    ChargeSplit::new(
        c.amount,
        c.merchant,
        c.platform_fee,
        c.merchant_net,
        payees,
        c.rounding,
    )
    .map_err(|e| ServiceError::internal(e.to_string()))
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
        id: encode_id(IdKind::Refund, r.id.0),
        object: "refund",
        charge: encode_id(IdKind::Charge, r.charge.0),
        amount: format_amount(r.amount, scale),
        platform_fee_returned: format_amount(r.platform_fee_returned, scale),
        created: rfc3339(r.created_ns),
    }
}

/// The rules' name for a charge's kind.
fn kind_of(kind: ChargeKind) -> charge::ChargeKind {
    match kind {
        ChargeKind::Charge => charge::ChargeKind::Charge,
        ChargeKind::Tip => charge::ChargeKind::Tip,
    }
}

/// Where a charge stands: waiting for confirmation, or whether its chain is in the ledger. The
/// chain's payment legs come first and are the same every time, so they name its transfers
/// without the budget legs.
pub fn charge_state(state: &SharedState, c: &ChargeRecord) -> ChargeStatus {
    if c.requires_confirmation {
        return ChargeStatus::RequiresConfirmation;
    }
    let committed = match charge_split(c) {
        Ok(split) => chain_committed(
            &state.engine,
            chain_id(c.id.0, "charge", c.attempt),
            &charge::charge_legs(&split, kind_of(c.kind), c.source(), None, None),
        ),
        // `execute` never books a split that does not add up.
        Err(error) => {
            tracing::warn!(error = %error.message, "charge record");
            false
        }
    };
    if committed {
        ChargeStatus::Succeeded
    } else {
        ChargeStatus::Failed
    }
}

/// `requires_confirmation`, `succeeded` (its chain is in the ledger) or `failed`.
pub fn charge_status(state: &SharedState, c: &ChargeRecord) -> &'static str {
    charge_state(state, c).code()
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
                refunded += r.amount.0;
                refunds.push(refund_view(state, &r, s));
            }
        }
    }
    Ok(ChargeView {
        id: encode_id(IdKind::Charge, c.id.0),
        object: "charge",
        kind: c.kind,
        status,
        merchant: encode_id(IdKind::Merchant, c.merchant.0),
        customer: encode_id(IdKind::Customer, c.customer.0),
        amount: format_amount(c.amount, s),
        asset: asset.code.to_string(),
        platform_fee: format_amount(c.platform_fee, s),
        merchant_net: format_amount(c.merchant_net, s),
        payees: c
            .payees
            .iter()
            .map(|p| PayeeView {
                merchant: encode_id(IdKind::Merchant, p.merchant.0),
                bps: p.bps,
                amount: format_amount(p.amount, s),
            })
            .collect(),
        rounding: format_amount(c.rounding, s),
        description: c.description.clone(),
        resource_id: c.resource_id.clone(),
        message: c.message.clone(),
        allowance: c.allowance.map(|a| encode_id(IdKind::Allowance, a.0)),
        amount_refunded: format_amount(Amount(refunded), s),
        refunds,
        created: rfc3339(c.created_ns),
    })
}

/// An allowance as the consent rule reads it.
fn allowance_terms(a: &AllowanceRecord) -> Allowance {
    Allowance {
        id: a.id.0,
        merchant: a.merchant,
        asset: AssetId(a.asset),
        max_per_charge: a.max_per_charge,
        max_per_period: a.max_per_period,
        period: match a.period {
            AllowancePeriod::Day => BudgetPeriod::Day,
            AllowancePeriod::Month => BudgetPeriod::Month,
        },
        revoked: a.revoked_ns.is_some(),
    }
}

/// A customer's monthly cap as the budget rule reads it.
fn cap_terms(cap: &MonthlyCapRecord) -> MonthlyCap {
    MonthlyCap {
        asset: AssetId(cap.asset),
        amount: cap.amount,
    }
}

fn period_error(error: ScheduleError) -> ServiceError {
    ServiceError::internal(format!("period: {error}"))
}

/// Books a charge: its chain, with the charge's record journaled in the same log record (so
/// the record is durable exactly when the money is). Returns the view, or the refusal
/// (insufficient funds, allowance or cap exceeded); a refused charge's record says `failed`.
pub async fn execute(
    state: &SharedState,
    charge: &ChargeRecord,
) -> Result<ChargeView, ServiceError> {
    execute_with(state, charge, Vec::new()).await
}

/// [`execute`], with `extra` records in the chain's journal note: durable exactly when the
/// charge's money is (and applied even if the chain is refused, so whoever reads them checks
/// the charge, as [`charge_state`] does).
pub async fn execute_with(
    state: &SharedState,
    charge: &ChargeRecord,
    extra: Vec<RecordWrite>,
) -> Result<ChargeView, ServiceError> {
    let asset = AssetId(charge.asset);
    let now = state.products.clock.now();
    // Each budget period is funded once, with the maximum in force at its first charge.
    let period = match charge.allowance {
        Some(id) => {
            let allowance = allowances_of(state, charge.customer)?
                .iter()
                .find(|a| a.id == id)
                .map(allowance_terms)
                .ok_or_else(|| ServiceError::internal("allowance missing"))?;
            let account = LedgerAccount::AllowancePeriod {
                allowance: id,
                period: allowance::budget_period_key(allowance.period, Timestamp(now))
                    .map_err(period_error)?,
            };
            state
                .products
                .ensure_funded(&state.engine, account, allowance.max_per_period, asset)
                .await?;
            Some(account)
        }
        None => None,
    };
    let customer = state
        .products
        .cache
        .customer(&state.store, charge.customer.0)?
        .ok_or_else(|| ServiceError::internal("customer missing"))?;
    let cap = match customer.monthly_cap.as_ref().map(cap_terms) {
        Some(cap) if cap.applies(asset) => {
            let account = LedgerAccount::MonthlyCap {
                customer: customer.id,
                month: MonthlyCap::month_key(Timestamp(now)).map_err(period_error)?,
            };
            state
                .products
                .ensure_funded(&state.engine, account, cap.amount, asset)
                .await?;
            Some(account)
        }
        _ => None,
    };
    let legs = charge::charge_legs(
        &charge_split(charge)?,
        kind_of(charge.kind),
        charge.source(),
        period,
        cap,
    );
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
    let follow_ups = follow_ups(state, charge, &customer)?;
    let follow_up = !follow_ups.is_empty();
    writes.extend(follow_ups);
    writes.extend(extra);
    let outcome = run_chain_recorded(
        &state.engine,
        &state.products.journal,
        &writes,
        chain_id(charge.id.0, "charge", charge.attempt),
        &legs,
        asset,
        charge.id.0,
    )
    .await?;
    if let ChainOutcome::Refused { role, result } = outcome {
        return Err(charge_refused(role, result));
    }
    if follow_up {
        crate::scheduler::wake(state);
    }
    // Not refused: the chain is in the ledger (booked now, or by an earlier attempt).
    charge_view_as(state, charge, "succeeded")
}

/// The work a charge may start, as jobs due now that ride in its chain's note (durable with
/// it): settling its tab if the tab has a threshold, auto top-up if the customer has it on in
/// this asset, a threshold payout if the merchant has one in it. Each job decides when it runs
/// whether there is anything to do; the cached records make asking cheap.
fn follow_ups(
    state: &SharedState,
    charge: &ChargeRecord,
    customer: &farthing_store::records::CustomerRecord,
) -> Result<Vec<RecordWrite>, ServiceError> {
    use farthing_store::records::JobKind;
    let mut jobs = Vec::new();
    if let Some((tab, _)) = charge.tab {
        jobs.push(JobKind::TabThreshold { tab });
    }
    if customer
        .auto_topup
        .as_ref()
        .is_some_and(|a| a.enabled && a.asset == charge.asset)
    {
        jobs.push(JobKind::AutoTopup {
            customer: charge.customer,
            asset: charge.asset,
        });
    }
    let settings = state
        .products
        .cache
        .settings(&state.store, charge.merchant)?;
    if settings.payout_threshold > Amount::ZERO && settings.payout_asset == Some(charge.asset) {
        jobs.push(JobKind::ThresholdPayout {
            merchant: charge.merchant,
            asset: charge.asset,
        });
    }
    jobs.into_iter()
        .map(|kind| crate::scheduler::follow_up(state, kind))
        .collect()
}

/// The ledger's refusal of a charge's leg, as the API reports it.
fn charge_refused(role: Role, result: TransferResult) -> ServiceError {
    match ChargeRefusal::from_ledger(role, result) {
        Some(refusal) => ServiceError::refusal(Reason::Charge(refusal), refusal.to_string())
            .with_param(refusal.param()),
        None => ServiceError::from_transfer(result, ""),
    }
}

impl From<ConsentRefusal> for ServiceError {
    fn from(refusal: ConsentRefusal) -> ServiceError {
        match refusal {
            ConsentRefusal::CustomerHidden => {
                ServiceError::not_found(Some(refusal.param()), "customer")
            }
            _ => ServiceError::refusal(Reason::Consent(refusal), refusal.to_string())
                .with_param(refusal.param()),
        }
    }
}

/// A refund refused by [`charge::plan_refund`], as the API reports it (amounts at the asset's
/// `scale`).
fn refund_refused(refusal: RefundRefusal, scale: u8) -> ServiceError {
    match refusal {
        RefundRefusal::ChargeNotSucceeded => {
            ServiceError::refusal(Reason::Refund(refusal.clone()), refusal.to_string())
        }
        RefundRefusal::ExceedsCharge { remaining } => ServiceError::refusal(
            Reason::Refund(refusal.clone()),
            format!(
                "at most {} of this charge is left to refund",
                format_amount(remaining, scale)
            ),
        )
        .with_param("amount"),
        _ => ServiceError::internal(refusal.to_string()),
    }
}

/// A charge's record. Lists of a customer's or a merchant's charges come from the ledger's
/// account history (every leg carries the charge id), so the record is the only write.
pub fn charge_writes(c: &ChargeRecord) -> Result<Vec<RecordWrite>, ServiceError> {
    Ok(vec![RecordWrite::put(CHARGES, c.id, c)?])
}

pub fn refund_committed(state: &SharedState, c: &ChargeRecord, r: &RefundRecord) -> bool {
    let first = chain_id(c.id.0, "refund", r.index).wrapping_add(u128::from(r.first_leg));
    state
        .engine
        .lookup_transfer(farthing_ledger::TransferId(first))
        .is_some()
}

/// The merchant named `text`, or 404 naming `param`.
pub fn merchant_exists(
    state: &SharedState,
    text: &str,
    param: &str,
) -> Result<MerchantId, ServiceError> {
    find_merchant(state, text)?.ok_or_else(|| ServiceError::not_found(Some(param), "merchant"))
}

/// The merchant named `text`, if it exists; a store error is an error, not a miss.
pub fn find_merchant(state: &SharedState, text: &str) -> Result<Option<MerchantId>, ServiceError> {
    let Some(id) = MerchantId::decode(text) else {
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
    id: ChargeId,
) -> Result<ChargeRecord, ServiceError> {
    let missing = || ServiceError::not_found(Some("id"), "charge");
    let id = id.0;
    let charge = load_charge(state, id).await?.ok_or_else(missing)?;
    // Payees see the charges that paid them.
    let visible = caller.can_see_object(charge.merchant, Some(charge.customer))
        || (!caller.is_customer_token()
            && charge.payees.iter().any(|p| caller.can_see(p.merchant.0)));
    if !visible {
        return Err(missing());
    }
    Ok(charge)
}

/// What refunds (committed ones) and disputes have taken back from a charge so far.
pub fn reversed_so_far(state: &SharedState, charge: &ChargeRecord) -> Result<Amount, ServiceError> {
    let mut reversed = charge.disputed;
    for rid in &charge.refunds {
        if let Some(r) = state.store.record::<RefundRecord>(REFUNDS, *rid)? {
            if refund_committed(state, charge, &r) {
                reversed = reversed.saturating_add(r.amount);
            }
        }
    }
    Ok(reversed)
}

/// Sets a merchant's fee plan for an asset, replacing the one it had, once the plan is valid.
pub async fn set_fee_plan(
    state: &SharedState,
    merchant: MerchantId,
    asset: &Asset,
    plan: &FeePlan,
) -> Result<(), ServiceError> {
    plan.validate().map_err(|e| {
        let param = match e {
            FeePlanError::PercentBpsOutOfRange { .. } => "percent_bps",
            _ => "minimum",
        };
        ServiceError::invalid(param, "invalid_fee_plan", e.to_string())
    })?;
    let _guard = state.products.lock(merchant.0).await;
    let mut settings = merchant_settings(state, merchant)?;
    settings.fee_plans.retain(|(a, _)| *a != asset.id.0);
    settings.fee_plans.push((
        asset.id.0,
        FeePlanRecord {
            percent_bps: plan.percent_bps,
            fixed: plan.fixed,
            minimum: plan.minimum.map(|m| m.0.to_string()),
            maximum: plan.maximum.map(|m| m.0.to_string()),
            rounding: plan.rounding,
        },
    ));
    state
        .commit(Changes {
            records: vec![RecordWrite::put(MERCHANT_SETTINGS, merchant.0, &settings)?],
            ..Changes::default()
        })
        .await?;
    state.products.cache.forget_settings(merchant);
    Ok(())
}

// Where a charge's money comes from (a plain comment: a doc comment would change the schema).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChargeSource {
    #[default]
    Wallet,
    Tab,
}

/// A charge as asked for. The customer and merchant stay text: which one is required, and what
/// a wrong one answers, depends on who is calling.
#[derive(Debug)]
pub struct NewCharge {
    /// `cus_…`; required with a merchant key.
    pub customer: Option<String>,
    /// `mer_…`; required with a customer token.
    pub merchant: Option<String>,
    pub amount: Amount,
    pub asset: Asset,
    pub description: String,
    pub resource_id: Option<String>,
    /// Revenue shares of the net: (`mer_…`, basis points).
    pub shares: Vec<(String, u32)>,
    pub source: ChargeSource,
}

/// A tip as asked for, its customer and merchant already known.
#[derive(Debug)]
pub struct NewTip {
    pub customer: CustomerId,
    pub merchant: MerchantId,
    pub amount: Amount,
    pub asset: Asset,
    pub message: Option<String>,
}

/// Makes a charge. With the customer's token or an allowance it is booked now (201); from a
/// merchant key without an allowance it waits for the customer to confirm it (201,
/// `requires_confirmation`). A retry with the same Idempotency-Key answers the same charge (201).
pub async fn create_charge(
    state: &SharedState,
    caller: &Principal,
    new: NewCharge,
    key: Option<String>,
    request: &[u8],
) -> Result<Reply, ServiceError> {
    let (customer, merchant) = charge_parties(state, caller, &new)?;
    let consent = consent(state, caller, customer, merchant, &new.asset, new.amount)?;
    let shares = share_merchants(state, &new.shares)?;
    let split = price(state, merchant, &new.asset, new.amount, &shares)?;
    let tenant = caller.key_namespace();
    // Only a keyed request can be retried, so only it needs a fingerprint to tell a retry from a
    // reused key.
    let request_hash = key.is_some().then(|| sha256(&[b"charges", request]));
    let (id, _same_key, existing) = charge_id_for(state, tenant, &key).await?;
    if let Some(existing) = existing {
        return replay(state, &existing, request_hash);
    }
    let tab = tab_source(state, new.source, customer, new.asset.id.0)?;
    let requires_confirmation = consent == Consent::RequiresConfirmation;
    let charge = ChargeRecord {
        id: ChargeId(id),
        kind: ChargeKind::Charge,
        merchant,
        customer,
        asset: new.asset.id.0,
        amount: new.amount,
        platform_fee: split.platform_fee(),
        merchant_net: split.merchant_net(),
        payees: payee_parts(&split),
        rounding: split.rounding(),
        description: new.description,
        resource_id: new.resource_id,
        message: None,
        allowance: match consent {
            Consent::Allowance(allowance) => Some(AllowanceId(allowance.id)),
            Consent::CustomerToken | Consent::RequiresConfirmation => None,
        },
        requires_confirmation,
        created_ns: state.products.clock.now(),
        refunds: Vec::new(),
        request_hash,
        tab,
        disputed: Amount::ZERO,
        attempt: 0,
    };
    if requires_confirmation {
        state
            .products
            .records
            .write(charge_writes(&charge)?)
            .await?;
        return created(&charge_view(state, &charge)?);
    }
    created(&execute(state, &charge).await?)
}

/// A charge at a price the server declared (an offer's), made with the customer's own token
/// (its consent): priced by the merchant's fee plan and booked now from the wallet, with
/// `extra` records in its chain's note ([`execute_with`]). `id` is the charge's id, derived by
/// the caller; a charge already made under it is refused, never booked again.
pub async fn charge_declared(
    state: &SharedState,
    caller: &Principal,
    declared: DeclaredCharge,
    extra: Vec<RecordWrite>,
) -> Result<ChargeView, ServiceError> {
    let customer = caller.own_customer("a purchase is made")?;
    let DeclaredCharge {
        id,
        merchant,
        asset,
        amount,
        description,
        resource_id,
    } = declared;
    consent(state, caller, customer, merchant, &asset, amount)?;
    let _guard = state.products.lock(id).await;
    if load_charge(state, id).await?.is_some() {
        return Err(ServiceError::refused(
            "purchase_refused",
            "a purchase was attempted under this Idempotency-Key before; retry with a new key",
        ));
    }
    let split = price(state, merchant, &asset, amount, &[])?;
    let charge = ChargeRecord {
        id: ChargeId(id),
        kind: ChargeKind::Charge,
        merchant,
        customer,
        asset: asset.id.0,
        amount,
        platform_fee: split.platform_fee(),
        merchant_net: split.merchant_net(),
        payees: payee_parts(&split),
        rounding: split.rounding(),
        description,
        resource_id: Some(resource_id),
        message: None,
        allowance: None,
        requires_confirmation: false,
        created_ns: state.products.clock.now(),
        refunds: Vec::new(),
        request_hash: None,
        tab: None,
        disputed: Amount::ZERO,
        attempt: 0,
    };
    execute_with(state, &charge, extra).await
}

/// What [`charge_declared`] charges.
pub struct DeclaredCharge {
    pub id: u128,
    pub merchant: MerchantId,
    pub asset: Asset,
    pub amount: Amount,
    pub description: String,
    pub resource_id: String,
}

/// A 201 answer with `view` as its body.
fn created<T: Serialize>(view: &T) -> Result<Reply, ServiceError> {
    Ok(Reply {
        status: 201,
        body: to_json(view)?,
    })
}

/// Who pays whom: (customer, merchant). A customer token pays a merchant it names; a merchant
/// key charges a customer it names, as itself.
fn charge_parties(
    state: &SharedState,
    caller: &Principal,
    new: &NewCharge,
) -> Result<(CustomerId, MerchantId), ServiceError> {
    match (caller.scope(), caller.merchant()) {
        (Scope::Customer, _) => {
            let merchant = new.merchant.as_deref().ok_or_else(|| {
                ServiceError::invalid(
                    "merchant",
                    "missing_field",
                    "merchant is required with a customer token",
                )
            })?;
            let customer = caller
                .customer()
                .ok_or_else(|| ServiceError::internal("a customer token without its customer"))?;
            if new
                .customer
                .as_deref()
                .is_some_and(|c| CustomerId::decode(c) != Some(customer))
            {
                return Err(ServiceError::not_found(Some("customer"), "customer"));
            }
            Ok((customer, merchant_exists(state, merchant, "merchant")?))
        }
        (Scope::Merchant, Some(own)) => {
            if new
                .merchant
                .as_deref()
                .is_some_and(|m| MerchantId::decode(m) != Some(own))
            {
                return Err(ServiceError::not_found(Some("merchant"), "merchant"));
            }
            let text = new.customer.as_deref().ok_or_else(|| {
                ServiceError::invalid("customer", "missing_field", "customer is required")
            })?;
            let id = CustomerId::decode(text)
                .ok_or_else(|| ServiceError::not_found(Some("customer"), "customer"))?;
            Ok((id, own))
        }
        _ => Err(ServiceError::forbidden(
            "charges are made by a merchant key or a customer's token",
        )),
    }
}

/// The charge's consent, by [`allowance::consent`]: the customer's token, an active allowance
/// of this customer to this merchant in this asset (the per-charge maximum checked), or, for
/// the merchant that created the customer, the customer's confirmation later. The customer must
/// exist whoever asks.
fn consent(
    state: &SharedState,
    caller: &Principal,
    customer: CustomerId,
    merchant: MerchantId,
    asset: &Asset,
    amount: Amount,
) -> Result<Consent, ServiceError> {
    let customer_record = state
        .products
        .cache
        .customer(&state.store, customer.0)?
        .ok_or_else(|| ServiceError::not_found(Some("customer"), "customer"))?;
    // `charge_parties` let only a customer token or a merchant key this far.
    let (caller, allowances) = if caller.is_customer_token() {
        (Caller::CustomerToken, Vec::new())
    } else {
        let allowances = allowances_of(state, customer)?;
        let terms = allowances.iter().map(allowance_terms).collect();
        (Caller::MerchantKey, terms)
    };
    let request = ConsentRequest {
        caller,
        merchant,
        asset: asset.id,
        amount,
        customer_creator: customer_record.creator,
    };
    Ok(allowance::consent(&request, &allowances)?)
}

/// The merchants of revenue shares, each named by its `mer_…` id.
fn share_merchants(
    state: &SharedState,
    shares: &[(String, u32)],
) -> Result<Vec<(MerchantId, u32)>, ServiceError> {
    let mut found = Vec::with_capacity(shares.len());
    for (i, (merchant, bps)) in shares.iter().enumerate() {
        // The parameter's name is only spelled out for the error.
        let merchant = find_merchant(state, merchant)?.ok_or_else(|| {
            ServiceError::not_found(Some(&format!("shares.{i}.merchant")), "merchant")
        })?;
        found.push((merchant, *bps));
    }
    Ok(found)
}

/// The tab (id, limit) a charge from `source` is paid from; `None` for the wallet.
fn tab_source(
    state: &SharedState,
    source: ChargeSource,
    customer: CustomerId,
    asset: u32,
) -> Result<Option<(TabId, u128)>, ServiceError> {
    match source {
        ChargeSource::Wallet => Ok(None),
        ChargeSource::Tab => {
            let tab = crate::tabs::tab_of(state, customer, asset)?
                .ok_or_else(|| ServiceError::not_found(Some("source"), "tab"))?;
            farthing_products::rules::tab::accepts_charges(tab.frozen)?;
            Ok(Some((tab.id, tab.limit.0)))
        }
    }
}

/// The customer giving a tip: a tip is given only with the customer's own token.
pub fn tipping_customer(caller: &Principal) -> Result<CustomerId, ServiceError> {
    caller.own_customer("a tip is given")
}

/// Gives a tip: a charge of the customer's wallet with the merchant's fee plan applied, booked
/// now (201). A retry with the same Idempotency-Key answers the same tip (201).
pub async fn tip(
    state: &SharedState,
    tip: NewTip,
    key: Option<String>,
    request: &[u8],
) -> Result<Reply, ServiceError> {
    let split = price(state, tip.merchant, &tip.asset, tip.amount, &[])?;
    let request_hash = key.is_some().then(|| sha256(&[b"tips", request]));
    let (id, _same_key, existing) = charge_id_for(state, tip.customer.0, &key).await?;
    if let Some(existing) = existing {
        return replay(state, &existing, request_hash);
    }
    let charge = ChargeRecord {
        id: ChargeId(id),
        kind: ChargeKind::Tip,
        merchant: tip.merchant,
        customer: tip.customer,
        asset: tip.asset.id.0,
        amount: tip.amount,
        platform_fee: split.platform_fee(),
        merchant_net: split.merchant_net(),
        payees: payee_parts(&split),
        rounding: split.rounding(),
        description: "tip".into(),
        resource_id: None,
        message: tip.message,
        allowance: None,
        requires_confirmation: false,
        created_ns: state.products.clock.now(),
        refunds: Vec::new(),
        request_hash,
        tab: None,
        disputed: Amount::ZERO,
        attempt: 0,
    };
    created(&execute(state, &charge).await?)
}

/// The id of a new charge or tip: derived from the Idempotency-Key, or random. With a key, the
/// returned guard serializes concurrent requests with that key (so only the first writes the
/// record and books it), and the charge the key already made, if any, is returned to replay.
async fn charge_id_for<'a>(
    state: &'a SharedState,
    tenant: u128,
    key: &Option<String>,
) -> Result<(u128, Option<ObjectGuard<'a>>, Option<ChargeRecord>), ServiceError> {
    let Some(key) = key else {
        // Time first, so the record appends to the charges table (see `time_ordered_id`).
        return Ok((time_ordered_id(state.products.clock.now()), None, None));
    };
    let id = derived_id(tenant, key, "charge", 0);
    let guard = state.products.lock(id).await;
    let existing = load_charge(state, id).await?;
    Ok((id, Some(guard), existing))
}

/// A retry with the same Idempotency-Key: the same charge if the request is the same, 409 if
/// not.
fn replay(
    state: &SharedState,
    existing: &ChargeRecord,
    request_hash: Option<[u8; 32]>,
) -> Result<Reply, ServiceError> {
    crate::idempotency::same_request(existing.request_hash, request_hash)?;
    Ok(Reply {
        status: 201,
        body: to_json(&charge_view(state, existing)?)?,
    })
}

/// Confirms, with the customer's own token, a charge a merchant made, and books it. Confirming
/// a succeeded charge again answers it as it is; after a refusal it is tried again as a new
/// attempt.
pub async fn confirm(
    state: &SharedState,
    caller: &Principal,
    id: u128,
) -> Result<ChargeView, ServiceError> {
    let missing = || ServiceError::not_found(Some("id"), "charge");
    let _guard = state.products.lock(id).await;
    let mut charge = load_charge(state, id).await?.ok_or_else(missing)?;
    if caller.customer() != Some(charge.customer) {
        return Err(missing());
    }
    caller.require_customer(charge.customer)?;
    if !charge.requires_confirmation {
        if charge_state(state, &charge) == ChargeStatus::Succeeded {
            return charge_view(state, &charge);
        }
        charge.attempt += 1;
    }
    charge.requires_confirmation = false;
    execute(state, &charge).await
}

/// The charge named `id` and its receipt, if the caller may see it.
pub async fn get_charge(
    state: &SharedState,
    caller: &Principal,
    id: ChargeId,
) -> Result<ChargeView, ServiceError> {
    let charge = visible_charge(state, caller, id).await?;
    charge_view(state, &charge)
}

/// Refunds (part of) the charge named `id` to the customer's wallet, the fees reversed by the
/// platform's refund policy, as ONE chain (201). With an Idempotency-Key the refund's id derives
/// from it, so a retry answers the refund it already made (201). `amount` parses the amount
/// asked for once the charge's asset is known (`None`: all that is left), so a bad amount is
/// reported only after what is wrong with the charge itself.
pub async fn refund<E: From<ServiceError>>(
    state: &SharedState,
    principal: &Principal,
    id: ChargeId,
    key: Option<String>,
    request: &[u8],
    amount: impl FnOnce(&Asset) -> Result<Option<Amount>, E>,
) -> Result<Reply, E> {
    let missing = || ServiceError::not_found(Some("id"), "charge");
    let charge = visible_charge(state, principal, id).await?;
    if !principal.can_see(charge.merchant.0) {
        return Err(missing().into());
    }
    let request_hash = sha256(&[b"refunds", &charge.id.0.to_le_bytes(), request]);
    let _guard = state.products.lock(charge.id.0).await;
    // With a key, the refund's id derives from it: a retry finds the refund it already made.
    let refund_id = match &key {
        Some(key) => derived_id(principal.tenant(), key, "refund", 0),
        None => random_id(),
    };
    if key.is_some() {
        let existing = state.store.record::<RefundRecord>(REFUNDS, refund_id);
        if let Some(existing) = existing.map_err(ServiceError::from)? {
            return Ok(refund_replay(state, &existing, request_hash).await?);
        }
    }
    let charge = load_charge(state, charge.id.0).await?.ok_or_else(missing)?;
    let status = charge_state(state, &charge);
    let asset = asset_by_id(state, charge.asset)?;
    let refused = |refusal| refund_refused(refusal, asset.scale);
    // What is wrong with the charge is reported before what is wrong with the amount.
    charge::refundable(status).map_err(refused)?;
    let reversed = reversed_so_far(state, &charge)?;
    let requested = amount(&asset)?;
    let plan = charge::plan_refund(
        &charge_split(&charge)?,
        status,
        charge.source(),
        reversed,
        requested,
        state.products.refund_policy,
    )
    .map_err(refused)?;
    let hash = key.is_some().then_some(request_hash);
    Ok(book_refund(state, charge, &asset, refund_id, &plan, hash).await?)
}

/// A retry of a refund under the same Idempotency-Key: the refund if its chain committed, 409
/// if the request differs, a refusal if the refund was refused (its index is spent).
async fn refund_replay(
    state: &SharedState,
    existing: &RefundRecord,
    request_hash: [u8; 32],
) -> Result<Reply, ServiceError> {
    crate::idempotency::same_request(existing.request_hash, Some(request_hash))?;
    let charge = load_charge(state, existing.charge.0)
        .await?
        .ok_or_else(|| ServiceError::not_found(Some("id"), "charge"))?;
    if refund_committed(state, &charge, existing) {
        let scale = asset_by_id(state, charge.asset)?.scale;
        return Ok(Reply {
            status: 201,
            body: to_json(&refund_view(state, existing, scale))?,
        });
    }
    Err(ServiceError::refused(
        "refund_not_booked",
        "the refund with this Idempotency-Key was refused; use a new key to try again",
    ))
}

/// Records a refund (listed on its charge) and books its chain, with its `charge.refunded`
/// event in the same log record.
async fn book_refund(
    state: &SharedState,
    mut charge: ChargeRecord,
    asset: &Asset,
    id: u128,
    plan: &RefundPlan,
    request_hash: Option<[u8; 32]>,
) -> Result<Reply, ServiceError> {
    let index = charge.refunds.len() as u64;
    let legs = &plan.legs;
    let record = RefundRecord {
        first_leg: plan.first_leg,
        request_hash,
        id: RefundId(id),
        charge: charge.id,
        index,
        amount: plan.amount,
        platform_fee_returned: plan.platform_fee_returned,
        created_ns: state.products.clock.now(),
    };
    // Refused refunds stay listed: their index (and chain ids) is never used again.
    charge.refunds.push(record.id);
    let writes = vec![
        RecordWrite::put(REFUNDS, record.id, &record)?,
        RecordWrite::put(CHARGES, charge.id, &charge)?,
    ];
    state.products.records.write(writes).await?;
    let mut accounts: Vec<LedgerAccount> = legs.iter().flat_map(|l| [l.debit, l.credit]).collect();
    accounts.dedup();
    state
        .products
        .ensure_accounts(&state.engine, &accounts, asset.id)
        .await?;
    let event = event_write(
        &state.store,
        EventKind::ChargeRefunded,
        Some(charge.merchant),
        record.created_ns,
        || refund_event(state, &charge, &record, asset),
    )?;
    match run_chain_recorded(
        &state.engine,
        &state.products.journal,
        event.as_slice(),
        chain_id(charge.id.0, "refund", index),
        legs,
        asset.id,
        record.id.0,
    )
    .await?
    {
        ChainOutcome::Committed { .. } => created(&refund_view(state, &record, asset.scale)),
        ChainOutcome::Refused {
            result: TransferResult::ExceedsCredits,
            ..
        } => Err(ServiceError::refused(
            "merchant_balance_insufficient",
            "the merchant's balance cannot cover this refund (already paid out)",
        )
        .with_param("amount")),
        ChainOutcome::Refused { result, .. } => Err(ServiceError::from_transfer(result, "")),
    }
}

/// The `charge.refunded` event's data: the refund, with whose it is.
fn refund_event(
    state: &SharedState,
    charge: &ChargeRecord,
    record: &RefundRecord,
    asset: &Asset,
) -> Result<serde_json::Value, ServiceError> {
    let mut data = serde_json::to_value(refund_view(state, record, asset.scale))
        .map_err(|e| ServiceError::internal(format!("refund event: {e}")))?;
    if let Some(map) = data.as_object_mut() {
        map.insert(
            "merchant".into(),
            encode_id(IdKind::Merchant, charge.merchant.0).into(),
        );
        map.insert(
            "customer".into(),
            encode_id(IdKind::Customer, charge.customer.0).into(),
        );
        map.insert("asset".into(), asset.code.to_string().into());
    }
    Ok(data)
}
