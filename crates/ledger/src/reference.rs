//! [`ReferenceLedger`]: a second, deliberately naive implementation of the ledger's rules,
//! written for clarity rather than speed. A linked chain runs on a clone of the whole state and
//! the clone is thrown away if the chain fails. Property tests drive it and [`crate::MemoryLedger`]
//! with the same batches and require identical results and identical dumps.

use std::collections::BTreeMap;

use crate::audit::LedgerDump;
use crate::memory::TransferView;
use crate::results::{AccountResult, AssetResult, BatchError, BatchResults, TransferResult};
use crate::rules::{account_fingerprint, transfer_fingerprint};
use crate::state::{FailedEvent, StoredAccount};
use crate::types::{
    Account, AccountFlags, AccountId, Amount, Asset, Balances, Operation, PendingStatus, Timestamp,
    Transfer, TransferFlags, TransferId, ASSET_SCALE_MAX, BATCH_EVENTS_MAX,
};

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// The naive ledger.
#[derive(Clone, Default, Debug)]
pub struct ReferenceLedger {
    last_timestamp: u64,
    assets: BTreeMap<u32, Asset>,
    accounts: BTreeMap<u128, StoredAccount>,
    /// In timestamp order.
    transfers: Vec<TransferView>,
    /// Transfer id → position in `transfers`, so lookups are not a scan.
    positions: BTreeMap<u128, usize>,
    /// Live holds with a timeout: (expires_at, position).
    timeouts: std::collections::BTreeSet<(u128, usize)>,
    failed_accounts: BTreeMap<u128, FailedEvent>,
    failed_transfers: BTreeMap<u128, FailedEvent>,
}

impl ReferenceLedger {
    pub fn new() -> ReferenceLedger {
        ReferenceLedger::default()
    }

    pub fn dump(&self) -> LedgerDump {
        LedgerDump {
            last_timestamp: Timestamp(self.last_timestamp),
            assets: self.assets.values().copied().collect(),
            accounts: self.accounts.values().copied().collect(),
            transfers: self.transfers.clone(),
            failed_accounts: self
                .failed_accounts
                .iter()
                .map(|(id, f)| (AccountId(*id), *f))
                .collect(),
            failed_transfers: self
                .failed_transfers
                .iter()
                .map(|(id, f)| (TransferId(*id), *f))
                .collect(),
        }
    }

    pub fn apply(
        &mut self,
        timestamp: Timestamp,
        operation: &Operation,
    ) -> Result<BatchResults, BatchError> {
        let events = operation.len();
        if events > BATCH_EVENTS_MAX {
            return Err(BatchError::TooManyEvents {
                events,
                max: BATCH_EVENTS_MAX,
            });
        }
        if timestamp.0 <= self.last_timestamp {
            return Err(BatchError::TimestampNotIncreasing {
                timestamp: timestamp.0,
                last: self.last_timestamp,
            });
        }
        if timestamp.0.checked_add(events as u64).is_none() {
            return Err(BatchError::TimestampOverflow {
                timestamp: timestamp.0,
                events,
            });
        }
        self.expire(timestamp.0);
        let results = match operation {
            Operation::CreateAssets(assets) => {
                BatchResults::Assets(assets.iter().map(|a| self.create_asset(a)).collect())
            }
            Operation::CreateAccounts(accounts) => BatchResults::Accounts(self.chains(
                timestamp.0,
                accounts,
                |a| a.flags.contains(AccountFlags::LINKED),
                ReferenceLedger::account_event,
            )),
            Operation::CreateTransfers(transfers) => BatchResults::Transfers(self.chains(
                timestamp.0,
                transfers,
                |t| t.flags.contains(TransferFlags::LINKED),
                ReferenceLedger::transfer_event,
            )),
        };
        self.last_timestamp = timestamp.0 + events.max(1) as u64 - 1;
        Ok(results)
    }

    fn expire(&mut self, now: u64) {
        while let Some(&(at, index)) = self.timeouts.first() {
            if at > u128::from(now) {
                break;
            }
            self.timeouts.remove(&(at, index));
            let t = self.transfers[index];
            if t.hold_status != Some(PendingStatus::Pending) {
                continue;
            }
            self.transfers[index].hold_status = Some(PendingStatus::Expired);
            self.balances(t.debit_account_id).debits_pending.0 -= t.amount.0;
            self.balances(t.credit_account_id).credits_pending.0 -= t.amount.0;
        }
    }

