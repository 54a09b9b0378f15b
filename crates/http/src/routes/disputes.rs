//! Disputes (chargebacks): the operator reports that the card processor took back a top-up or
//! a tab settlement. Whom it debits (attribution, named and fixed) and how it is booked are
//! [`farthing_service::disputes`].

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::reply;
use crate::extract::ApiJson;
use crate::extract::Key;
use farthing_products::ids::{decode_id, IdKind};
use farthing_service::disputes::{create_dispute, DisputeSource, DisputeView};
use farthing_service::state::SharedState;

/// The longest reason a processor gives, in bytes.
const REASON_BYTES_MAX: usize = 100;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDispute {
    /// The top-up disputed (`tu_…`), or
    pub topup: Option<String>,
    /// the tab settlement disputed (`stl_…`).
    pub settlement: Option<String>,
    /// The processor's reason (default `general`).
    pub reason: Option<String>,
}

impl CreateDispute {
    /// What is disputed: exactly one of `topup` and `settlement`, by its id.
    fn source(&self) -> Result<DisputeSource, ApiError> {
        match (&self.topup, &self.settlement) {
            (Some(text), None) => decode_id(IdKind::Topup, text)
                .map(DisputeSource::Topup)
                .ok_or_else(|| ApiError::not_found(Some("topup"), "top-up")),
            (None, Some(text)) => decode_id(IdKind::Settlement, text)
                .map(DisputeSource::Settlement)
                .ok_or_else(|| ApiError::not_found(Some("settlement"), "settlement")),
            _ => Err(ApiError::invalid(
                "topup",
                "one_of_required",
                "give exactly one of topup and settlement",
            )),
        }
    }
}

#[utoipa::path(post, path = "/v1/disputes", operation_id = "disputes.create", tag = "disputes", request_body = CreateDispute, responses((status = 201, description = "the dispute, and whom it debited (operator only: the processor's chargeback)", body = DisputeView), (status = 200, description = "already disputed: the same dispute", body = DisputeView), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    Key(principal): Key,
    ApiJson(request, _): ApiJson<CreateDispute>,
) -> Result<Response, ApiError> {
    principal.require_operator()?;
    if request
        .reason
        .as_ref()
        .is_some_and(|r| r.is_empty() || r.len() > REASON_BYTES_MAX)
    {
        return Err(ApiError::invalid(
            "reason",
            "invalid_reason",
            format!("reason must be 1 to {REASON_BYTES_MAX} bytes"),
        ));
    }
    let source = request.source()?;
    Ok(reply(create_dispute(&state, source, request.reason).await?))
}
