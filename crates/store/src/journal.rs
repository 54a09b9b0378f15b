//! The journal: product records that travel in the ledger's log.
//!
//! A product operation that moves money (a charge, a tip) attaches its records (the charge and
//! its index entries) to its ledger batch as a note ([`Engine::submit_noted`]). The records are
//! then durable in the same `fdatasync` as the money: one disk round trip per request instead of
//! a metadata-store commit followed by a ledger commit.
//!
//! The journal thread copies each note into the metadata store, in log order, in transactions
//! that are visible at once but not fsynced ([`Store::apply_journal`]). Every
//! [`DURABLE_INTERVAL_MS`] a durable store commit moves the engine's note floor
//! ([`Engine::retain_notes_after`]), which keeps the log segments not yet durable in the store.
//!
//! A request is answered once its batch is durable, without waiting for the store. Until the
//! journal applies its note, the records it puts are *pending*: a read of such a record by id
//! waits for its note first ([`Journal::settle`]), and a read of many (a list, a scan, a
//! report) waits for every note answered so far ([`Journal::settle_all`]). So every read that
//! starts after an answer sees what was answered, and a writer that reads a record before
//! rewriting it (a refund updating its charge) never has its write overtaken by the note.
//!
//! Recovery: the store's cursor (the last note applied) commits with the writes it covers, so a
//! crash rolls the store back to a consistent cursor; [`Journal::start`] re-applies every note
//! the log holds after it before the server accepts requests. Applying a note twice writes the
//! same records again, so replaying is safe.
//!
//! Note format, version 1: a version byte, the number of writes (4 bytes, little-endian), then
//! the writes, and nothing after them. Each write is a tag (1 put, 2 index
//! entry, 3 delete, 4 webhook event), the table name (a length byte, UTF-8; empty for an
//! event), then for a put the id (16 bytes, little-endian), the value's length (4 bytes) and
//! the value; for an index entry the parent and the id; for a delete the id; for an event its
//! id, its type's code (1 byte), its merchant (16 bytes, 0 for none), the transfer its batch
//! must have created (16 bytes, 0 for none), the value's length and the value.
//!
//! Events are conditional: one whose batch did not create the transfer it names (the ledger
//! refused the chain, or a retry found it booked already) is not applied, so the log never
//! invents an event (see [`crate::outbox`]).

use foldhash::{HashMap, HashMapExt};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use farthing_engine::{BatchOutcome, Engine, Note};
use farthing_ledger::{Operation, Timestamp, TransferId};
use farthing_products::ids::MerchantId;
use parking_lot::Mutex;
use redb::TableHandle;
use tokio::sync::watch;

use crate::db::{IndexTable, RecordTable, RecordWrite, Store};
use crate::error::StoreError;

/// How often the journal makes the store durable (and lets the engine drop older log).
pub const DURABLE_INTERVAL_MS: u64 = 500;
/// How long a note may wait to be applied with later ones: nobody waits on the store but
/// reads of pending records, and one transaction for many notes costs far less than many.
const APPLY_DELAY_MS: u64 = 5;
/// Most notes applied in one store transaction.
const NOTES_PER_TRANSACTION_MAX: usize = 4096;
const NOTE_FORMAT: u8 = 1;
const TAG_PUT: u8 = 1;
const TAG_INDEX: u8 = 2;
const TAG_DELETE: u8 = 3;
const TAG_EVENT: u8 = 4;

/// The tables a note may name; anything else is refused when decoding.
#[derive(Clone, Copy)]
pub struct Tables {
    pub records: &'static [RecordTable],
    pub indexes: &'static [IndexTable],
}

/// Where the journal thread is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Applied {
    Through(u64),
    /// The store refused a write (or a note did not decode): nothing more is applied, and
    /// requests waiting on the journal fail until a restart re-applies from the log.
    Failed(String),
}

/// Submits noted batches, and lets reads wait for the notes they depend on.
pub struct Journal {
    pending: Arc<Mutex<Pending>>,
    applied: watch::Receiver<Applied>,
    thread: std::thread::JoinHandle<()>,
    replayed: u64,
}

