//! One result per event. Each result has a stable snake_case name used by the API and logs,
//! and a stable numeric code used on disk; neither may ever be renumbered.

macro_rules! result_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $code:expr => $text:expr,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        #[repr(u8)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vdoc])* $variant = $code,)*
        }

        impl $name {
            /// Every variant, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The stable snake_case name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The stable on-disk code.
            pub fn code(self) -> u8 {
                self as u8
            }

            pub fn from_code(code: u8) -> Option<$name> {
                match code {
                    $($code => Some($name::$variant),)*
                    _ => None,
                }
            }

            pub fn is_ok(self) -> bool {
                self.code() == 0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

result_enum! {
    /// The outcome of creating one asset.
    AssetResult {
        Ok = 0 => "ok",
        Exists = 1 => "exists",
        ExistsWithDifferentFields = 2 => "exists_with_different_fields",
        IdMustNotBeZero = 3 => "id_must_not_be_zero",
        ScaleOutOfRange = 4 => "scale_out_of_range",
        CodeAlreadyUsed = 5 => "code_already_used",
    }
}

result_enum! {
    /// The outcome of creating one account.
    AccountResult {
        Ok = 0 => "ok",
        /// An account with this id and the same fields already exists (an idempotent retry).
        Exists = 1 => "exists",
        ExistsWithDifferentFields = 2 => "exists_with_different_fields",
        LinkedEventFailed = 3 => "linked_event_failed",
        LinkedEventChainOpen = 4 => "linked_event_chain_open",
        IdMustNotBeZero = 5 => "id_must_not_be_zero",
        IdMustNotBeIntMax = 6 => "id_must_not_be_int_max",
        FlagsUnknown = 7 => "flags_unknown",
        FlagsAreMutuallyExclusive = 8 => "flags_are_mutually_exclusive",
        AssetNotFound = 9 => "asset_not_found",
        OverdraftLimitRequiresDebitsMustNotExceedCredits = 10 =>
            "overdraft_limit_requires_debits_must_not_exceed_credits",
    }
}

result_enum! {
    /// The outcome of creating one transfer.
    TransferResult {
        Ok = 0 => "ok",
        /// A transfer with this id and the same fields was already applied (an idempotent retry).
        Exists = 1 => "exists",
        ExistsWithDifferentFields = 2 => "exists_with_different_fields",
        LinkedEventFailed = 3 => "linked_event_failed",
        LinkedEventChainOpen = 4 => "linked_event_chain_open",
        IdMustNotBeZero = 5 => "id_must_not_be_zero",
        IdMustNotBeIntMax = 6 => "id_must_not_be_int_max",
        FlagsUnknown = 7 => "flags_unknown",
        FlagsAreMutuallyExclusive = 8 => "flags_are_mutually_exclusive",
        DebitAccountNotFound = 9 => "debit_account_not_found",
        CreditAccountNotFound = 10 => "credit_account_not_found",
        /// Debit and credit are the same account.
        SameAccount = 11 => "same_account",
        /// The transfer's asset differs from an account's asset, or the accounts' assets differ.
        AssetMismatch = 12 => "asset_mismatch",
        ZeroAmount = 13 => "zero_amount",
        PendingIdMustBeZero = 14 => "pending_id_must_be_zero",
        PendingIdRequired = 15 => "pending_id_required",
        PendingIdMustDifferFromId = 16 => "pending_id_must_differ_from_id",
        TimeoutRequiresPending = 17 => "timeout_requires_pending",
        PendingNotFound = 18 => "pending_not_found",
        /// `pending_id` names a transfer that is not a hold.
        PendingIdNotAHold = 19 => "pending_id_not_a_hold",
        PendingHasDifferentDebitAccount = 20 => "pending_has_different_debit_account",
        PendingHasDifferentCreditAccount = 21 => "pending_has_different_credit_account",
        PendingHasDifferentAsset = 22 => "pending_has_different_asset",
        ExceedsPendingAmount = 23 => "exceeds_pending_amount",
        /// A void must release the whole hold: amount 0 or exactly the held amount.
        VoidAmountMustMatch = 24 => "void_amount_must_match",
        PendingAlreadyPosted = 25 => "pending_already_posted",
        PendingAlreadyVoided = 26 => "pending_already_voided",
        PendingExpired = 27 => "pending_expired",
        /// The debit account would pay more than its credits (a prepaid wallet going negative).
        ExceedsCredits = 28 => "exceeds_credits",
        /// The debit account would go past its overdraft limit (a tab over its limit).
        ExceedsLimit = 29 => "exceeds_limit",
        /// The credit account would receive more than its debits.
        ExceedsDebits = 30 => "exceeds_debits",
        /// A balance would not fit in 128 bits.
        Overflow = 31 => "overflow",
        /// Too many transfers for this engine's in-memory index (see `TRANSFERS_MAX`).
        LedgerFull = 32 => "ledger_full",
    }
}

/// Why a whole batch was refused before any event in it was looked at.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    #[error("batch has {events} events, more than the maximum {max}")]
    TooManyEvents { events: usize, max: usize },
    /// The caller (the engine) must hand out strictly increasing timestamps.
    #[error("batch timestamp {timestamp} is not after the last timestamp {last}")]
    TimestampNotIncreasing { timestamp: u64, last: u64 },
    #[error("batch timestamp {timestamp} leaves no room for {events} event timestamps")]
    TimestampOverflow { timestamp: u64, events: usize },
}

/// The results of one batch, one per event, in event order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum BatchResults {
    Assets(Vec<AssetResult>),
    Accounts(Vec<AccountResult>),
    Transfers(Vec<TransferResult>),
}

impl BatchResults {
    pub fn len(&self) -> usize {
        match self {
            BatchResults::Assets(r) => r.len(),
            BatchResults::Accounts(r) => r.len(),
            BatchResults::Transfers(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The on-disk codes, in event order.
    pub fn codes(&self) -> Vec<u8> {
        match self {
            BatchResults::Assets(r) => r.iter().map(|r| r.code()).collect(),
            BatchResults::Accounts(r) => r.iter().map(|r| r.code()).collect(),
            BatchResults::Transfers(r) => r.iter().map(|r| r.code()).collect(),
        }
    }
}
