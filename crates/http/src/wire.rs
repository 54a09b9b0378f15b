//! The compact binary encoding of `POST /v1/transfers/batch` (content type
//! `application/octet-stream`), for clients that move a million transfers a second and cannot
//! afford to spell each one out in JSON.
//!
//! Everything is little-endian. A request is a header, an asset table, then fixed-size records:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `FTB1` |
//! | 4 | `count`: records, 1 to 8,190 |
//! | 2 | `asset_count`: entries in the asset table, 1 to 64 |
//! | 2 | reserved, 0 |
//! | 16 × asset_count | asset codes, ASCII, NUL-padded (`USD`) |
//! | 64 × count | records |
//!
//! A record: `debit_account` u128, `credit_account` u128 (the 128-bit numbers behind `acct_…`
//! ids, see [`farthing_products::ids`]), `amount` u128 in the asset's minor units, `asset_index` u16 into the
//! asset table, `code` u16, `flags` u16 (bit 0: a hold), 2 reserved bytes, `timeout_seconds`
//! u32, 4 reserved bytes. Reserved bytes must be zero, so they can gain a meaning later.
//!
//! The response (same content type) is `FTR1`, `count` u32, `first_id` u128, then one result
//! byte per record: the ledger's stable [`TransferResult`] code (0 = created, 1 = exists, ...)
//! or one of the API's own codes below. Record `i`'s transfer id is `first_id + i` (wrapping),
//! whether or not it was created; `tr_…` is that number encoded.

use farthing_ledger::{TransferFlags, TransferResult};

pub const CONTENT_TYPE: &str = "application/octet-stream";
pub const REQUEST_MAGIC: [u8; 4] = *b"FTB1";
pub const RESPONSE_MAGIC: [u8; 4] = *b"FTR1";
pub const HEADER_BYTES: usize = 12;
pub const ASSET_CODE_BYTES: usize = 16;
pub const RECORD_BYTES: usize = 64;
pub const ASSETS_MAX: usize = 64;
pub const RESPONSE_HEADER_BYTES: usize = 24;

/// Record flag bit 0: the transfer is a hold.
pub const FLAG_PENDING: u16 = 1;

/// A result byte the API adds to the ledger's codes: a reserved field was not zero.
pub const RESULT_RESERVED_NOT_ZERO: u8 = 200;
/// A result byte the API adds to the ledger's codes: `asset_index` is outside the asset table.
pub const RESULT_ASSET_INDEX_UNKNOWN: u8 = 201;

/// The name of a result byte: the ledger's name, or the API's own.
pub fn result_name(code: u8) -> &'static str {
    match code {
        RESULT_RESERVED_NOT_ZERO => "reserved_not_zero",
        RESULT_ASSET_INDEX_UNKNOWN => "asset_index_unknown",
        other => TransferResult::from_code(other).map_or("unknown", |r| r.as_str()),
    }
}

/// One decoded record, before the API has checked who may use its accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub debit_account: u128,
    pub credit_account: u128,
    pub amount: u128,
    pub asset_index: u16,
    pub code: u16,
    pub flags: u16,
    pub timeout_seconds: u32,
    /// All reserved bytes were zero.
    pub reserved_zero: bool,
}

impl Record {
    pub fn transfer_flags(&self) -> TransferFlags {
        if self.flags & FLAG_PENDING != 0 {
            TransferFlags::PENDING
        } else {
            TransferFlags::empty()
        }
    }

    /// Flag bits this version does not define are refused like reserved bytes.
    pub fn flags_known(&self) -> bool {
        self.flags & !FLAG_PENDING == 0
    }
}

/// Why a binary request could not be read at all; each names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("body is {len} bytes, shorter than the {HEADER_BYTES}-byte header")]
    Truncated { len: usize },
    #[error("body does not start with the magic FTB1")]
    Magic,
    #[error("count must be 1 to {max}, not {count}")]
    Count { count: usize, max: usize },
    #[error("asset_count must be 1 to {ASSETS_MAX}, not {count}")]
    AssetCount { count: usize },
    #[error("header reserved bytes must be zero")]
    Reserved,
    #[error("body is {len} bytes but the header announces {expected}")]
    Length { len: usize, expected: usize },
    #[error("asset code {index} is not 1 to 15 ASCII letters, digits or underscores")]
    AssetCode { index: usize },
}

