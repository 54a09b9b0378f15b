//! API errors: `{"error":{"type","code","message","param"}}` with the matching HTTP status.
//! The one mapping from the service's [`ServiceError`] to the wire is [`ApiError`]'s
//! `From<ServiceError>` ([`status_of`] and [`type_of`]); the transport's own errors (405, 408,
//! 413) set their status directly.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use farthing_ledger::{AccountResult, AssetResult, TransferResult};
use farthing_service::{ErrorKind, ServiceError};
use serde::Serialize;

/// What went wrong, for the client: a service error and the status it is answered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: ServiceError,
}

/// The body of every error response.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `idempotency_error`, `refused`, `rate_limit_error` or `api_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A stable machine-readable code, such as `exceeds_credits`.
    pub code: String,
    pub message: String,
    /// The request field (or header) at fault, when there is one.
    pub param: Option<String>,
}

/// The errors every authenticated read can answer with (for the OpenAPI document).
#[derive(utoipa::IntoResponses)]
pub enum ReadErrors {
    /// Invalid query parameter; `param` names it.
    #[response(status = 400)]
    Invalid(#[to_schema] ErrorBody),
    /// Missing, unknown or revoked API key.
    #[response(status = 401)]
    Unauthenticated(#[to_schema] ErrorBody),
    /// No such object, or not visible to this key.
    #[response(status = 404)]
    NotFound(#[to_schema] ErrorBody),
    /// Rate limit exceeded (see Retry-After).
    #[response(status = 429)]
    RateLimited(#[to_schema] ErrorBody),
}

/// The errors of a write that charges a card: every write error, plus 402.
#[derive(utoipa::IntoResponses)]
pub enum CardErrors {
    /// The card processor declined; `code` says why (`card_declined`, `insufficient_funds`,
    /// `suspected_fraud`, ...).
    #[response(status = 402)]
    Declined(#[to_schema] ErrorBody),
}

/// The errors every write can answer with (for the OpenAPI document).
#[derive(utoipa::IntoResponses)]
pub enum WriteErrors {
    /// Invalid request; `param` names the field.
    #[response(status = 400)]
    Invalid(#[to_schema] ErrorBody),
    /// Missing, unknown or revoked API key.
    #[response(status = 401)]
    Unauthenticated(#[to_schema] ErrorBody),
    /// The key's scope does not allow this.
    #[response(status = 403)]
    Forbidden(#[to_schema] ErrorBody),
    /// No such object, or not visible to this key.
    #[response(status = 404)]
    NotFound(#[to_schema] ErrorBody),
    /// The request timed out.
    #[response(status = 408)]
    Timeout(#[to_schema] ErrorBody),
    /// Idempotency-Key reused with different parameters, or a conflicting object.
    #[response(status = 409)]
    Conflict(#[to_schema] ErrorBody),
    /// Request body too large.
    #[response(status = 413)]
    TooLarge(#[to_schema] ErrorBody),
    /// Refused by the ledger's rules (e.g. insufficient funds).
    #[response(status = 422)]
    Refused(#[to_schema] ErrorBody),
    /// Rate limit exceeded (see Retry-After).
    #[response(status = 429)]
    RateLimited(#[to_schema] ErrorBody),
    /// The ledger is not accepting writes.
    #[response(status = 503)]
    Unavailable(#[to_schema] ErrorBody),
}

/// The HTTP status of each kind of service error.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Declined => StatusCode::PAYMENT_REQUIRED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Idempotency | ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Refused => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The error object's `type` for each kind.
pub fn type_of(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Invalid | ErrorKind::NotFound | ErrorKind::Conflict => "invalid_request_error",
        ErrorKind::Unauthenticated => "authentication_error",
        ErrorKind::Forbidden => "permission_error",
        ErrorKind::Idempotency => "idempotency_error",
        ErrorKind::Declined => "card_error",
        ErrorKind::Refused => "refused",
        ErrorKind::RateLimited => "rate_limit_error",
        _ => "api_error",
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> ApiError {
        ApiError {
            status: status_of(error.kind),
            error,
        }
    }
}

/// The service's constructors, for errors the HTTP layer finds itself (a bad header, a body
/// that does not parse): each builds the [`ServiceError`] and its status.
impl ApiError {
    /// A transport error with its own status (405, 408, 413) and the object of `error`.
    pub fn with_status(status: StatusCode, error: ServiceError) -> ApiError {
        ApiError { status, error }
    }

    pub fn with_param(self, param: impl Into<String>) -> ApiError {
        ApiError {
            status: self.status,
            error: self.error.with_param(param),
        }
    }

    pub fn invalid(param: &str, code: &str, message: impl Into<String>) -> ApiError {
        ServiceError::invalid(param, code, message).into()
    }

    pub fn not_found(param: Option<&str>, what: &str) -> ApiError {
        ServiceError::not_found(param, what).into()
    }

    pub fn unauthenticated(message: &str) -> ApiError {
        ServiceError::unauthenticated(message).into()
    }

    pub fn forbidden(message: &str) -> ApiError {
        ServiceError::forbidden(message).into()
    }

    pub fn idempotency(message: impl Into<String>) -> ApiError {
        ServiceError::idempotency(message).into()
    }

    pub fn refused(code: &str, message: impl Into<String>) -> ApiError {
        ServiceError::refused(code, message).into()
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ServiceError::internal(message).into()
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ServiceError::unavailable(message).into()
    }

    pub fn from_transfer(result: TransferResult, prefix: &str) -> ApiError {
        ServiceError::from_transfer(result, prefix).into()
    }

    pub fn from_account(result: AccountResult) -> ApiError {
        ServiceError::from_account(result).into()
    }

    pub fn from_asset(result: AssetResult) -> ApiError {
        ServiceError::from_asset(result).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                kind: type_of(self.error.kind).to_string(),
                code: self.error.code,
                message: self.error.message,
                param: self.error.param,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}