    fn push_transfer(&mut self, transfer: TransferView) {
        let index = self.transfers.len();
        self.positions.insert(transfer.id.0, index);
        if transfer.hold_status == Some(PendingStatus::Pending) && transfer.timeout_s > 0 {
            let at = u128::from(transfer.timestamp.0)
                + u128::from(transfer.timeout_s) * NANOS_PER_SECOND;
            self.timeouts.insert((at, index));
        }
        self.transfers.push(transfer);
    }

    fn balances(&mut self, id: AccountId) -> &mut Balances {
        &mut self
            .accounts
            .get_mut(&id.0)
            .expect("account exists")
            .balances
    }

    fn create_asset(&mut self, asset: &Asset) -> AssetResult {
        if asset.id.0 == 0 {
            return AssetResult::IdMustNotBeZero;
        }
        if let Some(existing) = self.assets.get(&asset.id.0) {
            return if existing == asset {
                AssetResult::Exists
            } else {
                AssetResult::ExistsWithDifferentFields
            };
        }
        if asset.scale > ASSET_SCALE_MAX {
            return AssetResult::ScaleOutOfRange;
        }
        if self.assets.values().any(|a| a.code == asset.code) {
            return AssetResult::CodeAlreadyUsed;
        }
        self.assets.insert(asset.id.0, *asset);
        AssetResult::Ok
    }

    /// Chains, the slow and obvious way. `event` returns (result, whether the id was new).
    fn chains<E, R: Copy + PartialEq + ChainResult>(
        &mut self,
        timestamp: u64,
        events: &[E],
        linked: impl Fn(&E) -> bool,
        event: impl Fn(&mut ReferenceLedger, &E, u64, Mode) -> R,
    ) -> Vec<R> {
        let mut results = Vec::new();
        let mut start = 0;
        while start < events.len() {
            let mut end = start;
            while end < events.len() && linked(&events[end]) {
                end += 1;
            }
            let open = end == events.len();
            let end = if open { end } else { end + 1 };
            let before = self.clone();
            let mut chain_results = Vec::new();
            let mut failed = None;
            let mut new_ids = Vec::new();
            for (offset, e) in events[start..end].iter().enumerate() {
                let ts = timestamp + (start + offset) as u64;
                let new_id = event(self, e, ts, Mode::IsNew) == R::OK;
                new_ids.push(new_id);
                let r = event(self, e, ts, Mode::Apply);
                chain_results.push(r);
                if r != R::OK && r != R::EXISTS {
                    failed = Some((offset, r, new_id));
                    break;
                }
            }
            if failed.is_none() && open {
                let offset = end - start - 1;
                failed = Some((offset, R::CHAIN_OPEN, new_ids[offset]));
            }
            if let Some((failed_offset, failed_result, failed_new)) = failed {
                *self = before;
                for (offset, e) in events[start..end].iter().enumerate() {
                    let ts = timestamp + (start + offset) as u64;
                    let r = if offset == failed_offset {
                        if failed_new && event(self, e, ts, Mode::IsNew) == R::OK {
                            event(self, e, ts, Mode::Remember(failed_result.code()));
                        }
                        failed_result
                    } else if event(self, e, ts, Mode::IdInvalid) != R::OK {
                        R::LINKED_FAILED
                    } else if event(self, e, ts, Mode::IsNew) != R::OK {
                        event(self, e, ts, Mode::Replay)
                    } else {
                        event(self, e, ts, Mode::Remember(R::LINKED_FAILED.code()));
                        R::LINKED_FAILED
                    };
                    results.push(r);
                }
            } else {
                results.extend(chain_results);
            }
            start = end;
        }
        results
    }

