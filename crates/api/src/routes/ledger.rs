//! `GET /v1/ledger/summary` (operator, or a global read-only key): per asset, the totals of
//! every account and whether debits equal credits, and per account code (wallets, tabs,
//! merchant earnings, platform revenue, processor fees, ...) the count and net balance. The
//! books at a glance, and what the reconciliation checks read.

use std::collections::BTreeMap;

use axum::extract::State;
use serde::Serialize;

use crate::app::{Principal, SharedState};
use crate::error::ApiError;
use crate::money::{format_amount, format_signed};
use crate::store::Scope;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CodeSummary {
    /// The account code (100 wallets, 101 tabs, 200 merchant earnings, 300 platform revenue,
    /// 303 processor fees, ...; see ARCHITECTURE.md).
    pub code: u16,
    pub accounts: u64,
    /// Posted credits − posted debits, summed (negative when the accounts owe).
    pub net_posted: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AssetSummary {
    pub asset: String,
    pub accounts: u64,
    pub debits_posted: String,
    pub credits_posted: String,
    pub debits_pending: String,
    pub credits_pending: String,
    /// Debits equal credits, posted and pending: every transfer has both sides.
    pub balanced: bool,
    pub by_code: Vec<CodeSummary>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LedgerSummary {
    pub object: &'static str,
    pub assets: Vec<AssetSummary>,
}

#[derive(Default)]
struct Totals {
    accounts: u64,
    debits_posted: u128,
    credits_posted: u128,
    debits_pending: u128,
    credits_pending: u128,
}

impl Totals {
    fn add(&mut self, b: &farthing_ledger::Balances) -> Option<()> {
        self.accounts += 1;
        self.debits_posted = self.debits_posted.checked_add(b.debits_posted.0)?;
        self.credits_posted = self.credits_posted.checked_add(b.credits_posted.0)?;
        self.debits_pending = self.debits_pending.checked_add(b.debits_pending.0)?;
        self.credits_pending = self.credits_pending.checked_add(b.credits_pending.0)?;
        Some(())
    }
}

#[utoipa::path(get, path = "/v1/ledger/summary", tag = "ledger", responses((status = 200, description = "per asset: totals, whether they balance, and net balances per account code (operator or global read-only key)", body = LedgerSummary), crate::error::ReadErrors))]
pub async fn summary(
    State(state): State<SharedState>,
    principal: Principal,
) -> Result<axum::Json<LedgerSummary>, ApiError> {
    if !(principal.is_operator()
        || (principal.scope == Scope::ReadOnly && principal.merchant.is_none()))
    {
        return Err(ApiError::forbidden(
            "the ledger summary needs an operator or global read-only key",
        ));
    }
    let overflow = || ApiError::internal("ledger totals overflow 128 bits");
    let (assets, totals) = state
        .engine
        .read(|ledger| {
            let mut totals: BTreeMap<u32, (Totals, BTreeMap<u16, Totals>)> = BTreeMap::new();
            for account in ledger.visible_accounts() {
                let (asset, codes) = totals.entry(account.asset.0).or_default();
                asset.add(&account.balances)?;
                codes
                    .entry(account.code)
                    .or_default()
                    .add(&account.balances)?;
            }
            Some((ledger.assets().to_vec(), totals))
        })
        .ok_or_else(overflow)?;
    let mut out = Vec::new();
    for asset in assets {
        let Some((t, codes)) = totals.get(&asset.id.0) else {
            continue;
        };
        let s = asset.scale;
        out.push(AssetSummary {
            asset: asset.code.to_string(),
            accounts: t.accounts,
            debits_posted: format_amount(farthing_ledger::Amount(t.debits_posted), s),
            credits_posted: format_amount(farthing_ledger::Amount(t.credits_posted), s),
            debits_pending: format_amount(farthing_ledger::Amount(t.debits_pending), s),
            credits_pending: format_amount(farthing_ledger::Amount(t.credits_pending), s),
            balanced: t.debits_posted == t.credits_posted && t.debits_pending == t.credits_pending,
            by_code: codes
                .iter()
                .map(|(code, c)| CodeSummary {
                    code: *code,
                    accounts: c.accounts,
                    net_posted: format_signed(c.credits_posted, c.debits_posted, s),
                })
                .collect(),
        });
    }
    Ok(axum::Json(LedgerSummary {
        object: "ledger_summary",
        assets: out,
    }))
}
