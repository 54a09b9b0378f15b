//! The v1 routes, one module per resource.

pub mod accounts;
pub mod assets;
pub mod health;
pub mod keys;
pub mod merchants;
pub mod transfers;

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

/// Parses an optional query string into `T`, naming the bad parameter.
pub fn parse_query<T: serde::de::DeserializeOwned>(query: Option<&str>) -> Result<T, ApiError> {
    serde_urlencoded_like(query.unwrap_or(""))
}

fn serde_urlencoded_like<T: serde::de::DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let mut map = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = if key == "limit" {
            value
                .parse::<u64>()
                .map(serde_json::Value::from)
                .map_err(|_| {
                    ApiError::invalid("limit", "invalid_limit", "limit must be a whole number")
                })?
        } else {
            serde_json::Value::String(value.to_string())
        };
        map.insert(key.to_string(), value);
    }
    serde_json::from_value(serde_json::Value::Object(map)).map_err(|error| {
        let message = error.to_string();
        let param = message.split('`').nth(1).unwrap_or("query").to_string();
        ApiError::invalid(&param, "invalid_query", message)
    })
}