    fn account_event(&mut self, a: &Account, ts: u64, mode: Mode) -> AccountResult {
        let id_invalid = match a.id.0 {
            0 => Some(AccountResult::IdMustNotBeZero),
            u128::MAX => Some(AccountResult::IdMustNotBeIntMax),
            _ => None,
        };
        let known =
            self.accounts.contains_key(&a.id.0) || self.failed_accounts.contains_key(&a.id.0);
        match mode {
            Mode::IdInvalid => return id_invalid.unwrap_or(AccountResult::Ok),
            Mode::IsNew => {
                return if id_invalid.is_none() && !known {
                    AccountResult::Ok
                } else {
                    AccountResult::Exists
                }
            }
            Mode::Remember(code) => {
                let f = FailedEvent {
                    code,
                    fingerprint: account_fingerprint(a),
                };
                self.failed_accounts.insert(a.id.0, f);
                return AccountResult::Ok;
            }
            Mode::Replay | Mode::Apply => {}
        }
        if let Some(r) = id_invalid {
            return r;
        }
        if let Some(s) = self.accounts.get(&a.id.0) {
            let same = s.asset == a.asset
                && s.code == a.code
                && s.flags == a.flags
                && s.overdraft_limit == a.overdraft_limit
                && s.user_data == a.user_data;
            return if same {
                AccountResult::Exists
            } else {
                AccountResult::ExistsWithDifferentFields
            };
        }
        if let Some(f) = self.failed_accounts.get(&a.id.0) {
            if f.fingerprint != account_fingerprint(a) {
                return AccountResult::ExistsWithDifferentFields;
            }
            return AccountResult::from_code(f.code).expect("valid code");
        }
        assert!(matches!(mode, Mode::Apply));
        if a.flags.has_unknown_bits() {
            return AccountResult::FlagsUnknown;
        }
        if a.flags
            .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
            && a.flags
                .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
        {
            return AccountResult::FlagsAreMutuallyExclusive;
        }
        if a.overdraft_limit.0 != 0
            && !a
                .flags
                .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
        {
            return AccountResult::OverdraftLimitRequiresDebitsMustNotExceedCredits;
        }
        if !self.assets.contains_key(&a.asset.0) {
            return AccountResult::AssetNotFound;
        }
        self.accounts.insert(
            a.id.0,
            StoredAccount {
                id: a.id,
                asset: a.asset,
                code: a.code,
                flags: a.flags,
                overdraft_limit: a.overdraft_limit,
                user_data: a.user_data,
                timestamp: Timestamp(ts),
                balances: Balances::default(),
            },
        );
        AccountResult::Ok
    }

    fn transfer_event(&mut self, t: &Transfer, ts: u64, mode: Mode) -> TransferResult {
        use TransferResult as R;
        let id_invalid = match t.id.0 {
            0 => Some(R::IdMustNotBeZero),
            u128::MAX => Some(R::IdMustNotBeIntMax),
            _ => None,
        };
        let stored = self.positions.get(&t.id.0).copied();
        let known = stored.is_some() || self.failed_transfers.contains_key(&t.id.0);
        match mode {
            Mode::IdInvalid => return id_invalid.unwrap_or(R::Ok),
            Mode::IsNew => {
                return if id_invalid.is_none() && !known {
                    R::Ok
                } else {
                    R::Exists
                }
            }
            Mode::Remember(code) => {
                let f = FailedEvent {
                    code,
                    fingerprint: transfer_fingerprint(t),
                };
                self.failed_transfers.insert(t.id.0, f);
                return R::Ok;
            }
            Mode::Replay | Mode::Apply => {}
        }
        if let Some(r) = id_invalid {
            return r;
        }
        if let Some(index) = stored {
            let s = self.transfers[index];
            let resolves = s.flags.contains(TransferFlags::POST_PENDING)
                || s.flags.contains(TransferFlags::VOID_PENDING);
            let m =
                |requested: u128, actual: u128| (resolves && requested == 0) || requested == actual;
            let amount_ok = if s.flags.contains(TransferFlags::BALANCING) {
                t.amount >= s.amount
            } else {
                m(t.amount.0, s.amount.0)
            };
            let same = t.flags == s.flags
                && m(t.debit_account_id.0, s.debit_account_id.0)
                && m(t.credit_account_id.0, s.credit_account_id.0)
                && m(u128::from(t.asset.0), u128::from(s.asset.0))
                && amount_ok
                && t.pending_id == s.pending_id
                && t.user_data == s.user_data
                && t.timeout_s == s.timeout_s
                && t.code == s.code;
            return if same {
                R::Exists
            } else {
                R::ExistsWithDifferentFields
            };
        }
        if let Some(f) = self.failed_transfers.get(&t.id.0) {
            if f.fingerprint != transfer_fingerprint(t) {
                return R::ExistsWithDifferentFields;
            }
            return R::from_code(f.code).expect("valid code");
        }
        assert!(matches!(mode, Mode::Apply));
        let f = t.flags;
        if f.has_unknown_bits() {
            return R::FlagsUnknown;
        }
        let post = f.contains(TransferFlags::POST_PENDING);
        let void = f.contains(TransferFlags::VOID_PENDING);
        let pending = f.contains(TransferFlags::PENDING);
        if (pending as u8 + post as u8 + void as u8) > 1
            || ((post || void) && f.contains(TransferFlags::BALANCING))
        {
            return R::FlagsAreMutuallyExclusive;
        }
        if post || void {
            if t.pending_id.0 == 0 {
                return R::PendingIdRequired;
            }
            if t.pending_id == t.id {
                return R::PendingIdMustDifferFromId;
            }
        } else {
            if t.pending_id.0 != 0 {
                return R::PendingIdMustBeZero;
            }
            if t.amount.0 == 0 {
                return R::ZeroAmount;
            }
            if t.debit_account_id == t.credit_account_id {
                return R::SameAccount;
            }
        }
        if t.timeout_s != 0 && !pending {
            return R::TimeoutRequiresPending;
        }
        if post || void {
            self.resolve(t, ts, post)
        } else {
            self.transfer(t, ts, pending)
        }
    }

