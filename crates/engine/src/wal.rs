//! The write-ahead log: segments of checksummed records, one record per ledger batch.
//!
//! Segment file `wal-<first sequence, 20 digits>.log`, preallocated with zeros in steps of
//! [`PREALLOCATE_BYTES`] (overwriting allocated blocks makes `fdatasync` about six times
//! cheaper than appending on ext4). Record layout, little-endian:
//!
//! | offset | size | field |
//! |--------|------|-------|
//! | 0      | 4    | magic `FWAL` |
//! | 4      | 4    | CRC32C of header bytes 8..48 |
//! | 8      | 8    | sequence number (the first record of a log is 1; +1 per record) |
//! | 16     | 8    | batch timestamp, ns since the Unix epoch |
//! | 24     | 4    | payload length in bytes |
//! | 28     | 4    | CRC32C of the payload |
//! | 32     | 1    | operation kind (1 assets, 2 accounts, 3 transfers) |
//! | 33     | 1    | format version (1) |
//! | 34     | 2    | zero |
//! | 36     | 4    | event count |
//! | 40     | 4    | note length in bytes |
//! | 44     | 4    | zero |
//! | 48     | n    | payload: `event count` fixed-size events (see [`crate::codec`]), then the note |
//!
//! A note is opaque bytes the caller attached to the batch (see [`crate::Engine::submit_noted`]):
//! what the batch means to the layer above (a receipt, an event to deliver). It is durable exactly
//! when the batch is, and the ledger ignores it.
//!
//! Recovery reads records in order and classifies the first bad spot (see ARCHITECTURE.md,
//! "Recovery policy"): a torn tail is truncated; damage followed by any valid record is
//! corruption and the engine refuses to start.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use farthing_ledger::{Operation, Timestamp};

use crate::codec::{self, u32_at, u64_at, OperationKind};

pub const RECORD_MAGIC: [u8; 4] = *b"FWAL";
pub const HEADER_BYTES: usize = 48;
pub const FORMAT_VERSION: u8 = 1;
/// How much log space is allocated ahead of the writes, by default.
pub const PREALLOCATE_BYTES: u64 = 64 << 20;
/// The largest note a record may carry.
pub const NOTE_BYTES_MAX: usize = 1 << 20;
/// The largest payload a record may claim: a full batch of the largest events and a note.
pub const PAYLOAD_BYTES_MAX: usize =
    farthing_ledger::BATCH_EVENTS_MAX * codec::TRANSFER_BYTES + NOTE_BYTES_MAX;

/// A decoded, checksum-verified record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub sequence: u64,
    pub timestamp: Timestamp,
    pub payload_len: u32,
    pub payload_crc: u32,
    pub kind: OperationKind,
    pub events: u32,
    /// Bytes of the note at the end of the payload (0: none).
    pub note_len: u32,
}

impl RecordHeader {
    /// Bytes of the payload that hold the events (the note follows them).
    pub fn events_len(&self) -> usize {
        self.events as usize * self.kind.event_bytes()
    }
}

/// Appends one record (header and payload) for `operation` and its `note` (may be empty;
/// at most [`NOTE_BYTES_MAX`], checked on submit) to `out`.
pub fn encode_record(
    sequence: u64,
    timestamp: Timestamp,
    operation: &Operation,
    note: &[u8],
    out: &mut Vec<u8>,
) {
    let start = out.len();
    out.resize(start + HEADER_BYTES, 0);
    codec::encode_operation(operation, out);
    out.extend_from_slice(note);
    let payload_len = out.len() - start - HEADER_BYTES;
    let payload_crc = crc32c::crc32c(&out[start + HEADER_BYTES..]);
    let header = &mut out[start..start + HEADER_BYTES];
    header[0..4].copy_from_slice(&RECORD_MAGIC);
    header[8..16].copy_from_slice(&sequence.to_le_bytes());
    header[16..24].copy_from_slice(&timestamp.0.to_le_bytes());
    header[24..28].copy_from_slice(&(payload_len as u32).to_le_bytes());
    header[28..32].copy_from_slice(&payload_crc.to_le_bytes());
    header[32] = OperationKind::of(operation) as u8;
    header[33] = FORMAT_VERSION;
    header[36..40].copy_from_slice(&(operation.len() as u32).to_le_bytes());
    header[40..44].copy_from_slice(&(note.len() as u32).to_le_bytes());
    let header_crc = crc32c::crc32c(&header[8..HEADER_BYTES]);
    header[4..8].copy_from_slice(&header_crc.to_le_bytes());
}