/// Records put by answered notes that the store does not have yet. Changed under one lock by
/// the submitters and the journal thread, so no entry outlives the note that applies it.
struct Pending {
    /// The last note applied.
    through: u64,
    failed: Option<String>,
    /// Record id → the sequence of the last answered note that puts it.
    ids: HashMap<u128, u64>,
}

impl Journal {
    /// Re-applies the notes the log holds after the store's cursor (a crash may have lost
    /// them from the store), then starts the thread that applies new ones. Call before any
    /// noted batch is submitted.
    pub fn start(
        engine: &Arc<Engine>,
        store: Arc<Store>,
        tables: Tables,
    ) -> anyhow::Result<Journal> {
        let mut cursor = store.journal_cursor()?;
        let notes = engine.subscribe_notes();
        engine.retain_notes_after(cursor);
        let mut pending: Vec<Note> = Vec::new();
        let mut replayed = 0u64;
        let mut flush = |pending: &mut Vec<Note>, cursor: &mut u64| -> Result<(), String> {
            let Some(last) = pending.last().map(|n| n.sequence) else {
                return Ok(());
            };
            let writes = decode_notes(pending, tables, &created_by(engine))?;
            store
                .apply_journal(&writes, last, true)
                .map_err(|e| e.to_string())?;
            replayed += pending.len() as u64;
            pending.clear();
            *cursor = last;
            Ok(())
        };
        engine
            .read_notes(cursor, |note| {
                pending.push(note);
                if pending.len() >= NOTES_PER_TRANSACTION_MAX {
                    flush(&mut pending, &mut cursor)?;
                }
                Ok(())
            })
            .map_err(|e| anyhow::anyhow!("re-applying the journal: {e}"))?;
        flush(&mut pending, &mut cursor)
            .map_err(|e| anyhow::anyhow!("re-applying the journal: {e}"))?;
        if replayed > 0 {
            tracing::info!(
                notes = replayed,
                through = cursor,
                "journal re-applied from the log"
            );
        }
        engine.retain_notes_after(cursor);
        let (tx, applied) = watch::channel(Applied::Through(cursor));
        let pending = Arc::new(Mutex::new(Pending {
            through: cursor,
            failed: None,
            ids: HashMap::new(),
        }));
        let weak = Arc::downgrade(engine);
        let thread_pending = Arc::clone(&pending);
        let thread = std::thread::Builder::new()
            .name("farthing-journal".into())
            .spawn(move || {
                let sink = AppliedSink {
                    pending: thread_pending,
                    watch: tx,
                };
                apply_loop(store, weak, notes, cursor, tables, sink)
            })?;
        Ok(Journal {
            pending,
            applied,
            thread,
            replayed,
        })
    }

    /// Notes re-applied from the log at start (those the store had lost in a crash).
    pub fn replayed(&self) -> u64 {
        self.replayed
    }

    /// Drops `engine` (the last reference to it: otherwise this waits until the others are
    /// gone) and waits for the journal thread to make what it applied durable and let go of
    /// the store.
    pub fn shutdown(self, engine: Arc<Engine>) {
        drop(engine);
        let _ = self.thread.join();
    }

    /// Submits `operation` with `writes` as its note; returns once the batch (and so the note)
    /// is durable. The records it puts are pending until the journal applies them.
    pub async fn submit(
        &self,
        engine: &Engine,
        operation: Operation,
        writes: &[RecordWrite],
    ) -> Result<BatchOutcome, StoreError> {
        let note = encode_note(writes)?;
        let outcome = engine
            .submit_noted(operation, note)?
            .await
            .map_err(|_| StoreError::Stopped("ledger"))??;
        let mut pending = self.pending.lock();
        if let Some(reason) = &pending.failed {
            return Err(journal_failed(reason));
        }
        if pending.through < outcome.sequence {
            for write in writes {
                if let RecordWrite::Put { id, .. } = write {
                    pending.ids.insert(*id, outcome.sequence);
                }
            }
        }
        Ok(outcome)
    }

    /// Waits until the store holds every answered write of record `id`.
    pub async fn settle(&self, id: u128) -> Result<(), StoreError> {
        let sequence = self.pending.lock().ids.get(&id).copied();
        match sequence {
            Some(sequence) => self.wait(sequence).await,
            None => Ok(()),
        }
    }