impl WireError {
    /// The request field this error is about.
    pub fn param(&self) -> &'static str {
        match self {
            WireError::Truncated { .. } | WireError::Magic | WireError::Length { .. } => "body",
            WireError::Count { .. } => "count",
            WireError::AssetCount { .. } | WireError::Reserved => "asset_count",
            WireError::AssetCode { .. } => "assets",
        }
    }
}

/// A decoded request: the asset codes and a view of the records.
pub struct Request<'a> {
    pub assets: Vec<String>,
    records: &'a [u8],
}

impl<'a> Request<'a> {
    pub fn len(&self) -> usize {
        self.records.len() / RECORD_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn records(&self) -> impl Iterator<Item = Record> + 'a {
        self.records.chunks_exact(RECORD_BYTES).map(decode_record)
    }
}

/// Checks the header and the length, and reads the asset table; records are decoded lazily.
pub fn decode_request(body: &[u8], count_max: usize) -> Result<Request<'_>, WireError> {
    if body.len() < HEADER_BYTES {
        return Err(WireError::Truncated { len: body.len() });
    }
    if body[0..4] != REQUEST_MAGIC {
        return Err(WireError::Magic);
    }
    let count = u32_at(body, 4) as usize;
    if count == 0 || count > count_max {
        return Err(WireError::Count {
            count,
            max: count_max,
        });
    }
    let asset_count = u16_at(body, 8) as usize;
    if asset_count == 0 || asset_count > ASSETS_MAX {
        return Err(WireError::AssetCount { count: asset_count });
    }
    if u16_at(body, 10) != 0 {
        return Err(WireError::Reserved);
    }
    let records_start = HEADER_BYTES + asset_count * ASSET_CODE_BYTES;
    let expected = records_start + count * RECORD_BYTES;
    if body.len() != expected {
        return Err(WireError::Length {
            len: body.len(),
            expected,
        });
    }
    let assets = body[HEADER_BYTES..records_start]
        .chunks_exact(ASSET_CODE_BYTES)
        .enumerate()
        .map(|(index, raw)| asset_code(raw).ok_or(WireError::AssetCode { index }))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Request {
        assets,
        records: &body[records_start..],
    })
}

fn asset_code(raw: &[u8]) -> Option<String> {
    let len = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
    let (code, padding) = raw.split_at(len);
    let valid = (1..=15).contains(&code.len())
        && padding.iter().all(|b| *b == 0)
        && code
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_');
    valid.then(|| String::from_utf8_lossy(code).into_owned())
}

fn decode_record(raw: &[u8]) -> Record {
    Record {
        debit_account: u128_at(raw, 0),
        credit_account: u128_at(raw, 16),
        amount: u128_at(raw, 32),
        asset_index: u16_at(raw, 48),
        code: u16_at(raw, 50),
        flags: u16_at(raw, 52),
        timeout_seconds: u32_at(raw, 56),
        reserved_zero: raw[54..56] == [0, 0] && raw[60..64] == [0; 4],
    }
}

/// Encodes a request; the project's own client (`farthing bench --http`) uses this.
pub fn encode_request(assets: &[&str], records: &[Record]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        HEADER_BYTES + assets.len() * ASSET_CODE_BYTES + records.len() * RECORD_BYTES,
    );
    out.extend_from_slice(&REQUEST_MAGIC);
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    out.extend_from_slice(&(assets.len() as u16).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    for code in assets {
        let mut raw = [0u8; ASSET_CODE_BYTES];
        let len = code.len().min(ASSET_CODE_BYTES);
        raw[..len].copy_from_slice(&code.as_bytes()[..len]);
        out.extend_from_slice(&raw);
    }
    for r in records {
        out.extend_from_slice(&r.debit_account.to_le_bytes());
        out.extend_from_slice(&r.credit_account.to_le_bytes());
        out.extend_from_slice(&r.amount.to_le_bytes());
        out.extend_from_slice(&r.asset_index.to_le_bytes());
        out.extend_from_slice(&r.code.to_le_bytes());
        out.extend_from_slice(&r.flags.to_le_bytes());
        out.extend_from_slice(&[0u8; 2]);
        out.extend_from_slice(&r.timeout_seconds.to_le_bytes());
        out.extend_from_slice(&[0u8; 4]);
    }
    out
}