    fn transfer(&mut self, t: &Transfer, ts: u64, pending: bool) -> TransferResult {
        use TransferResult as R;
        let Some(debit) = self.accounts.get(&t.debit_account_id.0).copied() else {
            return R::DebitAccountNotFound;
        };
        let Some(credit) = self.accounts.get(&t.credit_account_id.0).copied() else {
            return R::CreditAccountNotFound;
        };
        if debit.asset != t.asset || credit.asset != t.asset {
            return R::AssetMismatch;
        }
        let limited = debit
            .flags
            .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS);
        let db = debit.balances;
        let room = (db.credits_posted.0.saturating_add(debit.overdraft_limit.0))
            .saturating_sub(db.debits_posted.0.saturating_add(db.debits_pending.0));
        let too_much = if debit.overdraft_limit.0 == 0 {
            R::ExceedsCredits
        } else {
            R::ExceedsLimit
        };
        let mut amount = t.amount.0;
        if t.flags.contains(TransferFlags::BALANCING) {
            if limited {
                amount = amount.min(room);
            }
            if amount == 0 {
                return too_much;
            }
        }
        let mut d = debit.balances;
        let mut c = credit.balances;
        let (ds, cs) = if pending {
            (&mut d.debits_pending.0, &mut c.credits_pending.0)
        } else {
            (&mut d.debits_posted.0, &mut c.credits_posted.0)
        };
        let (Some(new_d), Some(new_c)) = (ds.checked_add(amount), cs.checked_add(amount)) else {
            return R::Overflow;
        };
        *ds = new_d;
        *cs = new_c;
        if d.debits_pending.0.checked_add(d.debits_posted.0).is_none() {
            return R::Overflow;
        }
        let Some(credits_total) = c.credits_pending.0.checked_add(c.credits_posted.0) else {
            return R::Overflow;
        };
        if limited && amount > room {
            return too_much;
        }
        if credit
            .flags
            .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
            && credits_total > c.debits_posted.0
        {
            return R::ExceedsDebits;
        }
        if pending && t.timeout_s > 0 {
            let at = u128::from(ts) + u128::from(t.timeout_s) * NANOS_PER_SECOND;
            if at >= u128::from(u64::MAX) {
                return R::Overflow;
            }
        }
        self.balances(debit.id).clone_from(&d);
        self.balances(credit.id).clone_from(&c);
        self.push_transfer(TransferView {
            id: t.id,
            debit_account_id: debit.id,
            credit_account_id: credit.id,
            amount: Amount(amount),
            pending_id: TransferId(0),
            user_data: t.user_data,
            timeout_s: t.timeout_s,
            asset: t.asset,
            code: t.code,
            flags: t.flags,
            timestamp: Timestamp(ts),
            hold_status: pending.then_some(PendingStatus::Pending),
        });
        R::Ok
    }

    fn resolve(&mut self, t: &Transfer, ts: u64, post: bool) -> TransferResult {
        use TransferResult as R;
        let Some(index) = self.positions.get(&t.pending_id.0).copied() else {
            return R::PendingNotFound;
        };
        let hold = self.transfers[index];
        if !hold.flags.contains(TransferFlags::PENDING) {
            return R::PendingIdNotAHold;
        }
        if t.debit_account_id.0 != 0 && t.debit_account_id != hold.debit_account_id {
            return R::PendingHasDifferentDebitAccount;
        }
        if t.credit_account_id.0 != 0 && t.credit_account_id != hold.credit_account_id {
            return R::PendingHasDifferentCreditAccount;
        }
        if t.asset.0 != 0 && t.asset != hold.asset {
            return R::PendingHasDifferentAsset;
        }
        match hold.hold_status {
            Some(PendingStatus::Posted) => return R::PendingAlreadyPosted,
            Some(PendingStatus::Voided) => return R::PendingAlreadyVoided,
            Some(PendingStatus::Expired) => return R::PendingExpired,
            _ => {}
        }
        let amount = if post {
            let amount = if t.amount.0 == 0 {
                hold.amount
            } else {
                t.amount
            };
            if amount > hold.amount {
                return R::ExceedsPendingAmount;
            }
            amount
        } else {
            if t.amount.0 != 0 && t.amount != hold.amount {
                return R::VoidAmountMustMatch;
            }
            hold.amount
        };
        let mut d = *self.balances(hold.debit_account_id);
        let mut c = *self.balances(hold.credit_account_id);
        if post {
            let (Some(nd), Some(nc)) = (
                d.debits_posted.checked_add(amount),
                c.credits_posted.checked_add(amount),
            ) else {
                return R::Overflow;
            };
            d.debits_posted = nd;
            c.credits_posted = nc;
        }
        d.debits_pending.0 -= hold.amount.0;
        c.credits_pending.0 -= hold.amount.0;
        *self.balances(hold.debit_account_id) = d;
        *self.balances(hold.credit_account_id) = c;
        self.transfers[index].hold_status = Some(if post {
            PendingStatus::Posted
        } else {
            PendingStatus::Voided
        });
        self.push_transfer(TransferView {
            id: t.id,
            debit_account_id: hold.debit_account_id,
            credit_account_id: hold.credit_account_id,
            amount,
            pending_id: hold.id,
            user_data: t.user_data,
            timeout_s: t.timeout_s,
            asset: hold.asset,
            code: t.code,
            flags: t.flags,
            timestamp: Timestamp(ts),
            hold_status: None,
        });
        R::Ok
    }
}

