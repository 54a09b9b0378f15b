//! The ledger's rules: how a batch of commands changes a [`LedgerState`].
//!
//! Everything here is deterministic: the same state and the same batch (with the same
//! timestamp) always give the same results and the same new state. Each event is checked
//! completely before it touches the state, so a failed event changes nothing; a failed linked
//! chain is undone through an undo log.

use crate::results::{AccountResult, AssetResult, BatchError, BatchResults, TransferResult};
use crate::state::{hold_expires_at, FailedEvent, LedgerState, StoredAccount, StoredTransfer};
use crate::types::{
    Account, AccountFlags, Amount, Asset, Balances, Operation, PendingStatus, Timestamp, Transfer,
    TransferFlags, TransferId, ASSET_SCALE_MAX, BATCH_EVENTS_MAX,
};

/// Applies one batch at `timestamp`. Event `i` gets timestamp `timestamp + i`, so every event
/// of the ledger has a unique, increasing timestamp. Holds due at `timestamp` expire first.
pub fn apply<S: LedgerState>(
    state: &mut S,
    timestamp: Timestamp,
    operation: &Operation,
) -> Result<BatchResults, BatchError> {
    check_batch(state, timestamp, operation.len())?;
    expire_holds(state, timestamp);
    let results = match operation {
        Operation::CreateAssets(assets) => BatchResults::Assets(create_assets(state, assets)),
        Operation::CreateAccounts(accounts) => {
            BatchResults::Accounts(run_chains::<_, AccountEvents>(state, timestamp, accounts))
        }
        Operation::CreateTransfers(transfers) => {
            BatchResults::Transfers(run_chains::<_, TransferEvents>(state, timestamp, transfers))
        }
    };
    // An empty batch still consumes its timestamp, so that timestamps never repeat.
    let last = timestamp.0 + (operation.len().max(1) as u64) - 1;
    state.set_last_timestamp(Timestamp(last));
    Ok(results)
}

fn check_batch<S: LedgerState>(
    state: &S,
    timestamp: Timestamp,
    events: usize,
) -> Result<(), BatchError> {
    if events > BATCH_EVENTS_MAX {
        return Err(BatchError::TooManyEvents {
            events,
            max: BATCH_EVENTS_MAX,
        });
    }
    let last = state.last_timestamp();
    if timestamp <= last {
        return Err(BatchError::TimestampNotIncreasing {
            timestamp: timestamp.0,
            last: last.0,
        });
    }
    if timestamp.0.checked_add(events as u64).is_none() {
        return Err(BatchError::TimestampOverflow {
            timestamp: timestamp.0,
            events,
        });
    }
    Ok(())
}

/// Releases every hold whose timeout has passed by `now`, in (expiry, insertion) order.
fn expire_holds<S: LedgerState>(state: &mut S, now: Timestamp) {
    while let Some(hold) = state.next_expired(now) {
        let stored = state.transfer(hold);
        assert!(stored.flags.contains(TransferFlags::PENDING));
        release_hold(state, &stored);
        state.set_pending_status(hold, PendingStatus::Expired, now);
    }
}

/// Takes a hold's amount back out of both accounts' pending balances.
fn release_hold<S: LedgerState>(
    state: &mut S,
    hold: &StoredTransfer<S::AccountRef, S::TransferRef>,
) {
    let (debit, credit) = without_hold(
        state.account(hold.debit).balances,
        state.account(hold.credit).balances,
        hold.amount,
    );
    state.set_balances(hold.debit, debit);
    state.set_balances(hold.credit, credit);
}

/// The debit and credit accounts' balances with a live hold of `amount` taken back out of
/// their pending sides. A live hold's amount is part of both pending balances when it is
/// created; finding less there means the state is corrupt.
fn without_hold(mut debit: Balances, mut credit: Balances, amount: Amount) -> (Balances, Balances) {
    debit.debits_pending = debit
        .debits_pending
        .checked_sub(amount)
        .expect("invariant: debits_pending includes every live hold");
    credit.credits_pending = credit
        .credits_pending
        .checked_sub(amount)
        .expect("invariant: credits_pending includes every live hold");
    (debit, credit)
}

