//! [`Engine`]: one writer thread owns the ledger; a log thread makes its work durable.
//!
//! Write path (see ARCHITECTURE.md): callers queue batches → the writer drains up to
//! [`Config::commit_events_max`] events, applies them to the working state and encodes them as
//! log records → the log thread appends and `fdatasync`s them, publishes that state to readers,
//! and only then answers each caller. While the log thread waits on the disk, the writer already
//! applies the next group, so applying and syncing overlap.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use farthing_ledger::memory::{HistoryError, Publication};
use farthing_ledger::{
    rules, AccountId, BatchResults, LedgerState, MemoryLedger, Operation, StoredAccount, Timestamp,
    TransferId, TransferPage, TransferView, BATCH_EVENTS_MAX,
};
use parking_lot::{Mutex, RwLock};

use crate::codec::{self, OperationKind};
use crate::error::{OpenError, SubmitError};
use crate::snapshot::{load_snapshot, parse_snapshot_name, write_snapshot};
use crate::wal::{self, parse_segment_name, scan_segment, LogWriter, SegmentEnd};

/// Where the time comes from. Tests move time by hand; the engine never reads a clock elsewhere.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The system's real-time clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Timestamp(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// A clock that moves only when told to: for tests of expiry, periods and restarts.
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock standing at `ns` nanoseconds since the epoch.
    pub fn new(ns: u64) -> ManualClock {
        ManualClock(AtomicU64::new(ns))
    }

    /// Moves the clock forward by `ns` nanoseconds.
    pub fn advance(&self, ns: u64) {
        self.0.fetch_add(ns, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// Engine settings. Every limit is named with its unit.
#[derive(Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// The most events applied and made durable in one group commit.
    pub commit_events_max: usize,
    /// The most batches waiting for the writer; submitters block beyond it.
    pub queue_batches_max: usize,
    /// A snapshot is taken once this many log bytes were written since the last one.
    pub snapshot_log_bytes: u64,
    /// How often the writer checks for holds that are due to expire when idle.
    pub expiry_check_ms: u64,
    /// Log space allocated ahead of writes (see [`wal::PREALLOCATE_BYTES`]).
    pub log_preallocate_bytes: u64,
    /// Transfers the ledger is expected to hold; their index space is reserved at open, as
    /// TigerBeetle preallocates, so the index never rehashes under load. 0 grows on demand.
    pub transfers_expected: usize,
    /// Keep log segments a snapshot covers by moving them to `archive/` instead of deleting
    /// them (for audit, backups, and tests that replay the whole history).
    pub retain_log: bool,
    pub clock: Arc<dyn Clock>,
}

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: data_dir.into(),
            commit_events_max: 4 * BATCH_EVENTS_MAX,
            queue_batches_max: 1024,
            snapshot_log_bytes: 1 << 30,
            expiry_check_ms: 100,
            log_preallocate_bytes: wal::PREALLOCATE_BYTES,
            retain_log: false,
            transfers_expected: 0,
            clock: Arc::new(SystemClock),
        }
    }
}

/// A batch's outcome once it is durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchOutcome {
    /// The batch's timestamp; event `i` has timestamp `timestamp + i`.
    pub timestamp: Timestamp,
    /// The log sequence number of the batch's record.
    pub sequence: u64,
    pub results: BatchResults,
}

/// A note (see [`Engine::submit_noted`]) of a batch that is durable, with where it is in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The log sequence number of the batch's record.
    pub sequence: u64,
    /// The batch's timestamp.
    pub timestamp: Timestamp,
    pub bytes: Vec<u8>,
}

/// Notes waiting for their subscriber; the log thread waits beyond this (backpressure).
const NOTES_QUEUED_MAX: usize = 1 << 16;

/// What recovery found and did when the engine opened.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    pub snapshot: Option<(PathBuf, u64)>,
    pub log_segments: usize,
    pub replayed_batches: u64,
    pub replayed_transfers: u64,
    /// A torn tail that was cut off: file, byte offset, why.
    pub truncated: Option<(PathBuf, u64, String)>,
    pub last_sequence: u64,
    pub elapsed: Duration,
}

/// Counters for metrics and benchmarks.
#[derive(Clone, Copy, Debug, Default)]
pub struct EngineStats {
    pub commits: u64,
    pub batches: u64,
    pub events: u64,
    pub log_bytes: u64,
    pub fsync_nanos_total: u64,
    pub fsync_nanos_max: u64,
    /// Time the writer spent applying groups (rules and log encoding), in total.
    pub apply_nanos_total: u64,
    pub snapshots: u64,
    pub queue_depth: usize,
}

type Reply = oneshot::Sender<Result<BatchOutcome, SubmitError>>;

