//! [`MemoryLedger`]: the ledger state held in memory, compactly.
//!
//! Two views of the same data live here. The rules change the *working* view as batches are
//! applied; readers see the *visible* view, which the engine advances with [`MemoryLedger::publish`]
//! only after the batches are durable. So a reader never sees money that a crash could take back.
//!
//! Layout (see ARCHITECTURE.md for the byte budget): accounts in one `Vec` with both balance
//! views and their own history list; transfers in fixed-size chunks (no large reallocation, and a
//! snapshot can share full chunks); id indexes as hash tables of `u32` positions, hashed with a
//! seed the caller supplies so client-chosen ids cannot be aimed at one bucket.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use foldhash::fast::FixedState;
use hashbrown::HashTable;
use std::hash::BuildHasher;

use crate::index::IdIndex;
use crate::state::{hold_expires_at, FailedEvent, LedgerState, StoredAccount, StoredTransfer};
use crate::types::{
    AccountFlags, AccountId, Amount, Asset, AssetCode, AssetId, Balances, PendingStatus, Timestamp,
    TransferFlags, TransferId,
};

/// The most accounts one in-memory ledger holds (positions are `u32`; one value is a sentinel).
pub const ACCOUNTS_MAX: usize = u32::MAX as usize - 1;
/// The most transfers one in-memory ledger holds.
pub const TRANSFERS_MAX: usize = u32::MAX as usize - 1;

const CHUNK_SHIFT: u32 = 16;
const CHUNK_TRANSFERS: usize = 1 << CHUNK_SHIFT;
const NO_HOLD: u32 = u32::MAX;

/// An account's position in [`MemoryLedger`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct AccountPos(u32);

/// A transfer's position in [`MemoryLedger`]; positions follow timestamp order.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub struct TransferPos(u32);

impl TransferPos {
    pub fn new(index: u32) -> TransferPos {
        TransferPos(index)
    }

    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl AccountPos {
    pub fn new(index: u32) -> AccountPos {
        AccountPos(index)
    }

    pub fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Clone, Debug)]
struct AccountRecord {
    id: u128,
    user_data: u128,
    overdraft_limit: u128,
    balances: Balances,
    visible_balances: Balances,
    timestamp: u64,
    asset: u32,
    code: u16,
    flags: u16,
    dirty: bool,
    /// Positions of this account's transfers, ascending (= oldest first).
    history: Vec<u32>,
}

/// 80 bytes: the accounts are positions, the asset is the debit account's.
#[derive(Clone, Copy, Debug)]
struct TransferRecord {
    id: u128,
    amount: u128,
    user_data: u128,
    timestamp: u64,
    debit: u32,
    credit: u32,
    pending: u32,
    timeout_s: u32,
    code: u16,
    flags: u16,
}

#[derive(Clone, Copy, Debug)]
struct HoldState {
    status: PendingStatus,
    changed_at: Timestamp,
}

/// What readers may see: everything up to the last [`MemoryLedger::publish`].
#[derive(Clone, Copy, Debug, Default)]
struct Visible {
    accounts: usize,
    transfers: usize,
    timestamp: Timestamp,
}

/// An account as a reader sees it.
pub type AccountView = StoredAccount;

/// A transfer as a reader sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TransferView {
    pub id: TransferId,
    pub debit_account_id: AccountId,
    pub credit_account_id: AccountId,
    pub amount: Amount,
    pub pending_id: TransferId,
    pub user_data: u128,
    pub timeout_s: u32,
    pub asset: AssetId,
    pub code: u16,
    pub flags: TransferFlags,
    pub timestamp: Timestamp,
    /// For a hold: where it stands now. `None` for other transfers.
    pub hold_status: Option<PendingStatus>,
}

/// A page of an account's transfers, newest first.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TransferPage {
    pub transfers: Vec<TransferView>,
    pub has_more: bool,
}

/// Why a history query could not be answered.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    #[error("account not found")]
    AccountNotFound,
    #[error("starting_after transfer not found in this account's history")]
    CursorNotFound,
}

