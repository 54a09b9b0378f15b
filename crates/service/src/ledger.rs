//! The operator's reconciliation view of the ledger ([`summary`]), and the engine's health as
//! the operations endpoints report it ([`readiness`], [`metrics_text`]).

use farthing_ledger::audit::totals_by_asset;
use farthing_ledger::WideAmount;
use serde::Serialize;

use crate::error::ServiceError;
use crate::state::{Principal, SharedState};
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

/// Per asset: the totals of every account, whether debits equal credits, and per account code
/// the count and net balance. Only the operator and global read-only keys may read it.
pub fn summary(state: &SharedState, principal: &Principal) -> Result<LedgerSummary, ServiceError> {
    if !(principal.is_operator()
        || (principal.scope() == Scope::ReadOnly && principal.merchant().is_none()))
    {
        return Err(ServiceError::forbidden(
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
    Ok(LedgerSummary {
        object: "ledger_summary",
        assets: out,
    })
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

/// Whether the engine accepts writes: `Err` says why not (it halted).
pub fn readiness(state: &SharedState) -> Result<(), String> {
    match state.engine.halt_reason() {
        None => Ok(()),
        Some(reason) => Err(reason),
    }
}

/// The Prometheus text exposition, with the engine's counters brought up to date first. Only
/// for the operator's keys (an operator key, or a read-only key of no merchant, which a
/// monitoring system should use): the figures are the whole platform's.
pub fn metrics_text(state: &SharedState, principal: &Principal) -> Result<String, ServiceError> {
    if !principal.reads_the_platform() {
        return Err(ServiceError::forbidden(
            "metrics need an operator key or a read-only key of no merchant",
        ));
    }
    let stats = state.engine.stats();
    metrics::gauge!("farthing_engine_queue_depth").set(stats.queue_depth as f64);
    metrics::gauge!("farthing_engine_commits_total").set(stats.commits as f64);
    metrics::gauge!("farthing_engine_events_total").set(stats.events as f64);
    metrics::gauge!("farthing_engine_fsync_seconds_total")
        .set(stats.fsync_nanos_total as f64 / 1e9);
    metrics::gauge!("farthing_engine_fsync_seconds_max").set(stats.fsync_nanos_max as f64 / 1e9);
    metrics::gauge!("farthing_engine_batches_per_commit")
        .set(stats.batches as f64 / stats.commits.max(1) as f64);
    Ok(state.metrics.render())
}