struct Request {
    operation: Operation,
    note: Vec<u8>,
    reply: Reply,
    submitted: Instant,
}

/// A batch applied and waiting to be durable: who to answer, with what, and since when it
/// waits (`None`: the engine's own record, nobody waits).
type Pending = (Option<Reply>, BatchOutcome, Option<Instant>);
/// A batch about to be applied: its answer, operation, note and submit time (`None` for the
/// engine's own record).
type Queued = (Option<Reply>, Operation, Vec<u8>, Option<Instant>);

// Where a batch's time goes, for operators' dashboards: histograms (seconds unless named
// otherwise), no-ops unless a metrics recorder is installed before the engine opens. Together
// they split a batch's durable latency into its stages. Each thread holds the handles of the
// stages it measures.

/// The writer thread's stages.
struct WriterMetrics {
    /// From submit until the writer takes the batch.
    queue_wait: metrics::Histogram,
    /// Applying one group and encoding its records.
    apply: metrics::Histogram,
}

impl WriterMetrics {
    fn new() -> WriterMetrics {
        WriterMetrics {
            queue_wait: metrics::histogram!("farthing_engine_queue_wait_seconds"),
            apply: metrics::histogram!("farthing_engine_apply_seconds"),
        }
    }
}

/// The log thread's stages, and the size of what it commits.
struct LogMetrics {
    /// From the writer handing a group over until the log thread starts writing it.
    log_wait: metrics::Histogram,
    /// Writing and `fdatasync`ing one run of commits.
    fsync: metrics::Histogram,
    /// From submit until the batch is durable and answered.
    durable: metrics::Histogram,
    /// Bytes of one commit's records.
    commit_bytes: metrics::Histogram,
    /// Events of one commit.
    commit_events: metrics::Histogram,
}

impl LogMetrics {
    fn new() -> LogMetrics {
        LogMetrics {
            log_wait: metrics::histogram!("farthing_engine_log_wait_seconds"),
            fsync: metrics::histogram!("farthing_engine_fsync_seconds"),
            durable: metrics::histogram!("farthing_engine_batch_durable_seconds"),
            commit_bytes: metrics::histogram!("farthing_engine_commit_bytes"),
            commit_events: metrics::histogram!("farthing_engine_commit_events"),
        }
    }
}

/// One group commit on its way to the disk.
struct Commit {
    records: Vec<u8>,
    replies: Vec<Pending>,
    /// When the writer handed the commit to the log thread.
    handed_over: Instant,
    /// The notes of this commit's batches, handed to the subscriber once durable.
    notes: Vec<Note>,
    publication: Publication,
    last_sequence: u64,
    /// Start a new segment after this commit (a snapshot at `last_sequence` is being written).
    rotate: bool,
}

struct Shared {
    ledger: RwLock<MemoryLedger>,
    halted: AtomicBool,
    halt_reason: Mutex<Option<String>>,
    durable_sequence: AtomicU64,
    commits: AtomicU64,
    batches: AtomicU64,
    events: AtomicU64,
    log_bytes: AtomicU64,
    fsync_nanos_total: AtomicU64,
    fsync_nanos_max: AtomicU64,
    apply_nanos_total: AtomicU64,
    snapshots: AtomicU64,
    /// Where durable notes go, in log order (see [`Engine::subscribe_notes`]).
    note_sink: Mutex<Option<Sender<Note>>>,
    /// Log records after this sequence are kept, whatever snapshots cover, because their notes
    /// may not have been consumed yet (see [`Engine::retain_notes_after`]).
    notes_floor: AtomicU64,
}

impl Shared {
    fn halt(&self, reason: String) {
        tracing::error!(%reason, "engine halted: no further batch will be acknowledged");
        let mut slot = self.halt_reason.lock();
        if slot.is_none() {
            *slot = Some(reason);
        }
        self.halted.store(true, Ordering::SeqCst);
    }

    fn halted_error(&self) -> SubmitError {
        let reason = self
            .halt_reason
            .lock()
            .clone()
            .unwrap_or_else(|| "engine stopped".into());
        SubmitError::Halted { reason }
    }
}

/// The embedded durable ledger engine.
pub struct Engine {
    shared: Arc<Shared>,
    requests: Option<Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    log: Option<JoinHandle<()>>,
    recovery: RecoveryReport,
    dir: PathBuf,
    _lock: fs::File,
}

const LOCK_FILE: &str = "LOCK";
/// Where retained log segments go (see [`Config::retain_log`]).
pub const ARCHIVE_DIR: &str = "archive";
/// Commits that may wait while the log thread syncs; the writer blocks beyond that, so this
/// bounds the memory of unsynced commits. Those waiting are written with one fsync.
const COMMITS_QUEUED_MAX: usize = 4;

