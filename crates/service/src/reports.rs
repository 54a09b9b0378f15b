//! The fee economics report: for a merchant (or the platform) and a period, what its payments
//! were, what the platform earned, what card processing actually cost (top-ups and tab
//! settlements), and what it would have cost had each payment been its own card charge — the
//! saving. As a view (JSON) or CSV.
//!
//! The payments are charges and tips (from wallets and tabs), escrow captures and campaign
//! contributions; refunds and chargebacks have lines of their own. Together they account for
//! every movement of the platform's revenue account, so the platform's net platform fees for a
//! period are what the ledger's platform revenue moved by (the view shows both).

use farthing_products::ids::{CampaignId, ChargeId, MerchantId, TabId};
use std::collections::{BTreeMap, HashMap};

use farthing_ledger::memory::HistoryError;
use farthing_ledger::{Amount, Asset, PendingStatus, TransferFlags, TransferId};
use farthing_products::accounts::{chain_id, LedgerAccount};
use farthing_products::fees::{mul_div, RoundingRule};
use farthing_products::ids::{encode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_products::report::{
    build_fee_report, to_csv, FeeReport, PaymentKind, PaymentRecord, ProcessorFeeRecord,
    ReversalKind, ReversalRecord, SignedAmount,
};
use farthing_products::rules::hold::CAPTURES_MAX;
use farthing_store::records::{
    CampaignMode, CampaignRecord, ChargeRecord, ContributionRecord, DisputeRecord, HoldRecord,
    RefundRecord, SettlementRecord, SettlementStatus, TabRecord, TopupRecord, TopupStatus,
    CAMPAIGNS, CHARGES, CONTRIBUTIONS, DISPUTES, HOLDS, REFUNDS, SETTLEMENTS, TABS, TOPUPS,
};
use serde::Serialize;

use crate::assets::by_code;
use crate::error::ServiceError;
use crate::state::{Principal, SharedState};

/// A merchant's share of the platform's processor fees is pro rata to its gross, rounded
/// down (named: the platform's own report carries the exact total).
const ALLOCATION_ROUNDING: RoundingRule = RoundingRule::Down;

/// The payments of one kind.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KindTotalsView {
    pub payments: u64,
    pub gross_volume: String,
    /// The platform fees taken on them.
    pub platform_fees: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeeReportView {
    pub object: &'static str,
    /// `mer_…`, or `platform`.
    pub scope: String,
    pub asset: String,
    /// Payments made in the period: succeeded charges and tips (wallet or tab), escrow
    /// captures (each milestone one payment) and campaign contributions paid to the creator
    /// (keep-what-you-raise when made, all-or-nothing when captured at the deadline).
    pub payments: u64,
    pub gross_volume: String,
    pub average_payment: Option<String>,
    /// The platform fees taken on those payments (before refunds and chargebacks).
    pub platform_fees: String,
    /// The payments by kind, keyed `wallet`, `tab`, `voucher`, `escrow` or `campaign`; kinds
    /// without payments are absent.
    pub by_kind: BTreeMap<String, KindTotalsView>,
    /// Refunds made in the period (of charges made in it or before).
    pub refunds: u64,
    /// What those refunds gave back.
    pub refunded: String,
    /// The platform fees those refunds gave back.
    pub refunded_platform_fees: String,
    /// Chargebacks booked in the period that reversed charges.
    pub chargebacks: u64,
    /// What they took back from the charges.
    pub charged_back: String,
    /// The platform fees among it (a merchant's share pro rata to its charges, rounded down).
    pub charged_back_platform_fees: String,
    /// platform_fees − refunded_platform_fees − charged_back_platform_fees: what the
    /// platform kept (negative when it gave back more than it took in the period).
    pub net_platform_fees: String,
    /// Platform scope only: how the ledger's platform revenue account in the asset moved over
    /// the period (credits − debits, by the ledger's own times). It equals net_platform_fees:
    /// a difference means a movement of platform revenue the report does not account for (or
    /// one booked while the report was read, or a payment whose record and ledger times fall
    /// on either side of a period's bound).
    pub ledger_platform_revenue_change: Option<String>,
    /// Card charges the platform paid for (top-ups), and their fees.
    pub processor_charges: u64,
    pub processor_fees_paid: String,
    /// What the processor would have kept had each payment been its own card charge.
    pub processor_fees_if_each_card: String,
    /// The difference (negative when batching cost more).
    pub saving: String,
    /// saving / processor_fees_if_each_card, 4 decimal places.
    pub saving_ratio: Option<String>,
}

/// What a fee report is asked for, as the request says it: the asset's code, the merchant
/// (`mer_…`; merchant keys: their own, the default), the period as RFC 3339 times (`from`
/// inclusive, default the beginning; `to` exclusive, default now) and the format (`json`, the
/// default, or `csv`).
#[derive(Debug, Clone, Copy)]
pub struct FeeReportQuery<'a> {
    pub asset: &'a str,
    pub merchant: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub format: Option<&'a str>,
}

