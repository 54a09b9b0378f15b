//! `GET /v1/ledger/summary` (operator, or a global read-only key): per asset, the totals of
//! every account and whether debits equal credits, and per account code (wallets, tabs,
//! merchant earnings, platform revenue, processor fees, ...) the count and net balance. The
//! books at a glance, and what the reconciliation checks read.

use axum::extract::State;

use crate::error::ApiError;
use crate::extract::Key;
use farthing_service::ledger::LedgerSummary;
use farthing_service::state::SharedState;

#[utoipa::path(get, path = "/v1/ledger/summary", operation_id = "ledger.summary.get", tag = "ledger", responses((status = 200, description = "per asset: totals, whether they balance, and net balances per account code (operator or global read-only key)", body = LedgerSummary), crate::error::ReadErrors))]
pub async fn summary(
    State(state): State<SharedState>,
    Key(principal): Key,
) -> Result<axum::Json<LedgerSummary>, ApiError> {
    Ok(axum::Json(farthing_service::ledger::summary(
        &state, &principal,
    )?))
}
