//! Snapshots: the whole ledger state at one log sequence number, so that recovery replays only
//! the log written after it.
//!
//! File `snapshot-<sequence, 20 digits>.snap`, written to `<name>.tmp`, fsynced, renamed, and
//! the directory fsynced. Layout, little-endian:
//!
//! | part | size | content |
//! |------|------|---------|
//! | header | 72 | magic `FSNP`, version u32, sequence u64, last_timestamp u64, then six u64 counts: assets, accounts, transfers, hold changes, failed accounts, failed transfers |
//! | assets | 32 each | as in the log (see [`crate::codec`]) |
//! | accounts | 128 each | id, overdraft_limit, user_data, debits_pending, debits_posted, credits_pending, credits_posted (u128 each), timestamp u64, asset u32, code u16, flags u16 |
//! | transfers | 80 each | id, amount, user_data (u128 each), timestamp u64, debit position u32, credit position u32, hold position u32 (`u32::MAX` = none), timeout_s u32, code u16, flags u16, zero u16 |
//! | hold changes | 16 each | position u32, status u8 (2 posted, 3 voided, 4 expired), zero [3], changed_at u64 |
//! | failed accounts, failed transfers | 32 each | id u128, fingerprint u64, code u8, zero [7] |
//! | trailer | 8 | CRC32C of every byte before it, magic `FEND` |

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use farthing_ledger::memory::{AccountPos, SnapshotView, TransferPos};
use farthing_ledger::state::{FailedEvent, StoredAccount, StoredTransfer};
use farthing_ledger::{
    AccountFlags, AccountId, Amount, Balances, LedgerState, MemoryLedger, PendingStatus, Timestamp,
    TransferFlags, TransferId,
};

use crate::codec::{u128_at, u16_at, u32_at, u64_at, ASSET_BYTES};
use crate::wal::sync_dir;

const MAGIC: [u8; 4] = *b"FSNP";
const TRAILER_MAGIC: [u8; 4] = *b"FEND";
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 72;
const ACCOUNT_BYTES: usize = 128;
const TRANSFER_BYTES: usize = 80;
const HOLD_BYTES: usize = 16;
const FAILED_BYTES: usize = 32;
const NO_HOLD: u32 = u32::MAX;

pub fn snapshot_name(sequence: u64) -> String {
    format!("snapshot-{sequence:020}.snap")
}

pub fn parse_snapshot_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("snapshot-")?.strip_suffix(".snap")?;
    (digits.len() == 20).then(|| digits.parse().ok()).flatten()
}

/// Why a snapshot cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The message includes the I/O error's, so it is not also the `source()`.
    #[error("{path}: I/O error: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error("{path}: corrupt snapshot: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// A writer that checksums what passes through it.
struct Checksummed<W> {
    inner: W,
    crc: u32,
}

