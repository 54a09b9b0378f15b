//! The crash-test workload: a worker that runs the engine under linked-chain load and reports
//! each acknowledgement on stdout, and a checker that recovers the data directory after the
//! worker was killed and verifies everything that was acknowledged.
//!
//! Every batch is a pure function of (seed, run, client, batch number), and those are encoded in
//! its transfer ids, so the checker regenerates what each logged batch must contain.
//!
//! [`run_kills`] is the whole kill-and-check loop, shared by the crash test and
//! `farthing crash-test` (the long mode); `farthing crash-check` re-checks a directory that a
//! failed run kept.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use farthing_engine::engine::retained_log_segments;
use farthing_engine::wal::{scan_segment, RecordHeader};
use farthing_engine::{codec, Config, Engine};
use farthing_ledger::{
    rules, Account, AccountFlags, AccountId, Amount, Asset, AssetCode, AssetId, DumpDifference,
    LedgerDump, MemoryLedger, Operation, Transfer, TransferFlags, TransferId,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const USD: u32 = 1;
const BANK: u128 = 1;
const FEES: u128 = 2;
const WALLETS: u128 = 16;
const MERCHANTS: u128 = 6;
const FIRST_WALLET: u128 = 100;
const FIRST_MERCHANT: u128 = 200;
/// Chains per batch are small so that many batches are in flight when the kill lands.
const CHAINS_PER_BATCH_MAX: u64 = 6;

/// The accounts every run (re)creates; after the first run they answer `exists`.
pub fn setup_operations() -> Vec<Operation> {
    let asset = Asset {
        id: AssetId(USD),
        code: AssetCode::new("USD").expect("valid"),
        scale: 6,
    };
    let account = |id: u128, flags: AccountFlags| Account {
        id: AccountId(id),
        asset: AssetId(USD),
        code: 1,
        flags,
        overdraft_limit: Amount(0),
        user_data: 0,
    };
    let mut accounts = vec![
        account(BANK, AccountFlags::empty()),
        account(FEES, AccountFlags::empty()),
    ];
    for i in 0..WALLETS {
        accounts.push(account(
            FIRST_WALLET + i,
            AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
        ));
    }
    for i in 0..MERCHANTS {
        accounts.push(account(FIRST_MERCHANT + i, AccountFlags::empty()));
    }
    vec![
        Operation::CreateAssets(vec![asset]),
        Operation::CreateAccounts(accounts),
    ]
}

/// Which batch a transfer id belongs to: (run, client, batch, event index).
pub fn decode_id(id: u128) -> (u64, u64, u64, u64) {
    (
        (id >> 96) as u64,
        ((id >> 80) & 0xffff) as u64,
        ((id >> 32) & 0xffff_ffff_ffff) as u64,
        (id & 0xffff_ffff) as u64,
    )
}

fn encode_id(run: u64, client: u64, batch: u64, index: u64) -> u128 {
    (u128::from(run) << 96)
        | (u128::from(client) << 80)
        | (u128::from(batch) << 32)
        | u128::from(index)
}

/// The batch `batch` of `client` in `run`: linked chains of a wallet top-up, a charge with a
/// platform fee, a hold, and the post or void of the previous batch's hold. Wallets run dry
/// often, so whole chains fail and must leave no trace.
pub fn generate_batch(seed: u64, run: u64, client: u64, batch: u64) -> Operation {
    let mut rng = StdRng::seed_from_u64(seed ^ (run << 40) ^ (client << 32) ^ batch);
    let mut transfers = Vec::new();
    let next_id =
        |transfers: &Vec<Transfer>| encode_id(run, client, batch, transfers.len() as u64 + 1);
    let chains = rng.gen_range(1..=CHAINS_PER_BATCH_MAX);
    for chain in 0..chains {
        let wallet = FIRST_WALLET + rng.gen_range(0..WALLETS);
        let merchant = FIRST_MERCHANT + rng.gen_range(0..MERCHANTS);
        let mut legs = Vec::new();
        if rng.gen_bool(0.3) {
            legs.push(Transfer::simple(
                0,
                BANK,
                wallet,
                rng.gen_range(1..500),
                USD,
            ));
        }
        let price = rng.gen_range(1..300);
        legs.push(Transfer::simple(0, wallet, merchant, price, USD));
        legs.push(Transfer::simple(0, merchant, FEES, price / 10 + 1, USD));
        if rng.gen_bool(0.4) {
            let timeout_s = if rng.gen_bool(0.3) { 1 } else { 0 };
            legs.push(Transfer {
                flags: TransferFlags::PENDING,
                timeout_s,
                ..Transfer::simple(0, wallet, merchant, rng.gen_range(1..100), USD)
            });
        }
        if chain == 0 && batch > 0 && rng.gen_bool(0.5) {
            // Resolve a hold that may exist from the previous batch (it may not: then the
            // chain fails with pending_not_found, another path worth crossing).
            let flags = if rng.gen_bool(0.5) {
                TransferFlags::POST_PENDING
            } else {
                TransferFlags::VOID_PENDING
            };
            legs.push(Transfer {
                flags,
                pending_id: TransferId(encode_id(run, client, batch - 1, 4)),
                ..Transfer::simple(0, 0, 0, 0, 0)
            });
        }
        let last = legs.len() - 1;
        for (i, mut leg) in legs.into_iter().enumerate() {
            leg.id = TransferId(next_id(&transfers));
            if i < last {
                leg.flags = leg.flags | TransferFlags::LINKED;
            }
            transfers.push(leg);
        }
    }
    Operation::CreateTransfers(transfers)
}

pub fn engine_config(dir: &Path) -> Config {
    Config {
        // Small, so that snapshots (and crashes during them) happen often.
        snapshot_log_bytes: 256 << 10,
        log_preallocate_bytes: 1 << 20,
        retain_log: true,
        ..Config::new(dir)
    }
}

/// Runs the workload until killed. Prints `ready` once open, then one line per acknowledged
/// batch: `ack <client> <batch> <sequence> <timestamp> <result codes>`.
pub fn run_worker(dir: &Path, seed: u64, run: u64, clients: u64) -> anyhow::Result<()> {
    let engine = Engine::open(engine_config(dir)).context("opening the engine")?;
    for op in setup_operations() {
        engine.submit(op).context("setup")?;
    }
    let stdout = std::sync::Mutex::new(std::io::stdout());
    let say = |line: String| {
        let mut out = stdout.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    say("ready".into());
    std::thread::scope(|scope| {
        for client in 0..clients {
            let engine = &engine;
            let say = &say;
            scope.spawn(move || {
                for batch in 0.. {
                    let op = generate_batch(seed, run, client, batch);
                    let Ok(outcome) = engine.submit(op) else {
                        return;
                    };
                    let codes: Vec<String> =
                        outcome.results.codes().iter().map(u8::to_string).collect();
                    say(format!(
                        "ack {client} {batch} {} {} {}",
                        outcome.sequence,
                        outcome.timestamp.0,
                        codes.join(",")
                    ));
                }
            });
        }
    });
    Ok(())
}

/// One acknowledged batch as the worker reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub run: u64,
    pub client: u64,
    pub batch: u64,
    pub sequence: u64,
    pub timestamp: u64,
    pub codes: Vec<u8>,
}

impl Ack {
    /// The line [`parse_saved_ack`] reads back: the run, then the worker's own line.
    pub fn saved_line(&self) -> String {
        let codes: Vec<String> = self.codes.iter().map(u8::to_string).collect();
        format!(
            "{} ack {} {} {} {} {}",
            self.run,
            self.client,
            self.batch,
            self.sequence,
            self.timestamp,
            codes.join(",")
        )
    }
}

/// Reads a line written by [`Ack::saved_line`].
pub fn parse_saved_ack(line: &str) -> Option<Ack> {
    let (run, rest) = line.split_once(' ')?;
    parse_ack(run.parse().ok()?, rest)
}

/// The acknowledgements saved in `path`, one per line.
pub fn read_saved_acks(path: &Path) -> anyhow::Result<Vec<Ack>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            parse_saved_ack(line)
                .with_context(|| format!("{}:{}: not an acknowledgement", path.display(), n + 1))
        })
        .collect()
}