    /// Waits until the store holds every write answered so far (before a list, a scan or a
    /// report).
    pub async fn settle_all(&self) -> Result<(), StoreError> {
        let sequence = self.pending.lock().ids.values().max().copied();
        match sequence {
            Some(sequence) => self.wait(sequence).await,
            None => Ok(()),
        }
    }

    /// Waits until the note at log sequence `sequence` is applied.
    async fn wait(&self, sequence: u64) -> Result<(), StoreError> {
        let mut applied = self.applied.clone();
        let state = applied
            .wait_for(|a| match a {
                Applied::Through(through) => *through >= sequence,
                Applied::Failed(_) => true,
            })
            .await
            .map_err(|_| StoreError::Stopped("journal"))?;
        match &*state {
            Applied::Through(_) => Ok(()),
            Applied::Failed(reason) => Err(journal_failed(reason)),
        }
    }
}

fn journal_failed(reason: &str) -> StoreError {
    StoreError::JournalFailed(reason.to_string())
}

/// Where the journal thread says how far it got.
struct AppliedSink {
    pending: Arc<Mutex<Pending>>,
    watch: watch::Sender<Applied>,
}

impl AppliedSink {
    fn through(&self, through: u64) {
        {
            let mut pending = self.pending.lock();
            pending.through = through;
            pending.ids.retain(|_, sequence| *sequence > through);
        }
        self.watch.send_replace(Applied::Through(through));
    }

    fn failed(&self, reason: String) {
        self.pending.lock().failed = Some(reason.clone());
        self.watch.send_replace(Applied::Failed(reason));
    }
}

fn apply_loop(
    store: Arc<Store>,
    engine: Weak<Engine>,
    notes: Receiver<Note>,
    mut cursor: u64,
    tables: Tables,
    applied: AppliedSink,
) {
    let interval = Duration::from_millis(DURABLE_INTERVAL_MS);
    let delay = Duration::from_millis(APPLY_DELAY_MS);
    let mut last_durable = Instant::now();
    let mut dirty = false;
    let mut batch = Vec::new();
    loop {
        let first = match notes.recv_timeout(interval) {
            Ok(note) => Some(note),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        batch.clear();
        if let Some(first) = first {
            batch.push(first);
            // Sleep, then take what came meanwhile: waiting on the channel instead would wake
            // this thread for every commit (a thousand times a second and more under load),
            // each wake-up taking a core from the requests on a small machine.
            std::thread::sleep(delay);
            while batch.len() < NOTES_PER_TRANSACTION_MAX {
                match notes.try_recv() {
                    Ok(note) => batch.push(note),
                    Err(_) => break,
                }
            }
        }
        // Notes re-applied at start may come again from the subscription.
        batch.retain(|n| n.sequence > cursor);
        let durable = last_durable.elapsed() >= interval;
        if batch.is_empty() && !(durable && dirty) {
            continue;
        }
        let through = batch.last().map_or(cursor, |n| n.sequence);
        let started = Instant::now();
        let Some(live) = engine.upgrade() else {
            // Stopping: what is not applied stays in the log for the next start.
            break;
        };
        let done = decode_notes(&batch, tables, &created_by(&live)).and_then(|writes| {
            store
                .apply_journal(&writes, through, durable)
                .map_err(|e| e.to_string())
        });
        tracing::debug!(
            notes = batch.len(),
            durable,
            micros = started.elapsed().as_micros() as u64,
            "journal applied"
        );
        if let Err(reason) = done {
            tracing::error!(%reason, "journal stopped: records are no longer applied to the store");
            applied.failed(reason);
            return;
        }
        cursor = through;
        applied.through(cursor);
        if durable {
            last_durable = Instant::now();
            dirty = false;
            live.retain_notes_after(cursor);
        } else {
            dirty = true;
        }
    }
    // The engine stopped: make what was applied durable (a crash here loses nothing either).
    if dirty {
        if let Err(error) = store.apply_journal(&[], cursor, true) {
            tracing::warn!(%error, "journal: last durable commit failed; the log still has it");
        }
    }
}

/// Encodes writes as a note.
pub fn encode_note(writes: &[RecordWrite]) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![NOTE_FORMAT];
    let count =
        u32::try_from(writes.len()).map_err(|_| StoreError::Encode("too many writes".into()))?;
    out.extend_from_slice(&count.to_le_bytes());
    let name = |out: &mut Vec<u8>, name: &str| -> Result<(), StoreError> {
        let len = u8::try_from(name.len())
            .map_err(|_| StoreError::Encode(format!("table name {name} too long")))?;
        out.push(len);
        out.extend_from_slice(name.as_bytes());
        Ok(())
    };
    for write in writes {
        match write {
            RecordWrite::Put { table, id, value } => {
                out.push(TAG_PUT);
                name(&mut out, table.name())?;
                out.extend_from_slice(&id.to_le_bytes());
                let len = u32::try_from(value.len())
                    .map_err(|_| StoreError::Encode("record too large for a note".into()))?;
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(value);
            }
            RecordWrite::Index { index, parent, id } => {
                out.push(TAG_INDEX);
                name(&mut out, index.name())?;
                out.extend_from_slice(&parent.to_le_bytes());
                out.extend_from_slice(&id.to_le_bytes());
            }
            RecordWrite::Delete { table, id } => {
                out.push(TAG_DELETE);
                name(&mut out, table.name())?;
                out.extend_from_slice(&id.to_le_bytes());
            }
            RecordWrite::Event(event) => {
                out.push(TAG_EVENT);
                name(&mut out, "")?;
                out.extend_from_slice(&event.id.to_le_bytes());
                out.push(event.kind.code());
                out.extend_from_slice(&event.merchant.map_or(0, |m| m.0).to_le_bytes());
                out.extend_from_slice(&event.created_by.unwrap_or(0).to_le_bytes());
                let len = u32::try_from(event.value.len())
                    .map_err(|_| StoreError::Encode("event too large for a note".into()))?;
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&event.value);
            }
        }
    }
    Ok(out)
}