/// The whole ledger in memory.
#[derive(Clone)]
pub struct MemoryLedger {
    hasher: FixedState,
    assets: Vec<Asset>,
    accounts: Vec<AccountRecord>,
    account_index: HashTable<u32>,
    chunks: Vec<Arc<Vec<TransferRecord>>>,
    transfer_count: usize,
    transfer_index: IdIndex,
    holds: HashMap<u32, HoldState, FixedState>,
    /// Pending holds with a timeout, by (expiry, position).
    expiry: BTreeSet<(Timestamp, u32)>,
    failed_accounts: HashMap<u128, FailedEvent, FixedState>,
    failed_transfers: HashMap<u128, FailedEvent, FixedState>,
    last_timestamp: Timestamp,
    visible: Visible,
    dirty: Vec<u32>,
}

impl MemoryLedger {
    /// An empty ledger. `hash_seed` only spreads ids over the index; it never changes a result.
    pub fn new(hash_seed: u64) -> MemoryLedger {
        let hasher = FixedState::with_seed(hash_seed);
        MemoryLedger {
            hasher,
            assets: Vec::new(),
            accounts: Vec::new(),
            account_index: HashTable::new(),
            chunks: Vec::new(),
            transfer_count: 0,
            transfer_index: IdIndex::default(),
            holds: HashMap::with_hasher(hasher),
            expiry: BTreeSet::new(),
            failed_accounts: HashMap::with_hasher(hasher),
            failed_transfers: HashMap::with_hasher(hasher),
            last_timestamp: Timestamp(0),
            visible: Visible::default(),
            dirty: Vec::new(),
        }
    }

    /// Makes room for this many more accounts and transfers up front, so that the indexes never
    /// rehash (a pause proportional to the ledger's size) while batches are applied.
    pub fn reserve(&mut self, accounts: usize, transfers: usize) {
        let (accounts_vec, chunks, hasher) = (&self.accounts, &self.chunks, &self.hasher);
        self.account_index
            .reserve(accounts, |&p| hasher.hash_one(accounts_vec[p as usize].id));
        self.accounts.reserve(accounts);
        self.transfer_index
            .reserve(transfers, |p| hasher.hash_one(record_at(chunks, p).id));
        self.chunks.reserve(transfers / CHUNK_TRANSFERS + 1);
    }

    fn hash(&self, id: u128) -> u64 {
        self.hasher.hash_one(id)
    }

    fn record(&self, pos: u32) -> &TransferRecord {
        record_at(&self.chunks, pos)
    }

    fn stored_account(&self, pos: u32, balances: Balances) -> StoredAccount {
        let a = &self.accounts[pos as usize];
        StoredAccount {
            id: AccountId(a.id),
            asset: AssetId(a.asset),
            code: a.code,
            flags: AccountFlags(a.flags),
            overdraft_limit: Amount(a.overdraft_limit),
            user_data: a.user_data,
            timestamp: Timestamp(a.timestamp),
            balances,
        }
    }

    /// Makes everything applied so far visible to readers.
    pub fn publish(&mut self) {
        let publication = self.take_publication();
        self.publish_up_to(publication);
    }

    /// Captures what readers should see once everything applied so far is durable. The engine
    /// applies the next group while this one is being made durable, so it captures first and
    /// publishes later, in order, with [`MemoryLedger::publish_up_to`].
    pub fn take_publication(&mut self) -> Publication {
        let balances = self
            .dirty
            .drain(..)
            .map(|pos| {
                let account = &mut self.accounts[pos as usize];
                account.dirty = false;
                (pos, account.balances)
            })
            .collect();
        Publication {
            balances,
            accounts: self.accounts.len(),
            transfers: self.transfer_count,
            timestamp: self.last_timestamp,
        }
    }

