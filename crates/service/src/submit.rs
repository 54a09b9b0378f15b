//! The micropayment products (customers, wallets, charges, refunds, payouts, ...) on top of
//! the ledger. Each money movement compiles to ONE linked chain of ledger transfers; products
//! keep no balances of their own. Limits that must hold under concurrency (a wallet never
//! negative, an allowance's period budget, a customer's monthly cap) are ledger accounts with
//! `debits_must_not_exceed_credits`, checked inside the same chain, so they cannot race.
//!
//! Product records (customers, charges, receipts) live in the metadata store. A charge's record
//! is written (group-committed, see [`RecordWriter`]) before its chain is submitted, and its
//! status is read back from the ledger: a crash in between leaves a record whose transfers the
//! ledger does not have, which reads as `failed`, never money without a record.

use foldhash::{HashSet, HashSetExt};
use std::sync::Arc;

use farthing_engine::Engine;
use farthing_ledger::{
    Account, AccountId, AccountResult, Amount, AssetId, BatchResults, Operation, Transfer,
    TransferFlags, TransferId, TransferResult,
};
use farthing_products::fees::FeeRefundPolicy;
use farthing_products::processor::{
    PaymentProcessor, PayoutRail, SandboxFees, SandboxPayoutRail, SandboxProcessor, TokenKey,
};
use parking_lot::{Mutex, RwLock};

use crate::error::ServiceError;
use crate::state::SharedState;
pub use farthing_products::accounts::LedgerAccount;
use farthing_store::journal::Journal;
pub use farthing_store::records::RecordWriter;
use farthing_store::{RecordWrite, Store};

/// What the product layer shares.
pub struct Products {
    pub processor: Arc<dyn PaymentProcessor>,
    /// Turns sandbox card numbers into payment-method tokens (a real processor tokenizes in
    /// the customer's browser, so this is the sandbox's only).
    pub sandbox: SandboxProcessor,
    /// Keys payment-method tokens per customer (the store keeps the secret).
    pub token_key: TokenKey,
    pub rail: Arc<dyn PayoutRail>,
    pub card_fees: SandboxFees,
    pub records: RecordWriter,
    /// Records that ride in the ledger's log with the batch that books them.
    pub journal: Journal,
    pub refund_policy: FeeRefundPolicy,
    pub cache: crate::cache::Cache,
    pub clock: crate::scheduler::ProductClock,
    /// Wakes the scheduler's driver for follow-up jobs due now ([`crate::scheduler::wake`]).
    pub scheduler_wake: Arc<tokio::sync::Notify>,
    /// Which non-public addresses webhook deliveries may reach (`--webhook-allow-addresses`).
    pub webhook_addresses: farthing_products::webhooks::AddressPolicy,
    /// Ledger accounts known to exist (a cache; the ledger is the truth). At most
    /// [`KNOWN_IDS_MAX`], then forgotten at once.
    known_accounts: RwLock<HashSet<u128>>,
    /// Limit-funding transfers known to be in the ledger (a cache: once durable, a transfer
    /// stays), so a charge does not look them up under the ledger's lock. One per allowance
    /// period and customer month, so bounded like `known_accounts`: past periods are never
    /// asked for again.
    funded_limits: RwLock<HashSet<u128>>,
    /// Serializes work that reads then writes one object (refunds of one charge, a payout of one
    /// merchant): keyed by the object's id.
    locks: Mutex<foldhash::HashMap<u128, Arc<tokio::sync::Mutex<()>>>>,
}

/// The most ids a cache of known ledger objects holds before it forgets them all (16 MiB of
/// ids; a miss only costs a ledger lookup).
const KNOWN_IDS_MAX: usize = 1 << 20;

/// Adds `ids` to a cache of known ledger objects, first emptying it if it is full.
fn remember(cache: &RwLock<HashSet<u128>>, ids: impl IntoIterator<Item = u128>) {
    let mut known = cache.write();
    if known.len() >= KNOWN_IDS_MAX {
        known.clear();
    }
    known.extend(ids);
}

