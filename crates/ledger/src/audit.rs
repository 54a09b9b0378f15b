//! [`LedgerDump`]: a backend-independent picture of a ledger, its state hash, and the
//! invariants every ledger must satisfy. Tests, crash checks and the reference model all
//! compare dumps, so two backends agree exactly when their dumps are equal.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use crate::memory::{MemoryLedger, TransferView};
use crate::state::{FailedEvent, StoredAccount};
use crate::types::{
    AccountFlags, AccountId, Amount, Asset, AssetId, PendingStatus, Timestamp, TransferFlags,
    TransferId, WideAmount,
};

/// Everything a ledger holds, in a canonical order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LedgerDump {
    pub last_timestamp: Timestamp,
    /// By id.
    pub assets: Vec<Asset>,
    /// By id.
    pub accounts: Vec<StoredAccount>,
    /// By timestamp.
    pub transfers: Vec<TransferView>,
    /// By id.
    pub failed_accounts: Vec<(AccountId, FailedEvent)>,
    /// By id.
    pub failed_transfers: Vec<(TransferId, FailedEvent)>,
}

/// A broken invariant, described for a human.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("ledger invariant violated: {0}")]
pub struct InvariantViolation(pub String);

impl LedgerDump {
    /// The published state of a memory ledger.
    pub fn of(ledger: &MemoryLedger) -> LedgerDump {
        let mut assets = ledger.assets().to_vec();
        assets.sort_by_key(|asset| asset.id);
        let mut accounts: Vec<_> = ledger.visible_accounts().collect();
        accounts.sort_by_key(|account| account.id);
        LedgerDump {
            last_timestamp: ledger.visible_timestamp(),
            assets,
            accounts,
            transfers: ledger.visible_transfers().collect(),
            failed_accounts: ledger.failed_accounts(),
            failed_transfers: ledger.failed_transfers(),
        }
    }