impl Engine {
    /// Opens (or creates) the data directory, recovers the ledger, and starts the threads.
    pub fn open(config: Config) -> Result<Engine, OpenError> {
        let dir = config.data_dir.clone();
        let io = |path: &Path| {
            let path = path.to_owned();
            move |error| OpenError::Io { path, error }
        };
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        if !take_lock(&lock) {
            return Err(OpenError::Locked { path: dir });
        }
        let hash_seed = {
            use std::hash::{BuildHasher, RandomState};
            RandomState::new().hash_one(0u64)
        };
        let (mut ledger, writer, recovery) =
            recover(&dir, hash_seed, config.log_preallocate_bytes)?;
        let held = ledger.transfer_count();
        ledger.reserve(0, config.transfers_expected.saturating_sub(held));
        let last_sequence = recovery.last_sequence;
        let shared = Arc::new(Shared {
            ledger: RwLock::new(ledger),
            halted: AtomicBool::new(false),
            halt_reason: Mutex::new(None),
            durable_sequence: AtomicU64::new(last_sequence),
            commits: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            events: AtomicU64::new(0),
            log_bytes: AtomicU64::new(0),
            fsync_nanos_total: AtomicU64::new(0),
            fsync_nanos_max: AtomicU64::new(0),
            apply_nanos_total: AtomicU64::new(0),
            snapshots: AtomicU64::new(0),
            note_sink: Mutex::new(None),
            notes_floor: AtomicU64::new(u64::MAX),
        });
        let (request_tx, request_rx) = bounded(config.queue_batches_max);
        // Commits in flight beyond the one syncing; those queued share the next sync.
        let (commit_tx, commit_rx) = bounded::<Commit>(COMMITS_QUEUED_MAX);
        let (buffer_tx, buffer_rx) = bounded::<Vec<u8>>(COMMITS_QUEUED_MAX + 2);
        let log_shared = Arc::clone(&shared);
        let log_dir = dir.clone();
        let preallocate = config.log_preallocate_bytes;
        let log = std::thread::Builder::new()
            .name("farthing-log".into())
            .spawn(move || {
                log_loop(
                    log_shared,
                    log_dir,
                    preallocate,
                    writer,
                    commit_rx,
                    buffer_tx,
                )
            })
            .map_err(io(&dir))?;
        let clock = Arc::clone(&config.clock);
        let writer_state = WriterState {
            shared: Arc::clone(&shared),
            config,
            requests: request_rx,
            commits: commit_tx,
            buffers: buffer_rx,
            sequence: last_sequence,
            log_bytes_since_snapshot: 0,
            snapshot_thread: None,
        };
        let writer = std::thread::Builder::new()
            .name("farthing-writer".into())
            .spawn(move || writer_state.run())
            .map_err(io(&dir))?;
        let engine = Engine {
            shared,
            requests: Some(request_tx),
            writer: Some(writer),
            log: Some(log),
            recovery,
            dir,
            _lock: lock,
        };
        engine.expire_due_holds(clock.now())?;
        Ok(engine)
    }

    /// Holds whose timeout passed while the engine was down expire before the first read is
    /// served: open writes their expiry record and waits until it is durable, so no reader
    /// ever sees a hold pending that was due when the engine opened. (While running, the
    /// writer's idle tick does the same within [`Config::expiry_check_ms`].)
    fn expire_due_holds(&self, now: Timestamp) -> Result<(), OpenError> {
        if self.read(|ledger| ledger.next_expired(now).is_none()) {
            return Ok(());
        }
        // An empty batch: the rules expire every hold due at its timestamp before its events.
        self.submit(Operation::CreateTransfers(Vec::new()))
            .map(|_| ())
            .map_err(|error| OpenError::Expiry {
                path: self.dir.clone(),
                reason: error.to_string(),
            })
    }

    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Queues a batch; the receiver yields its outcome once it is durable. Usable from async
    /// code (the receiver is a future) and from threads (`recv`).
    pub fn submit_async(
        &self,
        operation: Operation,
    ) -> Result<oneshot::Receiver<Result<BatchOutcome, SubmitError>>, SubmitError> {
        self.submit_noted(operation, Vec::new())
    }