/// Parses a header; `None` unless the magic, checksum and every field are valid.
pub fn decode_header(bytes: &[u8]) -> Option<RecordHeader> {
    if bytes.len() < HEADER_BYTES || bytes[0..4] != RECORD_MAGIC {
        return None;
    }
    if u32_at(bytes, 4) != crc32c::crc32c(&bytes[8..HEADER_BYTES]) {
        return None;
    }
    let kind = OperationKind::from_byte(bytes[32])?;
    let payload_len = u32_at(bytes, 24);
    let events = u32_at(bytes, 36);
    let note_len = u32_at(bytes, 40);
    let consistent = bytes[33] == FORMAT_VERSION
        && bytes[34..36] == [0, 0]
        && bytes[44..48] == [0; 4]
        && note_len as usize <= NOTE_BYTES_MAX
        && payload_len as usize <= PAYLOAD_BYTES_MAX
        && payload_len as u64
            == u64::from(events) * kind.event_bytes() as u64 + u64::from(note_len);
    consistent.then(|| RecordHeader {
        sequence: u64_at(bytes, 8),
        timestamp: Timestamp(u64_at(bytes, 16)),
        payload_len,
        payload_crc: u32_at(bytes, 28),
        kind,
        events,
        note_len,
    })
}

pub fn segment_name(first_sequence: u64) -> String {
    format!("wal-{first_sequence:020}.log")
}

/// The first sequence number of a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    (digits.len() == 20).then(|| digits.parse().ok()).flatten()
}

/// Where a segment's valid records end, and what follows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentEnd {
    /// Only zeros (preallocated space) or nothing follows the last record.
    Clean,
    /// A partial or damaged record follows, and no valid record after it: a write that never
    /// completed. Recovery cuts the segment here.
    TornTail { reason: &'static str },
}

/// The outcome of reading a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentScan {
    /// Byte offset just past the last valid record.
    pub valid_end: u64,
    pub records: u64,
    pub end: SegmentEnd,
}

/// Why a segment cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The message includes the I/O error's, so it is not also the `source()`.
    #[error("{path}: I/O error: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error("{path}: corrupt record at byte offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

