//! Merchants: creating one (the operator) and reading it.

use farthing_products::ids::MerchantId;
use serde::Serialize;

use crate::error::ServiceError;
use crate::state::{to_json, Principal, Reply, SharedState};
use farthing_products::ids::{encode_id, IdKind};
use farthing_store::util::now_ns;
use farthing_store::util::random_id;
use farthing_store::util::rfc3339;
use farthing_store::{Changes, MerchantRecord};

/// The longest name of a merchant, campaign or plan, in bytes.
pub const NAME_BYTES_MAX: usize = 200;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MerchantView {
    pub id: String,
    pub object: &'static str,
    pub name: String,
    pub created: String,
}

fn view(m: &MerchantRecord) -> MerchantView {
    MerchantView {
        id: encode_id(IdKind::Merchant, m.id.0),
        object: "merchant",
        name: m.name.clone(),
        created: rfc3339(m.created_ns),
    }
}

/// A name (of a merchant, a campaign, a plan): not blank, at most [`NAME_BYTES_MAX`] bytes.
pub fn check_name(name: &str) -> Result<(), ServiceError> {
    if name.trim().is_empty() || name.len() > NAME_BYTES_MAX {
        return Err(ServiceError::invalid(
            "name",
            "invalid_name",
            format!("name must be 1 to {NAME_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

/// Creates a merchant (operator only), at most once per Idempotency-Key.
pub async fn create(
    state: &SharedState,
    principal: &Principal,
    key: Option<String>,
    request: &[u8],
    name: String,
) -> Result<Reply, ServiceError> {
    principal.require_operator()?;
    check_name(&name)?;
    state
        .idempotent(
            principal.tenant(),
            key,
            "merchants",
            request,
            || async move {
                let record = MerchantRecord {
                    id: MerchantId(random_id()),
                    name,
                    created_ns: now_ns(),
                };
                let body = to_json(&view(&record))?;
                Ok((
                    201_u16,
                    body,
                    Changes {
                        merchant: Some(record),
                        ..Changes::default()
                    },
                ))
            },
        )
        .await
}

/// A merchant the caller may see, or 404.
pub fn get(
    state: &SharedState,
    principal: &Principal,
    id: u128,
) -> Result<MerchantView, ServiceError> {
    let merchant = state
        .store
        .merchant(id)?
        .filter(|m| principal.can_see(m.id.0))
        .ok_or_else(|| ServiceError::not_found(Some("id"), "merchant"))?;
    Ok(view(&merchant))
}
