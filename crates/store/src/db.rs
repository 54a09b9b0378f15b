//! The metadata store: what the ledger does not hold — merchants, API keys (hashed), account
//! owners and metadata, and idempotency records for requests that are not ledger transfers.
//! One redb file in the data directory; each change is one ACID transaction, fsynced on commit.

use farthing_products::ids::{ApiKeyId, CustomerId, MerchantId};
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

const MERCHANTS: TableDefinition<u128, &[u8]> = TableDefinition::new("merchants");
const API_KEYS: TableDefinition<u128, &[u8]> = TableDefinition::new("api_keys");
const ACCOUNTS: TableDefinition<u128, &[u8]> = TableDefinition::new("accounts");
/// (owner, account) for listing a tenant's accounts in id order; owner 0 is the operator.
const ACCOUNTS_BY_OWNER: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("accounts_by_owner");
const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");
/// Small named counters: the journal's cursor.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The log sequence of the last journal note applied (see [`crate::journal`]).
const JOURNAL_CURSOR: &str = "journal_applied_through";
/// How far `--test-clock` moved the products' clock, in nanoseconds: kept across restarts, so
/// time never goes back for the jobs that already ran.
const TEST_CLOCK_OFFSET: &str = "test_clock_offset_ns";
/// The platform's own secrets, by name: random bytes made once, when first asked for.
const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
/// The key of payment-method fingerprints (see `farthing_products::processor::TokenKey`).
const PAYMENT_METHOD_KEY: &str = "payment_method_key";

pub const STORE_FILE: &str = "metadata.redb";

/// A table of product records (customers, charges, ...), JSON values by 128-bit id.
pub type RecordTable = TableDefinition<'static, u128, &'static [u8]>;
/// Secondary indexes of product records: (owner or parent, id) pairs, listed in id order.
pub type IndexTable = TableDefinition<'static, (u128, u128), ()>;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MerchantRecord {
    pub id: MerchantId,
    pub name: String,
    pub created_ns: u64,
}

/// What a key may do.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Operator,
    Merchant,
    ReadOnly,
    /// A customer's token: only the customer endpoints, only for that customer.
    Customer,
    /// Safe in a web page: reads its merchant's offers and verifies entitlement tokens for
    /// it, only from the key's declared origins; nothing else.
    Publishable,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    /// SHA-256 of the secret; the secret itself is never stored.
    pub secret_hash: [u8; 32],
    pub scope: Scope,
    /// The merchant the key acts for; `None` for operator keys and global read-only keys.
    pub merchant: Option<MerchantId>,
    /// The customer a customer token acts for.
    #[serde(default)]
    pub customer: Option<CustomerId>,
    pub created_ns: u64,
    pub revoked: bool,
    /// For publishable keys: the origins (`https://news.example`) whose pages may use it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub origins: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AccountRecord {
    pub id: u128,
    pub owner: Option<u128>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Fingerprint of the creating request, to tell a faithful retry from a reused key.
    pub request_hash: [u8; 32],
}

/// The first successful answer to a request under an Idempotency-Key, replayed to every retry
/// of the same request (the fingerprint, `request_hash`, tells a retry from a reused key).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub request_hash: [u8; 32],
    pub status: u16,
    /// The body as sent: JSON text, or for another `content_type` its bytes in base64.
    pub body: String,
    pub created_ns: u64,
    /// The answer's media type; `None` is `application/json` (records written before it was
    /// kept are all JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// How `request_hash` was made: 0, by releases before every POST went through one rule
    /// (the endpoint's name and the body); 1, the HTTP request's method, target, media type
    /// and body.
    #[serde(default)]
    pub fingerprint_version: u8,
}