impl Products {
    pub fn new(store: Arc<Store>, journal: Journal, test_clock: bool) -> anyhow::Result<Products> {
        let clock = crate::scheduler::ProductClock::new(test_clock);
        // A moved test clock stays moved across restarts: jobs that ran at a later time must
        // not see time go back (an ended campaign reading `active`).
        clock.restore(store.test_clock_offset()?);
        let card_fees = SandboxFees::default();
        let sandbox = SandboxProcessor::new(card_fees)
            .map_err(|e| anyhow::anyhow!("sandbox processor fees: {e}"))?;
        Ok(Products {
            processor: Arc::new(sandbox),
            sandbox,
            token_key: TokenKey::new(store.payment_method_key()?),
            rail: Arc::new(SandboxPayoutRail),
            card_fees,
            records: RecordWriter::start(store),
            journal,
            refund_policy: FeeRefundPolicy::Proportional,
            cache: crate::cache::Cache::default(),
            clock,
            scheduler_wake: Arc::new(tokio::sync::Notify::new()),
            webhook_addresses: Default::default(),
            known_accounts: RwLock::new(HashSet::new()),
            funded_limits: RwLock::new(HashSet::new()),
            locks: Mutex::new(foldhash::HashMap::default()),
        })
    }

    /// Holds the lock of object `id` until the guard drops.
    pub async fn lock(&self, id: u128) -> ObjectGuard<'_> {
        let lock = self.locks.lock().entry(id).or_default().clone();
        let guard = lock.clone().lock_owned().await;
        ObjectGuard {
            products: self,
            id,
            _guard: guard,
            _lock: lock,
        }
    }

    /// Creates the ledger accounts among `accounts` that do not exist yet (one batch; `exists`
    /// is fine, so concurrent callers agree).
    pub async fn ensure_accounts(
        &self,
        engine: &Engine,
        accounts: &[LedgerAccount],
        asset: AssetId,
    ) -> Result<(), ServiceError> {
        let unknown: Vec<Account> = {
            let known = self.known_accounts.read();
            accounts
                .iter()
                .filter(|a| !known.contains(&a.id(asset).0))
                .map(|a| a.account(asset))
                .collect()
        };
        // The usual case: every account is known, and no write lock for every charge to queue on.
        if unknown.is_empty() {
            return Ok(());
        }
        let missing: Vec<Account> = unknown
            .iter()
            .filter(|a| engine.lookup_account(a.id).is_none())
            .cloned()
            .collect();
        if !missing.is_empty() {
            let outcome = engine
                .submit_async(Operation::CreateAccounts(missing.clone()))?
                .await
                .map_err(|_| ServiceError::unavailable("ledger stopped"))??;
            let BatchResults::Accounts(results) = outcome.results else {
                return Err(ServiceError::internal("unexpected results"));
            };
            for (account, result) in missing.iter().zip(results) {
                if result != AccountResult::Ok && result != AccountResult::Exists {
                    return Err(ServiceError::internal(format!(
                        "product account {:032x}: {result}",
                        account.id.0
                    )));
                }
            }
        }
        remember(&self.known_accounts, unknown.iter().map(|a| a.id.0));
        Ok(())
    }

    /// Funds a limit account (an allowance period, a monthly cap) once: the transfer's id is
    /// derived from the limit, so every caller names the same one. Never part of a charge's
    /// chain, so a refused charge cannot poison it.
    pub async fn ensure_funded(
        &self,
        engine: &Engine,
        limit: LedgerAccount,
        amount: Amount,
        asset: AssetId,
    ) -> Result<(), ServiceError> {
        let id = farthing_products::accounts::funding_transfer_id(limit.id(asset));
        if self.funded_limits.read().contains(&id) {
            return Ok(());
        }
        if engine.lookup_transfer(TransferId(id)).is_some() {
            remember(&self.funded_limits, [id]);
            return Ok(());
        }
        self.ensure_accounts(engine, &[LedgerAccount::LimitSource, limit], asset)
            .await?;
        let transfer = Transfer {
            id: TransferId(id),
            debit_account_id: LedgerAccount::LimitSource.id(asset),
            credit_account_id: limit.id(asset),
            amount,
            pending_id: TransferId(0),
            user_data: 0,
            timeout_s: 0,
            asset,
            code: farthing_products::accounts::CODE_LIMIT_FUNDING,
            flags: TransferFlags::empty(),
        };
        let results = submit_transfers(engine, vec![transfer]).await?;
        match results.first() {
            Some(r) if r.is_ok() || *r == TransferResult::Exists => {
                remember(&self.funded_limits, [id]);
                Ok(())
            }
            Some(r) => Err(refusal("funding a limit account", *r)),
            None => Err(ServiceError::internal("no result")),
        }
    }
}