/// Reads every valid record of a segment in order, calling `on_record` with its header, its
/// events' bytes and its note, and classifies what follows the last one. Records must carry
/// consecutive sequence numbers starting at `first_sequence`.
pub fn scan_segment(
    path: &Path,
    first_sequence: u64,
    mut on_record: impl FnMut(&RecordHeader, &[u8], &[u8]) -> Result<(), String>,
) -> Result<SegmentScan, ScanError> {
    let io_error = |error| ScanError::Io {
        path: path.to_owned(),
        error,
    };
    let corrupt = |offset: u64, reason: String| ScanError::Corrupt {
        path: path.to_owned(),
        offset,
        reason,
    };
    let file = File::open(path).map_err(io_error)?;
    let file_len = file.metadata().map_err(io_error)?.len();
    let mut window = Window {
        file: &file,
        file_len,
        start: 0,
        bytes: Vec::new(),
    };
    let mut offset = 0u64;
    let mut header_bytes = [0u8; HEADER_BYTES];
    let mut records = 0u64;
    loop {
        let remaining = file_len - offset;
        if remaining == 0 {
            return Ok(SegmentScan {
                valid_end: offset,
                records,
                end: SegmentEnd::Clean,
            });
        }
        let header_len = remaining.min(HEADER_BYTES as u64) as usize;
        header_bytes[..header_len]
            .copy_from_slice(window.get(offset, header_len).map_err(io_error)?);
        let damage = match decode_header(&header_bytes[..header_len]) {
            None => Some("record header incomplete or damaged"),
            Some(header) => {
                let expected = first_sequence + records;
                if header.sequence != expected {
                    return Err(corrupt(
                        offset,
                        format!("sequence {} where {expected} was expected", header.sequence),
                    ));
                }
                let payload_end = offset + HEADER_BYTES as u64 + u64::from(header.payload_len);
                if payload_end > file_len {
                    Some("record payload incomplete")
                } else {
                    let payload = window
                        .get(offset + HEADER_BYTES as u64, header.payload_len as usize)
                        .map_err(io_error)?;
                    if crc32c::crc32c(payload) != header.payload_crc {
                        Some("record payload checksum mismatch")
                    } else {
                        let (events, note) = payload.split_at(header.events_len());
                        on_record(&header, events, note)
                            .map_err(|reason| corrupt(offset, reason))?;
                        records += 1;
                        offset = payload_end;
                        None
                    }
                }
            }
        };
        let Some(reason) = damage else { continue };
        // Something is wrong at `offset`. It is a torn tail only if nothing valid follows.
        if all_zero_from(&file, offset, file_len).map_err(io_error)? {
            return Ok(SegmentScan {
                valid_end: offset,
                records,
                end: SegmentEnd::Clean,
            });
        }
        if let Some(later) = find_valid_header(&file, offset + 1, file_len).map_err(io_error)? {
            return Err(corrupt(
                offset,
                format!("{reason}, but a valid record follows at byte offset {later}"),
            ));
        }
        return Ok(SegmentScan {
            valid_end: offset,
            records,
            end: SegmentEnd::TornTail { reason },
        });
    }
}

const SCAN_CHUNK_BYTES: usize = 1 << 20;

/// Reads a file through one buffer of at least [`SCAN_CHUNK_BYTES`], so that a scan costs one
/// read per megabyte rather than two per record (replay and the crash checker scan whole logs).
struct Window<'f> {
    file: &'f File,
    file_len: u64,
    /// The file offset of `bytes[0]`.
    start: u64,
    bytes: Vec<u8>,
}

impl Window<'_> {
    /// The `len` bytes at `offset`; the caller has checked that they lie within the file.
    fn get(&mut self, offset: u64, len: usize) -> io::Result<&[u8]> {
        let end = offset + len as u64;
        let covered = offset >= self.start && end <= self.start + self.bytes.len() as u64;
        if !covered {
            let rest = usize::try_from(self.file_len - offset).unwrap_or(usize::MAX);
            self.bytes.resize(len.max(SCAN_CHUNK_BYTES).min(rest), 0);
            self.file.read_exact_at(&mut self.bytes, offset)?;
            self.start = offset;
        }
        let at = (offset - self.start) as usize;
        Ok(&self.bytes[at..at + len])
    }
}

fn all_zero_from(file: &File, mut offset: u64, file_len: u64) -> io::Result<bool> {
    let mut buffer = vec![0u8; SCAN_CHUNK_BYTES];
    while offset < file_len {
        let len = ((file_len - offset) as usize).min(SCAN_CHUNK_BYTES);
        file.read_exact_at(&mut buffer[..len], offset)?;
        if buffer[..len].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        offset += len as u64;
    }
    Ok(true)
}

/// The offset of the first valid record header at or after `from`, if any. Reads in chunks
/// that overlap by one header so a header straddling two chunks is still seen.
fn find_valid_header(file: &File, from: u64, file_len: u64) -> io::Result<Option<u64>> {
    let mut buffer = vec![0u8; SCAN_CHUNK_BYTES + HEADER_BYTES];
    let mut start = from;
    while start < file_len {
        let len = ((file_len - start) as usize).min(buffer.len());
        file.read_exact_at(&mut buffer[..len], start)?;
        let window = &buffer[..len];
        for i in 0..len.min(SCAN_CHUNK_BYTES) {
            if window[i] == RECORD_MAGIC[0] && decode_header(&window[i..]).is_some() {
                return Ok(Some(start + i as u64));
            }
        }
        start += SCAN_CHUNK_BYTES as u64;
    }
    Ok(None)
}