    /// Like [`Engine::submit_async`], with a note: opaque bytes logged in the batch's record,
    /// so that they are durable exactly when the batch is (whatever the ledger decides about its
    /// events). Once durable, the note goes to the subscriber (see [`Engine::subscribe_notes`])
    /// before the batch is answered; after a crash, [`Engine::read_notes`] finds it in the log.
    pub fn submit_noted(
        &self,
        operation: Operation,
        note: Vec<u8>,
    ) -> Result<oneshot::Receiver<Result<BatchOutcome, SubmitError>>, SubmitError> {
        if note.len() > wal::NOTE_BYTES_MAX {
            return Err(SubmitError::NoteTooLarge {
                bytes: note.len(),
                max: wal::NOTE_BYTES_MAX,
            });
        }
        if operation.len() > BATCH_EVENTS_MAX {
            return Err(SubmitError::TooManyEvents {
                events: operation.len(),
                max: BATCH_EVENTS_MAX,
            });
        }
        if self.shared.halted.load(Ordering::SeqCst) {
            return Err(self.shared.halted_error());
        }
        let (reply, receiver) = oneshot::channel();
        let requests = self.requests.as_ref().ok_or(SubmitError::ShuttingDown)?;
        requests
            .send(Request {
                operation,
                note,
                reply,
                submitted: Instant::now(),
            })
            .map_err(|_| SubmitError::ShuttingDown)?;
        Ok(receiver)
    }

    /// Submits a batch and waits until it is durable.
    pub fn submit(&self, operation: Operation) -> Result<BatchOutcome, SubmitError> {
        let receiver = self.submit_async(operation)?;
        receiver.recv().map_err(|_| self.shared.halted_error())?
    }

    /// Runs `read` against the published (durable) state. Readers share the lock; the writer
    /// takes it exclusively only to apply a group and to publish.
    pub fn read<T>(&self, read: impl FnOnce(&MemoryLedger) -> T) -> T {
        read(&self.shared.ledger.read())
    }

    /// Like [`Engine::read`], and also the log sequence of the last record the state it read
    /// includes: that state is exactly a replay of the log up to that sequence. Checkers use
    /// it to compare like with like while the writer goes on (it may log hold expiries).
    pub fn read_at_sequence<T>(&self, read: impl FnOnce(&MemoryLedger) -> T) -> (T, u64) {
        let ledger = self.shared.ledger.read();
        // The log thread publishes and advances the durable sequence under the write lock, so
        // under the read lock the two agree.
        let sequence = self.shared.durable_sequence.load(Ordering::SeqCst);
        (read(&ledger), sequence)
    }

    pub fn lookup_account(&self, id: AccountId) -> Option<StoredAccount> {
        self.read(|ledger| ledger.lookup_account(id))
    }

    pub fn lookup_transfer(&self, id: TransferId) -> Option<TransferView> {
        self.read(|ledger| ledger.lookup_transfer(id))
    }

    pub fn account_transfers(
        &self,
        account: AccountId,
        starting_after: Option<TransferId>,
        limit: usize,
    ) -> Result<TransferPage, HistoryError> {
        self.read(|ledger| ledger.account_transfers(account, starting_after, limit))
    }

    /// Where notes of durable batches go from now on, in log order, each before its batch is
    /// answered. One subscriber: a new one replaces the last. The log thread waits while
    /// [`NOTES_QUEUED_MAX`] notes are unread, so a subscriber must keep reading.
    pub fn subscribe_notes(&self) -> Receiver<Note> {
        let (tx, rx) = bounded(NOTES_QUEUED_MAX);
        *self.shared.note_sink.lock() = Some(tx);
        rx
    }

    /// Keeps every log record after `sequence` (the last note the subscriber made durable on its
    /// side), so [`Engine::read_notes`] still finds the later ones after a crash. Snapshots
    /// remove a segment only once it holds nothing after the floor.
    pub fn retain_notes_after(&self, sequence: u64) {
        self.shared.notes_floor.store(sequence, Ordering::SeqCst);
    }

    /// Calls `on_note` with every note in the log after `after`, in order, up to what is durable
    /// now. Set the floor ([`Engine::retain_notes_after`]) first, or a snapshot may remove the
    /// segments being read. Returns the number of notes read.
    pub fn read_notes(
        &self,
        after: u64,
        mut on_note: impl FnMut(Note) -> Result<(), String>,
    ) -> Result<u64, OpenError> {
        let durable = self.shared.durable_sequence.load(Ordering::SeqCst);
        let mut segments = log_segments(&self.dir)?;
        // Segments whose successor starts at or before `after + 1` hold nothing after it.
        let first_needed = segments
            .iter()
            .rposition(|(first, _)| *first <= after + 1)
            .unwrap_or(0);
        segments.drain(..first_needed);
        let mut count = 0;
        for (first, path) in &segments {
            scan_segment(path, *first, |header, _events, note| {
                if header.sequence <= after || header.sequence > durable || note.is_empty() {
                    return Ok(());
                }
                count += 1;
                on_note(Note {
                    sequence: header.sequence,
                    timestamp: header.timestamp,
                    bytes: note.to_vec(),
                })
            })?;
        }
        Ok(count)
    }

    /// Why the engine stopped acknowledging, if it did.
    pub fn halt_reason(&self) -> Option<String> {
        self.shared.halt_reason.lock().clone()
    }

