//! The state interface the rules run against. The in-memory ledger implements it; a second
//! backend (PostgreSQL) can implement it too and reuse every rule unchanged.

use crate::types::{
    AccountFlags, AccountId, Amount, Asset, AssetCode, AssetId, Balances, PendingStatus, Timestamp,
    TransferFlags, TransferId,
};

/// An account as stored: its creation fields, its timestamp and its balances.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct StoredAccount {
    pub id: AccountId,
    pub asset: AssetId,
    pub code: u16,
    pub flags: AccountFlags,
    pub overdraft_limit: Amount,
    pub user_data: u128,
    pub timestamp: Timestamp,
    pub balances: Balances,
}

/// A transfer as stored. Account and hold references are the backend's own handles.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct StoredTransfer<A, T> {
    pub id: TransferId,
    pub debit: A,
    pub credit: A,
    /// The amount actually moved (for `BALANCING`, possibly less than requested;
    /// for `POST_PENDING`, the posted part).
    pub amount: Amount,
    pub pending: Option<T>,
    pub user_data: u128,
    pub timeout_s: u32,
    pub asset: AssetId,
    pub code: u16,
    pub flags: TransferFlags,
    pub timestamp: Timestamp,
}

/// What is remembered of an event that failed: its result, and a fingerprint of its fields so
/// that a retry with different fields is told apart from a faithful retry.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct FailedEvent {
    pub code: u8,
    pub fingerprint: u64,
}

/// Storage for the rules in [`crate::rules`].
///
/// Architecture Invariant: implementations hold data; they never decide. Every check lives in
/// the rules so that all backends agree.
pub trait LedgerState {
    type AccountRef: Copy + Eq + std::fmt::Debug;
    type TransferRef: Copy + Eq + std::fmt::Debug;

    fn last_timestamp(&self) -> Timestamp;
    fn set_last_timestamp(&mut self, timestamp: Timestamp);

    fn asset(&self, id: AssetId) -> Option<Asset>;
    fn asset_by_code(&self, code: AssetCode) -> Option<AssetId>;
    fn insert_asset(&mut self, asset: Asset);

    fn find_account(&self, id: AccountId) -> Option<Self::AccountRef>;
    fn account(&self, account: Self::AccountRef) -> StoredAccount;
    fn set_balances(&mut self, account: Self::AccountRef, balances: Balances);
    /// False when no more accounts fit.
    fn has_room_for_account(&self) -> bool;
    fn insert_account(&mut self, account: StoredAccount) -> Self::AccountRef;
    /// Undoes the most recent `insert_account` (only ever called in reverse insertion order).
    fn remove_last_account(&mut self);
    fn failed_account(&self, id: AccountId) -> Option<FailedEvent>;
    fn insert_failed_account(&mut self, id: AccountId, failed: FailedEvent);

    fn find_transfer(&self, id: TransferId) -> Option<Self::TransferRef>;
    /// A hint that `id` will be looked up soon (the rules call it a few events ahead), so the
    /// backend can start loading what the lookup will touch. Never changes a result.
    fn prefetch_transfer(&self, _id: TransferId) {}
    fn transfer(
        &self,
        transfer: Self::TransferRef,
    ) -> StoredTransfer<Self::AccountRef, Self::TransferRef>;
    /// False when no more transfers fit.
    fn has_room_for_transfer(&self) -> bool;
    fn insert_transfer(
        &mut self,
        transfer: StoredTransfer<Self::AccountRef, Self::TransferRef>,
    ) -> Self::TransferRef;
    /// Undoes the most recent `insert_transfer` (only ever called in reverse insertion order).
    fn remove_last_transfer(&mut self);
    fn failed_transfer(&self, id: TransferId) -> Option<FailedEvent>;
    fn insert_failed_transfer(&mut self, id: TransferId, failed: FailedEvent);

    /// The status of a hold (a transfer with `PENDING`).
    fn pending_status(&self, hold: Self::TransferRef) -> PendingStatus;
    /// Changes a hold's status; `Pending` again only when undoing.
    fn set_pending_status(&mut self, hold: Self::TransferRef, status: PendingStatus, at: Timestamp);
    /// The hold with the earliest expiry that is still pending and due at `now`, if any.
    /// Ties break by insertion order so every backend expires in the same order.
    fn next_expired(&self, now: Timestamp) -> Option<Self::TransferRef>;
}

/// When a hold created at `timestamp` with `timeout_s` expires, if ever.
pub fn hold_expires_at(timestamp: Timestamp, timeout_s: u32) -> Option<Timestamp> {
    const NANOS_PER_SECOND: u64 = 1_000_000_000;
    if timeout_s == 0 {
        return None;
    }
    // u32 seconds in nanoseconds is at most ~4.3e18; a 2026 timestamp is ~1.8e18; u64 holds 1.8e19.
    Some(Timestamp(
        timestamp
            .0
            .saturating_add(u64::from(timeout_s) * NANOS_PER_SECOND),
    ))
}