    /// Makes a captured state visible. Publications must be applied in the order taken.
    pub fn publish_up_to(&mut self, publication: Publication) {
        assert!(
            publication.timestamp >= self.visible.timestamp,
            "publications apply in order"
        );
        for (pos, balances) in publication.balances {
            self.accounts[pos as usize].visible_balances = balances;
        }
        self.visible = Visible {
            accounts: publication.accounts,
            transfers: publication.transfers,
            timestamp: publication.timestamp,
        };
    }

    /// A self-contained copy of the whole (working) state for writing a snapshot. Transfer
    /// chunks are shared, not copied, so this is cheap even for a large ledger.
    pub fn snapshot_view(&self) -> SnapshotView {
        let accounts = (0..self.accounts.len() as u32)
            .map(|pos| self.stored_account(pos, self.accounts[pos as usize].balances))
            .collect();
        let mut hold_changes: Vec<_> = self
            .holds
            .iter()
            .filter(|(_, hold)| hold.status != PendingStatus::Pending)
            .map(|(&pos, hold)| (TransferPos(pos), hold.status, hold.changed_at))
            .collect();
        hold_changes.sort_by_key(|(pos, _, _)| *pos);
        SnapshotView {
            last_timestamp: self.last_timestamp,
            assets: self.assets.clone(),
            accounts,
            chunks: self.chunks.clone(),
            transfer_count: self.transfer_count,
            hold_changes,
            failed_accounts: self.failed_accounts(),
            failed_transfers: self.failed_transfers(),
        }
    }

    /// Whether everything applied has been published.
    pub fn is_published(&self) -> bool {
        self.dirty.is_empty()
            && self.visible.accounts == self.accounts.len()
            && self.visible.transfers == self.transfer_count
            && self.visible.timestamp == self.last_timestamp
    }

    /// The timestamp of the last published event.
    pub fn visible_timestamp(&self) -> Timestamp {
        self.visible.timestamp
    }

    pub fn assets(&self) -> &[Asset] {
        &self.assets
    }

    pub fn asset_by_id(&self, id: AssetId) -> Option<Asset> {
        self.assets.iter().find(|asset| asset.id == id).copied()
    }

    /// Number of accounts readers can see.
    pub fn account_count(&self) -> usize {
        self.visible.accounts
    }

    /// Number of transfers readers can see.
    pub fn transfer_count(&self) -> usize {
        self.visible.transfers
    }

    fn visible_account_pos(&self, id: AccountId) -> Option<u32> {
        let pos = self.find_account(id)?.0;
        ((pos as usize) < self.visible.accounts).then_some(pos)
    }

    /// An account with its published balances.
    pub fn lookup_account(&self, id: AccountId) -> Option<AccountView> {
        let pos = self.visible_account_pos(id)?;
        Some(self.stored_account(pos, self.accounts[pos as usize].visible_balances))
    }

    /// A published transfer.
    pub fn lookup_transfer(&self, id: TransferId) -> Option<TransferView> {
        let pos = self.find_transfer(id)?.0;
        ((pos as usize) < self.visible.transfers).then(|| self.transfer_view(pos))
    }

    fn transfer_view(&self, pos: u32) -> TransferView {
        let r = self.record(pos);
        let debit = &self.accounts[r.debit as usize];
        let hold_status = self.holds.get(&pos).map(|hold| {
            if hold.changed_at <= self.visible.timestamp {
                hold.status
            } else {
                PendingStatus::Pending
            }
        });
        TransferView {
            id: TransferId(r.id),
            debit_account_id: AccountId(debit.id),
            credit_account_id: AccountId(self.accounts[r.credit as usize].id),
            amount: Amount(r.amount),
            pending_id: if r.pending == NO_HOLD {
                TransferId(0)
            } else {
                TransferId(self.record(r.pending).id)
            },
            user_data: r.user_data,
            timeout_s: r.timeout_s,
            asset: AssetId(debit.asset),
            code: r.code,
            flags: TransferFlags(r.flags),
            timestamp: Timestamp(r.timestamp),
            hold_status,
        }
    }

