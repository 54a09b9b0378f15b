//! Fixed-size little-endian encodings of ledger events, as written in the log.
//!
//! | event    | bytes | layout |
//! |----------|-------|--------|
//! | asset    | 32    | id u32, scale u8, code_len u8, code [15], zero [11] |
//! | account  | 64    | id u128, overdraft_limit u128, user_data u128, asset u32, code u16, flags u16, zero [8] |
//! | transfer | 112   | id, debit_account_id, credit_account_id, amount, pending_id, user_data (u128 each), timeout_s u32, asset u32, code u16, flags u16, zero [4] |
//!
//! Reserved bytes must be zero when read back; anything else is corruption.

use farthing_ledger::{
    Account, AccountFlags, AccountId, Amount, Asset, AssetCode, AssetId, Operation, Transfer,
    TransferFlags, TransferId,
};

pub const ASSET_BYTES: usize = 32;
pub const ACCOUNT_BYTES: usize = 64;
pub const TRANSFER_BYTES: usize = 112;

/// Which operation a log record holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum OperationKind {
    CreateAssets = 1,
    CreateAccounts = 2,
    CreateTransfers = 3,
}

impl OperationKind {
    pub fn of(operation: &Operation) -> OperationKind {
        match operation {
            Operation::CreateAssets(_) => OperationKind::CreateAssets,
            Operation::CreateAccounts(_) => OperationKind::CreateAccounts,
            Operation::CreateTransfers(_) => OperationKind::CreateTransfers,
        }
    }

    pub fn from_byte(byte: u8) -> Option<OperationKind> {
        match byte {
            1 => Some(OperationKind::CreateAssets),
            2 => Some(OperationKind::CreateAccounts),
            3 => Some(OperationKind::CreateTransfers),
            _ => None,
        }
    }

    pub fn event_bytes(self) -> usize {
        match self {
            OperationKind::CreateAssets => ASSET_BYTES,
            OperationKind::CreateAccounts => ACCOUNT_BYTES,
            OperationKind::CreateTransfers => TRANSFER_BYTES,
        }
    }
}

/// Why bytes are not a valid encoding.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("payload of {len} bytes is not a whole number of {event_bytes}-byte events")]
    Length { len: usize, event_bytes: usize },
    #[error("event {index}: {what}")]
    Event { index: usize, what: &'static str },
}

/// Appends the events of `operation` to `out`.
pub fn encode_operation(operation: &Operation, out: &mut Vec<u8>) {
    match operation {
        Operation::CreateAssets(assets) => assets.iter().for_each(|a| encode_asset(a, out)),
        Operation::CreateAccounts(accounts) => accounts.iter().for_each(|a| encode_account(a, out)),
        Operation::CreateTransfers(transfers) => {
            out.reserve(transfers.len() * TRANSFER_BYTES);
            transfers.iter().for_each(|t| encode_transfer(t, out))
        }
    }
}

