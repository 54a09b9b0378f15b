//! `GET /v1/ledger/summary` (operator, or a global read-only key): per asset, the totals of
//! every account and whether debits equal credits, and per account code (wallets, tabs,
//! merchant earnings, platform revenue, processor fees, ...) the count and net balance. The
//! books at a glance, and what the reconciliation checks read.

use axum::extract::State;
use serde::Serialize;

use crate::error::ApiError;
use crate::extract::Key;
use farthing_ledger::audit::totals_by_asset;
use farthing_ledger::WideAmount;
use farthing_service::state::SharedState;
use farthing_store::Scope;

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

#[utoipa::path(get, path = "/v1/ledger/summary", operation_id = "ledger.summary.get", tag = "ledger", responses((status = 200, description = "per asset: totals, whether they balance, and net balances per account code (operator or global read-only key)", body = LedgerSummary), crate::error::ReadErrors))]
pub async fn summary(
    State(state): State<SharedState>,
    Key(principal): Key,
) -> Result<axum::Json<LedgerSummary>, ApiError> {
    if !(principal.is_operator()
        || (principal.scope() == Scope::ReadOnly && principal.merchant().is_none()))
    {
        return Err(ApiError::forbidden(
            "the ledger summary needs an operator or global read-only key",
        ));
    }
    let (assets, totals) = state
        .engine
        .read(|ledger| (ledger.assets().to_vec(), totals_by_asset(ledger)));
    let mut out = Vec::new();
    for asset in assets {
        let Some((t, codes)) = totals.get(&asset.id) else {
            continue;
        };
        let s = asset.scale;
        out.push(AssetSummary {
            asset: asset.code.to_string(),
            accounts: t.accounts,
            debits_posted: t.debits_posted.to_decimal(s),
            credits_posted: t.credits_posted.to_decimal(s),
            debits_pending: t.debits_pending.to_decimal(s),
            credits_pending: t.credits_pending.to_decimal(s),
            balanced: t.balanced(),
            by_code: codes
                .iter()
                .map(|(code, c)| CodeSummary {
                    code: *code,
                    accounts: c.accounts,
                    net_posted: signed(c.credits_posted, c.debits_posted, s),
                })
                .collect(),
        });
    }
    Ok(axum::Json(LedgerSummary {
        object: "ledger_summary",
        assets: out,
    }))
}

/// `credits − debits` as exact decimal text, with a minus sign when the accounts owe.
fn signed(credits: WideAmount, debits: WideAmount, scale: u8) -> String {
    let (difference, negative) = credits.abs_diff(debits);
    let text = difference.to_decimal(scale);
    if negative {
        format!("-{text}")
    } else {
        text
    }
}