pub fn parse_ack(run: u64, line: &str) -> Option<Ack> {
    let mut parts = line.split(' ');
    if parts.next()? != "ack" {
        return None;
    }
    let mut number = || parts.next()?.parse::<u64>().ok();
    let (client, batch, sequence, timestamp) = (number()?, number()?, number()?, number()?);
    let codes = line
        .rsplit(' ')
        .next()?
        .split(',')
        .filter(|c| !c.is_empty())
        .map(|c| c.parse().ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(Ack {
        run,
        client,
        batch,
        sequence,
        timestamp,
        codes,
    })
}

/// What a check found, for the test's log.
#[derive(Debug)]
pub struct CheckReport {
    pub log_records: u64,
    /// The log sequence the recovered state was read at.
    pub state_sequence: u64,
    pub transfers: usize,
    pub acknowledged: usize,
    pub state_hash: String,
}

/// What identifies a logged record, remembered so that a later check proves the log's prefix
/// unchanged without applying it again.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct RecordPrint {
    timestamp: u64,
    payload_crc: u32,
    payload_len: u32,
    events: u32,
}

impl RecordPrint {
    fn of(header: &RecordHeader) -> RecordPrint {
        RecordPrint {
            timestamp: header.timestamp.0,
            payload_crc: header.payload_crc,
            payload_len: header.payload_len,
            events: header.events,
        }
    }
}