/// A fee report in the format asked for.
#[derive(Debug)]
pub enum FeeReportAnswer {
    Json(Box<FeeReportView>),
    Csv(String),
}

fn parse_time(text: Option<&str>, param: &str, default: u64) -> Result<u64, ServiceError> {
    match text {
        None => Ok(default),
        Some(t) => time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .ok()
            .and_then(|d| u64::try_from(d.unix_timestamp_nanos()).ok())
            .ok_or_else(|| {
                ServiceError::invalid(
                    param,
                    "invalid_time",
                    format!("{param} must be an RFC 3339 time"),
                )
            }),
    }
}

/// The fee economics report of a merchant the caller may see (or of the platform), over the
/// payments (charges, escrow captures, campaign contributions), refunds, chargebacks, top-ups
/// and settlements of the period. The platform's JSON report also carries the ledger's own
/// platform revenue change over the period, which its net platform fees equal.
pub async fn fees(
    state: &SharedState,
    principal: &Principal,
    query: FeeReportQuery<'_>,
) -> Result<FeeReportAnswer, ServiceError> {
    let asset = by_code(state, query.asset, "asset")?;
    let merchant = match (query.merchant, principal.merchant()) {
        (Some(text), _) => Some(
            MerchantId::decode(text)
                .filter(|m| principal.can_see(m.0))
                .ok_or_else(|| ServiceError::not_found(Some("merchant"), "merchant"))?,
        ),
        (None, Some(own)) => Some(own),
        (None, None) => None,
    };
    let period = Period {
        from: parse_time(query.from, "from", 0)?,
        to: parse_time(query.to, "to", u64::MAX)?,
    };
    // The report scans the charges in the store: every answered one first.
    state.products.journal.settle_all().await?;
    let csv = match query.format {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => {
            return Err(ServiceError::invalid(
                "format",
                "invalid_format",
                "format must be json or csv",
            ))
        }
    };
    let report = build(state, &asset, merchant, period)?;
    let scope = merchant.map_or_else(
        || "platform".to_string(),
        |m| encode_id(IdKind::Merchant, m.0),
    );
    if csv {
        return Ok(FeeReportAnswer::Csv(to_csv([(scope.as_str(), &report)])));
    }
    let ledger_change = match merchant {
        None => Some(ledger_revenue_change(state, &asset, period)?),
        Some(_) => None,
    };
    Ok(FeeReportAnswer::Json(Box::new(view(
        scope,
        &asset,
        &report,
        ledger_change,
    ))))
}

/// A period: `from` inclusive, `to` exclusive, in nanoseconds since the epoch.
#[derive(Clone, Copy, Debug)]
struct Period {
    from: u64,
    to: u64,
}

impl Period {
    fn contains(&self, ns: u64) -> bool {
        ns >= self.from && ns < self.to
    }
}

/// A payment, and the merchant it counts for (a charge with revenue shares counts for the
/// merchant that charged).
#[derive(Clone, Copy, Debug)]
struct Paid {
    merchant: MerchantId,
    record: PaymentRecord,
}

/// Where a split's legs sit in its chain: after the chain's first transfer come the merchant's
/// net (`first + 1`), the platform's fee (`first + 2`) and rounding (`first + 3`); a zero leg is
/// left out but keeps its id (see `holds::split_transfers`, which escrow captures and campaign
/// contributions share).
const SPLIT_FEE_OFFSET: u128 = 2;

/// Transfers one page of an account's ledger history holds.
const HISTORY_PAGE: usize = 1000;

