//! Charges: the merchant settings (fee plan, payout settings) every charge and payout reads.

use crate::app::SharedState;
use crate::error::ApiError;
use crate::products::records::MerchantSettings;

/// A merchant's settings, or the defaults.
pub fn merchant_settings(
    state: &SharedState,
    merchant: u128,
) -> Result<MerchantSettings, ApiError> {
    Ok((*state.products.cache.settings(&state.store, merchant)?).clone())
}