fn create_assets<S: LedgerState>(state: &mut S, assets: &[Asset]) -> Vec<AssetResult> {
    assets
        .iter()
        .map(|asset| create_asset(state, asset))
        .collect()
}

fn create_asset<S: LedgerState>(state: &mut S, asset: &Asset) -> AssetResult {
    if asset.id.0 == 0 {
        return AssetResult::IdMustNotBeZero;
    }
    if let Some(existing) = state.asset(asset.id) {
        return if existing == *asset {
            AssetResult::Exists
        } else {
            AssetResult::ExistsWithDifferentFields
        };
    }
    if asset.scale > ASSET_SCALE_MAX {
        return AssetResult::ScaleOutOfRange;
    }
    if state.asset_by_code(asset.code).is_some() {
        return AssetResult::CodeAlreadyUsed;
    }
    state.insert_asset(*asset);
    AssetResult::Ok
}

/// What undoing one step of a linked chain takes.
enum Undo<A, T> {
    Balances(A, Balances),
    AccountInserted,
    TransferInserted,
    HoldReopened(T),
}

fn rollback<S: LedgerState>(state: &mut S, undo: &mut Vec<Undo<S::AccountRef, S::TransferRef>>) {
    while let Some(step) = undo.pop() {
        match step {
            Undo::Balances(account, balances) => state.set_balances(account, balances),
            Undo::AccountInserted => state.remove_last_account(),
            Undo::TransferInserted => state.remove_last_transfer(),
            Undo::HoldReopened(hold) => {
                state.set_pending_status(hold, PendingStatus::Pending, Timestamp(0))
            }
        }
    }
}

/// The parts of an event kind (accounts, transfers) the shared chain logic needs.
trait EventKind<S: LedgerState> {
    type Event;
    type Result: Copy + Eq;
    const OK: Self::Result;
    const EXISTS: Self::Result;
    const LINKED_EVENT_FAILED: Self::Result;
    const LINKED_EVENT_CHAIN_OPEN: Self::Result;

    fn linked(event: &Self::Event) -> bool;
    /// Hints the state that `event` will be looked up soon.
    fn prefetch(_state: &S, _event: &Self::Event) {}
    /// Set when the id itself is reserved; such an event is never remembered.
    fn id_invalid(event: &Self::Event) -> Option<Self::Result>;
    /// The answer for an id seen before: `exists`, `exists_with_different_fields`, or the
    /// original failure.
    fn replay(state: &S, event: &Self::Event) -> Option<Self::Result>;
    /// Applies a new event, or returns why not without changing anything.
    fn apply(
        state: &mut S,
        event: &Self::Event,
        timestamp: Timestamp,
        undo: &mut Vec<Undo<S::AccountRef, S::TransferRef>>,
    ) -> Self::Result;
    /// Remembers a failed new id so that it is never reused and retries get the same answer.
    fn remember_failure(state: &mut S, event: &Self::Event, result: Self::Result);
}

/// How many events ahead the rules ask the state to prefetch: far enough to hide a memory
/// access behind the work on the events in between.
const PREFETCH_DISTANCE: usize = 16;

/// Runs events as linked chains: a chain is a maximal run of events flagged `LINKED` plus the
/// event that ends it. A chain succeeds as a whole or leaves no trace but remembered failures.
fn run_chains<S: LedgerState, K: EventKind<S>>(
    state: &mut S,
    timestamp: Timestamp,
    events: &[K::Event],
) -> Vec<K::Result> {
    let mut results = Vec::with_capacity(events.len());
    let mut undo = Vec::new();
    let mut start = 0;
    while start < events.len() {
        let mut last = start;
        while last < events.len() && K::linked(&events[last]) {
            last += 1;
        }
        let chain_open = last == events.len();
        let end = if chain_open { events.len() } else { last + 1 };
        run_chain::<S, K>(
            state,
            timestamp,
            events,
            start..end,
            chain_open,
            &mut undo,
            &mut results,
        );
        start = end;
    }
    debug_assert_eq!(results.len(), events.len());
    results
}

