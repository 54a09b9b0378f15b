//! Off-ledger vouchers: pay per request over a payment channel, settle only the total.
//!
//! A customer opens a channel to a merchant: a deposit held in the ledger until an expiry
//! ([`ChannelTerms`]). Payments over it are proofs the merchant checks locally, in
//! microseconds, without touching the ledger; the merchant redeems the best proof it holds, at
//! any time and at close, and only that amount moves ([`Settlement`]). Two kinds of proof, fixed
//! per channel by [`ChannelKind`]:
//!
//! - [`payword`]: the customer signs a [`PayWordCommitment`] to the root of a SHA-256 chain;
//!   each payment reveals the next word. A [`PayWordVerifier`] takes a payment with one hash.
//! - [`voucher`]: the customer signs a cumulative amount with a nonce (ed25519); a
//!   [`VoucherVerifier`] keeps only the highest. Many channels' vouchers can be verified in one
//!   batch ([`verify_batch`]).
//!
//! Customers register ed25519 public keys as [`CustomerKey`]s (weak keys refused).
//!
//! **Architecture Invariant:** this crate does no I/O, starts no threads, reads no clock and
//! draws no random numbers: times (`now`), seeds and keys come in as arguments, so every
//! decision is replayable. It sits beside `farthing-products` and depends only on the ledger's
//! money types.
//!
//! # Formats
//!
//! Everything signed or hashed has one canonical, fixed-size encoding: a domain tag naming what
//! it is, a format version ([`FORMAT_VERSION`]), then fixed-width big-endian fields. The tables
//! are in the modules: the channel's terms in [`channel`] (hashed to the [`ChannelDigest`] that
//! every signed message names), the PayWord step hash and commitment in [`payword`], the
//! voucher in [`voucher`]. Tests pin each layout byte by byte; changing one is a new version.
//!
//! # Guarantees, and the code that enforces each
//!
//! | guarantee | enforced by |
//! |---|---|
//! | a proof is never accepted twice | [`PayWordVerifier::accept`] takes only positions above the last (`Replayed`, `Older`); [`VoucherVerifier::check`] and [`VoucherVerifier::commit`] take only an amount *and* nonce above the best (`Replayed`, `NotIncreasing`, `NonceNotIncreasing`) |
//! | the merchant never receives less than the proofs it accepted | accepted proofs are cumulative and the verifier keeps the best ([`PayWordVerifier::owed`], [`VoucherVerifier::owed`]); [`Settlement::redeem`] and [`Settlement::close`] move up to the best proof's amount; a signature accepted in a batch also verifies alone ([`signature`]) so a proof never fails when redeemed |
//! | the customer never pays more than the best proof they signed or revealed | a PayWord payment must hash to the customer-signed root ([`PayWordCommitment::verify`], [`PayWordVerifier::accept`]); a voucher must carry the customer's signature over these exact terms ([`voucher::message`], [`CheckedVoucher::verify`]); [`Settlement`] moves `best − redeemed`, never a proof's amount twice |
//! | nothing is worth more than the deposit | the commitment's `length × unit_price ≤ deposit` ([`PayWordCommitment::verify`], checked arithmetic); `AboveDeposit` for vouchers; [`Settlement::redeem`] refuses a proof above the deposit, and [`Settlement::close`] asserts `redeemed + release = deposit` |
//! | a proof is bound to one channel's exact terms | every message names the [`ChannelDigest`]; PayWord steps name the channel id and position |
//! | bounded work per proof | a PayWord jump costs at most [`JUMP_POSITIONS_MAX`] hashes, a chain at most [`CHAIN_LENGTH_MAX`] words; a batch at most [`BATCH_VOUCHERS_MAX`] signatures |
//! | no panic on input | every refusal is a typed error naming its field (`field()`); the remaining asserts are invariants of private state |
//!
//! The property tests (`properties.rs`) check the first three against deliberately naive models,
//! with forged, replayed, reordered and tampered proofs mixed in, and settlement's idempotence.

pub mod channel;
pub mod payword;
pub mod settlement;
pub mod signature;
pub mod voucher;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod testing;

pub use channel::{
    ChannelDigest, ChannelId, ChannelKind, ChannelTerms, CustomerKey, KeyError, MerchantId,
    TermsError, FORMAT_VERSION,
};
pub use ed25519_dalek::{Signature, SigningKey};
pub use payword::{
    CommitmentError, PayWord, PayWordAccepted, PayWordChain, PayWordCommitment, PayWordPayment,
    PayWordVerifier, PaymentError, CHAIN_LENGTH_MAX, JUMP_POSITIONS_MAX,
};
pub use settlement::{Closing, Settlement, SettlementError};
pub use voucher::{
    verify_batch, CheckedVoucher, VerifiedVoucher, Voucher, VoucherAccepted, VoucherError,
    VoucherVerifier, BATCH_VOUCHERS_MAX,
};