    pub fn stats(&self) -> EngineStats {
        let s = &self.shared;
        EngineStats {
            commits: s.commits.load(Ordering::Relaxed),
            batches: s.batches.load(Ordering::Relaxed),
            events: s.events.load(Ordering::Relaxed),
            log_bytes: s.log_bytes.load(Ordering::Relaxed),
            fsync_nanos_total: s.fsync_nanos_total.load(Ordering::Relaxed),
            fsync_nanos_max: s.fsync_nanos_max.load(Ordering::Relaxed),
            apply_nanos_total: s.apply_nanos_total.load(Ordering::Relaxed),
            snapshots: s.snapshots.load(Ordering::Relaxed),
            queue_depth: self.requests.as_ref().map_or(0, |r| r.len()),
        }
    }

    /// Finishes every queued batch, waits for snapshots in progress, and stops the threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.requests.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        if let Some(log) = self.log.take() {
            let _ = log.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

struct WriterState {
    shared: Arc<Shared>,
    config: Config,
    requests: Receiver<Request>,
    commits: Sender<Commit>,
    buffers: Receiver<Vec<u8>>,
    sequence: u64,
    log_bytes_since_snapshot: u64,
    snapshot_thread: Option<JoinHandle<()>>,
}

impl WriterState {
    fn run(mut self) {
        crate::sched::request_short_slice(crate::sched::ENGINE_THREAD_SLICE_NS);
        let stages = WriterMetrics::new();
        let idle = Duration::from_millis(self.config.expiry_check_ms.max(1));
        loop {
            let first = match self.requests.recv_timeout(idle) {
                Ok(request) => Some(request),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut group: Vec<Request> = first.into_iter().collect();
            let mut events: usize = group.iter().map(|r| r.operation.len()).sum();
            while events < self.config.commit_events_max {
                match self.requests.try_recv() {
                    Ok(request) => {
                        events += request.operation.len();
                        group.push(request);
                    }
                    Err(_) => break,
                }
            }
            if self.shared.halted.load(Ordering::SeqCst) {
                for request in group {
                    let _ = request.reply.send(Err(self.shared.halted_error()));
                }
                continue;
            }
            self.commit_group(group, &stages);
        }
        if let Some(snapshot) = self.snapshot_thread.take() {
            let _ = snapshot.join();
        }
    }

    fn commit_group(&mut self, group: Vec<Request>, stages: &WriterMetrics) {
        let started = Instant::now();
        for request in &group {
            stages
                .queue_wait
                .record(started.duration_since(request.submitted).as_secs_f64());
        }
        let now = self.config.clock.now();
        let mut records = self.buffers.try_recv().unwrap_or_default();
        records.clear();
        let mut replies = Vec::with_capacity(group.len());
        let mut notes = Vec::new();
        let shared = Arc::clone(&self.shared);
        let mut ledger = shared.ledger.write();
        let mut operations: Vec<Queued> = group
            .into_iter()
            .map(|r| (Some(r.reply), r.operation, r.note, Some(r.submitted)))
            .collect();
        if operations.is_empty() {
            // Idle: only write a record when a hold is due, so that it expires on time.
            if ledger.next_expired(now).is_none() {
                return;
            }
            operations.push((
                None,
                Operation::CreateTransfers(Vec::new()),
                Vec::new(),
                None,
            ));
        }
        for (reply, operation, note, submitted) in operations {
            let timestamp = Timestamp(now.0.max(ledger.working_timestamp().0 + 1));
            match rules::apply(&mut *ledger, timestamp, &operation) {
                Ok(results) => {
                    self.sequence += 1;
                    wal::encode_record(self.sequence, timestamp, &operation, &note, &mut records);
                    if !note.is_empty() {
                        notes.push(Note {
                            sequence: self.sequence,
                            timestamp,
                            bytes: note,
                        });
                    }
                    let outcome = BatchOutcome {
                        timestamp,
                        sequence: self.sequence,
                        results,
                    };
                    replies.push((reply, outcome, submitted));
                }
                Err(error) => {
                    // Only a bug can get here: sizes are checked on submit and timestamps
                    // are ours. Refuse the batch; nothing of it was applied.
                    tracing::error!(%error, "batch refused by the ledger");
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(SubmitError::Refused {
                            reason: error.to_string(),
                        }));
                    }
                }
            }
        }
        if replies.is_empty() {
            return;
        }
        let publication = ledger.take_publication();
        let apply_nanos = started.elapsed().as_nanos() as u64;
        stages.apply.record(apply_nanos as f64 / 1e9);
        self.shared
            .apply_nanos_total
            .fetch_add(apply_nanos, Ordering::Relaxed);
        self.log_bytes_since_snapshot += records.len() as u64;
        let rotate = self.log_bytes_since_snapshot >= self.config.snapshot_log_bytes
            && self
                .snapshot_thread
                .as_ref()
                .is_none_or(|t| t.is_finished());
        if rotate {
            self.start_snapshot(&ledger);
        }
        drop(ledger);
        let commit = Commit {
            records,
            replies,
            notes,
            publication,
            last_sequence: self.sequence,
            rotate,
            handed_over: Instant::now(),
        };
        if let Err(failed) = self.commits.send(commit) {
            for (reply, _, _) in failed.0.replies {
                if let Some(reply) = reply {
                    let _ = reply.send(Err(self.shared.halted_error()));
                }
            }
        }
    }