fn run_chain<S: LedgerState, K: EventKind<S>>(
    state: &mut S,
    timestamp: Timestamp,
    events: &[K::Event],
    chain: std::ops::Range<usize>,
    chain_open: bool,
    undo: &mut Vec<Undo<S::AccountRef, S::TransferRef>>,
    results: &mut Vec<K::Result>,
) {
    undo.clear();
    // (index, result, whether the event's id was new) of the event that failed the chain.
    let mut failure = None;
    for index in chain.clone() {
        if let Some(ahead) = events.get(index + PREFETCH_DISTANCE) {
            K::prefetch(state, ahead);
        }
        let event = &events[index];
        let event_timestamp = Timestamp(timestamp.0 + index as u64);
        let (result, new_id) = if let Some(result) = K::id_invalid(event) {
            (result, false)
        } else if let Some(result) = K::replay(state, event) {
            (result, false)
        } else {
            (K::apply(state, event, event_timestamp, undo), true)
        };
        results.push(result);
        if result != K::OK && result != K::EXISTS {
            failure = Some((index, result, new_id));
            break;
        }
        if failure.is_none() && chain_open && index == chain.end - 1 {
            failure = Some((index, K::LINKED_EVENT_CHAIN_OPEN, new_id));
        }
    }
    let Some((failed, failed_result, failed_new_id)) = failure else {
        return;
    };
    rollback(state, undo);
    results.truncate(chain.start);
    // After the rollback, every event of the chain gets its final answer in order: the failing
    // one keeps its reason, the others say `linked_event_failed` unless their id was known
    // before. New ids are remembered so that a retry of the chain gets the same answers.
    for index in chain {
        let event = &events[index];
        let result = if index == failed {
            if failed_new_id && K::replay(state, event).is_none() {
                K::remember_failure(state, event, failed_result);
            }
            failed_result
        } else if K::id_invalid(event).is_some() {
            K::LINKED_EVENT_FAILED
        } else if let Some(replayed) = K::replay(state, event) {
            replayed
        } else {
            K::remember_failure(state, event, K::LINKED_EVENT_FAILED);
            K::LINKED_EVENT_FAILED
        };
        results.push(result);
    }
}