/// What the event function is asked to do; one function per event kind keeps the rules in
/// one place.
#[derive(Clone, Copy)]
enum Mode {
    /// `Ok` when the id is valid; the reserved-id result otherwise.
    IdInvalid,
    /// `Ok` when the id is valid and unknown.
    IsNew,
    /// The answer for a known id.
    Replay,
    /// Apply a new event (or answer for a known id).
    Apply,
    /// Remember a failure with this code.
    Remember(u8),
}

trait ChainResult {
    const OK: Self;
    const EXISTS: Self;
    const LINKED_FAILED: Self;
    const CHAIN_OPEN: Self;
    fn code(self) -> u8;
}

impl ChainResult for AccountResult {
    const OK: Self = AccountResult::Ok;
    const EXISTS: Self = AccountResult::Exists;
    const LINKED_FAILED: Self = AccountResult::LinkedEventFailed;
    const CHAIN_OPEN: Self = AccountResult::LinkedEventChainOpen;
    fn code(self) -> u8 {
        AccountResult::code(self)
    }
}

impl ChainResult for TransferResult {
    const OK: Self = TransferResult::Ok;
    const EXISTS: Self = TransferResult::Exists;
    const LINKED_FAILED: Self = TransferResult::LinkedEventFailed;
    const CHAIN_OPEN: Self = TransferResult::LinkedEventChainOpen;
    fn code(self) -> u8 {
        TransferResult::code(self)
    }
}
