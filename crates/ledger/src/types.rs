//! Identifiers, amounts, timestamps and the command types the ledger accepts.

use std::fmt;

/// An account's identifier, chosen by the client. 0 and `u128::MAX` are reserved.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct AccountId(pub u128);

/// A transfer's identifier, chosen by the client and unique forever. 0 and `u128::MAX` are reserved.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct TransferId(pub u128);

/// An asset's identifier. 0 is reserved.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct AssetId(pub u32);

/// Nanoseconds since the Unix epoch. Assigned by the batch, never by the client.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct Timestamp(pub u64);

/// A quantity of an asset in its minor unit (e.g. micro-dollars at scale 6).
/// Unsigned: money moves by choosing the debit and credit side, never by sign.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct Amount(pub u128);

impl Amount {
    pub const ZERO: Amount = Amount(0);

    /// The exact decimal text of the amount in an asset of `scale` decimal places
    /// (`Amount(1).to_decimal(6)` is `"0.000001"`); never rounds.
    /// One allocation: it is on every money field of every response.
    pub fn to_decimal(self, scale: u8) -> String {
        // u128::MAX has 39 digits. Digits are produced from the right.
        let mut digits = [b'0'; 39];
        let mut start = digits.len();
        let mut rest = self.0;
        // Most amounts fit 64 bits, whose division is far cheaper than 128-bit division.
        while rest > u128::from(u64::MAX) {
            start -= 1;
            digits[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        let mut small = rest as u64;
        loop {
            start -= 1;
            digits[start] = b'0' + (small % 10) as u8;
            small /= 10;
            if small == 0 {
                break;
            }
        }
        with_point(&digits[start..], scale)
    }

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// The sum, or `u128::MAX` minor units where it would overflow (for reported totals, never
    /// for bookings: the ledger refuses an overflow).
    pub fn saturating_add(self, other: Amount) -> Amount {
        Amount(self.0.saturating_add(other.0))
    }

    /// The difference, or zero where `other` is larger.
    pub fn saturating_sub(self, other: Amount) -> Amount {
        Amount(self.0.saturating_sub(other.0))
    }

    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

/// Decimal digits with the point placed `scale` digits from the right, and at least one digit
/// before it (zeros pad on the left).
fn with_point(digits: &[u8], scale: u8) -> String {
    let scale = usize::from(scale);
    let width = digits.len().max(scale + 1);
    let pad = width - digits.len();
    let whole = width - scale;
    let mut text = String::with_capacity(width + 1);
    for i in 0..width {
        if i == whole {
            text.push('.');
        }
        text.push(if i < pad {
            '0'
        } else {
            char::from(digits[i - pad])
        });
    }
    text
}

impl From<Amount> for WideAmount {
    fn from(amount: Amount) -> WideAmount {
        WideAmount {
            high: 0,
            low: amount.0,
        }
    }
}

/// A total of many amounts: 256 bits, so summing every balance of an asset (each up to
/// `u128::MAX`) never overflows. For reports and reconciliation; no balance is ever this wide.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct WideAmount {
    // `high` first: the derived order is the numeric order.
    high: u128,
    low: u128,
}

impl WideAmount {
    pub const ZERO: WideAmount = WideAmount { high: 0, low: 0 };

    pub fn sum(a: Amount, b: Amount) -> WideAmount {
        let mut wide = WideAmount::from(a);
        wide.add(b);
        wide
    }

    pub fn add(&mut self, amount: Amount) {
        let (low, carry) = self.low.overflowing_add(amount.0);
        self.low = low;
        // 2^128 additions of u128::MAX fit in 256 bits; no asset has that many accounts.
        self.high += u128::from(carry);
    }

    /// `|self − other|`, and whether `self < other`.
    pub fn abs_diff(self, other: WideAmount) -> (WideAmount, bool) {
        let (big, small, negative) = if self >= other {
            (self, other, false)
        } else {
            (other, self, true)
        };
        let (low, borrow) = big.low.overflowing_sub(small.low);
        let high = big.high - small.high - u128::from(borrow);
        (WideAmount { high, low }, negative)
    }

    /// The value when it fits an [`Amount`].
    pub fn to_amount(self) -> Option<Amount> {
        (self.high == 0).then_some(Amount(self.low))
    }

    /// The exact decimal text at `scale`, as [`Amount::to_decimal`].
    pub fn to_decimal(self, scale: u8) -> String {
        if self.high == 0 {
            return Amount(self.low).to_decimal(scale);
        }
        // Four 64-bit limbs, most significant first, divided by 10 until zero.
        let mut limbs = [
            (self.high >> 64) as u64,
            self.high as u64,
            (self.low >> 64) as u64,
            self.low as u64,
        ];
        // 2^256 has 78 digits.
        let mut digits = [b'0'; 78];
        let mut start = digits.len();
        while limbs.iter().any(|&l| l != 0) {
            let mut remainder = 0u128;
            for limb in &mut limbs {
                let current = (remainder << 64) | u128::from(*limb);
                *limb = (current / 10) as u64;
                remainder = current % 10;
            }
            start -= 1;
            digits[start] = b'0' + remainder as u8;
        }
        with_point(&digits[start..], scale)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The largest scale an asset may have: 10^18 minor units per major unit still leaves
/// 2^128 / 10^18 ≈ 3.4 * 10^20 major units of headroom in a u128 balance.
pub const ASSET_SCALE_MAX: u8 = 18;

/// The longest asset code, in bytes.
pub const ASSET_CODE_LEN_MAX: usize = 15;

/// An asset's short code (`USD`, `EUR`, `POINTS`): 1 to 15 bytes of `A-Z`, `0-9`, `_`.
/// Stored inline so that [`Asset`] is `Copy` and has a fixed-size encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AssetCode {
    len: u8,
    bytes: [u8; ASSET_CODE_LEN_MAX],
}

/// Why a string is not an asset code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("asset code must be 1 to 15 characters of A-Z, 0-9 and _")]
pub struct AssetCodeError;

impl AssetCode {
    pub fn new(code: &str) -> Result<AssetCode, AssetCodeError> {
        let valid_char = |b: &u8| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_';
        if code.is_empty()
            || code.len() > ASSET_CODE_LEN_MAX
            || !code.bytes().all(|b| valid_char(&b))
        {
            return Err(AssetCodeError);
        }
        let mut bytes = [0u8; ASSET_CODE_LEN_MAX];
        bytes[..code.len()].copy_from_slice(code.as_bytes());
        Ok(AssetCode {
            len: code.len() as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        // Only ever built from validated ASCII in `new`.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

impl fmt::Debug for AssetCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for AssetCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An asset: what a ledger counts. Every account holds exactly one asset.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Asset {
    pub id: AssetId,
    pub code: AssetCode,
    /// Decimal places of the minor unit: `USD` at scale 2 counts cents, at scale 6 micro-dollars.
    /// Checked against [`ASSET_SCALE_MAX`] when the asset is created.
    pub scale: u8,
}

macro_rules! flags_type {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $flag:ident = $bit:expr,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(pub u16);

        impl $name {
            $($(#[$fdoc])* pub const $flag: $name = $name($bit);)*
            /// Every bit that has a meaning; any other bit set is an error.
            pub const ALL: $name = $name(0 $(| $bit)*);

            pub const fn empty() -> $name {
                $name(0)
            }

            pub const fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }

            pub const fn union(self, other: $name) -> $name {
                $name(self.0 | other.0)
            }

            pub const fn has_unknown_bits(self) -> bool {
                self.0 & !Self::ALL.0 != 0
            }
        }

        impl std::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, other: $name) -> $name {
                self.union(other)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut names = Vec::new();
                $(if self.contains($name::$flag) { names.push(stringify!($flag)); })*
                if self.has_unknown_bits() { names.push("UNKNOWN"); }
                write!(f, "{}({})", stringify!($name), names.join("|"))
            }
        }
    };
}

flags_type! {
    /// Rules an account enforces on every transfer that touches it.
    AccountFlags {
        /// This account and the next in the batch succeed or fail together.
        LINKED = 1,
        /// A prepaid wallet: debits (posted + pending) may never exceed posted credits
        /// plus the overdraft limit.
        DEBITS_MUST_NOT_EXCEED_CREDITS = 2,
        /// Credits (posted + pending) may never exceed posted debits.
        CREDITS_MUST_NOT_EXCEED_DEBITS = 4,
    }
}

flags_type! {
    /// How a transfer moves money.
    TransferFlags {
        /// This transfer and the next in the batch succeed or fail together.
        LINKED = 1,
        /// A hold: reserves the amount as pending until posted, voided or expired.
        PENDING = 2,
        /// Resolves the hold named by `pending_id` by posting all or part of it.
        POST_PENDING = 4,
        /// Resolves the hold named by `pending_id` by releasing it.
        VOID_PENDING = 8,
        /// Moves min(amount, what the debit account can still pay).
        BALANCING = 16,
    }
}

/// A request to open an account.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Account {
    pub id: AccountId,
    pub asset: AssetId,
    /// A client-defined category (wallet, tab, revenue, fees, ...).
    pub code: u16,
    pub flags: AccountFlags,
    /// How far debits may exceed credits; only with `DEBITS_MUST_NOT_EXCEED_CREDITS`.
    pub overdraft_limit: Amount,
    pub user_data: u128,
}

/// A request to move money from the debit account to the credit account.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Transfer {
    pub id: TransferId,
    pub debit_account_id: AccountId,
    pub credit_account_id: AccountId,
    /// For `POST_PENDING`, 0 posts the whole hold; for `VOID_PENDING`, 0 or the hold's amount.
    pub amount: Amount,
    /// The hold resolved by `POST_PENDING` / `VOID_PENDING`; otherwise 0.
    pub pending_id: TransferId,
    pub user_data: u128,
    /// Seconds after which a `PENDING` hold expires; 0 means never.
    pub timeout_s: u32,
    pub asset: AssetId,
    pub code: u16,
    pub flags: TransferFlags,
}

impl Transfer {
    /// A plain transfer with every optional field zero; handy in tests and examples.
    pub fn simple(
        id: u128,
        debit_account_id: u128,
        credit_account_id: u128,
        amount: u128,
        asset: u32,
    ) -> Transfer {
        Transfer {
            id: TransferId(id),
            debit_account_id: AccountId(debit_account_id),
            credit_account_id: AccountId(credit_account_id),
            amount: Amount(amount),
            pending_id: TransferId(0),
            user_data: 0,
            timeout_s: 0,
            asset: AssetId(asset),
            code: 0,
            flags: TransferFlags::empty(),
        }
    }
}

/// The four running totals of an account.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Balances {
    pub debits_pending: Amount,
    pub debits_posted: Amount,
    pub credits_pending: Amount,
    pub credits_posted: Amount,
}

/// Where a hold stands. Only `Pending` can change, and only once.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum PendingStatus {
    Pending,
    Posted,
    Voided,
    Expired,
}

/// One batch of work for the ledger. All events in a batch share its timestamp base.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Operation {
    CreateAssets(Vec<Asset>),
    CreateAccounts(Vec<Account>),
    /// An empty list is a valid batch: it only expires holds that are due.
    CreateTransfers(Vec<Transfer>),
}

impl Operation {
    pub fn len(&self) -> usize {
        match self {
            Operation::CreateAssets(events) => events.len(),
            Operation::CreateAccounts(events) => events.len(),
            Operation::CreateTransfers(events) => events.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The most events in one batch. Chosen like TigerBeetle's: a batch of fixed-size
/// transfers fits in about one megabyte.
pub const BATCH_EVENTS_MAX: usize = 8190;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_print_exactly_at_any_scale() {
        let cases: [(u128, u8, &str); 9] = [
            (0, 0, "0"),
            (0, 2, "0.00"),
            (1, 6, "0.000001"),
            (2500, 6, "0.002500"),
            (123, 0, "123"),
            (123_456, 2, "1234.56"),
            (u128::from(u64::MAX), 0, "18446744073709551615"),
            (u128::from(u64::MAX) + 1, 18, "18.446744073709551616"),
            (u128::MAX, 18, "340282366920938463463.374607431768211455"),
        ];
        for (minor, scale, text) in cases {
            assert_eq!(
                Amount(minor).to_decimal(scale),
                text,
                "{minor} at scale {scale}"
            );
        }
    }
}