    /// An account's published transfers, newest first, after the cursor `starting_after`.
    pub fn account_transfers(
        &self,
        account: AccountId,
        starting_after: Option<TransferId>,
        limit: usize,
    ) -> Result<TransferPage, HistoryError> {
        let pos = self
            .visible_account_pos(account)
            .ok_or(HistoryError::AccountNotFound)?;
        let history = &self.accounts[pos as usize].history;
        // Unpublished transfers sit at the end of the history; skip them.
        let visible_len = history.partition_point(|&t| (t as usize) < self.visible.transfers);
        let end = match starting_after {
            None => visible_len,
            Some(cursor) => {
                let cursor_pos = self
                    .find_transfer(cursor)
                    .map(|t| t.0)
                    .filter(|&t| (t as usize) < self.visible.transfers)
                    .ok_or(HistoryError::CursorNotFound)?;
                history[..visible_len]
                    .binary_search(&cursor_pos)
                    .map_err(|_| HistoryError::CursorNotFound)?
            }
        };
        let start = end.saturating_sub(limit);
        let transfers = history[start..end]
            .iter()
            .rev()
            .map(|&t| self.transfer_view(t))
            .collect();
        Ok(TransferPage {
            transfers,
            has_more: start > 0,
        })
    }

    /// Up to `max` published transfers after the transfer `starting_after` (from the first
    /// without one), in timestamp order, and whether more are published after them.
    pub fn transfers_after(
        &self,
        starting_after: Option<TransferId>,
        max: usize,
    ) -> Result<(Vec<TransferView>, bool), HistoryError> {
        let published = self.visible.transfers;
        let start = match starting_after {
            None => 0,
            Some(cursor) => {
                let pos = self
                    .find_transfer(cursor)
                    .map(|t| t.0 as usize)
                    .filter(|&t| t < published)
                    .ok_or(HistoryError::CursorNotFound)?;
                pos + 1
            }
        };
        let end = start.saturating_add(max).min(published);
        let transfers = (start..end)
            .map(|pos| self.transfer_view(pos as u32))
            .collect();
        Ok((transfers, end < published))
    }

    /// Every published account, in creation order.
    pub fn visible_accounts(&self) -> impl Iterator<Item = AccountView> + '_ {
        (0..self.visible.accounts as u32)
            .map(|pos| self.stored_account(pos, self.accounts[pos as usize].visible_balances))
    }

    /// Every published transfer, in timestamp order.
    pub fn visible_transfers(&self) -> impl Iterator<Item = TransferView> + '_ {
        (0..self.visible.transfers as u32).map(|pos| self.transfer_view(pos))
    }

    /// Remembered transfer failures, sorted by id. Working view: the engine only reads this
    /// at a publish point.
    pub fn failed_transfers(&self) -> Vec<(TransferId, FailedEvent)> {
        sorted_failures(&self.failed_transfers, TransferId)
    }

    /// Remembered account failures, sorted by id.
    pub fn failed_accounts(&self) -> Vec<(AccountId, FailedEvent)> {
        sorted_failures(&self.failed_accounts, AccountId)
    }

    /// The ledger's last timestamp, published or not.
    pub fn working_timestamp(&self) -> Timestamp {
        self.last_timestamp
    }

    /// Heap bytes held, by part, for the memory budget: records as stored, index tables at their
    /// capacity, history lists at their capacity.
    pub fn memory_usage(&self) -> MemoryUsage {
        let history: usize = self
            .accounts
            .iter()
            .map(|a| a.history.capacity() * std::mem::size_of::<u32>())
            .sum();
        MemoryUsage {
            accounts: self.accounts.len() * std::mem::size_of::<AccountRecord>()
                + self.account_index.capacity() * (std::mem::size_of::<u32>() + 1),
            transfers: self.transfer_count * std::mem::size_of::<TransferRecord>()
                + self.transfer_index.capacity() * std::mem::size_of::<u64>()
                + history,
            other: self.holds.capacity() * 24
                + self.expiry.len() * 32
                + (self.failed_accounts.capacity() + self.failed_transfers.capacity()) * 40,
        }
    }
}