/// Encodes a response: the first transfer id and one result byte per record.
pub fn encode_response(first_id: u128, results: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RESPONSE_HEADER_BYTES + results.len());
    out.extend_from_slice(&RESPONSE_MAGIC);
    out.extend_from_slice(&(results.len() as u32).to_le_bytes());
    out.extend_from_slice(&first_id.to_le_bytes());
    out.extend_from_slice(results);
    out
}

/// A decoded response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub first_id: u128,
    pub results: Vec<u8>,
}

impl Response {
    /// The transfer id of record `index`.
    pub fn id(&self, index: usize) -> u128 {
        self.first_id.wrapping_add(index as u128)
    }
}

/// Decodes a response, or says why it is not one.
pub fn decode_response(body: &[u8]) -> Result<Response, WireError> {
    if body.len() < RESPONSE_HEADER_BYTES {
        return Err(WireError::Truncated { len: body.len() });
    }
    if body[0..4] != RESPONSE_MAGIC {
        return Err(WireError::Magic);
    }
    let count = u32_at(body, 4) as usize;
    let expected = RESPONSE_HEADER_BYTES + count;
    if body.len() != expected {
        return Err(WireError::Length {
            len: body.len(),
            expected,
        });
    }
    Ok(Response {
        first_id: u128_at(body, 8),
        results: body[RESPONSE_HEADER_BYTES..].to_vec(),
    })
}

fn u16_at(raw: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([raw[at], raw[at + 1]])
}

fn u32_at(raw: &[u8], at: usize) -> u32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&raw[at..at + 4]);
    u32::from_le_bytes(bytes)
}

fn u128_at(raw: &[u8], at: usize) -> u128 {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&raw[at..at + 16]);
    u128::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(amount: u128) -> Record {
        Record {
            debit_account: 7 << 100,
            credit_account: 9,
            amount,
            asset_index: 0,
            code: 3,
            flags: FLAG_PENDING,
            timeout_seconds: 60,
            reserved_zero: true,
        }
    }

    #[test]
    fn requests_round_trip() {
        let records = [record(1), record(u128::MAX)];
        let body = encode_request(&["USD", "EUR"], &records);
        let request = decode_request(&body, 8190).unwrap();
        assert_eq!(request.assets, ["USD", "EUR"]);
        assert_eq!(request.records().collect::<Vec<_>>(), records);
    }

    #[test]
    fn responses_round_trip() {
        let body = encode_response(u128::MAX, &[0, 1, RESULT_ASSET_INDEX_UNKNOWN]);
        let response = decode_response(&body).unwrap();
        assert_eq!(response.results, [0, 1, RESULT_ASSET_INDEX_UNKNOWN]);
        assert_eq!(response.id(1), 0, "ids wrap");
        assert_eq!(result_name(1), "exists");
        assert_eq!(
            result_name(RESULT_ASSET_INDEX_UNKNOWN),
            "asset_index_unknown"
        );
    }

    #[test]
    fn malformed_requests_name_the_field() {
        let good = encode_request(&["USD"], &[record(5)]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (good[..5].to_vec(), "body"),
            ([b"XXXX", &good[4..]].concat(), "body"),
            (good[..good.len() - 1].to_vec(), "body"),
            ([&good[..], &[0]].concat(), "body"),
            (
                [&good[..4], &0u32.to_le_bytes(), &good[8..]].concat(),
                "count",
            ),
            (
                [&good[..4], &9000u32.to_le_bytes(), &good[8..]].concat(),
                "count",
            ),
            ([&good[..8], &[0, 0], &good[10..]].concat(), "asset_count"),
            ([&good[..10], &[1, 0], &good[12..]].concat(), "asset_count"),
            ([&good[..12], b"us", &good[14..]].concat(), "assets"),
        ];
        for (body, param) in cases {
            let error = decode_request(&body, 8190).err().expect("refused");
            assert_eq!(error.param(), param, "{error}");
        }
    }

    #[test]
    fn reserved_bytes_and_unknown_flags_are_visible() {
        let mut body = encode_request(&["USD"], &[record(5)]);
        let at = HEADER_BYTES + ASSET_CODE_BYTES;
        body[at + 61] = 1;
        body[at + 52] = 3;
        let r = decode_request(&body, 8190)
            .unwrap()
            .records()
            .next()
            .unwrap();
        assert!(!r.reserved_zero);
        assert!(!r.flags_known());
    }
}