    /// Freezes the state at the current sequence and writes it in the background. The file is
    /// only renamed into place once that sequence is durable in the log.
    fn start_snapshot(&mut self, ledger: &MemoryLedger) {
        if let Some(previous) = self.snapshot_thread.take() {
            let _ = previous.join();
        }
        self.log_bytes_since_snapshot = 0;
        let view = ledger.snapshot_view();
        let sequence = self.sequence;
        let shared = Arc::clone(&self.shared);
        let dir = self.config.data_dir.clone();
        let retain_log = self.config.retain_log;
        let spawned = std::thread::Builder::new()
            .name("farthing-snapshot".into())
            .spawn(move || {
                // Wait until the log holds `sequence`: a snapshot must never be ahead of the log.
                while shared.durable_sequence.load(Ordering::SeqCst) < sequence {
                    if shared.halted.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                match write_snapshot(&dir, sequence, &view) {
                    Ok((path, bytes)) => {
                        shared.snapshots.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(path = %path.display(), bytes, "snapshot written");
                        let floor = shared.notes_floor.load(Ordering::SeqCst);
                        remove_files_before(&dir, sequence, floor, retain_log);
                    }
                    // The log still holds everything; a failed snapshot only delays cleanup.
                    Err(error) => tracing::warn!(%error, "snapshot failed; the log is kept"),
                }
            });
        match spawned {
            Ok(handle) => self.snapshot_thread = Some(handle),
            Err(error) => tracing::warn!(%error, "could not start the snapshot thread"),
        }
    }
}

/// Deletes snapshots older than `sequence` and log segments wholly covered by it and by the
/// notes floor (or moves the segments to `archive/` when the log is retained). A segment ends
/// where its successor starts; the newest segment is never removed.
fn remove_files_before(dir: &Path, sequence: u64, notes_floor: u64, retain_log: bool) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let covered = sequence.min(notes_floor);
    let archive = dir.join(ARCHIVE_DIR);
    let mut segments = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(first) = parse_segment_name(&name) {
            segments.push((first, name));
        } else if parse_snapshot_name(&name).is_some_and(|s| s < sequence) {
            if let Err(error) = fs::remove_file(entry.path()) {
                tracing::warn!(%error, file = %name, "could not remove a stale snapshot");
            }
        }
    }
    segments.sort();
    for pair in segments.windows(2) {
        let ((_, name), (next_first, _)) = (&pair[0], &pair[1]);
        if *next_first > covered.saturating_add(1) {
            break;
        }
        let path = dir.join(name);
        let done = if retain_log {
            fs::create_dir_all(&archive)
                .and_then(|()| fs::rename(&path, archive.join(name)))
                .and_then(|()| wal::sync_dir(&archive))
                .and_then(|()| wal::sync_dir(dir))
        } else {
            fs::remove_file(&path)
        };
        if let Err(error) = done {
            tracing::warn!(%error, file = %name, "could not remove or archive a log segment");
        }
    }
}

/// The log segments in `dir`, by first sequence.
fn log_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, OpenError> {
    let mut segments = Vec::new();
    push_segments(dir, &mut segments)?;
    segments.sort();
    Ok(segments)
}

/// Every log segment a data directory retains, archived (see [`Config::retain_log`]) or live,
/// by first sequence: the whole history when the log is retained, for audits and checkers
/// that replay it from sequence 1.
pub fn retained_log_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, OpenError> {
    let mut segments = Vec::new();
    let archive = dir.join(ARCHIVE_DIR);
    if archive.is_dir() {
        push_segments(&archive, &mut segments)?;
    }
    push_segments(dir, &mut segments)?;
    segments.sort();
    Ok(segments)
}

/// Adds the log segments found in `folder` to `segments`.
fn push_segments(folder: &Path, segments: &mut Vec<(u64, PathBuf)>) -> Result<(), OpenError> {
    let io = |error| OpenError::Io {
        path: folder.to_owned(),
        error,
    };
    for entry in fs::read_dir(folder).map_err(io)? {
        let entry = entry.map_err(io)?;
        if let Some(first) = parse_segment_name(&entry.file_name().to_string_lossy()) {
            segments.push((first, entry.path()));
        }
    }
    Ok(())
}