/// Makes `path` readable and writable by its owner only: the store holds the private keys
/// that sign entitlement tokens, customers' data and hashed API keys.
fn owner_only(path: &Path) -> Result<(), redb::Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// The store. Cheap to share behind an `Arc`.
pub struct Store {
    db: Database,
    /// Woken when a transaction queues webhook deliveries (see [`crate::outbox`]).
    pub outbox_ready: tokio::sync::Notify,
    /// Which events some endpoint wants (rebuilt from the endpoints table after any change to
    /// it; see [`Store::wants_event`]).
    /// With a generation that every change bumps, so a rebuild that raced a change is dropped.
    pub webhook_interest: parking_lot::RwLock<crate::outbox::InterestCache>,
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, redb::Error> {
    crate::util::json_bytes(value).map_err(|e| redb::Error::Corrupted(format!("encoding: {e}")))
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, redb::Error> {
    serde_json::from_slice(bytes).map_err(|e| redb::Error::Corrupted(format!("decoding: {e}")))
}

/// Opens `definition` for reading; `None` while no write has created the table yet.
pub fn readable<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    definition: TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, redb::Error> {
    match txn.open_table(definition) {
        Ok(table) => Ok(Some(table)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// One write of a product record or index entry.
#[derive(Clone)]
pub enum RecordWrite {
    Put {
        table: RecordTable,
        id: u128,
        value: Vec<u8>,
    },
    Index {
        index: IndexTable,
        parent: u128,
        id: u128,
    },
    Delete {
        table: RecordTable,
        id: u128,
    },
    /// A webhook event: stored, and its deliveries queued (see [`crate::outbox::fan_out`]).
    Event(crate::outbox::EventWrite),
}

impl RecordWrite {
    pub fn put<T: Serialize>(
        table: RecordTable,
        id: impl Into<u128>,
        value: &T,
    ) -> Result<RecordWrite, redb::Error> {
        Ok(RecordWrite::Put {
            table,
            id: id.into(),
            value: encode(value)?,
        })
    }
}

/// Applies product writes in `txn`, opening each table once (a group commit of thousands of
/// charges touches a handful of tables); writes to one table keep their order. Returns how
/// many webhook deliveries the events among them queued.
fn apply_writes(
    txn: &redb::WriteTransaction,
    writes: &[RecordWrite],
) -> Result<usize, redb::Error> {
    fn name(w: &RecordWrite) -> &str {
        match w {
            RecordWrite::Put { table, .. } | RecordWrite::Delete { table, .. } => table.name(),
            RecordWrite::Index { index, .. } => index.name(),
            RecordWrite::Event(_) => "",
        }
    }
    let events: Vec<&crate::outbox::EventWrite> = writes
        .iter()
        .filter_map(|w| match w {
            RecordWrite::Event(event) => Some(event),
            _ => None,
        })
        .collect();
    let mut names: Vec<&str> = writes
        .iter()
        .filter(|w| !matches!(w, RecordWrite::Event(_)))
        .map(name)
        .collect();
    names.sort_unstable();
    names.dedup();
    for table_name in names {
        let mine = writes.iter().filter(|w| name(w) == table_name);
        let mut records = None;
        let mut index = None;
        for write in mine {
            match write {
                RecordWrite::Put { table, id, value } => {
                    if records.is_none() {
                        records = Some(txn.open_table(*table)?);
                    }
                    if let Some(t) = records.as_mut() {
                        t.insert(*id, value.as_slice())?;
                    }
                }
                RecordWrite::Delete { table, id } => {
                    if records.is_none() {
                        records = Some(txn.open_table(*table)?);
                    }
                    if let Some(t) = records.as_mut() {
                        t.remove(*id)?;
                    }
                }
                RecordWrite::Index {
                    index: table,
                    parent,
                    id,
                } => {
                    if index.is_none() {
                        index = Some(txn.open_table(*table)?);
                    }
                    if let Some(t) = index.as_mut() {
                        t.insert((*parent, *id), ())?;
                    }
                }
                RecordWrite::Event(_) => {}
            }
        }
    }
    crate::outbox::fan_out(txn, &events)
}

/// Writes to apply in one transaction.
#[derive(Default)]
pub struct Changes {
    pub merchant: Option<MerchantRecord>,
    pub api_key: Option<ApiKeyRecord>,
    pub account: Option<AccountRecord>,
    pub idempotency: Option<(String, IdempotencyRecord)>,
    /// Product records and index entries.
    pub records: Vec<RecordWrite>,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, redb::Error> {
        let path = dir.join(STORE_FILE);
        let db = Database::create(&path)?;
        owner_only(&path)?;
        let txn = db.begin_write()?;
        {
            txn.open_table(MERCHANTS)?;
            txn.open_table(API_KEYS)?;
            txn.open_table(ACCOUNTS)?;
            txn.open_table(ACCOUNTS_BY_OWNER)?;
            txn.open_table(IDEMPOTENCY)?;
            txn.open_table(META)?;
            txn.open_table(SECRETS)?;
        }
        txn.commit()?;
        Ok(Store {
            db,
            outbox_ready: tokio::sync::Notify::new(),
            webhook_interest: parking_lot::RwLock::new(Default::default()),
        })
    }

    /// The database, for modules that keep tables of their own (webhooks).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Wakes the delivery worker if a commit queued deliveries.
    fn queued(&self, deliveries: usize) {
        if deliveries > 0 {
            self.outbox_ready.notify_one();
        }
    }

    /// Applies all `changes` atomically and durably.
    pub fn apply(&self, changes: Changes) -> Result<(), redb::Error> {
        let txn = self.db.begin_write()?;
        let queued;
        let endpoints_changed = changes.records.iter().any(|w| {
            matches!(w, RecordWrite::Put { table, .. } if table.name() == crate::outbox::ENDPOINTS.name())
        });
        {
            if let Some(merchant) = changes.merchant {
                txn.open_table(MERCHANTS)?
                    .insert(merchant.id.0, encode(&merchant)?.as_slice())?;
            }
            if let Some(key) = changes.api_key {
                txn.open_table(API_KEYS)?
                    .insert(key.id.0, encode(&key)?.as_slice())?;
            }
            if let Some(account) = changes.account {
                txn.open_table(ACCOUNTS)?
                    .insert(account.id, encode(&account)?.as_slice())?;
                txn.open_table(ACCOUNTS_BY_OWNER)?
                    .insert((account.owner.unwrap_or(0), account.id), ())?;
            }
            queued = apply_writes(&txn, &changes.records)?;
            if let Some((key, record)) = changes.idempotency {
                txn.open_table(IDEMPOTENCY)?
                    .insert(key.as_str(), encode(&record)?.as_slice())?;
            }
        }
        txn.commit()?;
        self.queued(queued);
        if endpoints_changed {
            self.forget_webhook_interest();
        }
        Ok(())
    }

    pub fn merchant(&self, id: u128) -> Result<Option<MerchantRecord>, redb::Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MERCHANTS)?;
        table.get(id)?.map(|v| decode(v.value())).transpose()
    }

    pub fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, redb::Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(API_KEYS)?;
        let mut keys = Vec::new();
        for entry in table.iter()? {
            let (_, value) = entry?;
            keys.push(decode(value.value())?);
        }
        Ok(keys)
    }

    pub fn account(&self, id: u128) -> Result<Option<AccountRecord>, redb::Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ACCOUNTS)?;
        table.get(id)?.map(|v| decode(v.value())).transpose()
    }