/// The transfer record at `pos` in the chunked store.
fn record_at(chunks: &[Arc<Vec<TransferRecord>>], pos: u32) -> &TransferRecord {
    &chunks[(pos >> CHUNK_SHIFT) as usize][pos as usize & (CHUNK_TRANSFERS - 1)]
}

impl TransferRecord {
    /// The record as the state interface sees it; `asset` is the debit account's.
    fn stored(&self, asset: AssetId) -> StoredTransfer<AccountPos, TransferPos> {
        StoredTransfer {
            id: TransferId(self.id),
            debit: AccountPos(self.debit),
            credit: AccountPos(self.credit),
            amount: Amount(self.amount),
            pending: (self.pending != NO_HOLD).then_some(TransferPos(self.pending)),
            user_data: self.user_data,
            timeout_s: self.timeout_s,
            asset,
            code: self.code,
            flags: TransferFlags(self.flags),
            timestamp: Timestamp(self.timestamp),
        }
    }
}

/// A failure map's entries in id order (hash maps iterate in no useful order).
fn sorted_failures<T>(
    failures: &HashMap<u128, FailedEvent, FixedState>,
    id: fn(u128) -> T,
) -> Vec<(T, FailedEvent)> {
    let mut sorted: Vec<(u128, FailedEvent)> = failures.iter().map(|(k, f)| (*k, *f)).collect();
    sorted.sort_unstable_by_key(|(k, _)| *k);
    sorted.into_iter().map(|(k, f)| (id(k), f)).collect()
}

/// What becomes visible when a group of batches is durable; see [`MemoryLedger::take_publication`].
#[derive(Debug)]
pub struct Publication {
    balances: Vec<(u32, Balances)>,
    accounts: usize,
    transfers: usize,
    timestamp: Timestamp,
}

/// A frozen copy of a ledger's state, from [`MemoryLedger::snapshot_view`].
pub struct SnapshotView {
    pub last_timestamp: Timestamp,
    pub assets: Vec<Asset>,
    /// In position order.
    pub accounts: Vec<StoredAccount>,
    chunks: Vec<Arc<Vec<TransferRecord>>>,
    transfer_count: usize,
    /// Holds no longer pending: (position, status, when it changed), by position.
    pub hold_changes: Vec<(TransferPos, PendingStatus, Timestamp)>,
    pub failed_accounts: Vec<(AccountId, FailedEvent)>,
    pub failed_transfers: Vec<(TransferId, FailedEvent)>,
}

impl SnapshotView {
    pub fn transfer_count(&self) -> usize {
        self.transfer_count
    }

    /// Every transfer in position order, accounts and holds as positions.
    pub fn transfers(&self) -> impl Iterator<Item = StoredTransfer<AccountPos, TransferPos>> + '_ {
        self.chunks
            .iter()
            .flat_map(|chunk| chunk.iter())
            .take(self.transfer_count)
            // The asset is filled in by the reader from the debit account; it is not stored
            // per transfer.
            .map(|r| r.stored(AssetId(0)))
    }
}

/// Heap bytes by part, from [`MemoryLedger::memory_usage`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Account records and their index.
    pub accounts: usize,
    /// Transfer records, their index and the per-account history lists.
    pub transfers: usize,
    /// Holds, expiry queue, remembered failures.
    pub other: usize,
}

impl LedgerState for MemoryLedger {
    type AccountRef = AccountPos;
    type TransferRef = TransferPos;

    fn last_timestamp(&self) -> Timestamp {
        self.last_timestamp
    }

    fn set_last_timestamp(&mut self, timestamp: Timestamp) {
        assert!(
            timestamp >= self.last_timestamp,
            "timestamps only move forward"
        );
        self.last_timestamp = timestamp;
    }

    fn asset(&self, id: AssetId) -> Option<Asset> {
        self.asset_by_id(id)
    }

    fn asset_by_code(&self, code: AssetCode) -> Option<AssetId> {
        self.assets
            .iter()
            .find(|asset| asset.code == code)
            .map(|asset| asset.id)
    }