/// Whether the batch at `timestamp` created transfer `id` as its first event (the ledger gives
/// event `i` of a batch the batch's timestamp + `i`).
fn created_by(engine: &Engine) -> impl Fn(u128, Timestamp) -> bool + '_ {
    move |id, timestamp| {
        engine
            .lookup_transfer(TransferId(id))
            .is_some_and(|t| t.timestamp == timestamp)
    }
}

fn decode_notes(
    notes: &[Note],
    tables: Tables,
    created: &dyn Fn(u128, Timestamp) -> bool,
) -> Result<Vec<RecordWrite>, String> {
    let mut writes = Vec::new();
    for note in notes {
        let from = writes.len();
        decode_note(&note.bytes, tables, &mut writes)
            .map_err(|e| format!("note at log sequence {}: {e}", note.sequence))?;
        let mut i = from;
        while i < writes.len() {
            let real = match &writes[i] {
                RecordWrite::Event(event) => event
                    .created_by
                    .is_none_or(|transfer| created(transfer, note.timestamp)),
                _ => true,
            };
            if real {
                i += 1;
            } else {
                writes.remove(i);
            }
        }
    }
    Ok(writes)
}

/// Decodes a note's writes into `out`.
pub fn decode_note(bytes: &[u8], tables: Tables, out: &mut Vec<RecordWrite>) -> Result<(), String> {
    let mut r = Reader { bytes, at: 0 };
    let format = r.take(1)?[0];
    if format != NOTE_FORMAT {
        return Err(format!("note format {format} is not {NOTE_FORMAT}"));
    }
    let count = u32::from_le_bytes(r.take(4)?.try_into().map_err(|_| "count")?);
    for _ in 0..count {
        let tag = r.take(1)?[0];
        let name_len = r.take(1)?[0] as usize;
        let name = std::str::from_utf8(r.take(name_len)?).map_err(|_| "table name not UTF-8")?;
        let record_table = || {
            tables
                .records
                .iter()
                .find(|t| t.name() == name)
                .copied()
                .ok_or_else(|| format!("unknown record table {name:?}"))
        };
        out.push(match tag {
            TAG_PUT => {
                let table = record_table()?;
                let id = r.u128()?;
                let len = u32::from_le_bytes(r.take(4)?.try_into().map_err(|_| "length")?);
                let value = r.take(len as usize)?.to_vec();
                RecordWrite::Put { table, id, value }
            }
            TAG_INDEX => {
                let index = tables
                    .indexes
                    .iter()
                    .find(|t| t.name() == name)
                    .copied()
                    .ok_or_else(|| format!("unknown index {name:?}"))?;
                let parent = r.u128()?;
                let id = r.u128()?;
                RecordWrite::Index { index, parent, id }
            }
            TAG_DELETE => RecordWrite::Delete {
                table: record_table()?,
                id: r.u128()?,
            },
            TAG_EVENT => {
                let id = r.u128()?;
                let code = r.take(1)?[0];
                let kind = crate::outbox::EventKind::from_code(code)
                    .ok_or_else(|| format!("unknown event type code {code}"))?;
                let merchant = Some(r.u128()?).filter(|m| *m != 0).map(MerchantId);
                let created_by = Some(r.u128()?).filter(|t| *t != 0);
                let len = u32::from_le_bytes(r.take(4)?.try_into().map_err(|_| "length")?);
                let value = r.take(len as usize)?.to_vec();
                RecordWrite::Event(crate::outbox::EventWrite {
                    id,
                    kind,
                    merchant,
                    created_by,
                    value,
                })
            }
            other => return Err(format!("unknown write tag {other}")),
        });
    }
    if r.at != bytes.len() {
        return Err(format!("{} bytes after the last write", bytes.len() - r.at));
    }
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| format!("truncated at byte {}", self.at))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u128(&mut self) -> Result<u128, String> {
        let bytes: [u8; 16] = self.take(16)?.try_into().map_err(|_| "id")?;
        Ok(u128::from_le_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THINGS: RecordTable = RecordTable::new("things");
    const THINGS_BY_OWNER: IndexTable = IndexTable::new("things_by_owner");
    const TABLES: Tables = Tables {
        records: &[THINGS],
        indexes: &[THINGS_BY_OWNER],
    };

    fn same(a: &RecordWrite, b: &RecordWrite) -> bool {
        match (a, b) {
            (
                RecordWrite::Put { table, id, value },
                RecordWrite::Put {
                    table: t2,
                    id: i2,
                    value: v2,
                },
            ) => table.name() == t2.name() && id == i2 && value == v2,
            (
                RecordWrite::Index { index, parent, id },
                RecordWrite::Index {
                    index: x2,
                    parent: p2,
                    id: i2,
                },
            ) => index.name() == x2.name() && parent == p2 && id == i2,
            (RecordWrite::Delete { table, id }, RecordWrite::Delete { table: t2, id: i2 }) => {
                table.name() == t2.name() && id == i2
            }
            _ => false,
        }
    }

    #[test]
    fn notes_round_trip_and_refuse_what_they_cannot_name() {
        let writes = vec![
            RecordWrite::put(THINGS, u128::MAX - 3, &serde_json::json!({"a": "b"})).unwrap(),
            RecordWrite::Index {
                index: THINGS_BY_OWNER,
                parent: 7,
                id: 1 << 100,
            },
            RecordWrite::Delete {
                table: THINGS,
                id: 9,
            },
        ];
        let note = encode_note(&writes).unwrap();
        let mut back = Vec::new();
        decode_note(&note, TABLES, &mut back).unwrap();
        assert_eq!(back.len(), writes.len());
        assert!(writes.iter().zip(&back).all(|(a, b)| same(a, b)));
        // Every truncation is an error, never a panic or a partial success.
        for cut in 1..note.len() {
            let mut partial = Vec::new();
            let decoded = decode_note(&note[..cut], TABLES, &mut partial);
            assert!(decoded.is_err(), "cut at {cut} decoded");
        }
        let mut longer = note.clone();
        longer.push(0);
        assert!(decode_note(&longer, TABLES, &mut Vec::new()).is_err());
        let unknown = Tables {
            records: &[],
            indexes: &[THINGS_BY_OWNER],
        };
        let error = decode_note(&note, unknown, &mut Vec::new()).unwrap_err();
        assert!(error.contains("things"), "{error}");
        let mut bad_format = note.clone();
        bad_format[0] = 9;
        assert!(decode_note(&bad_format, TABLES, &mut Vec::new()).is_err());
    }

    /// An event rides in a note with the transfer its batch must create; decoding keeps it
    /// only when the batch at the note's timestamp created that transfer.
    #[test]
    fn events_in_notes_are_applied_only_if_their_batch_created_the_transfer() {
        use crate::outbox::{EventKind, EventWrite};
        let event = |id: u128, created_by: u128| {
            RecordWrite::Event(EventWrite {
                id,
                kind: EventKind::ChargeSucceeded,
                merchant: Some(MerchantId(5)),
                created_by: Some(created_by),
                value: br#"{"x":1}"#.to_vec(),
            })
        };
        let note = |t: u64, writes: &[RecordWrite]| Note {
            sequence: t,
            timestamp: Timestamp(t),
            bytes: encode_note(writes).unwrap(),
        };
        let put = RecordWrite::put(THINGS, 1u128, &"charge").unwrap();
        // Transfer 100 was created by the batch at timestamp 10; transfer 200 by none.
        let created = |transfer: u128, at: Timestamp| transfer == 100 && at == Timestamp(10);
        let notes = [
            note(10, &[put.clone(), event(1, 100)]),
            // A retry at 11 finds transfer 100 booked by another batch: no second event.
            note(11, &[put.clone(), event(2, 100)]),
            // A refused chain: the record is kept (it reads as failed), the event is not.
            note(12, &[put, event(3, 200)]),
        ];
        let writes = decode_notes(&notes, TABLES, &created).unwrap();
        let events: Vec<(u128, Option<MerchantId>, Option<u128>)> = writes
            .iter()
            .filter_map(|w| match w {
                RecordWrite::Event(e) => Some((e.id, e.merchant, e.created_by)),
                _ => None,
            })
            .collect();
        assert_eq!(events, vec![(1, Some(MerchantId(5)), Some(100))]);
        assert_eq!(writes.len(), 4, "three puts and one event");
        // Truncated event writes are errors, never partial.
        let bytes = encode_note(&[event(1, 100)]).unwrap();
        for cut in 1..bytes.len() {
            assert!(decode_note(&bytes[..cut], TABLES, &mut Vec::new()).is_err());
        }
    }

    #[test]
    fn the_store_holds_what_was_journaled_after_a_restart_even_if_it_lost_it() {
        use farthing_engine::Config;
        use farthing_ledger::{Asset, AssetCode, AssetId};
        let dir = tempfile::tempdir().unwrap();
        let create_asset = |id: u32| {
            Operation::CreateAssets(vec![Asset {
                id: AssetId(id),
                code: AssetCode::new(&format!("A{id}")).unwrap(),
                scale: 2,
            }])
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        {
            let engine = Arc::new(Engine::open(Config::new(dir.path())).unwrap());
            let store = Arc::new(Store::open(dir.path()).unwrap());
            let journal = Journal::start(&engine, Arc::clone(&store), TABLES).unwrap();
            runtime.block_on(async {
                for id in 1..=5u32 {
                    let writes =
                        vec![
                            RecordWrite::put(THINGS, u128::from(id), &format!("thing {id}"))
                                .unwrap(),
                        ];
                    journal
                        .submit(&engine, create_asset(id), &writes)
                        .await
                        .unwrap();
                    // Visible to a read that settles it first.
                    journal.settle(u128::from(id)).await.unwrap();
                    let read: Option<String> = store.record(THINGS, u128::from(id)).unwrap();
                    assert_eq!(read, Some(format!("thing {id}")));
                }
            });
            drop(store);
            journal.shutdown(engine);
        }
        // Simulate a store that lost its non-durable commits: rewind the cursor and drop the
        // records, as a crash before the durable commit would.
        {
            let store = Store::open(dir.path()).unwrap();
            let deletes: Vec<RecordWrite> = (1..=5u128)
                .map(|id| RecordWrite::Delete { table: THINGS, id })
                .collect();
            store.apply_journal(&deletes, 0, true).unwrap();
            assert_eq!(store.journal_cursor().unwrap(), 0);
        }
        let engine = Arc::new(Engine::open(Config::new(dir.path())).unwrap());
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let _journal = Journal::start(&engine, Arc::clone(&store), TABLES).unwrap();
        for id in 1..=5u128 {
            let read: Option<String> = store.record(THINGS, id).unwrap();
            assert_eq!(read, Some(format!("thing {id}")), "re-applied from the log");
        }
        assert!(store.journal_cursor().unwrap() >= 5);
    }
}