/// The segment being written.
pub struct LogWriter {
    file: File,
    path: PathBuf,
    first_sequence: u64,
    /// Where the next record goes.
    offset: u64,
    /// Bytes allocated (the file's length).
    allocated: u64,
    preallocate_bytes: u64,
}

impl LogWriter {
    /// Creates a new, empty segment whose first record will be `first_sequence`, and makes its
    /// directory entry durable.
    pub fn create(
        dir: &Path,
        first_sequence: u64,
        preallocate_bytes: u64,
    ) -> io::Result<LogWriter> {
        let path = dir.join(segment_name(first_sequence));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        let mut writer = LogWriter {
            file,
            path,
            first_sequence,
            offset: 0,
            allocated: 0,
            preallocate_bytes,
        };
        writer.ensure_allocated(preallocate_bytes)?;
        writer.file.sync_all()?;
        sync_dir(dir)?;
        Ok(writer)
    }

    /// Continues an existing segment after its last valid record at `valid_end`. Anything
    /// after `valid_end` (a torn tail) is cut off and replaced by zeros before any write.
    pub fn resume(
        path: &Path,
        first_sequence: u64,
        valid_end: u64,
        preallocate_bytes: u64,
    ) -> io::Result<LogWriter> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        file.set_len(valid_end)?;
        let mut writer = LogWriter {
            file,
            path: path.to_owned(),
            first_sequence,
            offset: valid_end,
            allocated: valid_end,
            preallocate_bytes,
        };
        writer.ensure_allocated(preallocate_bytes)?;
        writer.file.sync_all()?;
        Ok(writer)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn first_sequence(&self) -> u64 {
        self.first_sequence
    }

    /// Bytes of records written to this segment.
    pub fn len(&self) -> u64 {
        self.offset
    }

    pub fn is_empty(&self) -> bool {
        self.offset == 0
    }

    fn ensure_allocated(&mut self, bytes: u64) -> io::Result<()> {
        let needed = self.offset + bytes;
        if needed <= self.allocated {
            return Ok(());
        }
        let grow_to = needed.max(self.allocated + self.preallocate_bytes);
        allocate(&self.file, self.allocated, grow_to - self.allocated)?;
        self.allocated = grow_to;
        Ok(())
    }

    /// Writes records at the end of the segment. Not durable until [`LogWriter::sync`].
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.ensure_allocated(bytes.len() as u64)?;
        self.file.write_all_at(bytes, self.offset)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Makes every appended record durable (`fdatasync`).
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Gives back the preallocated space after the last record of a segment that is finished
    /// (a newer one takes the writes), so a retained archive holds records, not zeros. No sync:
    /// if a crash loses the truncation, the segment ends in zeros again, which reads the same.
    pub fn trim(self) -> io::Result<()> {
        self.file.set_len(self.offset)
    }
}

/// Allocates `len` bytes at `offset`, reading back as zeros. Falls back to writing zeros
/// where the filesystem cannot `fallocate`.
fn allocate(file: &File, offset: u64, len: u64) -> io::Result<()> {
    // SAFETY: fallocate on an open descriptor with in-range arguments has no memory effects.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, offset as i64, len as i64) };
    if rc == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() != Some(libc::EOPNOTSUPP) {
        return Err(error);
    }
    let zeros = vec![0u8; SCAN_CHUNK_BYTES];
    let mut written = 0;
    while written < len {
        let n = (len - written).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], offset + written)?;
        written += n as u64;
    }
    Ok(())
}

/// Makes a directory's entries (new or renamed files) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