impl Products {
    /// Books what a card charge brought in, as ONE chain with ids from `first`: the
    /// processor's clearing account pays `amount` to `credit` (a wallet, a tab), and the
    /// processor's `fee` is the platform's expense. `code` names the movement (top-up, tab
    /// settlement); a retry with the same ids books nothing twice.
    pub async fn book_card_charge(
        &self,
        engine: &Engine,
        credit: LedgerAccount,
        (amount, fee): (Amount, Amount),
        code: u16,
        (first, asset, user_data): (u128, AssetId, u128),
        event: Option<RecordWrite>,
    ) -> Result<(), ServiceError> {
        let legs = [
            Leg {
                debit: LedgerAccount::ProcessorClearing,
                credit,
                amount,
                code,
                role: Role::Other,
            },
            Leg {
                debit: LedgerAccount::ProcessorFees,
                credit: LedgerAccount::ProcessorClearing,
                amount: fee,
                code: farthing_products::accounts::CODE_PROCESSOR_FEE,
                role: Role::Other,
            },
        ];
        self.ensure_accounts(
            engine,
            &[
                credit,
                LedgerAccount::ProcessorClearing,
                LedgerAccount::ProcessorFees,
            ],
            asset,
        )
        .await?;
        match run_chain_recorded(
            engine,
            &self.journal,
            event.as_slice(),
            first,
            &legs,
            asset,
            user_data,
        )
        .await?
        {
            ChainOutcome::Committed { .. } => Ok(()),
            ChainOutcome::Refused { result, .. } => Err(refusal(
                &format!("booking a card charge (code {code})"),
                result,
            )),
        }
    }
}

/// The lock of one object, released on drop (and forgotten when nobody else waits).
pub struct ObjectGuard<'a> {
    products: &'a Products,
    id: u128,
    _guard: tokio::sync::OwnedMutexGuard<()>,
    _lock: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for ObjectGuard<'_> {
    fn drop(&mut self) {
        let mut locks = self.products.locks.lock();
        // Ours, the guard's and the map's: nobody else holds or waits for it.
        if locks
            .get(&self.id)
            .is_some_and(|l| Arc::strong_count(l) <= 3)
        {
            locks.remove(&self.id);
        }
    }
}

/// Submits transfers as they are (the caller sets `LINKED`), one result each.
pub async fn submit_transfers(
    engine: &Engine,
    transfers: Vec<Transfer>,
) -> Result<Vec<TransferResult>, ServiceError> {
    let outcome = engine
        .submit_async(Operation::CreateTransfers(transfers))?
        .await
        .map_err(|_| ServiceError::unavailable("ledger stopped"))??;
    match outcome.results {
        BatchResults::Transfers(results) => Ok(results),
        _ => Err(ServiceError::internal("unexpected results")),
    }
}

/// [`submit_transfers`] with `records` journaled in the batch's log record. Webhook events
/// among them are bound to the batch's first transfer: applied only if this submission created
/// it (see [`farthing_store::outbox`]); with no transfers there is nothing to announce.
pub async fn submit_transfers_noted(
    engine: &Engine,
    journal: &Journal,
    transfers: Vec<Transfer>,
    records: &[RecordWrite],
) -> Result<Vec<TransferResult>, ServiceError> {
    let first = transfers.first().map(|t| t.id.0);
    let records: Vec<RecordWrite> = records
        .iter()
        .filter_map(|w| match w {
            RecordWrite::Event(event) => first.map(|first| {
                RecordWrite::Event(farthing_store::outbox::EventWrite {
                    created_by: Some(first),
                    ..event.clone()
                })
            }),
            other => Some(other.clone()),
        })
        .collect();
    let operation = Operation::CreateTransfers(transfers);
    match journal.submit(engine, operation, &records).await?.results {
        BatchResults::Transfers(results) => Ok(results),
        _ => Err(ServiceError::internal("unexpected results")),
    }
}