/// Checks a data directory after each kill against everything acknowledged so far:
/// - every logged batch is exactly the batch the worker generated (nothing altered);
/// - every acknowledged batch is in the log with its sequence, timestamp and exact results;
/// - a clean replay of the whole log from sequence 1, through the pure rules and none of the
///   engine's recovery machinery, gives exactly the recovered state, read at the same sequence;
/// - no linked chain is half-applied; every ledger invariant holds.
///
/// The reference replay is kept between checks of the same directory: each check applies only
/// the records that are new, and proves every older record unchanged (same timestamp, length,
/// event count and checksum). So a long run costs the rules once per record, not once per kill.
pub struct Checker {
    seed: u64,
    reference: MemoryLedger,
    /// What record `i + 1` was when it was applied to the reference.
    records: Vec<RecordPrint>,
    /// Sequences of acknowledged batches matched against their record.
    verified_acks: HashSet<u64>,
    /// Transfers (in timestamp order) whose chains were found whole.
    chains_checked: usize,
}

/// One finding of the log scan, with where it is.
struct Finding(String);

impl Checker {
    pub fn new(seed: u64) -> Checker {
        Checker {
            seed,
            reference: MemoryLedger::new(seed),
            records: Vec::new(),
            verified_acks: HashSet::new(),
            chains_checked: 0,
        }
    }

    /// Recovers `dir` with a fresh engine and checks it (see [`Checker`]).
    pub fn check(&mut self, dir: &Path, acks: &[Ack]) -> anyhow::Result<CheckReport> {
        let engine = Engine::open(engine_config(dir)).context("recovery after the kill")?;
        self.check_engine(engine, dir, acks, |_| {})
    }

