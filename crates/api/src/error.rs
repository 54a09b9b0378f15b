//! API errors: `{"error":{"type","code","message","param"}}` with the matching HTTP status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use farthing_ledger::{AccountResult, AssetResult, TransferResult};
use serde::Serialize;

/// What went wrong, for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: String,
    pub message: String,
    pub param: Option<String>,
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

impl ApiError {
    fn new(
        status: StatusCode,
        kind: &'static str,
        code: &str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            kind,
            code: code.to_string(),
            message: message.into(),
            param: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> ApiError {
        self.param = Some(param.into());
        self
    }

    /// 400: the request itself is wrong; `param` names the field.
    pub fn invalid(param: &str, code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            message,
        )
        .with_param(param)
    }

    /// 404: no such object, or one this key may not see (the two are indistinguishable).
    pub fn not_found(param: Option<&str>, what: &str) -> ApiError {
        let error = ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "resource_missing",
            format!("no such {what}"),
        );
        match param {
            Some(param) => error.with_param(param),
            None => error,
        }
    }

    pub fn unauthenticated(message: &str) -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid_api_key",
            message,
        )
    }

    /// 403: the key may see the object but not change it (a read-only key writing).
    pub fn forbidden(message: &str) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            "insufficient_scope",
            message,
        )
    }

    pub fn idempotency(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_error",
            "idempotency_key_reused",
            message,
        )
        .with_param("Idempotency-Key")
    }

    /// 402: the card processor declined (`card_error`, with the decline code).
    pub fn card_declined(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYMENT_REQUIRED, "card_error", code, message)
            .with_param("payment_method")
    }

    /// 422: well-formed, but the ledger's rules refuse it (insufficient funds, hold resolved).
    pub fn refused(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", code, message)
    }

    pub fn rate_limited() -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "rate_limited",
            "too many requests for this API key",
        )
    }

    /// 5xx: our fault, never the client's.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "internal_error",
            message,
        )
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "unavailable",
            message,
        )
    }

    /// The error for a transfer the ledger refused; `param` is the request field to blame.
    pub fn from_transfer(result: TransferResult, prefix: &str) -> ApiError {
        use TransferResult as R;
        let code = result.as_str();
        let p = |field: &str| format!("{prefix}{field}");
        match result {
            R::ExistsWithDifferentFields => ApiError::idempotency(
                "this Idempotency-Key was already used for a different transfer",
            ),
            R::SameAccount => ApiError::invalid(
                &p("credit_account"),
                code,
                "debit and credit accounts must differ",
            ),
            R::ZeroAmount => {
                ApiError::invalid(&p("amount"), code, "amount must be greater than zero")
            }
            R::AssetMismatch => ApiError::invalid(
                &p("asset"),
                code,
                "both accounts must hold the transfer's asset",
            ),
            R::TimeoutRequiresPending => ApiError::invalid(
                &p("timeout_seconds"),
                code,
                "timeout_seconds is only for holds (pending: true)",
            ),
            R::VoidAmountMustMatch => {
                ApiError::invalid(&p("amount"), code, "a void releases the whole hold")
            }
            R::DebitAccountNotFound => ApiError::not_found(Some(&p("debit_account")), "account"),
            R::CreditAccountNotFound => ApiError::not_found(Some(&p("credit_account")), "account"),
            R::PendingNotFound | R::PendingIdNotAHold => ApiError::not_found(Some("id"), "hold"),
            R::ExceedsCredits => ApiError::refused(code, "insufficient funds in the debit account")
                .with_param(p("amount")),
            R::ExceedsLimit => ApiError::refused(
                code,
                "the debit account's overdraft limit would be exceeded",
            )
            .with_param(p("amount")),
            R::ExceedsDebits => ApiError::refused(
                code,
                "the credit account may not receive more than it has paid out",
            )
            .with_param(p("amount")),
            R::ExceedsPendingAmount => {
                ApiError::refused(code, "amount exceeds the held amount").with_param(p("amount"))
            }
            R::PendingAlreadyPosted => ApiError::refused(code, "the hold was already captured"),
            R::PendingAlreadyVoided => ApiError::refused(code, "the hold was already released"),
            R::PendingExpired => ApiError::refused(code, "the hold has expired"),
            R::Overflow => {
                ApiError::refused(code, "a balance would overflow").with_param(p("amount"))
            }
            R::LinkedEventFailed => ApiError::refused(code, "another transfer of the chain failed"),
            R::LinkedEventChainOpen => ApiError::refused(code, "the chain was not closed"),
            R::LedgerFull => ApiError::unavailable("the ledger is full"),
            other => ApiError::invalid(
                prefix.trim_end_matches('.'),
                other.as_str(),
                format!("transfer refused: {}", other.as_str()),
            ),
        }
    }

    pub fn from_account(result: AccountResult) -> ApiError {
        use AccountResult as R;
        match result {
            R::ExistsWithDifferentFields => ApiError::idempotency(
                "this Idempotency-Key was already used for a different account",
            ),
            R::AssetNotFound => ApiError::not_found(Some("asset"), "asset"),
            R::FlagsAreMutuallyExclusive => ApiError::invalid(
                "flags",
                result.as_str(),
                "an account cannot limit both debits and credits",
            ),
            R::OverdraftLimitRequiresDebitsMustNotExceedCredits => ApiError::invalid(
                "overdraft_limit",
                result.as_str(),
                "overdraft_limit needs flags.debits_must_not_exceed_credits",
            ),
            other => ApiError::internal(format!("account refused: {}", other.as_str())),
        }
    }

    pub fn from_asset(result: AssetResult) -> ApiError {
        match result {
            AssetResult::ScaleOutOfRange => {
                ApiError::invalid("scale", result.as_str(), "scale must be 0 to 18")
            }
            AssetResult::CodeAlreadyUsed | AssetResult::ExistsWithDifferentFields => ApiError::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                result.as_str(),
                "an asset with this code already exists",
            )
            .with_param("code"),
            other => ApiError::internal(format!("asset refused: {}", other.as_str())),
        }
    }
}

impl From<redb::Error> for ApiError {
    fn from(error: redb::Error) -> ApiError {
        tracing::error!(%error, "metadata store failed");
        ApiError::internal("metadata store error")
    }
}

impl From<farthing_engine::SubmitError> for ApiError {
    fn from(error: farthing_engine::SubmitError) -> ApiError {
        tracing::error!(%error, "ledger engine refused a batch");
        ApiError::unavailable(format!("ledger unavailable: {error}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                kind: self.kind.to_string(),
                code: self.code,
                message: self.message,
                param: self.param,
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