    /// SHA-256 over a fixed little-endian encoding of every field, in canonical order.
    pub fn state_hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.last_timestamp.0.to_le_bytes());
        for asset in &self.assets {
            h.update(asset.id.0.to_le_bytes());
            h.update([asset.scale]);
            h.update(asset.code.as_str().as_bytes());
            h.update([0]);
        }
        for a in &self.accounts {
            for word in [a.id.0, a.overdraft_limit.0, a.user_data] {
                h.update(word.to_le_bytes());
            }
            for word in [
                a.balances.debits_pending,
                a.balances.debits_posted,
                a.balances.credits_pending,
                a.balances.credits_posted,
            ] {
                h.update(word.0.to_le_bytes());
            }
            h.update(a.timestamp.0.to_le_bytes());
            h.update(a.asset.0.to_le_bytes());
            h.update(a.code.to_le_bytes());
            h.update(a.flags.0.to_le_bytes());
        }
        for t in &self.transfers {
            for word in [
                t.id.0,
                t.debit_account_id.0,
                t.credit_account_id.0,
                t.amount.0,
                t.pending_id.0,
                t.user_data,
            ] {
                h.update(word.to_le_bytes());
            }
            h.update(t.timeout_s.to_le_bytes());
            h.update(t.asset.0.to_le_bytes());
            h.update(t.code.to_le_bytes());
            h.update(t.flags.0.to_le_bytes());
            h.update(t.timestamp.0.to_le_bytes());
            h.update([match t.hold_status {
                None => 0,
                Some(PendingStatus::Pending) => 1,
                Some(PendingStatus::Posted) => 2,
                Some(PendingStatus::Voided) => 3,
                Some(PendingStatus::Expired) => 4,
            }]);
        }
        for (id, failed) in &self.failed_accounts {
            h.update(id.0.to_le_bytes());
            h.update([failed.code]);
            h.update(failed.fingerprint.to_le_bytes());
        }
        for (id, failed) in &self.failed_transfers {
            h.update(id.0.to_le_bytes());
            h.update([failed.code]);
            h.update(failed.fingerprint.to_le_bytes());
        }
        h.finalize().into()
    }

    /// Checks every invariant from first principles: balances are recomputed from the
    /// transfers, not trusted.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let fail = |message: String| Err(InvariantViolation(message));
        let accounts: HashMap<AccountId, &StoredAccount> =
            self.accounts.iter().map(|a| (a.id, a)).collect();
        let transfers: HashMap<TransferId, &TransferView> =
            self.transfers.iter().map(|t| (t.id, t)).collect();
        if transfers.len() != self.transfers.len() {
            return fail("duplicate transfer id".into());
        }
        // Recomputed [debits_pending, debits_posted, credits_pending, credits_posted].
        let mut recomputed: HashMap<AccountId, [WideAmount; 4]> = HashMap::new();
        let mut resolutions: HashMap<TransferId, TransferId> = HashMap::new();
        let mut previous_timestamp = Timestamp(0);
        for t in &self.transfers {
            if t.timestamp <= previous_timestamp || t.timestamp > self.last_timestamp {
                return fail(format!("transfer {:?} timestamp out of order", t.id));
            }
            previous_timestamp = t.timestamp;
            let (Some(debit), Some(credit)) = (
                accounts.get(&t.debit_account_id),
                accounts.get(&t.credit_account_id),
            ) else {
                return fail(format!("transfer {:?} names a missing account", t.id));
            };
            if debit.asset != t.asset || credit.asset != t.asset || debit.id == credit.id {
                return fail(format!(
                    "transfer {:?} crosses assets or self-transfers",
                    t.id
                ));
            }
            if t.amount.is_zero() {
                return fail(format!("transfer {:?} moved nothing", t.id));
            }
            let flags = t.flags;
            let resolves = flags.contains(TransferFlags::POST_PENDING)
                || flags.contains(TransferFlags::VOID_PENDING);
            if resolves {
                let Some(hold) = transfers.get(&t.pending_id) else {
                    return fail(format!("transfer {:?} resolves a missing hold", t.id));
                };
                if !hold.flags.contains(TransferFlags::PENDING) || hold.timestamp >= t.timestamp {
                    return fail(format!("transfer {:?} resolves a non-hold", t.id));
                }
                if resolutions.insert(hold.id, t.id).is_some() {
                    return fail(format!("hold {:?} resolved twice", hold.id));
                }
                let expected = if flags.contains(TransferFlags::POST_PENDING) {
                    PendingStatus::Posted
                } else {
                    PendingStatus::Voided
                };
                if hold.hold_status != Some(expected) || t.amount > hold.amount {
                    return fail(format!("hold {:?} status or amount disagrees", hold.id));
                }
                if flags.contains(TransferFlags::POST_PENDING) {
                    recomputed.entry(t.debit_account_id).or_default()[1].add(t.amount);
                    recomputed.entry(t.credit_account_id).or_default()[3].add(t.amount);
                }
            } else if flags.contains(TransferFlags::PENDING) {
                if t.hold_status == Some(PendingStatus::Pending) {
                    recomputed.entry(t.debit_account_id).or_default()[0].add(t.amount);
                    recomputed.entry(t.credit_account_id).or_default()[2].add(t.amount);
                }
            } else {
                recomputed.entry(t.debit_account_id).or_default()[1].add(t.amount);
                recomputed.entry(t.credit_account_id).or_default()[3].add(t.amount);
            }
        }
        for t in &self.transfers {
            let resolved = resolutions.contains_key(&t.id);
            let status = t.hold_status;
            let consistent = match status {
                None => !t.flags.contains(TransferFlags::PENDING),
                Some(PendingStatus::Posted | PendingStatus::Voided) => resolved,
                Some(PendingStatus::Pending | PendingStatus::Expired) => !resolved,
            };
            if !consistent {
                return fail(format!(
                    "hold {:?} status {:?} disagrees with history",
                    t.id, status
                ));
            }
        }
        let mut per_asset: BTreeMap<AssetId, [WideAmount; 4]> = BTreeMap::new();
        for a in &self.accounts {
            let b = a.balances;
            let actual = [
                b.debits_pending.0,
                b.debits_posted.0,
                b.credits_pending.0,
                b.credits_posted.0,
            ];
            let expected = recomputed.get(&a.id).copied().unwrap_or_default();
            if actual.map(|v| WideAmount::from(Amount(v))) != expected {
                return fail(format!(
                    "account {:?} balances {actual:?} but its transfers sum to {expected:?}",
                    a.id
                ));
            }
            if a.flags
                .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
                && WideAmount::sum(b.debits_pending, b.debits_posted)
                    > WideAmount::sum(b.credits_posted, a.overdraft_limit)
            {
                return fail(format!(
                    "account {:?} debits exceed credits and limit",
                    a.id
                ));
            }
            if a.flags
                .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
                && WideAmount::sum(b.credits_pending, b.credits_posted)
                    > WideAmount::from(b.debits_posted)
            {
                return fail(format!("account {:?} credits exceed debits", a.id));
            }
            let totals = per_asset.entry(a.asset).or_default();
            for (total, value) in totals.iter_mut().zip(actual) {
                total.add(Amount(value));
            }
        }
        for (asset, [dp, dq, cp, cq]) in per_asset {
            if dp != cp || dq != cq {
                return fail(format!(
                    "asset {asset:?} does not balance: debits pending {dp:?} / posted {dq:?}, credits pending {cp:?} / posted {cq:?}"
                ));
            }
        }
        for (id, _) in &self.failed_transfers {
            if transfers.contains_key(id) {
                return fail(format!("transfer {id:?} both stored and failed"));
            }
        }
        for (id, _) in &self.failed_accounts {
            if accounts.contains_key(id) {
                return fail(format!("account {id:?} both stored and failed"));
            }
        }
        Ok(())
    }
}

