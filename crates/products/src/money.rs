//! Exact decimal amounts at the API boundary.
//!
//! The API speaks decimal strings in an asset's major unit (`"0.0025"` USD); the ledger speaks
//! integer minor units (`2500` at scale 6). Parsing never rounds: a value with more decimal
//! places than the asset's scale, a sign, an exponent, or a value beyond `u128` is refused with
//! the reason, naming nothing else.

use farthing_ledger::Amount;

/// Why a string is not an amount in a given asset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("must be a decimal string such as \"12.34\"")]
    Malformed,
    #[error("must not be negative")]
    Negative,
    #[error("has more decimal places than the asset's scale of {scale}")]
    TooPrecise { scale: u8 },
    #[error("is too large")]
    TooLarge,
}

/// The most characters an amount string may have (u128 has 39 digits, plus a point and scale).
const AMOUNT_LEN_MAX: usize = 64;

/// Parses `"12.345"` at `scale` into minor units. Leading zeros and trailing zeros within the
/// scale are accepted; nothing else is.
pub fn parse_amount(text: &str, scale: u8) -> Result<Amount, AmountError> {
    if text.len() > AMOUNT_LEN_MAX {
        return Err(AmountError::TooLarge);
    }
    if text.starts_with('-') {
        return Err(AmountError::Negative);
    }
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (text, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !digits(whole)
        || !digits(fraction)
        || (text.contains('.') && fraction.is_empty())
    {
        return Err(AmountError::Malformed);
    }
    let significant = fraction.trim_end_matches('0');
    if significant.len() > usize::from(scale) {
        return Err(AmountError::TooPrecise { scale });
    }
    let mut minor: u128 = 0;
    for b in whole.bytes() {
        minor = minor
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(b - b'0')))
            .ok_or(AmountError::TooLarge)?;
    }
    for i in 0..usize::from(scale) {
        let digit = significant.as_bytes().get(i).map_or(0, |b| b - b'0');
        minor = minor
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(digit)))
            .ok_or(AmountError::TooLarge)?;
    }
    Ok(Amount(minor))
}

/// Formats minor units at `scale` with exactly `scale` decimal places.
pub fn format_amount(amount: Amount, scale: u8) -> String {
    amount.to_decimal(scale)
}

/// Formats a signed difference `credits - debits` at `scale`.
pub fn format_signed(credits: u128, debits: u128, scale: u8) -> String {
    if credits >= debits {
        format_amount(Amount(credits - debits), scale)
    } else {
        format!("-{}", format_amount(Amount(debits - credits), scale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(text: &str, scale: u8, expected: Result<u128, AmountError>) {
        assert_eq!(
            parse_amount(text, scale).map(|a| a.0),
            expected,
            "{text:?} at scale {scale}"
        );
    }

    #[test]
    fn parses_exactly_or_refuses() {
        check("0.0025", 6, Ok(2500));
        check("12", 2, Ok(1200));
        check("12.30", 1, Ok(123));
        check("0.000001", 6, Ok(1));
        check("007.5", 2, Ok(750));
        check("5", 0, Ok(5));
        check("0.0000001", 6, Err(AmountError::TooPrecise { scale: 6 }));
        check("1.5", 0, Err(AmountError::TooPrecise { scale: 0 }));
        check("-1", 2, Err(AmountError::Negative));
        check("1e3", 2, Err(AmountError::Malformed));
        check("", 2, Err(AmountError::Malformed));
        check(".5", 2, Err(AmountError::Malformed));
        check("5.", 2, Err(AmountError::Malformed));
        check("+5", 2, Err(AmountError::Malformed));
        check(" 5", 2, Err(AmountError::Malformed));
        check("1,5", 2, Err(AmountError::Malformed));
        check("340282366920938463463374607431768211455", 0, Ok(u128::MAX));
        check(
            "340282366920938463463374607431768211456",
            0,
            Err(AmountError::TooLarge),
        );
        check(
            "340282366920938463463.374607431768211456",
            18,
            Err(AmountError::TooLarge),
        );
    }

    #[test]
    fn formats_with_the_asset_scale() {
        assert_eq!(format_amount(Amount(2500), 6), "0.002500");
        assert_eq!(format_amount(Amount(0), 2), "0.00");
        assert_eq!(format_amount(Amount(123), 0), "123");
        assert_eq!(format_signed(1, 3, 2), "-0.02");
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(minor in any::<u128>(), scale in 0u8..=18) {
            prop_assert_eq!(parse_amount(&format_amount(Amount(minor), scale), scale), Ok(Amount(minor)));
        }
    }
}