impl<W: Write> Write for Checksummed<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.crc = crc32c::crc32c_append(self.crc, &bytes[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `view` as the snapshot at `sequence` and makes it durable. Returns its path and size.
pub fn write_snapshot(
    dir: &Path,
    sequence: u64,
    view: &SnapshotView,
) -> io::Result<(PathBuf, u64)> {
    let path = dir.join(snapshot_name(sequence));
    let tmp = dir.join(format!("{}.tmp", snapshot_name(sequence)));
    let file = File::create(&tmp)?;
    let mut out = Checksummed {
        inner: BufWriter::with_capacity(1 << 20, file),
        crc: 0,
    };
    let mut header = Vec::with_capacity(HEADER_BYTES);
    header.extend_from_slice(&MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&sequence.to_le_bytes());
    header.extend_from_slice(&view.last_timestamp.0.to_le_bytes());
    for count in [
        view.assets.len(),
        view.accounts.len(),
        view.transfer_count(),
        view.hold_changes.len(),
        view.failed_accounts.len(),
        view.failed_transfers.len(),
    ] {
        header.extend_from_slice(&(count as u64).to_le_bytes());
    }
    out.write_all(&header)?;
    let mut assets = Vec::new();
    crate::codec::encode_operation(
        &farthing_ledger::Operation::CreateAssets(view.assets.clone()),
        &mut assets,
    );
    out.write_all(&assets)?;
    for a in &view.accounts {
        let mut bytes = [0u8; ACCOUNT_BYTES];
        let words = [
            a.id.0,
            a.overdraft_limit.0,
            a.user_data,
            a.balances.debits_pending.0,
            a.balances.debits_posted.0,
            a.balances.credits_pending.0,
            a.balances.credits_posted.0,
        ];
        for (i, word) in words.iter().enumerate() {
            bytes[i * 16..i * 16 + 16].copy_from_slice(&word.to_le_bytes());
        }
        bytes[112..120].copy_from_slice(&a.timestamp.0.to_le_bytes());
        bytes[120..124].copy_from_slice(&a.asset.0.to_le_bytes());
        bytes[124..126].copy_from_slice(&a.code.to_le_bytes());
        bytes[126..128].copy_from_slice(&a.flags.0.to_le_bytes());
        out.write_all(&bytes)?;
    }
    for t in view.transfers() {
        let mut bytes = [0u8; TRANSFER_BYTES];
        bytes[0..16].copy_from_slice(&t.id.0.to_le_bytes());
        bytes[16..32].copy_from_slice(&t.amount.0.to_le_bytes());
        bytes[32..48].copy_from_slice(&t.user_data.to_le_bytes());
        bytes[48..56].copy_from_slice(&t.timestamp.0.to_le_bytes());
        bytes[56..60].copy_from_slice(&(t.debit.index() as u32).to_le_bytes());
        bytes[60..64].copy_from_slice(&(t.credit.index() as u32).to_le_bytes());
        let hold = t.pending.map_or(NO_HOLD, |p| p.index() as u32);
        bytes[64..68].copy_from_slice(&hold.to_le_bytes());
        bytes[68..72].copy_from_slice(&t.timeout_s.to_le_bytes());
        bytes[72..74].copy_from_slice(&t.code.to_le_bytes());
        bytes[74..76].copy_from_slice(&t.flags.0.to_le_bytes());
        out.write_all(&bytes)?;
    }
    for (pos, status, at) in &view.hold_changes {
        let mut bytes = [0u8; HOLD_BYTES];
        bytes[0..4].copy_from_slice(&(pos.index() as u32).to_le_bytes());
        bytes[4] = status_code(*status);
        bytes[8..16].copy_from_slice(&at.0.to_le_bytes());
        out.write_all(&bytes)?;
    }
    let failed_accounts = view.failed_accounts.iter().map(|(id, f)| (id.0, *f));
    let failed_transfers = view.failed_transfers.iter().map(|(id, f)| (id.0, *f));
    for (id, failed) in failed_accounts.chain(failed_transfers) {
        let mut bytes = [0u8; FAILED_BYTES];
        bytes[0..16].copy_from_slice(&id.to_le_bytes());
        bytes[16..24].copy_from_slice(&failed.fingerprint.to_le_bytes());
        bytes[24] = failed.code;
        out.write_all(&bytes)?;
    }
    let crc = out.crc;
    let mut inner = out.inner;
    inner.write_all(&crc.to_le_bytes())?;
    inner.write_all(&TRAILER_MAGIC)?;
    let file = inner.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let size = file.metadata()?.len();
    drop(file);
    fs::rename(&tmp, &path)?;
    sync_dir(dir)?;
    Ok((path, size))
}

fn status_code(status: PendingStatus) -> u8 {
    match status {
        PendingStatus::Pending => 1,
        PendingStatus::Posted => 2,
        PendingStatus::Voided => 3,
        PendingStatus::Expired => 4,
    }
}

/// Loads a snapshot into a fresh ledger, published. Returns the ledger and its sequence.
/// The whole file's checksum is verified before anything is parsed; every reference is then
/// checked, so a damaged file is an error, never a panic or a wrong ledger.
pub fn load_snapshot(path: &Path, hash_seed: u64) -> Result<(MemoryLedger, u64), SnapshotError> {
    let io_error = |error| SnapshotError::Io {
        path: path.to_owned(),
        error,
    };
    let corrupt = |reason: String| SnapshotError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    // One pass: the checksum accumulates as records are parsed and is checked before the
    // ledger is returned. Every record is validated as it is read, so garbage cannot panic.
    let mut input = BufReader::with_capacity(1 << 20, File::open(path).map_err(io_error)?);
    let mut crc = 0u32;
    let mut buffer = [0u8; ACCOUNT_BYTES];
    let mut read_exact = |bytes: &mut [u8]| -> Result<(), SnapshotError> {
        input.read_exact(bytes).map_err(io_error)?;
        crc = crc32c::crc32c_append(crc, bytes);
        Ok(())
    };
    read_exact(&mut buffer[..HEADER_BYTES])?;
    let header = buffer;
    if header[0..4] != MAGIC || u32_at(&header, 4) != VERSION {
        return Err(corrupt("not a version 1 snapshot".into()));
    }
    let sequence = u64_at(&header, 8);
    let last_timestamp = Timestamp(u64_at(&header, 16));
    let count = |i: usize| u64_at(&header, 24 + i * 8) as usize;
    let (assets, accounts, transfers, holds, failed_accounts, failed_transfers) =
        (count(0), count(1), count(2), count(3), count(4), count(5));
    let file_len = std::fs::metadata(path).map_err(io_error)?.len() as u128;
    let expected_len = HEADER_BYTES as u128
        + assets as u128 * ASSET_BYTES as u128
        + accounts as u128 * ACCOUNT_BYTES as u128
        + transfers as u128 * TRANSFER_BYTES as u128
        + holds as u128 * HOLD_BYTES as u128
        + (failed_accounts + failed_transfers) as u128 * FAILED_BYTES as u128
        + 8;
    if expected_len != file_len {
        return Err(corrupt(format!(
            "counts imply {expected_len} bytes, file has {file_len}"
        )));
    }
    if transfers > farthing_ledger::memory::TRANSFERS_MAX
        || accounts > farthing_ledger::memory::ACCOUNTS_MAX
    {
        return Err(corrupt("more records than a ledger can hold".into()));
    }
    let mut ledger = MemoryLedger::new(hash_seed);
    ledger.reserve(accounts, transfers);
    for index in 0..assets {
        read_exact(&mut buffer[..ASSET_BYTES])?;
        let decoded = crate::codec::decode_operation(
            crate::codec::OperationKind::CreateAssets,
            &buffer[..ASSET_BYTES],
        )
        .map_err(|e| corrupt(format!("asset {index}: {e}")))?;
        if let farthing_ledger::Operation::CreateAssets(decoded) = decoded {
            for asset in decoded {
                if ledger.asset(asset.id).is_some() {
                    return Err(corrupt(format!("asset {index}: duplicate id")));
                }
                ledger.insert_asset(asset);
            }
        }
    }
    for index in 0..accounts {
        read_exact(&mut buffer[..ACCOUNT_BYTES])?;
        let b = &buffer[..];
        let account = StoredAccount {
            id: AccountId(u128_at(b, 0)),
            overdraft_limit: Amount(u128_at(b, 16)),
            user_data: u128_at(b, 32),
            balances: Balances {
                debits_pending: Amount(u128_at(b, 48)),
                debits_posted: Amount(u128_at(b, 64)),
                credits_pending: Amount(u128_at(b, 80)),
                credits_posted: Amount(u128_at(b, 96)),
            },
            timestamp: Timestamp(u64_at(b, 112)),
            asset: farthing_ledger::AssetId(u32_at(b, 120)),
            code: u16_at(b, 124),
            flags: AccountFlags(u16_at(b, 126)),
        };
        if ledger.asset(account.asset).is_none() || ledger.find_account(account.id).is_some() {
            return Err(corrupt(format!(
                "account {index}: unknown asset or duplicate id"
            )));
        }
        ledger.insert_account(account);
    }
    // Transfers are read in blocks so that the index slot of a transfer a few records ahead
    // can be prefetched while this one is inserted.
    const BLOCK_TRANSFERS: usize = 1024;
    const PREFETCH_DISTANCE: usize = 16;
    let mut block = vec![0u8; BLOCK_TRANSFERS * TRANSFER_BYTES];
    let mut block_start = 0;
    while block_start < transfers {
        let in_block = (transfers - block_start).min(BLOCK_TRANSFERS);
        read_exact(&mut block[..in_block * TRANSFER_BYTES])?;
        for offset in 0..in_block {
            if offset + PREFETCH_DISTANCE < in_block {
                let ahead = (offset + PREFETCH_DISTANCE) * TRANSFER_BYTES;
                ledger.prefetch_transfer(TransferId(u128_at(&block, ahead)));
            }
            let index = block_start + offset;
            let b = &block[offset * TRANSFER_BYTES..(offset + 1) * TRANSFER_BYTES];
            let debit = u32_at(b, 56);
            let credit = u32_at(b, 60);
            let hold = u32_at(b, 64);
            let flags = TransferFlags(u16_at(b, 74));
            let id = TransferId(u128_at(b, 0));
            let accounts_valid =
                (debit as usize) < accounts && (credit as usize) < accounts && debit != credit;
            let hold_valid = hold == NO_HOLD
                || ((hold as usize) < index
                    && ledger
                        .transfer(TransferPos::new(hold))
                        .flags
                        .contains(TransferFlags::PENDING));
            if !accounts_valid
                || !hold_valid
                || flags.has_unknown_bits()
                || ledger.find_transfer(id).is_some()
            {
                return Err(corrupt(format!(
                    "transfer {index}: invalid reference, flags or duplicate id"
                )));
            }
            let debit_asset = ledger.account(AccountPos::new(debit)).asset;
            if ledger.account(AccountPos::new(credit)).asset != debit_asset {
                return Err(corrupt(format!(
                    "transfer {index}: accounts of different assets"
                )));
            }
            ledger.insert_transfer(StoredTransfer {
                id,
                debit: AccountPos::new(debit),
                credit: AccountPos::new(credit),
                amount: Amount(u128_at(b, 16)),
                pending: (hold != NO_HOLD).then(|| TransferPos::new(hold)),
                user_data: u128_at(b, 32),
                timeout_s: u32_at(b, 68),
                asset: debit_asset,
                code: u16_at(b, 72),
                flags,
                timestamp: Timestamp(u64_at(b, 48)),
            });
        }
        block_start += in_block;
    }
    for index in 0..holds {
        read_exact(&mut buffer[..HOLD_BYTES])?;
        let b = &buffer;
        let pos = u32_at(b, 0);
        let status = match b[4] {
            2 => PendingStatus::Posted,
            3 => PendingStatus::Voided,
            4 => PendingStatus::Expired,
            _ => return Err(corrupt(format!("hold change {index}: bad status"))),
        };
        let is_hold = (pos as usize) < transfers
            && ledger
                .transfer(TransferPos::new(pos))
                .flags
                .contains(TransferFlags::PENDING)
            && ledger.pending_status(TransferPos::new(pos)) == PendingStatus::Pending;
        if !is_hold {
            return Err(corrupt(format!("hold change {index}: not a live hold")));
        }
        ledger.set_pending_status(TransferPos::new(pos), status, Timestamp(u64_at(b, 8)));
    }
    for index in 0..failed_accounts + failed_transfers {
        read_exact(&mut buffer[..FAILED_BYTES])?;
        let b = &buffer;
        let id = u128_at(b, 0);
        let failed = FailedEvent {
            code: b[24],
            fingerprint: u64_at(b, 16),
        };
        if index < failed_accounts {
            if ledger.failed_account(AccountId(id)).is_some()
                || ledger.find_account(AccountId(id)).is_some()
            {
                return Err(corrupt(format!("failed account {index}: duplicate id")));
            }
            ledger.insert_failed_account(AccountId(id), failed);
        } else {
            if ledger.failed_transfer(TransferId(id)).is_some()
                || ledger.find_transfer(TransferId(id)).is_some()
            {
                return Err(corrupt(format!("failed transfer {index}: duplicate id")));
            }
            ledger.insert_failed_transfer(TransferId(id), failed);
        }
    }
    let mut trailer = [0u8; 8];
    input.read_exact(&mut trailer).map_err(io_error)?;
    if trailer[4..8] != TRAILER_MAGIC || u32_at(&trailer, 0) != crc {
        return Err(corrupt("checksum mismatch".into()));
    }
    ledger.set_last_timestamp(last_timestamp);
    ledger.publish();
    Ok((ledger, sequence))
}