/// Totals of a group of accounts (an asset, or one account code within it), exact however
/// many accounts there are.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Totals {
    pub accounts: u64,
    pub debits_posted: WideAmount,
    pub credits_posted: WideAmount,
    pub debits_pending: WideAmount,
    pub credits_pending: WideAmount,
}

impl Totals {
    fn add(&mut self, account: &StoredAccount) {
        let b = account.balances;
        self.accounts += 1;
        self.debits_posted.add(b.debits_posted);
        self.credits_posted.add(b.credits_posted);
        self.debits_pending.add(b.debits_pending);
        self.credits_pending.add(b.credits_pending);
    }

    /// Debits equal credits, posted and pending.
    pub fn balanced(&self) -> bool {
        self.debits_posted == self.credits_posted && self.debits_pending == self.credits_pending
    }
}

/// The published balances of every account summed per asset, and within it per account code:
/// the books at a glance. Sums are 256-bit, so no set of balances can overflow them.
pub fn totals_by_asset(
    ledger: &MemoryLedger,
) -> BTreeMap<AssetId, (Totals, BTreeMap<u16, Totals>)> {
    let mut totals: BTreeMap<AssetId, (Totals, BTreeMap<u16, Totals>)> = BTreeMap::new();
    for account in ledger.visible_accounts() {
        let (asset, codes) = totals.entry(account.asset).or_default();
        asset.add(&account);
        codes.entry(account.code).or_default().add(&account);
    }
    totals
}

/// Where two dumps first disagree, for a human: the part, the id and both values.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum DumpDifference {
    LastTimestamp {
        left: Timestamp,
        right: Timestamp,
    },
    Asset {
        id: AssetId,
        left: Option<Asset>,
        right: Option<Asset>,
    },
    Account {
        id: AccountId,
        left: Option<StoredAccount>,
        right: Option<StoredAccount>,
    },
    /// Transfers are compared in timestamp order; the first that differs (or exists on one
    /// side only) is named.
    Transfer {
        id: TransferId,
        left: Option<TransferView>,
        right: Option<TransferView>,
    },
    FailedAccount {
        id: AccountId,
        left: Option<FailedEvent>,
        right: Option<FailedEvent>,
    },
    FailedTransfer {
        id: TransferId,
        left: Option<FailedEvent>,
        right: Option<FailedEvent>,
    },
}