/// The report of `merchant` (or the platform) in `asset` over `period`.
fn build(
    state: &SharedState,
    asset: &Asset,
    merchant: Option<MerchantId>,
    period: Period,
) -> Result<FeeReport, ServiceError> {
    // Every charge in the asset, whenever made: refunds and chargebacks of the period may be of
    // earlier ones.
    let charges: HashMap<ChargeId, ChargeRecord> = state
        .store
        .all_records::<ChargeRecord>(CHARGES)?
        .into_iter()
        .filter(|c| c.asset == asset.id.0 && !c.requires_confirmation)
        .map(|c| (c.id, c))
        .collect();
    let mut payments = charge_payments(state, &charges, period);
    payments.extend(escrow_payments(state, asset, period)?);
    payments.extend(campaign_payments(state, asset, period)?);
    let platform_gross = total(payments.iter().map(|p| p.record.amount.0))?;
    let mine: Vec<PaymentRecord> = payments
        .iter()
        .filter(|p| merchant.is_none_or(|m| p.merchant == m))
        .map(|p| p.record)
        .collect();
    let gross = total(mine.iter().map(|p| p.amount.0))?;
    let mut reversals = refunds(state, &charges, merchant, period)?;
    reversals.extend(chargebacks(state, asset, &charges, merchant, period)?);
    // What card processing actually cost: top-ups and tab settlements, as (charged, fee).
    let mut card_charges: Vec<(Amount, Amount)> = state
        .store
        .all_records::<TopupRecord>(TOPUPS)?
        .into_iter()
        .filter(|t| {
            t.asset == asset.id.0
                && t.status == TopupStatus::Succeeded
                && period.contains(t.created_ns)
        })
        .map(|t| (t.amount, t.processor_fee))
        .collect();
    let tab_assets: HashMap<TabId, u32> = state
        .store
        .all_records::<TabRecord>(TABS)?
        .into_iter()
        .map(|t| (t.id, t.asset))
        .collect();
    card_charges.extend(
        state
            .store
            .all_records::<SettlementRecord>(SETTLEMENTS)?
            .into_iter()
            .filter(|s| {
                s.status == SettlementStatus::Succeeded
                    && tab_assets.get(&s.tab) == Some(&asset.id.0)
                    && period.contains(s.created_ns)
            })
            .map(|s| (s.amount, s.processor_fee)),
    );
    let allocate = |total: u128| -> Result<u128, ServiceError> {
        match merchant {
            None => Ok(total),
            Some(_) if platform_gross == 0 => Ok(0),
            Some(_) => mul_div(total, gross, platform_gross, ALLOCATION_ROUNDING)
                .map_err(|e| ServiceError::internal(format!("allocation: {e}"))),
        }
    };
    let processor_records: Vec<ProcessorFeeRecord> = match merchant {
        None => card_charges
            .iter()
            .map(|(amount, fee)| ProcessorFeeRecord {
                amount_charged: *amount,
                fee: *fee,
            })
            .collect(),
        Some(_) => vec![ProcessorFeeRecord {
            amount_charged: Amount(allocate(total(card_charges.iter().map(|c| c.0 .0))?)?),
            fee: Amount(allocate(total(card_charges.iter().map(|c| c.1 .0))?)?),
        }],
    };
    let fees = state.products.card_fees;
    build_fee_report(
        mine,
        reversals,
        processor_records,
        asset.scale,
        |amount, scale| fees.card_fee(amount, scale),
    )
    .map_err(|e| ServiceError::internal(format!("report: {e}")))
}

/// The charges and tips of the period that succeeded, at the time they were made.
fn charge_payments(
    state: &SharedState,
    charges: &HashMap<ChargeId, ChargeRecord>,
    period: Period,
) -> Vec<Paid> {
    charges
        .values()
        .filter(|c| period.contains(c.created_ns))
        .filter(|c| crate::charges::charge_status(state, c) == "succeeded")
        .map(|c| Paid {
            merchant: c.merchant,
            record: PaymentRecord {
                amount: c.amount,
                platform_fee: c.platform_fee,
                kind: if c.tab.is_some() {
                    PaymentKind::Tab
                } else {
                    PaymentKind::Wallet
                },
            },
        })
        .collect()
}

/// The platform's fee in the split that follows the chain whose first transfer is `first`, as
/// the ledger booked it (zero when the split had none).
fn split_fee(state: &SharedState, asset: &Asset, first: u128) -> Amount {
    let revenue = LedgerAccount::PlatformRevenue.id(asset.id);
    state
        .engine
        .lookup_transfer(TransferId(first.wrapping_add(SPLIT_FEE_OFFSET)))
        .filter(|t| t.credit_account_id == revenue)
        .map_or(Amount::ZERO, |t| t.amount)
}