/// FNV-1a over the little-endian bytes of the given words: a fixed, documented function, so
/// fingerprints stay the same across builds and backends.
fn fingerprint(words: &[u128]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET_BASIS;
    for word in words {
        for byte in word.to_le_bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

pub(crate) fn account_fingerprint(account: &Account) -> u64 {
    fingerprint(&[
        account.id.0,
        u128::from(account.asset.0),
        u128::from(account.code),
        u128::from(account.flags.0),
        account.overdraft_limit.0,
        account.user_data,
    ])
}

pub(crate) fn transfer_fingerprint(transfer: &Transfer) -> u64 {
    fingerprint(&[
        transfer.id.0,
        transfer.debit_account_id.0,
        transfer.credit_account_id.0,
        transfer.amount.0,
        transfer.pending_id.0,
        transfer.user_data,
        u128::from(transfer.timeout_s),
        u128::from(transfer.asset.0),
        u128::from(transfer.code),
        u128::from(transfer.flags.0),
    ])
}

fn replay_failure<R>(
    failed: FailedEvent,
    fingerprint: u64,
    from_code: fn(u8) -> Option<R>,
    different: R,
) -> R {
    if failed.fingerprint != fingerprint {
        return different;
    }
    // Codes are written by this module only; an unknown one means the state is corrupt.
    from_code(failed.code).expect("invariant: remembered failure codes are valid")
}

struct AccountEvents;

impl<S: LedgerState> EventKind<S> for AccountEvents {
    type Event = Account;
    type Result = AccountResult;
    const OK: AccountResult = AccountResult::Ok;
    const EXISTS: AccountResult = AccountResult::Exists;
    const LINKED_EVENT_FAILED: AccountResult = AccountResult::LinkedEventFailed;
    const LINKED_EVENT_CHAIN_OPEN: AccountResult = AccountResult::LinkedEventChainOpen;

    fn linked(event: &Account) -> bool {
        event.flags.contains(AccountFlags::LINKED)
    }

    fn id_invalid(event: &Account) -> Option<AccountResult> {
        match event.id.0 {
            0 => Some(AccountResult::IdMustNotBeZero),
            u128::MAX => Some(AccountResult::IdMustNotBeIntMax),
            _ => None,
        }
    }

    fn replay(state: &S, event: &Account) -> Option<AccountResult> {
        if let Some(existing) = state.find_account(event.id) {
            let stored = state.account(existing);
            let same = stored.asset == event.asset
                && stored.code == event.code
                && stored.flags == event.flags
                && stored.overdraft_limit == event.overdraft_limit
                && stored.user_data == event.user_data;
            return Some(if same {
                AccountResult::Exists
            } else {
                AccountResult::ExistsWithDifferentFields
            });
        }
        let failed = state.failed_account(event.id)?;
        Some(replay_failure(
            failed,
            account_fingerprint(event),
            AccountResult::from_code,
            AccountResult::ExistsWithDifferentFields,
        ))
    }

    fn apply(
        state: &mut S,
        event: &Account,
        timestamp: Timestamp,
        undo: &mut Vec<Undo<S::AccountRef, S::TransferRef>>,
    ) -> AccountResult {
        if event.flags.has_unknown_bits() {
            return AccountResult::FlagsUnknown;
        }
        let both_limits = AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS
            | AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS;
        if event.flags.contains(both_limits) {
            return AccountResult::FlagsAreMutuallyExclusive;
        }
        if !event.overdraft_limit.is_zero()
            && !event
                .flags
                .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
        {
            return AccountResult::OverdraftLimitRequiresDebitsMustNotExceedCredits;
        }
        if state.asset(event.asset).is_none() {
            return AccountResult::AssetNotFound;
        }
        assert!(
            state.has_room_for_account(),
            "account capacity is checked by the engine"
        );
        state.insert_account(StoredAccount {
            id: event.id,
            asset: event.asset,
            code: event.code,
            flags: event.flags,
            overdraft_limit: event.overdraft_limit,
            user_data: event.user_data,
            timestamp,
            balances: Balances::default(),
        });
        undo.push(Undo::AccountInserted);
        AccountResult::Ok
    }

    fn remember_failure(state: &mut S, event: &Account, result: AccountResult) {
        let failed = FailedEvent {
            code: result.code(),
            fingerprint: account_fingerprint(event),
        };
        state.insert_failed_account(event.id, failed);
    }
}

struct TransferEvents;

impl<S: LedgerState> EventKind<S> for TransferEvents {
    type Event = Transfer;
    type Result = TransferResult;
    const OK: TransferResult = TransferResult::Ok;
    const EXISTS: TransferResult = TransferResult::Exists;
    const LINKED_EVENT_FAILED: TransferResult = TransferResult::LinkedEventFailed;
    const LINKED_EVENT_CHAIN_OPEN: TransferResult = TransferResult::LinkedEventChainOpen;

    fn linked(event: &Transfer) -> bool {
        event.flags.contains(TransferFlags::LINKED)
    }

    fn prefetch(state: &S, event: &Transfer) {
        state.prefetch_transfer(event.id);
    }

    fn id_invalid(event: &Transfer) -> Option<TransferResult> {
        match event.id.0 {
            0 => Some(TransferResult::IdMustNotBeZero),
            u128::MAX => Some(TransferResult::IdMustNotBeIntMax),
            _ => None,
        }
    }

    fn replay(state: &S, event: &Transfer) -> Option<TransferResult> {
        if let Some(existing) = state.find_transfer(event.id) {
            return Some(if transfer_matches(state, existing, event) {
                TransferResult::Exists
            } else {
                TransferResult::ExistsWithDifferentFields
            });
        }
        let failed = state.failed_transfer(event.id)?;
        Some(replay_failure(
            failed,
            transfer_fingerprint(event),
            TransferResult::from_code,
            TransferResult::ExistsWithDifferentFields,
        ))
    }

    fn apply(
        state: &mut S,
        event: &Transfer,
        timestamp: Timestamp,
        undo: &mut Vec<Undo<S::AccountRef, S::TransferRef>>,
    ) -> TransferResult {
        if let Err(result) = check_transfer_fields(event) {
            return result;
        }
        if !state.has_room_for_transfer() {
            return TransferResult::LedgerFull;
        }
        let resolves_hold = event.flags.contains(TransferFlags::POST_PENDING)
            || event.flags.contains(TransferFlags::VOID_PENDING);
        let outcome = if resolves_hold {
            resolve_hold(state, event, timestamp, undo)
        } else {
            move_money(state, event, timestamp, undo)
        };
        match outcome {
            Ok(()) => TransferResult::Ok,
            Err(result) => result,
        }
    }

    fn remember_failure(state: &mut S, event: &Transfer, result: TransferResult) {
        let failed = FailedEvent {
            code: result.code(),
            fingerprint: transfer_fingerprint(event),
        };
        state.insert_failed_transfer(event.id, failed);
    }
}

/// Whether a retried transfer is the one already stored. Fields the original left to be
/// filled in (a post's accounts, asset and amount; a balancing transfer's amount) match the
/// values that were filled in.
fn transfer_matches<S: LedgerState>(state: &S, stored: S::TransferRef, event: &Transfer) -> bool {
    let stored = state.transfer(stored);
    let resolves_hold = stored.flags.contains(TransferFlags::POST_PENDING)
        || stored.flags.contains(TransferFlags::VOID_PENDING);
    let wildcard_or =
        |requested: u128, actual: u128| (resolves_hold && requested == 0) || requested == actual;
    let debit_id = state.account(stored.debit).id;
    let credit_id = state.account(stored.credit).id;
    let pending_id = stored
        .pending
        .map_or(TransferId(0), |hold| state.transfer(hold).id);
    let amount_matches = if stored.flags.contains(TransferFlags::BALANCING) {
        event.amount >= stored.amount
    } else {
        wildcard_or(event.amount.0, stored.amount.0)
    };
    event.flags == stored.flags
        && wildcard_or(event.debit_account_id.0, debit_id.0)
        && wildcard_or(event.credit_account_id.0, credit_id.0)
        && wildcard_or(u128::from(event.asset.0), u128::from(stored.asset.0))
        && amount_matches
        && event.pending_id == pending_id
        && event.user_data == stored.user_data
        && event.timeout_s == stored.timeout_s
        && event.code == stored.code
}

/// Checks that need no state.
fn check_transfer_fields(event: &Transfer) -> Result<(), TransferResult> {
    let flags = event.flags;
    if flags.has_unknown_bits() {
        return Err(TransferResult::FlagsUnknown);
    }
    let kinds = [
        TransferFlags::PENDING,
        TransferFlags::POST_PENDING,
        TransferFlags::VOID_PENDING,
    ];
    let kinds_set = kinds.iter().filter(|kind| flags.contains(**kind)).count();
    let resolves_hold =
        flags.contains(TransferFlags::POST_PENDING) || flags.contains(TransferFlags::VOID_PENDING);
    if kinds_set > 1 || (resolves_hold && flags.contains(TransferFlags::BALANCING)) {
        return Err(TransferResult::FlagsAreMutuallyExclusive);
    }
    if resolves_hold {
        if event.pending_id.0 == 0 {
            return Err(TransferResult::PendingIdRequired);
        }
        if event.pending_id == event.id {
            return Err(TransferResult::PendingIdMustDifferFromId);
        }
    } else {
        if event.pending_id.0 != 0 {
            return Err(TransferResult::PendingIdMustBeZero);
        }
        if event.amount.is_zero() {
            return Err(TransferResult::ZeroAmount);
        }
        if event.debit_account_id == event.credit_account_id {
            return Err(TransferResult::SameAccount);
        }
    }
    if event.timeout_s != 0 && !flags.contains(TransferFlags::PENDING) {
        return Err(TransferResult::TimeoutRequiresPending);
    }
    Ok(())
}

/// How much more the account may be debited, or `None` when nothing limits it.
fn debit_headroom(account: &StoredAccount) -> Option<u128> {
    if !account
        .flags
        .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
    {
        return None;
    }
    let b = account.balances;
    let allowed = b.credits_posted.0.saturating_add(account.overdraft_limit.0);
    let used = b.debits_posted.0.saturating_add(b.debits_pending.0);
    Some(allowed.saturating_sub(used))
}

/// The refusal for a debit beyond the headroom: a wallet runs out of credits, a tab hits its limit.
fn over_debit_result(account: &StoredAccount) -> TransferResult {
    if account.overdraft_limit.is_zero() {
        TransferResult::ExceedsCredits
    } else {
        TransferResult::ExceedsLimit
    }
}

/// A plain transfer or a new hold.
fn move_money<S: LedgerState>(
    state: &mut S,
    event: &Transfer,
    timestamp: Timestamp,
    undo: &mut Vec<Undo<S::AccountRef, S::TransferRef>>,
) -> Result<(), TransferResult> {
    let debit_ref = state
        .find_account(event.debit_account_id)
        .ok_or(TransferResult::DebitAccountNotFound)?;
    let credit_ref = state
        .find_account(event.credit_account_id)
        .ok_or(TransferResult::CreditAccountNotFound)?;
    let debit = state.account(debit_ref);
    let credit = state.account(credit_ref);
    if debit.asset != event.asset || credit.asset != event.asset {
        return Err(TransferResult::AssetMismatch);
    }
    let mut amount = event.amount;
    let headroom = debit_headroom(&debit);
    if event.flags.contains(TransferFlags::BALANCING) {
        if let Some(headroom) = headroom {
            amount = Amount(amount.0.min(headroom));
        }
        if amount.is_zero() {
            return Err(over_debit_result(&debit));
        }
    }
    let pending = event.flags.contains(TransferFlags::PENDING);
    let mut debit_balances = debit.balances;
    let mut credit_balances = credit.balances;
    let (debit_side, credit_side) = if pending {
        (
            &mut debit_balances.debits_pending,
            &mut credit_balances.credits_pending,
        )
    } else {
        (
            &mut debit_balances.debits_posted,
            &mut credit_balances.credits_posted,
        )
    };
    *debit_side = debit_side
        .checked_add(amount)
        .ok_or(TransferResult::Overflow)?;
    *credit_side = credit_side
        .checked_add(amount)
        .ok_or(TransferResult::Overflow)?;
    // Totals must fit too: limits compare pending + posted.
    let debits_total = debit_balances
        .debits_pending
        .checked_add(debit_balances.debits_posted);
    let credits_total = credit_balances
        .credits_pending
        .checked_add(credit_balances.credits_posted);
    let (Some(debits_total), Some(credits_total)) = (debits_total, credits_total) else {
        return Err(TransferResult::Overflow);
    };
    if let Some(headroom) = headroom {
        if amount.0 > headroom {
            return Err(over_debit_result(&debit));
        }
    }
    if credit
        .flags
        .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
        && credits_total > credit_balances.debits_posted
    {
        return Err(TransferResult::ExceedsDebits);
    }
    debug_assert!(debits_total >= debit_balances.debits_posted);
    let expires_at = if pending {
        hold_expires_at(timestamp, event.timeout_s)
    } else {
        None
    };
    if let Some(expires_at) = expires_at {
        if expires_at.0 == u64::MAX {
            return Err(TransferResult::Overflow);
        }
    }
    undo.push(Undo::Balances(debit_ref, debit.balances));
    undo.push(Undo::Balances(credit_ref, credit.balances));
    state.set_balances(debit_ref, debit_balances);
    state.set_balances(credit_ref, credit_balances);
    state.insert_transfer(StoredTransfer {
        id: event.id,
        debit: debit_ref,
        credit: credit_ref,
        amount,
        pending: None,
        user_data: event.user_data,
        timeout_s: event.timeout_s,
        asset: event.asset,
        code: event.code,
        flags: event.flags,
        timestamp,
    });
    undo.push(Undo::TransferInserted);
    Ok(())
}

/// Posts (all or part of) or voids a hold, exactly once.
fn resolve_hold<S: LedgerState>(
    state: &mut S,
    event: &Transfer,
    timestamp: Timestamp,
    undo: &mut Vec<Undo<S::AccountRef, S::TransferRef>>,
) -> Result<(), TransferResult> {
    let hold_ref = state
        .find_transfer(event.pending_id)
        .ok_or(TransferResult::PendingNotFound)?;
    let hold = state.transfer(hold_ref);
    if !hold.flags.contains(TransferFlags::PENDING) {
        return Err(TransferResult::PendingIdNotAHold);
    }
    let debit = state.account(hold.debit);
    let credit = state.account(hold.credit);
    if event.debit_account_id.0 != 0 && event.debit_account_id != debit.id {
        return Err(TransferResult::PendingHasDifferentDebitAccount);
    }
    if event.credit_account_id.0 != 0 && event.credit_account_id != credit.id {
        return Err(TransferResult::PendingHasDifferentCreditAccount);
    }
    if event.asset.0 != 0 && event.asset != hold.asset {
        return Err(TransferResult::PendingHasDifferentAsset);
    }
    match state.pending_status(hold_ref) {
        PendingStatus::Pending => {}
        PendingStatus::Posted => return Err(TransferResult::PendingAlreadyPosted),
        PendingStatus::Voided => return Err(TransferResult::PendingAlreadyVoided),
        PendingStatus::Expired => return Err(TransferResult::PendingExpired),
    }
    // Holds due at this batch's timestamp were expired before any event ran.
    debug_assert!(hold_expires_at(hold.timestamp, hold.timeout_s).is_none_or(|at| at > timestamp));
    let post = event.flags.contains(TransferFlags::POST_PENDING);
    let amount = if post {
        let amount = if event.amount.is_zero() {
            hold.amount
        } else {
            event.amount
        };
        if amount > hold.amount {
            return Err(TransferResult::ExceedsPendingAmount);
        }
        amount
    } else {
        if !event.amount.is_zero() && event.amount != hold.amount {
            return Err(TransferResult::VoidAmountMustMatch);
        }
        hold.amount
    };
    let (mut debit_balances, mut credit_balances) =
        without_hold(debit.balances, credit.balances, hold.amount);
    if post {
        debit_balances.debits_posted = debit_balances
            .debits_posted
            .checked_add(amount)
            .ok_or(TransferResult::Overflow)?;
        credit_balances.credits_posted = credit_balances
            .credits_posted
            .checked_add(amount)
            .ok_or(TransferResult::Overflow)?;
    }
    undo.push(Undo::Balances(hold.debit, debit.balances));
    undo.push(Undo::Balances(hold.credit, credit.balances));
    state.set_balances(hold.debit, debit_balances);
    state.set_balances(hold.credit, credit_balances);
    let status = if post {
        PendingStatus::Posted
    } else {
        PendingStatus::Voided
    };
    state.set_pending_status(hold_ref, status, timestamp);
    undo.push(Undo::HoldReopened(hold_ref));
    state.insert_transfer(StoredTransfer {
        id: event.id,
        debit: hold.debit,
        credit: hold.credit,
        amount,
        pending: Some(hold_ref),
        user_data: event.user_data,
        timeout_s: event.timeout_s,
        asset: hold.asset,
        code: event.code,
        flags: event.flags,
        timestamp,
    });
    undo.push(Undo::TransferInserted);
    Ok(())
}