    /// Up to `limit` account ids of `owner` (0: the operator's) after `after`, in id order,
    /// and whether more follow.
    pub fn accounts_of(
        &self,
        owner: Option<u128>,
        after: Option<u128>,
        limit: usize,
    ) -> Result<(Vec<u128>, bool), redb::Error> {
        let owner = owner.unwrap_or(0);
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ACCOUNTS_BY_OWNER)?;
        let start = after.map_or(0, |a| a.saturating_add(1));
        let mut ids = Vec::new();
        let mut more = false;
        for entry in table.range((owner, start)..=(owner, u128::MAX))? {
            let (key, _) = entry?;
            if ids.len() == limit {
                more = true;
                break;
            }
            ids.push(key.value().1);
        }
        Ok((ids, more))
    }

    /// Every account id in id order after `after` (for operator listings).
    pub fn all_accounts(
        &self,
        after: Option<u128>,
        limit: usize,
    ) -> Result<(Vec<u128>, bool), redb::Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ACCOUNTS)?;
        let start = after.map_or(0, |a| a.saturating_add(1));
        let mut ids = Vec::new();
        let mut more = false;
        for entry in table.range(start..)? {
            let (key, _) = entry?;
            if ids.len() == limit {
                more = true;
                break;
            }
            ids.push(key.value());
        }
        Ok((ids, more))
    }

    /// Deletes idempotency records created before `cutoff_ns`, at most `limit` of them (so one
    /// pass holds the write lock briefly); returns how many it deleted.
    pub fn prune_idempotency(&self, cutoff_ns: u64, limit: usize) -> Result<usize, redb::Error> {
        let expired: Vec<String> = {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(IDEMPOTENCY)?;
            let mut expired = Vec::new();
            for entry in table.iter()? {
                let (key, value) = entry?;
                let record: IdempotencyRecord = decode(value.value())?;
                if record.created_ns < cutoff_ns {
                    expired.push(key.value().to_string());
                    if expired.len() == limit {
                        break;
                    }
                }
            }
            expired
        };
        if expired.is_empty() {
            return Ok(0);
        }
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(IDEMPOTENCY)?;
            for key in &expired {
                table.remove(key.as_str())?;
            }
        }
        txn.commit()?;
        Ok(expired.len())
    }

    /// One product record by id.
    pub fn record<T: DeserializeOwned>(
        &self,
        table: RecordTable,
        id: impl Into<u128>,
    ) -> Result<Option<T>, redb::Error> {
        let txn = self.db.begin_read()?;
        let Some(table) = readable(&txn, table)? else {
            return Ok(None);
        };
        table.get(id.into())?.map(|v| decode(v.value())).transpose()
    }

    /// Deletes record `id` of `table` if it still reads `expected` (as encoded), in one
    /// transaction: work that rewrote the record meanwhile (a follow-up job asked for again)
    /// is kept. Returns whether it deleted.
    pub fn delete_if_unchanged<T: Serialize>(
        &self,
        table: RecordTable,
        id: u128,
        expected: &T,
    ) -> Result<bool, redb::Error> {
        let expected = encode(expected)?;
        let txn = self.db.begin_write()?;
        let deleted = {
            let mut t = txn.open_table(table)?;
            let same = t.get(id)?.is_some_and(|v| v.value() == expected.as_slice());
            if same {
                t.remove(id)?;
            }
            same
        };
        txn.commit()?;
        Ok(deleted)
    }

    /// Up to `max` records of `table` after id `after`, in id order, and whether the table
    /// holds more (a list's page, scanned in bounded steps).
    pub fn scan<T: DeserializeOwned>(
        &self,
        table: RecordTable,
        after: Option<u128>,
        max: usize,
    ) -> Result<(Vec<(u128, T)>, bool), redb::Error> {
        let txn = self.db.begin_read()?;
        let Some(table) = readable(&txn, table)? else {
            return Ok((Vec::new(), false));
        };
        let start = match after {
            Some(u128::MAX) => return Ok((Vec::new(), false)),
            Some(after) => after + 1,
            None => 0,
        };
        let mut out = Vec::new();
        for entry in table.range(start..)? {
            let (key, value) = entry?;
            if out.len() == max {
                return Ok((out, true));
            }
            out.push((key.value(), decode(value.value())?));
        }
        Ok((out, false))
    }

    /// Every record of a table (reports; a full scan).
    pub fn all_records<T: DeserializeOwned>(
        &self,
        table: RecordTable,
    ) -> Result<Vec<T>, redb::Error> {
        let txn = self.db.begin_read()?;
        let Some(table) = readable(&txn, table)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (_, value) = entry?;
            out.push(decode(value.value())?);
        }
        Ok(out)
    }

    /// Up to `limit` ids under `parent` in `index` after `after`, and whether more follow.
    pub fn indexed(
        &self,
        index: IndexTable,
        parent: impl Into<u128>,
        after: Option<u128>,
        limit: usize,
    ) -> Result<(Vec<u128>, bool), redb::Error> {
        let parent: u128 = parent.into();
        let txn = self.db.begin_read()?;
        let Some(table) = readable(&txn, index)? else {
            return Ok((Vec::new(), false));
        };
        let start = after.map_or(0, |a| a.saturating_add(1));
        let mut ids = Vec::new();
        for entry in table.range((parent, start)..=(parent, u128::MAX))? {
            let (key, _) = entry?;
            if ids.len() == limit {
                return Ok((ids, true));
            }
            ids.push(key.value().1);
        }
        Ok((ids, false))
    }

    /// Writes product records and index entries in one durable transaction.
    pub fn write_records(
        &self,
        writes: &[RecordWrite],
        idempotency: &[(String, IdempotencyRecord)],
    ) -> Result<(), redb::Error> {
        let txn = self.db.begin_write()?;
        let queued = apply_writes(&txn, writes)?;
        if !idempotency.is_empty() {
            let mut table = txn.open_table(IDEMPOTENCY)?;
            for (key, record) in idempotency {
                table.insert(key.as_str(), encode(record)?.as_slice())?;
            }
        }
        txn.commit()?;
        self.queued(queued);
        Ok(())
    }

    /// The 32-byte secret that keys payment-method tokens: made from the OS's random numbers
    /// and stored durably the first time it is asked for, the same ever after.
    pub fn payment_method_key(&self) -> Result<[u8; 32], redb::Error> {
        let stored = |bytes: &[u8]| {
            <[u8; 32]>::try_from(bytes).map_err(|_| {
                redb::Error::Corrupted(format!(
                    "secret {PAYMENT_METHOD_KEY:?} has {} bytes, not 32",
                    bytes.len()
                ))
            })
        };
        let txn = self.db.begin_write()?;
        let existing = txn
            .open_table(SECRETS)?
            .get(PAYMENT_METHOD_KEY)?
            .map(|v| stored(v.value()));
        if let Some(key) = existing {
            return key;
        }
        let key: [u8; 32] = rand::random();
        txn.open_table(SECRETS)?
            .insert(PAYMENT_METHOD_KEY, key.as_slice())?;
        txn.commit()?;
        Ok(key)
    }

    /// The products' test clock offset (0 when it was never moved).
    pub fn test_clock_offset(&self) -> Result<u64, redb::Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(META)?;
        Ok(table.get(TEST_CLOCK_OFFSET)?.map_or(0, |v| v.value()))
    }

    /// Stores the test clock offset durably.
    pub fn set_test_clock_offset(&self, offset_ns: u64) -> Result<(), redb::Error> {
        let txn = self.db.begin_write()?;
        txn.open_table(META)?.insert(TEST_CLOCK_OFFSET, offset_ns)?;
        txn.commit()?;
        Ok(())
    }

    /// The log sequence of the last journal note whose writes this store holds (0: none).
    pub fn journal_cursor(&self) -> Result<u64, redb::Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(META)?;
        Ok(table.get(JOURNAL_CURSOR)?.map_or(0, |v| v.value()))
    }

    /// Applies the writes of journal notes up to log sequence `through`, and moves the cursor
    /// there, in one transaction. Not `durable`: visible at once but kept only in memory until
    /// a later durable commit (any, this one's or another writer's); a crash before that rolls
    /// the store back to a cursor whose notes the log still holds.
    pub fn apply_journal(
        &self,
        writes: &[RecordWrite],
        through: u64,
        durable: bool,
    ) -> Result<(), redb::Error> {
        let mut txn = self.db.begin_write()?;
        if !durable {
            txn.set_durability(redb::Durability::None)?;
        }
        let queued = apply_writes(&txn, writes)?;
        txn.open_table(META)?.insert(JOURNAL_CURSOR, through)?;
        txn.commit()?;
        self.queued(queued);
        Ok(())
    }

    pub fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, redb::Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(IDEMPOTENCY)?;
        table.get(key)?.map(|v| decode(v.value())).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(created_ns: u64) -> IdempotencyRecord {
        IdempotencyRecord {
            request_hash: [7; 32],
            status: 201,
            body: "{}".into(),
            created_ns,
            content_type: None,
            fingerprint_version: 1,
        }
    }

    #[test]
    fn pruning_removes_only_records_older_than_the_cutoff() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for (key, created) in [("a", 10), ("b", 20), ("c", 30), ("d", 40)] {
            store
                .apply(Changes {
                    idempotency: Some((key.into(), record(created))),
                    ..Changes::default()
                })
                .unwrap();
        }
        assert_eq!(
            store.prune_idempotency(30, 1).unwrap(),
            1,
            "bounded by limit"
        );
        assert_eq!(store.prune_idempotency(30, 100).unwrap(), 1);
        assert_eq!(store.prune_idempotency(30, 100).unwrap(), 0);
        for (key, kept) in [("a", false), ("b", false), ("c", true), ("d", true)] {
            assert_eq!(store.idempotency(key).unwrap().is_some(), kept, "{key}");
        }
        drop(store);
        let reopened = Store::open(dir.path()).unwrap();
        assert!(reopened.idempotency("a").unwrap().is_none(), "durable");
        assert_eq!(reopened.idempotency("c").unwrap(), Some(record(30)));
    }
}
