//! The largest amount a product operation takes.
//!
//! Ledger balances are u128 and a sum that would overflow is refused, so one huge top-up or
//! limit could fill a shared account (the processor's clearing account, the limit source)
//! until every later operation in that asset overflows. Product amounts are therefore capped
//! at [`PRODUCT_AMOUNT_UNITS_MAX`] whole units of the asset: even at scale 18 that is 10^30
//! minor units, so more than 3 × 10^8 maximal operations fit in one account before it could
//! overflow. Plain ledger transfers (`/v1/transfers`) are not capped: there the client owns
//! every account and overflow is refused per transfer.

use farthing_ledger::Amount;

/// A trillion whole units (dollars, euros, ...) per operation.
pub const PRODUCT_AMOUNT_UNITS_MAX: u128 = 1_000_000_000_000;

/// The largest product amount in minor units at `scale` (0..=18).
pub fn product_amount_max(scale: u8) -> Amount {
    let minor_per_unit = 10u128.pow(u32::from(scale.min(18)));
    Amount(PRODUCT_AMOUNT_UNITS_MAX * minor_per_unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_a_trillion_units_and_leaves_room_in_every_account() {
        assert_eq!(product_amount_max(0), Amount(1_000_000_000_000));
        assert_eq!(product_amount_max(2), Amount(100_000_000_000_000));
        let widest = product_amount_max(18);
        assert_eq!(widest, Amount(10u128.pow(30)));
        // 3 × 10^8 maximal amounts still fit one u128 balance.
        assert!(widest.0.checked_mul(300_000_000).is_some());
    }
}