pub use farthing_products::rules::{Leg, Role};

/// The outcome of a chain: committed (or already committed: a retry), or refused with the
/// failing leg's role and the ledger's reason.
#[derive(Debug)]
pub enum ChainOutcome {
    Committed { created: bool },
    Refused { role: Role, result: TransferResult },
}

/// Submits `legs` as one linked chain with ids `first_id`, `first_id + 1`, ...; zero-amount
/// legs are left out (the ids still count, so a retry names the same transfers).
pub async fn run_chain(
    engine: &Engine,
    first_id: u128,
    legs: &[Leg],
    asset: AssetId,
    user_data: u128,
) -> Result<ChainOutcome, ServiceError> {
    submit_chain(engine, None, first_id, legs, asset, user_data).await
}

/// [`run_chain`] with `records` journaled in the chain's log record: they are durable exactly
/// when the chain is (whether the ledger accepts it or not), and in the store when this returns.
/// Webhook events among them are conditional on the chain: applied only if this submission
/// created its first transfer (see [`farthing_store::outbox`]).
pub async fn run_chain_recorded(
    engine: &Engine,
    journal: &Journal,
    records: &[RecordWrite],
    first_id: u128,
    legs: &[Leg],
    asset: AssetId,
    user_data: u128,
) -> Result<ChainOutcome, ServiceError> {
    submit_chain(
        engine,
        Some((journal, records)),
        first_id,
        legs,
        asset,
        user_data,
    )
    .await
}

async fn submit_chain(
    engine: &Engine,
    journaled: Option<(&Journal, &[RecordWrite])>,
    first_id: u128,
    legs: &[Leg],
    asset: AssetId,
    user_data: u128,
) -> Result<ChainOutcome, ServiceError> {
    let mut transfers = leg_transfers(legs, asset, first_id, user_data);
    link_chain(&mut transfers);
    let roles: Vec<Role> = legs
        .iter()
        .filter(|leg| !leg.amount.is_zero())
        .map(|leg| leg.role)
        .collect();
    let results = match journaled {
        Some((journal, records)) => {
            submit_transfers_noted(engine, journal, transfers, records).await?
        }
        None if transfers.is_empty() => return Ok(ChainOutcome::Committed { created: false }),
        None => submit_transfers(engine, transfers).await?,
    };
    let failure = results.iter().zip(&roles).find(|(r, _)| {
        !r.is_ok() && **r != TransferResult::Exists && **r != TransferResult::LinkedEventFailed
    });
    if let Some((result, role)) = failure {
        return Ok(ChainOutcome::Refused {
            role: *role,
            result: *result,
        });
    }
    if results.contains(&TransferResult::LinkedEventFailed) {
        return Ok(ChainOutcome::Refused {
            role: Role::Other,
            result: TransferResult::LinkedEventFailed,
        });
    }
    Ok(ChainOutcome::Committed {
        created: results.iter().any(|r| r.is_ok()),
    })
}

/// Whether the chain starting at `first_id` is in the ledger (its first non-empty leg is).
pub fn chain_committed(engine: &Engine, first_id: u128, legs: &[Leg]) -> bool {
    legs.iter()
        .position(|l| !l.amount.is_zero())
        .is_some_and(|i| {
            engine
                .lookup_transfer(TransferId(first_id.wrapping_add(i as u128)))
                .is_some()
        })
}

/// The balance an account can still pay: posted credits − posted debits − pending debits
/// (0 for an account that does not exist yet).
pub fn available(engine: &Engine, account: AccountId) -> Amount {
    engine.lookup_account(account).map_or(Amount::ZERO, |a| {
        let b = a.balances;
        Amount(
            b.credits_posted
                .0
                .saturating_sub(b.debits_posted.0)
                .saturating_sub(b.debits_pending.0),
        )
    })
}