impl LedgerDump {
    /// The first place where `self` (left) and `other` (right) differ, or `None` when they are
    /// equal. Parts are compared in the order of the struct's fields.
    pub fn first_difference(&self, other: &LedgerDump) -> Option<DumpDifference> {
        if let Some((id, left, right)) = first_keyed(&self.assets, &other.assets, |a| a.id) {
            return Some(DumpDifference::Asset { id, left, right });
        }
        if let Some((id, left, right)) = first_keyed(&self.accounts, &other.accounts, |a| a.id) {
            return Some(DumpDifference::Account { id, left, right });
        }
        // Transfers are in timestamp order, so the first mismatch is the earliest in the log.
        let pairs = self.transfers.iter().zip(&other.transfers);
        if let Some((left, right)) = pairs.clone().find(|(l, r)| l != r) {
            return Some(DumpDifference::Transfer {
                id: left.id,
                left: Some(*left),
                right: Some(*right),
            });
        }
        let common = self.transfers.len().min(other.transfers.len());
        if let Some(left) = self.transfers.get(common) {
            return Some(DumpDifference::Transfer {
                id: left.id,
                left: Some(*left),
                right: None,
            });
        }
        if let Some(right) = other.transfers.get(common) {
            return Some(DumpDifference::Transfer {
                id: right.id,
                left: None,
                right: Some(*right),
            });
        }
        let failed = |(id, event): &(AccountId, FailedEvent)| (*id, *event);
        let (left, right): (Vec<_>, Vec<_>) = (
            self.failed_accounts.iter().map(failed).collect(),
            other.failed_accounts.iter().map(failed).collect(),
        );
        if let Some((id, left, right)) = first_keyed(&left, &right, |(id, _)| *id) {
            return Some(DumpDifference::FailedAccount {
                id,
                left: left.map(|(_, e)| e),
                right: right.map(|(_, e)| e),
            });
        }
        if let Some((id, left, right)) = first_keyed(
            &self.failed_transfers,
            &other.failed_transfers,
            |(id, _)| *id,
        ) {
            return Some(DumpDifference::FailedTransfer {
                id,
                left: left.map(|(_, e)| e),
                right: right.map(|(_, e)| e),
            });
        }
        if self.last_timestamp != other.last_timestamp {
            return Some(DumpDifference::LastTimestamp {
                left: self.last_timestamp,
                right: other.last_timestamp,
            });
        }
        debug_assert_eq!(self, other, "dumps without a difference are equal");
        None
    }
}

impl std::fmt::Display for DumpDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn side<T: std::fmt::Debug>(value: &Option<T>) -> String {
            value
                .as_ref()
                .map_or_else(|| "absent".to_string(), |v| format!("{v:?}"))
        }
        match self {
            DumpDifference::LastTimestamp { left, right } => {
                write!(f, "last timestamp: {} vs {}", left.0, right.0)
            }
            DumpDifference::Asset { id, left, right } => {
                write!(f, "asset {}: {} vs {}", id.0, side(left), side(right))
            }
            DumpDifference::Account { id, left, right } => {
                write!(f, "account {}: {} vs {}", id.0, side(left), side(right))
            }
            DumpDifference::Transfer { id, left, right } => {
                write!(f, "transfer {:#x}: {} vs {}", id.0, side(left), side(right))
            }
            DumpDifference::FailedAccount { id, left, right } => {
                write!(
                    f,
                    "failed account {}: {} vs {}",
                    id.0,
                    side(left),
                    side(right)
                )
            }
            DumpDifference::FailedTransfer { id, left, right } => {
                write!(
                    f,
                    "failed transfer {:#x}: {} vs {}",
                    id.0,
                    side(left),
                    side(right)
                )
            }
        }
    }
}

/// The first key at which two lists sorted by that key differ: present on one side only, or
/// with different values.
fn first_keyed<T: Clone + PartialEq, K: Ord + Copy>(
    left: &[T],
    right: &[T],
    key: impl Fn(&T) -> K,
) -> Option<(K, Option<T>, Option<T>)> {
    let (mut i, mut j) = (0, 0);
    loop {
        match (left.get(i), right.get(j)) {
            (None, None) => return None,
            (Some(l), None) => return Some((key(l), Some(l.clone()), None)),
            (None, Some(r)) => return Some((key(r), None, Some(r.clone()))),
            (Some(l), Some(r)) => match key(l).cmp(&key(r)) {
                std::cmp::Ordering::Less => return Some((key(l), Some(l.clone()), None)),
                std::cmp::Ordering::Greater => return Some((key(r), None, Some(r.clone()))),
                std::cmp::Ordering::Equal if l != r => {
                    return Some((key(l), Some(l.clone()), Some(r.clone())))
                }
                std::cmp::Ordering::Equal => (i, j) = (i + 1, j + 1),
            },
        }
    }
}

/// Lower-case hex of a state hash, for logs and reports.
pub fn hash_hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}
