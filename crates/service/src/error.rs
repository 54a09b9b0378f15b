//! What a service operation can answer instead of its result: a [`ServiceError`] of one
//! [`ErrorKind`] (what sort of failure, which the HTTP layer maps to a status), a stable
//! machine-readable `code` (`exceeds_credits`, `tab_exists`), a message for people, and the
//! request field at fault. No HTTP types: the same errors reach the scheduler's jobs.

use farthing_ledger::{AccountResult, AssetResult, TransferResult};
use farthing_products::rules::allowance::{ChargeRefusal, ConsentRefusal};
use farthing_products::rules::campaign::CampaignEnded;
use farthing_products::rules::charge::RefundRefusal;
use farthing_products::rules::hold::HoldRefusal;
use farthing_products::rules::payout::PayoutRefusal;
use farthing_products::rules::tab::TabFrozen;
use farthing_store::StoreError;

/// The sort of failure, independent of any transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request itself is wrong; `param` names the field.
    Invalid,
    /// No credentials, or unknown ones.
    Unauthenticated,
    /// The caller may not do this.
    Forbidden,
    /// No such object, or one the caller may not see (indistinguishable on purpose).
    NotFound,
    /// An Idempotency-Key reused with a different request.
    Idempotency,
    /// The object already exists with other fields.
    Conflict,
    /// The card processor declined.
    Declined,
    /// Well-formed, but the rules refuse it (insufficient funds, hold resolved).
    Refused,
    /// Too many requests for the caller's key.
    RateLimited,
    /// Our fault, never the caller's.
    Internal,
    /// The ledger or a worker is not accepting work right now.
    Unavailable,
}

impl ErrorKind {
    /// Whether the failure is the server's (a retry later may succeed), not the request's.
    pub fn is_server_fault(self) -> bool {
        matches!(self, ErrorKind::Internal | ErrorKind::Unavailable)
    }
}

/// The rule that refused an operation, when a typed one did: what callers inside the service
/// (the scheduler's jobs, a charge's follow-up work) branch on, rather than on `code`, which is
/// the wire's name for it. Its `code()` is the error's `code`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The ledger refused a transfer.
    Transfer(TransferResult),
    /// The consent rules (allowance, monthly cap, customer visibility) refused a charge.
    Consent(ConsentRefusal),
    /// The ledger refused a leg of a charge, in the charge's terms.
    Charge(ChargeRefusal),
    Refund(RefundRefusal),
    Hold(HoldRefusal),
    Payout(PayoutRefusal),
    /// The customer's tab is frozen until its last settlement is paid.
    TabFrozen(TabFrozen),
    /// A contribution after the campaign's deadline.
    CampaignEnded(CampaignEnded),
}

impl Reason {
    /// The machine-readable code the wire shows for it.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::Transfer(result) => result.as_str(),
            Reason::Consent(refusal) => refusal.code(),
            Reason::Charge(refusal) => refusal.code(),
            Reason::Refund(refusal) => refusal.code(),
            Reason::Hold(refusal) => refusal.code(),
            Reason::Payout(refusal) => refusal.code(),
            Reason::TabFrozen(refusal) => refusal.code(),
            Reason::CampaignEnded(refusal) => refusal.code(),
        }
    }
}

/// Why an operation did not happen. Nothing of it was applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ServiceError {
    pub kind: ErrorKind,
    pub code: String,
    pub message: String,
    pub param: Option<String>,
    /// The typed rule behind a refusal, if a typed one refused (see [`Reason`]).
    pub reason: Option<Box<Reason>>,
}

impl ServiceError {
    pub fn new(kind: ErrorKind, code: &str, message: impl Into<String>) -> ServiceError {
        ServiceError {
            kind,
            code: code.to_string(),
            message: message.into(),
            param: None,
            reason: None,
        }
    }

    /// 422 for a typed rule's refusal, its `code` the rule's own.
    pub fn refusal(reason: Reason, message: impl Into<String>) -> ServiceError {
        let mut error = ServiceError::new(ErrorKind::Refused, reason.code(), message);
        error.reason = Some(Box::new(reason));
        error
    }

    /// Whether a typed rule refused it and `test` accepts the reason.
    pub fn refused_by(&self, test: impl FnOnce(&Reason) -> bool) -> bool {
        self.reason.as_deref().is_some_and(test)
    }

    pub fn with_param(mut self, param: impl Into<String>) -> ServiceError {
        self.param = Some(param.into());
        self
    }