/// What an account owes: posted debits − posted credits (a tab's outstanding amount).
pub fn owed(engine: &Engine, account: AccountId) -> Amount {
    engine.lookup_account(account).map_or(Amount::ZERO, |a| {
        let b = a.balances;
        Amount(b.debits_posted.0.saturating_sub(b.credits_posted.0))
    })
}

/// A product's own booking refused by the ledger: an overflow (a shared account full) is the
/// caller's 422 `overflow`, as for plain transfers; anything else is a bug of ours, a 500.
fn refusal(what: &str, result: TransferResult) -> ServiceError {
    if result == TransferResult::Overflow {
        ServiceError::refused(
            "overflow",
            format!("{what}: the amount would overflow an account's balance"),
        )
    } else {
        ServiceError::internal(format!("{what}: {result}"))
    }
}

/// The transfers of `legs`, with ids `first`, `first + 1`, ... by position; zero legs are
/// left out but keep their ids (see [`farthing_products::rules`]). Not yet linked.
pub fn leg_transfers(legs: &[Leg], asset: AssetId, first: u128, user_data: u128) -> Vec<Transfer> {
    legs.iter()
        .enumerate()
        .filter(|(_, leg)| !leg.amount.is_zero())
        .map(|(i, leg)| Transfer {
            id: TransferId(first.wrapping_add(i as u128)),
            debit_account_id: leg.debit.id(asset),
            credit_account_id: leg.credit.id(asset),
            amount: leg.amount,
            pending_id: TransferId(0),
            user_data,
            timeout_s: 0,
            asset,
            code: leg.code,
            flags: TransferFlags::empty(),
        })
        .collect()
}

/// Makes `transfers` one chain: every transfer but the last is linked to the next.
pub fn link_chain(transfers: &mut [Transfer]) {
    let linked = transfers.len().saturating_sub(1);
    for t in &mut transfers[..linked] {
        t.flags = t.flags.union(TransferFlags::LINKED);
    }
}

/// Submits `transfers` as they are, with `event` (if any) journaled in their log record and
/// bound to the first transfer (see [`submit_transfers_noted`]).
/// Submits `transfers` as they are, with `event` in their log record if there is one.
pub async fn submit_noted(
    state: &SharedState,
    transfers: Vec<Transfer>,
    event: Option<RecordWrite>,
) -> Result<Vec<TransferResult>, ServiceError> {
    match event {
        None => submit_transfers(&state.engine, transfers).await,
        Some(event) => {
            let journal = &state.products.journal;
            submit_transfers_noted(&state.engine, journal, transfers, &[event]).await
        }
    }
}

/// Submits one chain; `exists` (a retry) counts as done, any refusal is the error. `event`
/// rides in the chain's log record, applied only if this submission created the chain's first
/// transfer (see [`farthing_store::outbox`]).
pub async fn submit_transfer_chain(
    state: &SharedState,
    transfers: Vec<Transfer>,
    event: Option<RecordWrite>,
) -> Result<(), ServiceError> {
    let results = submit_noted(state, transfers, event).await?;
    let failure = results.iter().find(|r| {
        !r.is_ok() && **r != TransferResult::Exists && **r != TransferResult::LinkedEventFailed
    });
    match failure {
        None => Ok(()),
        Some(TransferResult::ExceedsCredits) => Err(ServiceError::refused(
            "insufficient_funds",
            "the customer's wallet does not hold enough",
        )
        .with_param("amount")),
        Some(r) => Err(ServiceError::from_transfer(*r, "")),
    }
}

#[cfg(test)]
mod known_ids_tests {
    use super::*;

    #[test]
    fn a_full_cache_of_known_ids_forgets_them_all_then_keeps_the_new_one() {
        let cache = RwLock::new(HashSet::new());
        remember(&cache, 0..KNOWN_IDS_MAX as u128);
        assert_eq!(cache.read().len(), KNOWN_IDS_MAX);
        remember(&cache, [u128::MAX - 1]);
        let known = cache.read();
        assert_eq!(known.len(), 1);
        assert!(known.contains(&(u128::MAX - 1)));
    }
}