    /// Checks `dir` through an engine the caller opened on it; `after_read` runs after the
    /// recovered state was read and before the engine closes (tests use it to make the engine
    /// log an expiry record at exactly that moment).
    pub fn check_engine(
        &mut self,
        engine: Engine,
        dir: &Path,
        acks: &[Ack],
        after_read: impl FnOnce(&Engine),
    ) -> anyhow::Result<CheckReport> {
        // The checking engine's writer may log a hold expiry at any moment (its idle tick), so
        // the state is read together with the sequence it ends at, and compared with the
        // reference at exactly that sequence.
        let (recovered, state_sequence) = engine.read_at_sequence(LedgerDump::of);
        after_read(&engine);
        drop(engine);
        recovered.check_invariants()?;
        let segments = retained_log_segments(dir)?;
        let acked: HashMap<u64, &Ack> = acks.iter().map(|a| (a.sequence, a)).collect();
        let mut compared = false;
        let mut next = 1u64;
        let mut finding: Option<Finding> = None;
        let setup = setup_operations();
        for (first, path) in &segments {
            ensure!(
                *first == next,
                "log segment {} starts at {first}, expected {next}",
                path.display()
            );
            let scanned = scan_segment(path, *first, |header, payload, _note| {
                let sequence = header.sequence;
                next = sequence + 1;
                let print = RecordPrint::of(header);
                if let Some(earlier) = self.records.get(sequence as usize - 1) {
                    if acked.contains_key(&sequence) && !self.verified_acks.contains(&sequence) {
                        // Acknowledgements come from the last worker, whose records are new here.
                        finding = Some(Finding(format!(
                            "sequence {sequence} was acknowledged after its record was checked"
                        )));
                        return Err("late acknowledgement".into());
                    }
                    if *earlier != print {
                        finding = Some(Finding(format!(
                            "log record {sequence} in {} changed since it was checked: {earlier:?}, now {print:?}",
                            path.display()
                        )));
                        return Err("record changed".into());
                    }
                    return Ok(());
                }
                if sequence > state_sequence && !compared {
                    compared = true;
                    if let Err(f) = self.compare(&recovered, state_sequence, &segments) {
                        finding = Some(f);
                        return Err("state differs".into());
                    }
                }
                let op =
                    codec::decode_operation(header.kind, payload).map_err(|e| e.to_string())?;
                let expected = match &op {
                    Operation::CreateTransfers(t) if !t.is_empty() => {
                        let (run, client, batch, _) = decode_id(t[0].id.0);
                        generate_batch(self.seed, run, client, batch)
                    }
                    Operation::CreateTransfers(_) => op.clone(),
                    Operation::CreateAssets(_) => setup[0].clone(),
                    Operation::CreateAccounts(_) => setup[1].clone(),
                };
                if op != expected {
                    return Err(format!(
                        "logged batch {sequence} differs from what was submitted"
                    ));
                }
                // After the state that was read, only the checking engine's own records (hold
                // expiries: empty batches) can follow.
                if sequence > state_sequence && !op.is_empty() {
                    return Err(format!(
                        "log record {sequence} after the state read at {state_sequence} holds {} events; only an expiry record may follow",
                        op.len()
                    ));
                }
                let results = rules::apply(&mut self.reference, header.timestamp, &op)
                    .map_err(|e| e.to_string())?;
                self.records.push(print);
                if let Some(ack) = acked.get(&sequence) {
                    if ack.timestamp != header.timestamp.0 || ack.codes != results.codes() {
                        return Err(format!(
                            "acknowledged batch {sequence} has timestamp {} results {:?}, the log gives {} {:?}",
                            ack.timestamp, ack.codes, header.timestamp.0, results.codes()
                        ));
                    }
                    if let Operation::CreateTransfers(t) = &op {
                        let (run, client, batch, _) = decode_id(t[0].id.0);
                        if (run, client, batch) != (ack.run, ack.client, ack.batch) {
                            return Err(format!(
                                "sequence {sequence} holds another batch than acknowledged"
                            ));
                        }
                    }
                    self.verified_acks.insert(sequence);
                }
                Ok(())
            });
            if let Some(Finding(message)) = finding.take() {
                bail!("{message}");
            }
            scanned?;
        }
        let last = next - 1;
        ensure!(
            last >= self.records.len() as u64,
            "the log ends at sequence {last}, but records up to {} were in it at the last check",
            self.records.len()
        );
        ensure!(
            state_sequence <= last,
            "the state was read at sequence {state_sequence} but the log ends at {last}"
        );
        if !compared {
            if let Err(Finding(message)) = self.compare(&recovered, state_sequence, &segments) {
                bail!("{message}");
            }
        }
        for ack in acks {
            if !self.verified_acks.contains(&ack.sequence) {
                bail!(
                    "acknowledged batch (run {} client {} batch {}) at sequence {} is missing",
                    ack.run,
                    ack.client,
                    ack.batch,
                    ack.sequence
                );
            }
        }
        self.check_chains_whole(&recovered)?;
        Ok(CheckReport {
            log_records: last,
            state_sequence,
            transfers: recovered.transfers.len(),
            acknowledged: acks.len(),
            state_hash: farthing_ledger::audit::hash_hex(&recovered.state_hash()),
        })
    }