    /// 400: the request itself is wrong; `param` names the field.
    pub fn invalid(param: &str, code: &str, message: impl Into<String>) -> ServiceError {
        ServiceError::new(ErrorKind::Invalid, code, message).with_param(param)
    }

    /// 404: no such object, or one this key may not see (the two are indistinguishable).
    pub fn not_found(param: Option<&str>, what: &str) -> ServiceError {
        let error = ServiceError::new(
            ErrorKind::NotFound,
            "resource_missing",
            format!("no such {what}"),
        );
        match param {
            Some(param) => error.with_param(param),
            None => error,
        }
    }

    pub fn unauthenticated(message: &str) -> ServiceError {
        ServiceError::new(ErrorKind::Unauthenticated, "invalid_api_key", message)
    }

    /// 403: the key may see the object but not change it (a read-only key writing).
    pub fn forbidden(message: &str) -> ServiceError {
        ServiceError::new(ErrorKind::Forbidden, "insufficient_scope", message)
    }

    pub fn idempotency(message: impl Into<String>) -> ServiceError {
        ServiceError::new(ErrorKind::Idempotency, "idempotency_key_reused", message)
            .with_param("Idempotency-Key")
    }

    /// 402: the card processor declined (`card_error`, with the decline code).
    pub fn card_declined(code: &str, message: impl Into<String>) -> ServiceError {
        ServiceError::new(ErrorKind::Declined, code, message).with_param("payment_method")
    }

    /// 422: well-formed, but the ledger's rules refuse it (insufficient funds, hold resolved).
    pub fn refused(code: &str, message: impl Into<String>) -> ServiceError {
        ServiceError::new(ErrorKind::Refused, code, message)
    }

    pub fn rate_limited() -> ServiceError {
        ServiceError::new(
            ErrorKind::RateLimited,
            "rate_limited",
            "too many requests for this API key",
        )
    }

    /// 5xx: our fault, never the client's.
    pub fn internal(message: impl Into<String>) -> ServiceError {
        ServiceError::new(ErrorKind::Internal, "internal_error", message)
    }

    pub fn unavailable(message: impl Into<String>) -> ServiceError {
        ServiceError::new(ErrorKind::Unavailable, "unavailable", message)
    }

    /// The error for a transfer the ledger refused; `param` is the request field to blame.
    pub fn from_transfer(result: TransferResult, prefix: &str) -> ServiceError {
        use TransferResult as R;
        let code = result.as_str();
        let p = |field: &str| format!("{prefix}{field}");
        let error = match result {
            R::ExistsWithDifferentFields => ServiceError::idempotency(
                "this Idempotency-Key was already used for a different transfer",
            ),
            R::SameAccount => ServiceError::invalid(
                &p("credit_account"),
                code,
                "debit and credit accounts must differ",
            ),
            R::ZeroAmount => {
                ServiceError::invalid(&p("amount"), code, "amount must be greater than zero")
            }
            R::AssetMismatch => ServiceError::invalid(
                &p("asset"),
                code,
                "both accounts must hold the transfer's asset",
            ),
            R::TimeoutRequiresPending => ServiceError::invalid(
                &p("timeout_seconds"),
                code,
                "timeout_seconds is only for holds (pending: true)",
            ),
            R::VoidAmountMustMatch => {
                ServiceError::invalid(&p("amount"), code, "a void releases the whole hold")
            }
            R::DebitAccountNotFound => {
                ServiceError::not_found(Some(&p("debit_account")), "account")
            }
            R::CreditAccountNotFound => {
                ServiceError::not_found(Some(&p("credit_account")), "account")
            }
            R::PendingNotFound | R::PendingIdNotAHold => {
                ServiceError::not_found(Some("id"), "hold")
            }
            R::ExceedsCredits => {
                ServiceError::refused(code, "insufficient funds in the debit account")
                    .with_param(p("amount"))
            }
            R::ExceedsLimit => ServiceError::refused(
                code,
                "the debit account's overdraft limit would be exceeded",
            )
            .with_param(p("amount")),
            R::ExceedsDebits => ServiceError::refused(
                code,
                "the credit account may not receive more than it has paid out",
            )
            .with_param(p("amount")),
            R::ExceedsPendingAmount => {
                ServiceError::refused(code, "amount exceeds the held amount")
                    .with_param(p("amount"))
            }
            R::PendingAlreadyPosted => ServiceError::refused(code, "the hold was already captured"),
            R::PendingAlreadyVoided => ServiceError::refused(code, "the hold was already released"),
            R::PendingExpired => ServiceError::refused(code, "the hold has expired"),
            R::Overflow => {
                ServiceError::refused(code, "a balance would overflow").with_param(p("amount"))
            }
            R::LinkedEventFailed => {
                ServiceError::refused(code, "another transfer of the chain failed")
            }
            R::LinkedEventChainOpen => ServiceError::refused(code, "the chain was not closed"),
            R::LedgerFull => ServiceError::unavailable("the ledger is full"),
            other => ServiceError::invalid(
                prefix.trim_end_matches('.'),
                other.as_str(),
                format!("transfer refused: {}", other.as_str()),
            ),
        };
        ServiceError {
            reason: Some(Box::new(Reason::Transfer(result))),
            ..error
        }
    }