    fn insert_asset(&mut self, asset: Asset) {
        self.assets.push(asset);
    }

    fn find_account(&self, id: AccountId) -> Option<AccountPos> {
        let accounts = &self.accounts;
        self.account_index
            .find(self.hash(id.0), |&pos| accounts[pos as usize].id == id.0)
            .map(|&pos| AccountPos(pos))
    }

    fn account(&self, account: AccountPos) -> StoredAccount {
        self.stored_account(account.0, self.accounts[account.0 as usize].balances)
    }

    fn set_balances(&mut self, account: AccountPos, balances: Balances) {
        let record = &mut self.accounts[account.0 as usize];
        record.balances = balances;
        if !record.dirty {
            record.dirty = true;
            self.dirty.push(account.0);
        }
    }

    fn has_room_for_account(&self) -> bool {
        self.accounts.len() < ACCOUNTS_MAX
    }

    fn insert_account(&mut self, account: StoredAccount) -> AccountPos {
        assert!(self.has_room_for_account());
        let pos = self.accounts.len() as u32;
        self.accounts.push(AccountRecord {
            id: account.id.0,
            user_data: account.user_data,
            overdraft_limit: account.overdraft_limit.0,
            balances: account.balances,
            visible_balances: Balances::default(),
            timestamp: account.timestamp.0,
            asset: account.asset.0,
            code: account.code,
            flags: account.flags.0,
            dirty: true,
            history: Vec::new(),
        });
        self.dirty.push(pos);
        let hash = self.hash(account.id.0);
        let accounts = &self.accounts;
        let hasher = &self.hasher;
        self.account_index
            .insert_unique(hash, pos, |&p| hasher.hash_one(accounts[p as usize].id));
        AccountPos(pos)
    }

    fn remove_last_account(&mut self) {
        let record = self
            .accounts
            .last()
            .expect("undo only removes what it inserted");
        let pos = (self.accounts.len() - 1) as u32;
        assert!(record.history.is_empty());
        let hash = self.hash(record.id);
        match self.account_index.find_entry(hash, |&p| p == pos) {
            Ok(entry) => {
                entry.remove();
            }
            Err(_) => unreachable!("an inserted account is indexed"),
        }
        self.accounts.pop();
        // A dirty entry for a popped position would point past the end.
        self.dirty.retain(|&p| p != pos);
    }

    fn failed_account(&self, id: AccountId) -> Option<FailedEvent> {
        self.failed_accounts.get(&id.0).copied()
    }

    fn insert_failed_account(&mut self, id: AccountId, failed: FailedEvent) {
        let previous = self.failed_accounts.insert(id.0, failed);
        assert!(previous.is_none(), "a failed id is remembered once");
    }

    fn prefetch_transfer(&self, id: TransferId) {
        self.transfer_index.prefetch(self.hash(id.0));
    }

    fn find_transfer(&self, id: TransferId) -> Option<TransferPos> {
        self.transfer_index
            .find(self.hash(id.0), id.0, |pos| self.record(pos).id)
            .map(TransferPos)
    }

    fn transfer(&self, transfer: TransferPos) -> StoredTransfer<AccountPos, TransferPos> {
        let r = self.record(transfer.0);
        r.stored(AssetId(self.accounts[r.debit as usize].asset))
    }

    fn has_room_for_transfer(&self) -> bool {
        self.transfer_count < TRANSFERS_MAX
    }

