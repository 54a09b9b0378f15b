//! The crash-test workload: a worker that runs the engine under linked-chain load and reports
//! each acknowledgement on stdout, and a checker that recovers the data directory after the
//! worker was killed and verifies everything that was acknowledged.
//!
//! Every batch is a pure function of (seed, run, client, batch number), and those are encoded in
//! its transfer ids, so the checker regenerates what each logged batch must contain.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context};
use farthing_engine::wal::{parse_segment_name, scan_segment};
use farthing_engine::{codec, engine::ARCHIVE_DIR, Config, Engine};
use farthing_ledger::{
    rules, Account, AccountFlags, AccountId, Amount, Asset, AssetCode, AssetId, LedgerDump,
    MemoryLedger, Operation, Transfer, TransferFlags, TransferId,
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

fn engine_config(dir: &Path) -> Config {
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
    pub transfers: usize,
    pub acknowledged: usize,
    pub state_hash: String,
}

/// Recovers `dir` and checks it against every acknowledgement so far:
/// - every logged batch is exactly the batch the worker generated (nothing altered);
/// - every acknowledged batch is in the log with its sequence, timestamp and exact results;
/// - a clean replay of the whole log from sequence 1 gives exactly the recovered state;
/// - no linked chain is half-applied; every ledger invariant holds.
pub fn check(dir: &Path, seed: u64, acks: &[Ack]) -> anyhow::Result<CheckReport> {
    let engine = Engine::open(engine_config(dir)).context("recovery after the kill")?;
    let recovered = engine.read(LedgerDump::of);
    drop(engine);
    recovered.check_invariants()?;
    let mut segments: Vec<(u64, PathBuf)> = Vec::new();
    for folder in [dir.join(ARCHIVE_DIR), dir.to_path_buf()] {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries {
            let entry = entry?;
            if let Some(first) = parse_segment_name(&entry.file_name().to_string_lossy()) {
                segments.push((first, entry.path()));
            }
        }
    }
    segments.sort();
    let acked: HashMap<u64, &Ack> = acks.iter().map(|a| (a.sequence, a)).collect();
    let mut seen_acks = HashSet::new();
    // A clean replay of the whole log through the pure rules, from sequence 1: none of the
    // engine's recovery machinery (snapshots, truncation, resumption) is involved.
    let mut reference = MemoryLedger::new(seed);
    let mut next = 1u64;
    let setup = setup_operations();
    for (first, path) in &segments {
        ensure!(
            *first == next,
            "log segment {} starts at {first}, expected {next}",
            path.display()
        );
        scan_segment(path, *first, |header, payload, _note| {
            let op = codec::decode_operation(header.kind, payload).map_err(|e| e.to_string())?;
            let expected = match &op {
                Operation::CreateTransfers(t) if !t.is_empty() => {
                    let (run, client, batch, _) = decode_id(t[0].id.0);
                    generate_batch(seed, run, client, batch)
                }
                Operation::CreateTransfers(_) => op.clone(),
                Operation::CreateAssets(_) => setup[0].clone(),
                Operation::CreateAccounts(_) => setup[1].clone(),
            };
            if op != expected {
                return Err(format!(
                    "logged batch {} differs from what was submitted",
                    header.sequence
                ));
            }
            let results =
                rules::apply(&mut reference, header.timestamp, &op).map_err(|e| e.to_string())?;
            if let Some(ack) = acked.get(&header.sequence) {
                if ack.timestamp != header.timestamp.0 || ack.codes != results.codes() {
                    return Err(format!(
                        "acknowledged batch {} has timestamp {} results {:?}, the log gives {} {:?}",
                        header.sequence, ack.timestamp, ack.codes, header.timestamp.0, results.codes()
                    ));
                }
                if let Operation::CreateTransfers(t) = &op {
                    let (run, client, batch, _) = decode_id(t[0].id.0);
                    if (run, client, batch) != (ack.run, ack.client, ack.batch) {
                        return Err(format!(
                            "sequence {} holds another batch than acknowledged",
                            header.sequence
                        ));
                    }
                }
                seen_acks.insert(header.sequence);
            }
            next = header.sequence + 1;
            Ok(())
        })?;
    }
    for ack in acks {
        if !seen_acks.contains(&ack.sequence) {
            bail!(
                "acknowledged batch (run {} client {} batch {}) at sequence {} is missing",
                ack.run,
                ack.client,
                ack.batch,
                ack.sequence
            );
        }
    }
    reference.publish();
    let expected = LedgerDump::of(&reference);
    ensure!(
        expected == recovered,
        "recovered state differs from the reference replay of the log"
    );
    // No chain half-applied: every stored transfer's chain siblings are all stored.
    let stored: HashSet<u128> = recovered.transfers.iter().map(|t| t.id.0).collect();
    for t in &recovered.transfers {
        let (run, client, batch, index) = decode_id(t.id.0);
        let Operation::CreateTransfers(batch_transfers) = generate_batch(seed, run, client, batch)
        else {
            continue;
        };
        let position = index as usize - 1;
        let mut start = position;
        while start > 0
            && batch_transfers[start - 1]
                .flags
                .contains(TransferFlags::LINKED)
        {
            start -= 1;
        }
        let mut end = position;
        while batch_transfers[end].flags.contains(TransferFlags::LINKED) {
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
    Ok(CheckReport {
        log_records: next - 1,
        transfers: recovered.transfers.len(),
        acknowledged: acks.len(),
        state_hash: farthing_ledger::audit::hash_hex(&recovered.state_hash()),
    })
}