    /// Compares the recovered state with the reference, which has applied exactly the records
    /// up to `state_sequence`.
    fn compare(
        &mut self,
        recovered: &LedgerDump,
        state_sequence: u64,
        segments: &[(u64, PathBuf)],
    ) -> Result<(), Finding> {
        let replayed_to = self.records.len() as u64;
        if replayed_to != state_sequence {
            return Err(Finding(format!(
                "the state was read at sequence {state_sequence}, but the reference has replayed {replayed_to} records"
            )));
        }
        self.reference.publish();
        let expected = LedgerDump::of(&self.reference);
        if *recovered == expected {
            return Ok(());
        }
        let Some(difference) = recovered.first_difference(&expected) else {
            return Err(Finding(format!(
                "recovered state differs from the reference replay at sequence {state_sequence}"
            )));
        };
        let mut message = format!(
            "recovered state differs from the reference replay of the log at sequence {state_sequence}: first difference (recovered vs replayed) {difference}"
        );
        if let DumpDifference::Transfer { left, right, .. } = &difference {
            if let Some(view) = left.or(*right) {
                let sequence = self.record_at(view.timestamp.0);
                let segment = segments
                    .iter()
                    .rev()
                    .find(|(first, _)| *first <= sequence)
                    .map_or_else(|| "?".to_string(), |(_, path)| path.display().to_string());
                let _ = write!(message, "; written by log record {sequence} in {segment}");
            }
        }
        Err(Finding(message))
    }

    /// The sequence of the record whose events carry `timestamp` (event `i` of a record has
    /// the record's timestamp + i).
    fn record_at(&self, timestamp: u64) -> u64 {
        self.records.partition_point(|r| r.timestamp <= timestamp) as u64
    }

    /// No chain half-applied: every stored transfer's chain siblings are all stored. Only the
    /// transfers stored since the last check are looked at: the state equals the replay, which
    /// never removes a transfer, and a chain's transfers are all in one record, so the ones
    /// checked before still have all their siblings.
    fn check_chains_whole(&mut self, recovered: &LedgerDump) -> anyhow::Result<()> {
        let new = recovered
            .transfers
            .get(self.chains_checked..)
            .context("fewer transfers than at the last check")?;
        let stored: HashSet<u128> = new.iter().map(|t| t.id.0).collect();
        let mut generated: Option<((u64, u64, u64), Vec<Transfer>)> = None;
        for t in new {
            let (run, client, batch, index) = decode_id(t.id.0);
            if generated
                .as_ref()
                .is_none_or(|(key, _)| *key != (run, client, batch))
            {
                let Operation::CreateTransfers(transfers) =
                    generate_batch(self.seed, run, client, batch)
                else {
                    bail!("generate_batch makes transfers only");
                };
                generated = Some(((run, client, batch), transfers));
            }
            let Some((_, batch_transfers)) = &generated else {
                bail!("a batch was generated above");
            };
            let linked = |i: usize| batch_transfers[i].flags.contains(TransferFlags::LINKED);
            let position = index as usize - 1;
            let mut start = position;
            while start > 0 && linked(start - 1) {
                start -= 1;
            }
            let mut end = position;
            while linked(end) {
                end += 1;
            }
            for sibling in &batch_transfers[start..=end] {
                ensure!(
                    stored.contains(&sibling.id.0),
                    "chain of {:?} half-applied: {:?} missing",
                    t.id,
                    sibling.id
                );
            }
        }
        self.chains_checked = recovered.transfers.len();
        Ok(())
    }
}

/// Checks `dir` once, from scratch (see [`Checker`]).
pub fn check(dir: &Path, seed: u64, acks: &[Ack]) -> anyhow::Result<CheckReport> {
    Checker::new(seed).check(dir, acks)
}

/// How to run [`run_kills`].
#[derive(Clone, Debug)]
pub struct KillOptions {
    /// The `farthing` binary that runs `crash-worker`.
    pub binary: PathBuf,
    /// Where the data directory (`data/`) and the saved acknowledgements (`acks.txt`) live.
    pub dir: PathBuf,
    pub seed: u64,
    pub kills: u64,
    /// The longest a worker runs before it is killed (each kill lands uniformly before it).
    pub kill_after_max_ms: u64,
    pub worker_start_timeout_s: u64,
}

/// The data directory inside a kill run's folder.
pub fn data_dir(dir: &Path) -> PathBuf {
    dir.join("data")
}

/// The saved acknowledgements inside a kill run's folder.
pub fn acks_path(dir: &Path) -> PathBuf {
    dir.join("acks.txt")
}