fn log_loop(
    shared: Arc<Shared>,
    dir: PathBuf,
    preallocate_bytes: u64,
    mut writer: LogWriter,
    commits: Receiver<Commit>,
    buffers: Sender<Vec<u8>>,
) {
    crate::sched::request_short_slice(crate::sched::ENGINE_THREAD_SLICE_NS);
    let stages = LogMetrics::new();
    while let Ok(first) = commits.recv() {
        // Every commit that queued up while the last sync ran shares the next one: one fsync
        // for several commits when syncs are slower than commits arrive. A rotation ends the
        // run, since the commits after it belong in the next segment.
        let mut run = vec![first];
        while !run.last().is_some_and(|c| c.rotate) {
            match commits.try_recv() {
                Ok(commit) => run.push(commit),
                Err(_) => break,
            }
        }
        if shared.halted.load(Ordering::SeqCst) {
            refuse(&shared, run);
            continue;
        }
        let started = Instant::now();
        for commit in &run {
            stages
                .log_wait
                .record(started.duration_since(commit.handed_over).as_secs_f64());
        }
        let written = run
            .iter()
            .try_for_each(|commit| writer.append(&commit.records))
            .and_then(|()| writer.sync());
        if let Err(error) = written {
            shared.halt(format!(
                "write-ahead log {}: {error}",
                writer.path().display()
            ));
            refuse(&shared, run);
            continue;
        }
        let fsync_nanos = started.elapsed().as_nanos() as u64;
        let rotate_at = run.last().filter(|c| c.rotate).map(|c| c.last_sequence);
        let last_sequence = run.last().map_or(0, |c| c.last_sequence);
        let mut durable = Vec::with_capacity(run.len());
        {
            let mut ledger = shared.ledger.write();
            for commit in run {
                ledger.publish_up_to(commit.publication);
                durable.push((commit.records, commit.replies, commit.notes));
            }
            // Under the same lock as the publication: see `Engine::read_at_sequence`.
            shared
                .durable_sequence
                .store(last_sequence, Ordering::SeqCst);
        }
        shared
            .fsync_nanos_total
            .fetch_add(fsync_nanos, Ordering::Relaxed);
        shared
            .fsync_nanos_max
            .fetch_max(fsync_nanos, Ordering::Relaxed);
        stages.fsync.record(fsync_nanos as f64 / 1e9);
        let has_notes = durable.iter().any(|(_, _, notes)| !notes.is_empty());
        let sink = if has_notes {
            shared.note_sink.lock().clone()
        } else {
            None
        };
        for (records, replies, notes) in durable {
            if let Some(sink) = &sink {
                for note in notes {
                    // A subscriber that went away only stops receiving; the log keeps the notes.
                    if sink.send(note).is_err() {
                        break;
                    }
                }
            }
            shared.commits.fetch_add(1, Ordering::Relaxed);
            shared
                .log_bytes
                .fetch_add(records.len() as u64, Ordering::Relaxed);
            stages.commit_bytes.record(records.len() as f64);
            let mut batches = 0;
            let mut events = 0;
            let answered = Instant::now();
            for (reply, outcome, submitted) in replies {
                batches += 1;
                events += outcome.results.len() as u64;
                if let Some(submitted) = submitted {
                    stages
                        .durable
                        .record(answered.duration_since(submitted).as_secs_f64());
                }
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(outcome));
                }
            }
            shared.batches.fetch_add(batches, Ordering::Relaxed);
            stages.commit_events.record(events as f64);
            shared.events.fetch_add(events, Ordering::Relaxed);
            let _ = buffers.try_send(records);
        }
        if let Some(last_sequence) = rotate_at {
            match LogWriter::create(&dir, last_sequence + 1, preallocate_bytes) {
                Ok(next) => {
                    let finished = std::mem::replace(&mut writer, next);
                    let path = finished.path().to_owned();
                    if let Err(error) = finished.trim() {
                        // Only space is lost: zeros after the last record read as its end.
                        tracing::warn!(%error, file = %path.display(), "could not trim a finished log segment");
                    }
                }
                Err(error) => shared.halt(format!("cannot start a new log segment: {error}")),
            }
        }
    }
}

/// Answers every batch of `run` with the engine's halt error; none of them is durable.
fn refuse(shared: &Shared, run: Vec<Commit>) {
    for commit in run {
        for (reply, _, _) in commit.replies {
            if let Some(reply) = reply {
                let _ = reply.send(Err(shared.halted_error()));
            }
        }
    }
}

/// Loads the newest snapshot and replays the log after it.
/// How long [`Engine::open`] keeps asking for a LOCK another holder has, and how often.
const LOCK_WAIT: Duration = Duration::from_secs(2);
const LOCK_RETRY: Duration = Duration::from_millis(20);

