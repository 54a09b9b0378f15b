//! Ledger accounts as the API knows them: an account is visible to the caller who owns it
//! (see [`Principal::can_see`]).

use farthing_ledger::{AccountId, StoredAccount};
use farthing_products::ids::{decode_id, IdKind};
use farthing_store::AccountRecord;

use crate::error::ServiceError;
use crate::state::{Principal, SharedState};

/// A visible account and its record, or 404 naming `param`.
pub fn visible_account(
    state: &SharedState,
    principal: &Principal,
    id: &str,
    param: &str,
) -> Result<(StoredAccount, AccountRecord), ServiceError> {
    let missing = || ServiceError::not_found(Some(param), "account");
    let id = decode_id(IdKind::Account, id).ok_or_else(missing)?;
    let record = state.store.account(id)?.ok_or_else(missing)?;
    if !principal.can_see(record.owner.unwrap_or(0)) {
        return Err(missing());
    }
    let account = state
        .engine
        .lookup_account(AccountId(id))
        .ok_or_else(missing)?;
    Ok((account, record))
}

/// A visible account for moving money: the owner comes from the in-memory cache, so the
/// transfer path reads no metadata from disk.
pub fn account_for_transfer(
    state: &SharedState,
    principal: &Principal,
    id: &str,
    param: &str,
) -> Result<StoredAccount, ServiceError> {
    let missing = || ServiceError::not_found(Some(param), "account");
    let id = decode_id(IdKind::Account, id).ok_or_else(missing)?;
    let owner = state.owner_of(id)?.ok_or_else(missing)?;
    if !principal.can_see(owner) {
        return Err(missing());
    }
    state
        .engine
        .lookup_account(AccountId(id))
        .ok_or_else(missing)
}