    fn insert_transfer(&mut self, t: StoredTransfer<AccountPos, TransferPos>) -> TransferPos {
        assert!(self.has_room_for_transfer());
        assert_eq!(t.asset.0, self.accounts[t.debit.0 as usize].asset);
        let pos = self.transfer_count as u32;
        if self.transfer_count == self.chunks.len() * CHUNK_TRANSFERS {
            self.chunks
                .push(Arc::new(Vec::with_capacity(CHUNK_TRANSFERS)));
        }
        let chunk = self.chunks.last_mut().expect("a chunk with room exists");
        Arc::make_mut(chunk).push(TransferRecord {
            id: t.id.0,
            amount: t.amount.0,
            user_data: t.user_data,
            timestamp: t.timestamp.0,
            debit: t.debit.0,
            credit: t.credit.0,
            pending: t.pending.map_or(NO_HOLD, |p| p.0),
            timeout_s: t.timeout_s,
            code: t.code,
            flags: t.flags.0,
        });
        self.transfer_count += 1;
        let hash = self.hash(t.id.0);
        {
            let chunks = &self.chunks;
            let hasher = &self.hasher;
            self.transfer_index.insert(hash, pos, |p| {
                let r = record_at(chunks, p);
                hasher.hash_one(r.id)
            });
        }
        self.accounts[t.debit.0 as usize].history.push(pos);
        self.accounts[t.credit.0 as usize].history.push(pos);
        if t.flags.contains(TransferFlags::PENDING) {
            self.holds.insert(
                pos,
                HoldState {
                    status: PendingStatus::Pending,
                    changed_at: t.timestamp,
                },
            );
            if let Some(at) = hold_expires_at(t.timestamp, t.timeout_s) {
                self.expiry.insert((at, pos));
            }
        }
        TransferPos(pos)
    }

    fn remove_last_transfer(&mut self) {
        assert!(
            self.transfer_count > 0,
            "undo only removes what it inserted"
        );
        let pos = (self.transfer_count - 1) as u32;
        let r = *self.record(pos);
        let hash = self.hash(r.id);
        {
            let chunks = &self.chunks;
            let hasher = &self.hasher;
            self.transfer_index.remove(hash, pos, |p| {
                let r = record_at(chunks, p);
                hasher.hash_one(r.id)
            });
        }
        for account in [r.debit, r.credit] {
            let popped = self.accounts[account as usize].history.pop();
            assert_eq!(popped, Some(pos));
        }
        if TransferFlags(r.flags).contains(TransferFlags::PENDING) {
            self.holds.remove(&pos);
            if let Some(at) = hold_expires_at(Timestamp(r.timestamp), r.timeout_s) {
                self.expiry.remove(&(at, pos));
            }
        }
        let chunk = self
            .chunks
            .last_mut()
            .expect("the last transfer has a chunk");
        Arc::make_mut(chunk).pop();
        if chunk.is_empty() {
            self.chunks.pop();
        }
        self.transfer_count -= 1;
    }

    fn failed_transfer(&self, id: TransferId) -> Option<FailedEvent> {
        self.failed_transfers.get(&id.0).copied()
    }

    fn insert_failed_transfer(&mut self, id: TransferId, failed: FailedEvent) {
        let previous = self.failed_transfers.insert(id.0, failed);
        assert!(previous.is_none(), "a failed id is remembered once");
    }

    fn pending_status(&self, hold: TransferPos) -> PendingStatus {
        self.holds
            .get(&hold.0)
            .map_or(PendingStatus::Pending, |h| h.status)
    }

    fn set_pending_status(&mut self, hold: TransferPos, status: PendingStatus, at: Timestamp) {
        let r = *self.record(hold.0);
        let expires_at = hold_expires_at(Timestamp(r.timestamp), r.timeout_s);
        let entry = self
            .holds
            .get_mut(&hold.0)
            .expect("only holds have a status");
        if status == PendingStatus::Pending {
            // Undo of a resolution inside a failed chain: the hold is live again.
            *entry = HoldState {
                status,
                changed_at: Timestamp(r.timestamp),
            };
            if let Some(at) = expires_at {
                self.expiry.insert((at, hold.0));
            }
        } else {
            *entry = HoldState {
                status,
                changed_at: at,
            };
            if let Some(at) = expires_at {
                self.expiry.remove(&(at, hold.0));
            }
        }
    }

    fn next_expired(&self, now: Timestamp) -> Option<TransferPos> {
        let &(at, pos) = self.expiry.first()?;
        (at <= now).then_some(TransferPos(pos))
    }
}
