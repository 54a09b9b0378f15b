//! Charges: the merchant settings (fee plan, payout settings) every charge and payout reads,
//! and the price split ([`priced`]) every product that pays a merchant uses.

use farthing_ledger::{Amount, Asset};
use farthing_products::fees::{split, Share};

use crate::app::SharedState;
use crate::error::ApiError;
use crate::products::records::{MerchantSettings, PayeePart};

/// A merchant's settings, or the defaults.
pub fn merchant_settings(
    state: &SharedState,
    merchant: u128,
) -> Result<MerchantSettings, ApiError> {
    Ok((*state.products.cache.settings(&state.store, merchant)?).clone())
}

/// Splits `gross` by the merchant's fee plan and the shares.
pub(crate) fn priced(
    state: &SharedState,
    merchant: u128,
    asset: &Asset,
    gross: Amount,
    shares: &[(u128, u32)],
) -> Result<(u128, u128, Vec<PayeePart>, u128), ApiError> {
    let plan = state
        .products
        .cache
        .settings(&state.store, merchant)?
        .fee_plan(asset.id.0);
    let share_list: Vec<Share> = shares
        .iter()
        .map(|(m, bps)| Share {
            payee: format!("{m:032x}"),
            bps: *bps,
        })
        .collect();
    let split = split(gross, &plan, &share_list).map_err(|e| {
        ApiError::invalid(
            "shares",
            "invalid_split",
            format!("the split is invalid: {e}"),
        )
    })?;
    let payees = split
        .payees()
        .iter()
        .zip(shares)
        .map(|(p, (m, _))| PayeePart {
            merchant: *m,
            bps: p.bps,
            amount: p.amount.0,
        })
        .collect();
    Ok((
        split.platform_fee().0,
        split.merchant_net().map_or(0, |a| a.0),
        payees,
        split.rounding_remainder().0,
    ))
}