/// Every escrow capture of the period, at the ledger's time of its post: the hold walk of
/// `holds.rs` (hold `k` posted by the chain `chain_id(hold, "capture", k)`), each capture with
/// the platform's fee of its split.
fn escrow_payments(
    state: &SharedState,
    asset: &Asset,
    period: Period,
) -> Result<Vec<Paid>, ServiceError> {
    let mut paid = Vec::new();
    let holds = state.store.all_records::<HoldRecord>(HOLDS)?;
    for h in holds.iter().filter(|h| h.asset == asset.id.0) {
        for k in 0..CAPTURES_MAX {
            let posted = state
                .engine
                .lookup_transfer(crate::holds::hold_id(h.id.0, k))
                .is_some_and(|t| t.hold_status == Some(PendingStatus::Posted));
            if !posted {
                break;
            }
            let first = chain_id(h.id.0, "capture", k);
            let Some(post) = state.engine.lookup_transfer(TransferId(first)) else {
                continue;
            };
            if period.contains(post.timestamp.0) {
                paid.push(Paid {
                    merchant: h.merchant,
                    record: PaymentRecord {
                        amount: post.amount,
                        platform_fee: split_fee(state, asset, first),
                        kind: PaymentKind::Escrow,
                    },
                });
            }
        }
    }
    Ok(paid)
}

/// Every campaign contribution paid to its creator in the period, at the ledger's time: a
/// keep-what-you-raise one when it was made (its funding chain carries the split), an
/// all-or-nothing one when the deadline captured it (`chain_id(contribution, "capture", 0)`).
/// Held and released contributions paid no one.
fn campaign_payments(
    state: &SharedState,
    asset: &Asset,
    period: Period,
) -> Result<Vec<Paid>, ServiceError> {
    let campaigns: HashMap<CampaignId, CampaignRecord> = state
        .store
        .all_records::<CampaignRecord>(CAMPAIGNS)?
        .into_iter()
        .filter(|c| c.asset == asset.id.0)
        .map(|c| (c.id, c))
        .collect();
    let mut paid = Vec::new();
    for r in state
        .store
        .all_records::<ContributionRecord>(CONTRIBUTIONS)?
    {
        let Some(c) = campaigns.get(&r.campaign) else {
            continue;
        };
        let first = match c.mode {
            CampaignMode::KeepWhatYouRaise => crate::campaigns::funding_id(r.id.0).0,
            CampaignMode::AllOrNothing => chain_id(r.id.0, "capture", 0),
        };
        let Some(payment) = state.engine.lookup_transfer(TransferId(first)) else {
            continue;
        };
        if period.contains(payment.timestamp.0) {
            paid.push(Paid {
                merchant: c.merchant,
                record: PaymentRecord {
                    amount: payment.amount,
                    platform_fee: split_fee(state, asset, first),
                    kind: PaymentKind::Campaign,
                },
            });
        }
    }
    Ok(paid)
}

/// The refunds of the period that the ledger booked, of `merchant`'s charges (every charge for
/// the platform).
fn refunds(
    state: &SharedState,
    charges: &HashMap<ChargeId, ChargeRecord>,
    merchant: Option<MerchantId>,
    period: Period,
) -> Result<Vec<ReversalRecord>, ServiceError> {
    Ok(state
        .store
        .all_records::<RefundRecord>(REFUNDS)?
        .into_iter()
        .filter(|r| period.contains(r.created_ns))
        .filter_map(|r| {
            let charge = charges.get(&r.charge)?;
            let counted = merchant.is_none_or(|m| charge.merchant == m)
                && crate::charges::refund_committed(state, charge, &r);
            counted.then_some(ReversalRecord {
                amount: r.amount,
                platform_fee_returned: r.platform_fee_returned,
                kind: ReversalKind::Refund,
            })
        })
        .collect())
}

