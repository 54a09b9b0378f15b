//! The v1 routes, one module per resource.

pub mod accounts;
pub mod assets;
pub mod campaigns;
pub mod charges;
pub mod customers;
pub mod disputes;
pub mod entitlements;
pub mod health;
pub mod holds;
pub mod keys;
pub mod ledger;
pub mod lists;
pub mod merchants;
pub mod offers;
pub mod payouts;
pub mod reports;
pub mod subscriptions;
pub mod tabs;
pub mod transfers;
pub mod webhooks;

use serde::Deserialize;

use crate::error::ApiError;

/// Cursor pagination query: `limit` (1..=100, default 10) and `starting_after` (an object id).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<usize>,
    pub starting_after: Option<String>,
}

impl PageQuery {
    pub fn limit(&self, max: usize) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(10.min(max)),
            Some(limit) if (1..=max).contains(&limit) => Ok(limit),
            Some(_) => Err(ApiError::invalid(
                "limit",
                "limit_out_of_range",
                format!("limit must be 1 to {max}"),
            )),
        }
    }
}

/// Parses an optional query string into `T`; an error names the bad parameter.
pub fn parse_query<T: serde::de::DeserializeOwned>(query: Option<&str>) -> Result<T, ApiError> {
    let pairs = form_urlencoded::parse(query.unwrap_or("").as_bytes());
    let deserializer = serde_urlencoded::Deserializer::new(pairs);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let message = error.inner().to_string();
        let path = error.path().to_string();
        let param = match message.split('`').nth(1) {
            Some(field) if path == "." => field.to_string(),
            _ if path == "." => "query".to_string(),
            _ => path,
        };
        ApiError::invalid(&param, "invalid_query", message)
    })
}

/// Parses a positive amount of `asset` named by `param`.
pub fn positive_amount(
    text: &str,
    asset: &farthing_ledger::Asset,
    param: &str,
) -> Result<farthing_ledger::Amount, ApiError> {
    let amount = farthing_products::money::parse_amount(text, asset.scale)
        .map_err(|e| ApiError::invalid(param, "invalid_amount", format!("{param} {e}")))?;
    if amount.is_zero() {
        return Err(ApiError::invalid(
            param,
            "zero_amount",
            format!("{param} must be greater than zero"),
        ));
    }
    let max = farthing_products::amounts::product_amount_max(asset.scale);
    if amount > max {
        return Err(ApiError::invalid(
            param,
            "amount_too_large",
            format!(
                "{param} must be at most {} {}",
                max.to_decimal(asset.scale),
                asset.code
            ),
        ));
    }
    Ok(amount)
}