/// One kill and its check, for progress output.
#[derive(Debug)]
pub struct KillReport {
    pub run: u64,
    pub killed_after: Duration,
    pub new_acks: usize,
    pub check: CheckReport,
    pub check_time: Duration,
}

/// What a whole kill run did.
#[derive(Debug)]
pub struct KillSummary {
    pub kills: u64,
    pub acks: usize,
    pub log_records: u64,
    pub transfers: usize,
    pub elapsed: Duration,
}

/// Starts a crash worker on `options.dir`, SIGKILLs it at a random moment, checks, and repeats
/// `options.kills` times on the same directory (so recovery of recovered data is tested too).
/// Every acknowledgement is appended to `acks.txt` as it is read, so a failed run's folder can
/// be re-checked with `farthing crash-check`. On a failure the error names the run, the delay,
/// and the folder, which is left in place.
pub fn run_kills(
    options: &KillOptions,
    mut on_kill: impl FnMut(&KillReport),
) -> anyhow::Result<KillSummary> {
    let started = Instant::now();
    let data = data_dir(&options.dir);
    std::fs::create_dir_all(&data).with_context(|| format!("{}", data.display()))?;
    let acks_file = acks_path(&options.dir);
    let mut saved = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&acks_file)
        .with_context(|| format!("{}", acks_file.display()))?;
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut checker = Checker::new(options.seed);
    let mut acks: Vec<Ack> = Vec::new();
    let mut last = None;
    for run in 1..=options.kills {
        let (killed_after, new_acks) = kill_one(options, &data, run, &mut rng)?;
        for ack in &new_acks {
            writeln!(saved, "{}", ack.saved_line())?;
        }
        saved.flush()?;
        let new = new_acks.len();
        acks.extend(new_acks);
        let check_started = Instant::now();
        let check = checker.check(&data, &acks).with_context(|| {
            format!(
                "run {run} (killed after {killed_after:?}, seed {}); the data is kept in {} — re-check with `farthing crash-check --dir {} --seed {}`",
                options.seed,
                options.dir.display(),
                options.dir.display(),
                options.seed
            )
        })?;
        let report = KillReport {
            run,
            killed_after,
            new_acks: new,
            check,
            check_time: check_started.elapsed(),
        };
        on_kill(&report);
        last = Some(report.check);
    }
    ensure!(
        acks.len() as u64 > options.kills,
        "the workload barely ran: {} acks in {} kills",
        acks.len(),
        options.kills
    );
    Ok(KillSummary {
        kills: options.kills,
        acks: acks.len(),
        log_records: last.as_ref().map_or(0, |c| c.log_records),
        transfers: last.as_ref().map_or(0, |c| c.transfers),
        elapsed: started.elapsed(),
    })
}

/// Runs one worker until a random moment, kills it, and returns the delay and every
/// acknowledgement it printed.
fn kill_one(
    options: &KillOptions,
    data: &Path,
    run: u64,
    rng: &mut StdRng,
) -> anyhow::Result<(Duration, Vec<Ack>)> {
    let mut child = Command::new(&options.binary)
        .args(["crash-worker", "--seed", &options.seed.to_string()])
        .args(["--run", &run.to_string(), "--dir"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", options.binary.display()))?;
    let stdout = child.stdout.take().context("worker stdout")?;
    let (lines_tx, lines_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let ready = lines_rx.recv_timeout(Duration::from_secs(options.worker_start_timeout_s));
    if ready.as_deref() != Ok("ready") {
        let _ = child.kill();
        let _ = child.wait();
        bail!("run {run}: the worker did not start: {ready:?}");
    }
    // Kill anywhere from immediately to well into steady load.
    let delay = Duration::from_millis(rng.gen_range(0..options.kill_after_max_ms.max(1)));
    let deadline = Instant::now() + delay;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().context("SIGKILL")?;
    let status = child.wait()?;
    ensure!(
        !status.success(),
        "run {run}: the worker exited by itself: {status}"
    );
    let _ = reader.join();
    // Every line printed before the kill is an acknowledgement the client received.
    let acks = lines_rx
        .try_iter()
        .filter_map(|line| parse_ack(run, &line))
        .collect();
    Ok((delay, acks))
}