    pub fn from_account(result: AccountResult) -> ServiceError {
        use AccountResult as R;
        match result {
            R::ExistsWithDifferentFields => ServiceError::idempotency(
                "this Idempotency-Key was already used for a different account",
            ),
            R::AssetNotFound => ServiceError::not_found(Some("asset"), "asset"),
            R::FlagsAreMutuallyExclusive => ServiceError::invalid(
                "flags",
                result.as_str(),
                "an account cannot limit both debits and credits",
            ),
            R::OverdraftLimitRequiresDebitsMustNotExceedCredits => ServiceError::invalid(
                "overdraft_limit",
                result.as_str(),
                "overdraft_limit needs flags.debits_must_not_exceed_credits",
            ),
            other => ServiceError::internal(format!("account refused: {}", other.as_str())),
        }
    }

    pub fn from_asset(result: AssetResult) -> ServiceError {
        match result {
            AssetResult::ScaleOutOfRange => {
                ServiceError::invalid("scale", result.as_str(), "scale must be 0 to 18")
            }
            AssetResult::CodeAlreadyUsed | AssetResult::ExistsWithDifferentFields => {
                ServiceError::new(
                    ErrorKind::Conflict,
                    result.as_str(),
                    "an asset with this code already exists",
                )
                .with_param("code")
            }
            other => ServiceError::internal(format!("asset refused: {}", other.as_str())),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> ServiceError {
        match error {
            StoreError::Stopped(what) => ServiceError::unavailable(format!("{what} stopped")),
            StoreError::JournalFailed(reason) => ServiceError::unavailable(format!(
                "the journal stopped ({reason}); what was answered is durable in the log and a \
                 restart applies it"
            )),
            StoreError::Submit(error) => error.into(),
            other => {
                tracing::error!(error = %other, "metadata store failed");
                ServiceError::internal("metadata store error")
            }
        }
    }
}

impl From<redb::Error> for ServiceError {
    fn from(error: redb::Error) -> ServiceError {
        StoreError::from(error).into()
    }
}

impl From<farthing_engine::SubmitError> for ServiceError {
    fn from(error: farthing_engine::SubmitError) -> ServiceError {
        tracing::error!(%error, "ledger engine refused a batch");
        ServiceError::unavailable(format!("ledger unavailable: {error}"))
    }
}

#[cfg(test)]
mod reason_tests {
    use farthing_ledger::Amount;

    use super::*;

    #[test]
    fn a_typed_refusal_carries_its_rule_and_the_rules_own_code() {
        let refusal = PayoutRefusal::InsufficientBalance {
            available: Amount(5),
            debt: Amount::ZERO,
        };
        let error = ServiceError::refusal(Reason::Payout(refusal), "nothing to pay");
        assert_eq!(error.kind, ErrorKind::Refused);
        assert_eq!(error.code, "insufficient_balance");
        assert!(error.refused_by(|r| matches!(
            r,
            Reason::Payout(PayoutRefusal::InsufficientBalance { .. })
        )));
        assert!(!error.refused_by(|r| matches!(r, Reason::Payout(PayoutRefusal::BelowThreshold))));
    }

    #[test]
    fn a_ledger_refusal_keeps_the_transfer_result_behind_its_api_error() {
        let error = ServiceError::from_transfer(TransferResult::ExceedsCredits, "");
        assert_eq!(error.code, "exceeds_credits");
        assert_eq!(error.param.as_deref(), Some("amount"));
        assert!(error.refused_by(|r| *r == Reason::Transfer(TransferResult::ExceedsCredits)));
        // An error no typed rule raised matches no reason.
        assert!(!ServiceError::internal("boom").refused_by(|_| true));
    }
}