pub fn decode_operation(kind: OperationKind, payload: &[u8]) -> Result<Operation, DecodeError> {
    let event_bytes = kind.event_bytes();
    if !payload.len().is_multiple_of(event_bytes) {
        return Err(DecodeError::Length {
            len: payload.len(),
            event_bytes,
        });
    }
    let events = payload.chunks_exact(event_bytes).enumerate();
    let wrap = |index| move |what| DecodeError::Event { index, what };
    Ok(match kind {
        OperationKind::CreateAssets => Operation::CreateAssets(
            events
                .map(|(i, e)| decode_asset(e).map_err(wrap(i)))
                .collect::<Result<_, _>>()?,
        ),
        OperationKind::CreateAccounts => Operation::CreateAccounts(
            events
                .map(|(i, e)| decode_account(e).map_err(wrap(i)))
                .collect::<Result<_, _>>()?,
        ),
        OperationKind::CreateTransfers => Operation::CreateTransfers(
            events
                .map(|(i, e)| decode_transfer(e).map_err(wrap(i)))
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn encode_asset(asset: &Asset, out: &mut Vec<u8>) {
    let mut bytes = [0u8; ASSET_BYTES];
    bytes[0..4].copy_from_slice(&asset.id.0.to_le_bytes());
    bytes[4] = asset.scale;
    let code = asset.code.as_str().as_bytes();
    bytes[5] = code.len() as u8;
    bytes[6..6 + code.len()].copy_from_slice(code);
    out.extend_from_slice(&bytes);
}

fn decode_asset(bytes: &[u8]) -> Result<Asset, &'static str> {
    let code_len = bytes[5] as usize;
    if code_len > 15 || bytes[6 + code_len..].iter().any(|&b| b != 0) {
        return Err("asset code length or reserved bytes invalid");
    }
    let code = std::str::from_utf8(&bytes[6..6 + code_len]).map_err(|_| "asset code not UTF-8")?;
    Ok(Asset {
        id: AssetId(u32_at(bytes, 0)),
        code: AssetCode::new(code).map_err(|_| "asset code invalid")?,
        scale: bytes[4],
    })
}

fn encode_account(account: &Account, out: &mut Vec<u8>) {
    let mut bytes = [0u8; ACCOUNT_BYTES];
    bytes[0..16].copy_from_slice(&account.id.0.to_le_bytes());
    bytes[16..32].copy_from_slice(&account.overdraft_limit.0.to_le_bytes());
    bytes[32..48].copy_from_slice(&account.user_data.to_le_bytes());
    bytes[48..52].copy_from_slice(&account.asset.0.to_le_bytes());
    bytes[52..54].copy_from_slice(&account.code.to_le_bytes());
    bytes[54..56].copy_from_slice(&account.flags.0.to_le_bytes());
    out.extend_from_slice(&bytes);
}

fn decode_account(bytes: &[u8]) -> Result<Account, &'static str> {
    if bytes[56..64].iter().any(|&b| b != 0) {
        return Err("account reserved bytes not zero");
    }
    Ok(Account {
        id: AccountId(u128_at(bytes, 0)),
        overdraft_limit: Amount(u128_at(bytes, 16)),
        user_data: u128_at(bytes, 32),
        asset: AssetId(u32_at(bytes, 48)),
        code: u16_at(bytes, 52),
        flags: AccountFlags(u16_at(bytes, 54)),
    })
}

fn encode_transfer(t: &Transfer, out: &mut Vec<u8>) {
    let mut bytes = [0u8; TRANSFER_BYTES];
    bytes[0..16].copy_from_slice(&t.id.0.to_le_bytes());
    bytes[16..32].copy_from_slice(&t.debit_account_id.0.to_le_bytes());
    bytes[32..48].copy_from_slice(&t.credit_account_id.0.to_le_bytes());
    bytes[48..64].copy_from_slice(&t.amount.0.to_le_bytes());
    bytes[64..80].copy_from_slice(&t.pending_id.0.to_le_bytes());
    bytes[80..96].copy_from_slice(&t.user_data.to_le_bytes());
    bytes[96..100].copy_from_slice(&t.timeout_s.to_le_bytes());
    bytes[100..104].copy_from_slice(&t.asset.0.to_le_bytes());
    bytes[104..106].copy_from_slice(&t.code.to_le_bytes());
    bytes[106..108].copy_from_slice(&t.flags.0.to_le_bytes());
    out.extend_from_slice(&bytes);
}

fn decode_transfer(bytes: &[u8]) -> Result<Transfer, &'static str> {
    if bytes[108..112].iter().any(|&b| b != 0) {
        return Err("transfer reserved bytes not zero");
    }
    Ok(Transfer {
        id: TransferId(u128_at(bytes, 0)),
        debit_account_id: AccountId(u128_at(bytes, 16)),
        credit_account_id: AccountId(u128_at(bytes, 32)),
        amount: Amount(u128_at(bytes, 48)),
        pending_id: TransferId(u128_at(bytes, 64)),
        user_data: u128_at(bytes, 80),
        timeout_s: u32_at(bytes, 96),
        asset: AssetId(u32_at(bytes, 100)),
        code: u16_at(bytes, 104),
        flags: TransferFlags(u16_at(bytes, 106)),
    })
}

/// Little-endian readers over slices whose length the caller has checked.
pub(crate) fn u128_at(bytes: &[u8], at: usize) -> u128 {
    let mut word = [0u8; 16];
    word.copy_from_slice(&bytes[at..at + 16]);
    u128::from_le_bytes(word)
}

pub(crate) fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

pub(crate) fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

pub(crate) fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_kind_round_trips() {
        let asset = Asset {
            id: AssetId(7),
            code: AssetCode::new("USD_6").unwrap(),
            scale: 6,
        };
        let account = Account {
            id: AccountId(u128::MAX - 1),
            asset: AssetId(7),
            code: 3,
            flags: AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
            overdraft_limit: Amount(99),
            user_data: 1 << 100,
        };
        let transfer = Transfer {
            pending_id: TransferId(5),
            timeout_s: 9,
            code: 4,
            flags: TransferFlags::POST_PENDING | TransferFlags::LINKED,
            user_data: 42,
            ..Transfer::simple(1, 2, 3, u128::MAX, 7)
        };
        for op in [
            Operation::CreateAssets(vec![asset]),
            Operation::CreateAccounts(vec![account, account]),
            Operation::CreateTransfers(vec![transfer, transfer, transfer]),
        ] {
            let mut bytes = Vec::new();
            encode_operation(&op, &mut bytes);
            assert_eq!(bytes.len(), op.len() * OperationKind::of(&op).event_bytes());
            assert_eq!(decode_operation(OperationKind::of(&op), &bytes), Ok(op));
        }
    }

    #[test]
    fn nonzero_reserved_bytes_are_corruption() {
        let mut bytes = Vec::new();
        encode_operation(
            &Operation::CreateTransfers(vec![Transfer::simple(1, 2, 3, 4, 5)]),
            &mut bytes,
        );
        bytes[110] = 1;
        let err = decode_operation(OperationKind::CreateTransfers, &bytes).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Event {
                index: 0,
                what: "transfer reserved bytes not zero"
            }
        );
        let err = decode_operation(OperationKind::CreateTransfers, &bytes[..100]).unwrap_err();
        assert!(matches!(err, DecodeError::Length { len: 100, .. }));
    }
}