/// Takes the data directory's lock, waiting up to [`LOCK_WAIT`] for a holder to let go: a
/// process that closed its engine a moment ago may still hold the lock through a child it was
/// starting (a forked child keeps a copy of the lock's descriptor until its exec closes it),
/// and a crashed process's lock goes only when the kernel has reaped it. A live engine holds
/// the lock for its lifetime, so another one is still refused.
fn take_lock(lock: &fs::File) -> bool {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        if lock.try_lock().is_ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(LOCK_RETRY);
    }
}

fn recover(
    dir: &Path,
    hash_seed: u64,
    preallocate_bytes: u64,
) -> Result<(MemoryLedger, LogWriter, RecoveryReport), OpenError> {
    let started = Instant::now();
    let mut report = RecoveryReport::default();
    let mut snapshots = Vec::new();
    let mut segments = Vec::new();
    let entries = fs::read_dir(dir).map_err(|error| OpenError::Io {
        path: dir.to_owned(),
        error,
    })?;
    for entry in entries {
        let entry = entry.map_err(|error| OpenError::Io {
            path: dir.to_owned(),
            error,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(sequence) = parse_snapshot_name(&name) {
            snapshots.push((sequence, entry.path()));
        } else if let Some(first) = parse_segment_name(&name) {
            segments.push((first, entry.path()));
        } else if name.ends_with(".snap.tmp") {
            // A snapshot that never finished; the log still holds everything in it.
            let _ = fs::remove_file(entry.path());
        }
    }
    snapshots.sort();
    segments.sort();
    let (mut ledger, base_sequence) = match snapshots.last() {
        Some((_, path)) => {
            let (ledger, sequence) = load_snapshot(path, hash_seed)?;
            report.snapshot = Some((path.clone(), sequence));
            (ledger, sequence)
        }
        None => (MemoryLedger::new(hash_seed), 0),
    };
    // Segments whose successor starts at or before base + 1 hold nothing newer than the snapshot.
    let first_needed = segments
        .iter()
        .rposition(|(first, _)| *first <= base_sequence + 1)
        .unwrap_or(0);
    let segments = &segments[first_needed.min(segments.len())..];
    report.log_segments = segments.len();
    // Reserve index space for what the log holds, estimated from its size, before replaying.
    let log_bytes: u64 = segments
        .iter()
        .filter_map(|(_, p)| fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    ledger.reserve(0, (log_bytes / codec::TRANSFER_BYTES as u64) as usize);
    let mut next_sequence = base_sequence + 1;
    let mut resume = None;
    for (index, (first, path)) in segments.iter().enumerate() {
        let is_last = index + 1 == segments.len();
        if *first > next_sequence {
            return Err(OpenError::SequenceGap {
                path: path.clone(),
                expected: next_sequence,
                found: *first,
            });
        }
        let scan = scan_segment(path, *first, |header, payload, _note| {
            if header.sequence < next_sequence {
                return Ok(());
            }
            let operation =
                codec::decode_operation(header.kind, payload).map_err(|e| e.to_string())?;
            rules::apply(&mut ledger, header.timestamp, &operation)
                .map_err(|e| format!("logged batch {} refused on replay: {e}", header.sequence))?;
            report.replayed_batches += 1;
            if header.kind == OperationKind::CreateTransfers {
                report.replayed_transfers += u64::from(header.events);
            }
            next_sequence = header.sequence + 1;
            Ok(())
        })?;
        if let SegmentEnd::TornTail { reason } = &scan.end {
            if !is_last {
                return Err(OpenError::Log(wal::ScanError::Corrupt {
                    path: path.clone(),
                    offset: scan.valid_end,
                    reason: format!("{reason} in a segment that is not the last"),
                }));
            }
            tracing::warn!(file = %path.display(), offset = scan.valid_end, reason, "truncating a torn log tail");
            report.truncated = Some((path.clone(), scan.valid_end, (*reason).to_string()));
        }
        if is_last {
            resume = Some((path.clone(), *first, scan.valid_end));
        }
    }
    let last_sequence = next_sequence - 1;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |error| OpenError::Io { path, error }
    };
    let writer = match resume {
        // A segment that starts past everything recovered would leave a gap; start afresh.
        Some((path, first, valid_end)) if first <= last_sequence + 1 => {
            LogWriter::resume(&path, first, valid_end, preallocate_bytes).map_err(io(&path))?
        }
        _ => LogWriter::create(dir, last_sequence + 1, preallocate_bytes).map_err(io(dir))?,
    };
    ledger.publish();
    report.last_sequence = last_sequence;
    report.elapsed = started.elapsed();
    Ok((ledger, writer, report))
}