/// The booked chargebacks of the period that reversed charges: what they took back from the
/// charges, and the platform fees among it, read from the dispute's chain in the ledger. For a
/// merchant, its charges' part, and the fees pro rata to it (rounded by
/// [`ALLOCATION_ROUNDING`]: the platform's report carries the exact total).
fn chargebacks(
    state: &SharedState,
    asset: &Asset,
    charges: &HashMap<ChargeId, ChargeRecord>,
    merchant: Option<MerchantId>,
    period: Period,
) -> Result<Vec<ReversalRecord>, ServiceError> {
    let revenue = LedgerAccount::PlatformRevenue.id(asset.id);
    let mut reversals = Vec::new();
    let disputes = state.store.all_records::<DisputeRecord>(DISPUTES)?;
    for d in disputes
        .iter()
        .filter(|d| d.asset == asset.id.0 && d.booked && period.contains(d.created_ns))
    {
        let mut taken = 0u128;
        let mut taken_mine = 0u128;
        for (charge, amount) in &d.charges {
            let amount: u128 = amount
                .parse()
                .map_err(|_| ServiceError::internal("a dispute's charge amount"))?;
            taken = total([taken, amount].into_iter())?;
            let charging = charges.get(charge).map(|c| c.merchant);
            if merchant.is_none_or(|m| charging == Some(m)) {
                taken_mine = total([taken_mine, amount].into_iter())?;
            }
        }
        if taken_mine == 0 {
            continue;
        }
        // The chain's legs have the ids `first + i`; the ones debiting the platform's revenue
        // gave back its fees.
        let first = chain_id(d.id.0, "dispute", d.attempt);
        let fees = total((0..d.legs).filter_map(|i| {
            state
                .engine
                .lookup_transfer(TransferId(first.wrapping_add(u128::from(i))))
                .filter(|t| t.debit_account_id == revenue)
                .map(|t| t.amount.0)
        }))?;
        let fees_mine = match merchant {
            None => fees,
            Some(_) => mul_div(fees, taken_mine, taken, ALLOCATION_ROUNDING)
                .map_err(|e| ServiceError::internal(format!("allocation: {e}")))?,
        };
        reversals.push(ReversalRecord {
            amount: Amount(taken_mine),
            platform_fee_returned: Amount(fees_mine),
            kind: ReversalKind::Chargeback,
        });
    }
    Ok(reversals)
}

/// How the ledger's platform revenue account in `asset` moved over `period`, by the ledger's
/// own times: its posted credits (fees taken) less its posted debits (fees given back).
fn ledger_revenue_change(
    state: &SharedState,
    asset: &Asset,
    period: Period,
) -> Result<SignedAmount, ServiceError> {
    let account = LedgerAccount::PlatformRevenue.id(asset.id);
    let (mut credits, mut debits) = (0u128, 0u128);
    let mut cursor = None;
    loop {
        let page = match state
            .engine
            .account_transfers(account, cursor, HISTORY_PAGE)
        {
            Ok(page) => page,
            Err(HistoryError::AccountNotFound) => break,
            Err(e) => return Err(ServiceError::internal(format!("account history: {e}"))),
        };
        for t in &page.transfers {
            let posted = !t.flags.contains(TransferFlags::PENDING);
            if !posted || !period.contains(t.timestamp.0) {
                continue;
            }
            if t.credit_account_id == account {
                credits = total([credits, t.amount.0].into_iter())?;
            } else if t.debit_account_id == account {
                debits = total([debits, t.amount.0].into_iter())?;
            }
        }
        cursor = page.transfers.last().map(|t| t.id);
        if !page.has_more {
            break;
        }
    }
    Ok(SignedAmount::difference(Amount(credits), Amount(debits)))
}

/// The sum of amounts, or an error if it does not fit 128 bits (never a wrapped total).
fn total(mut amounts: impl Iterator<Item = u128>) -> Result<u128, ServiceError> {
    amounts
        .try_fold(0u128, u128::checked_add)
        .ok_or_else(|| ServiceError::internal("report totals overflow 128 bits"))
}

fn view(
    scope: String,
    asset: &Asset,
    r: &FeeReport,
    ledger_change: Option<SignedAmount>,
) -> FeeReportView {
    let s = asset.scale;
    let by_kind = r
        .by_kind
        .iter()
        .map(|(kind, totals)| {
            let totals = KindTotalsView {
                payments: totals.payments,
                gross_volume: format_amount(totals.gross, s),
                platform_fees: format_amount(totals.platform_fees, s),
            };
            (kind.code().to_string(), totals)
        })
        .collect();
    FeeReportView {
        object: "fee_report",
        scope,
        asset: asset.code.to_string(),
        payments: r.payments,
        gross_volume: format_amount(r.gross, s),
        average_payment: r.average_payment.map(|a| format_amount(a, s)),
        platform_fees: format_amount(r.platform_fees, s),
        by_kind,
        refunds: r.refunds,
        refunded: format_amount(r.refunded, s),
        refunded_platform_fees: format_amount(r.refunded_platform_fees, s),
        chargebacks: r.chargebacks,
        charged_back: format_amount(r.charged_back, s),
        charged_back_platform_fees: format_amount(r.charged_back_platform_fees, s),
        net_platform_fees: r.net_platform_fees.format(s),
        ledger_platform_revenue_change: ledger_change.map(|c| c.format(s)),
        processor_charges: r.processor_charges,
        processor_fees_paid: format_amount(r.processor_fees_paid, s),
        processor_fees_if_each_card: format_amount(r.processor_fees_if_each_card, s),
        saving: r.saving.format(s),
        saving_ratio: r.saving_ratio.map(|x| x.to_string()),
    }
}
