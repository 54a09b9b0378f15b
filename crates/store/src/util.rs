//! Small helpers every layer shares: the clock, hashing, ids derived from Idempotency-Keys, and
//! JSON written into a buffer reserved up front.

use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

pub fn rfc3339(ns: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// A fresh random 128-bit id (never 0 or `u128::MAX`, which the ledger reserves).
/// A new id whose high 64 bits are `now_ns` and low 64 bits random: ids made later sort later,
/// so records keyed by them append to their B-tree instead of rewriting a random leaf each
/// (the charge path's store writes). The id tells when its object was made.
pub fn time_ordered_id(now_ns: u64) -> u128 {
    (u128::from(now_ns) << 64) | u128::from(rand::random::<u64>() | 1)
}

pub fn random_id() -> u128 {
    loop {
        let id: u128 = rand::random();
        if id != 0 && id != u128::MAX {
            return id;
        }
    }
}

/// Every transfer endpoint derives its ids with this one purpose, so an Idempotency-Key reused on
/// another transfer endpoint, or on another hold, names the same ledger transfer and gets
/// `exists_with_different_fields` (409) rather than running as a new request.
pub const TRANSFERS_PURPOSE: &str = "transfers";

/// The first id of a run of `count` consecutive transfer ids (a batch or a chain): derived from
/// the Idempotency-Key when there is one (so a retry names the same transfers), else random.
/// One hash per request, not per transfer. The start lies in `1..=2^127`, so the run never
/// reaches `u128::MAX` or wraps to 0; two runs overlap with probability about
/// `count / 2^127`.
pub fn id_run_start(tenant: u128, idempotency_key: Option<&str>) -> u128 {
    let seed = match idempotency_key {
        Some(key) => derived_id(tenant, key, TRANSFERS_PURPOSE, 0),
        None => rand::random(),
    };
    (seed >> 1) + 1
}

/// A ledger id derived from a tenant's Idempotency-Key, so that a retry (even after a crash
/// between commit and response) names the same ledger object and the ledger answers `exists`.
pub fn derived_id(tenant: u128, idempotency_key: &str, purpose: &str, index: u64) -> u128 {
    let hash = sha256(&[
        &tenant.to_le_bytes(),
        idempotency_key.as_bytes(),
        purpose.as_bytes(),
        &index.to_le_bytes(),
    ]);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    match u128::from_le_bytes(bytes) {
        0 => 1,
        u128::MAX => u128::MAX - 1,
        id => id,
    }
}

/// Room reserved for a JSON document before it is written: most answers and records fit, so
/// the buffer is not regrown (and copied) several times on the way, as from serde_json's 128
/// bytes.
pub const JSON_BYTES_RESERVED: usize = 1024;

/// `value` as JSON, written into [`JSON_BYTES_RESERVED`] bytes reserved up front.
pub fn json_bytes<T: serde::Serialize>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(JSON_BYTES_RESERVED);
    serde_json::to_writer(&mut out, value)?;
    Ok(out)
}
