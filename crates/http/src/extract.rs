//! What a handler takes from a request: who is calling ([`Key`], [`Caller`]), the checked
//! `Idempotency-Key` ([`IdempotencyKey`]), JSON bodies whose errors name the field
//! ([`ApiJson`]) and raw bodies ([`RawBody`]); and [`json_response`] for what it answers.

use axum::extract::{FromRef, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use farthing_products::ids::TypedId;
use farthing_service::state::{Principal, Reply, SharedState};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The most characters an Idempotency-Key may have.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 255;

pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .ok()
        .filter(|t| !t.is_empty() && t.len() <= IDEMPOTENCY_KEY_LEN_MAX)
        .ok_or_else(|| {
            ApiError::invalid(
                "Idempotency-Key",
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
        })?;
    Ok(Some(text.to_string()))
}

/// A service's [`Reply`] as a JSON response.
pub fn reply(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    json_response(status, reply.body)
}

pub fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// An API key's caller: operator, merchant and read-only keys; customer tokens only reach the
/// endpoints that take a [`Caller`], publishable keys only those that take a [`PageKey`].
pub struct Key(pub Principal);

impl<S> FromRequestParts<S> for Key
where
    SharedState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Key, ApiError> {
        let principal = authenticate(parts, &SharedState::from_ref(state))?;
        if principal.is_customer_token() {
            return Err(ApiError::forbidden(
                "a customer token can only call the customer endpoints",
            ));
        }
        refuse_publishable(&principal)?;
        Ok(Key(principal))
    }
}

fn refuse_publishable(principal: &Principal) -> Result<(), ApiError> {
    if principal.is_publishable() {
        return Err(ApiError::forbidden(
            "a publishable key can only read its merchant's offers and verify entitlement tokens",
        ));
    }
    Ok(())
}

/// The caller of an endpoint a web page may call: any API key [`Key`] takes, or a merchant's
/// publishable key (`fk_pk_…`) from a page of one of its declared origins (the `Origin`
/// header; another origin, or none, is 403 `origin_not_allowed`). Never a customer token.
pub struct PageKey(pub Principal);

impl<S> FromRequestParts<S> for PageKey
where
    SharedState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<PageKey, ApiError> {
        let principal = authenticate(parts, &SharedState::from_ref(state))?;
        if principal.is_customer_token() {
            return Err(ApiError::forbidden(
                "a customer token can only call the customer endpoints",
            ));
        }
        let origin = parts
            .headers
            .get(axum::http::header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        principal.check_origin(origin)?;
        if let (true, Some(origin), Some(grant)) = (
            principal.is_publishable(),
            origin,
            parts.extensions.get::<crate::cors::Grant>(),
        ) {
            grant.allow(origin);
        }
        Ok(PageKey(principal))
    }
}

/// The request's checked `Idempotency-Key` (see [`idempotency_key`]), read in place: a
/// `HeaderMap` extractor would copy every header of the request to get at it.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<IdempotencyKey, ApiError> {
        idempotency_key(&parts.headers).map(IdempotencyKey)
    }
}

/// Any authenticated caller, customer tokens included (the customer-facing endpoints); not a
/// publishable key.
pub struct Caller(pub Principal);

impl<S> FromRequestParts<S> for Caller
where
    SharedState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Caller, ApiError> {
        let principal = authenticate(parts, &SharedState::from_ref(state))?;
        refuse_publishable(&principal)?;
        Ok(Caller(principal))
    }
}

/// The object id in a route's `{id}`, parsed into its kind ([`TypedId`]): text that is not an
/// id of that kind answers 404 naming `id` (no such object, as for one the caller may not see).
/// Put it after [`Caller`] or [`Key`], so that a request without credentials is a 401 first.
pub struct IdPath<T>(pub T);

impl<S, T> FromRequestParts<S> for IdPath<T>
where
    S: Send + Sync,
    T: TypedId,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<IdPath<T>, ApiError> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found(Some("id"), T::NOUN))?;
        parse_id(&text, "id").map(IdPath)
    }
}

/// The id of kind `T` in `text` (a path segment or a body field named `param`), or 404 naming
/// `param`: no such object.
pub fn parse_id<T: TypedId>(text: &str, param: &str) -> Result<T, ApiError> {
    T::decode(text).ok_or_else(|| ApiError::not_found(Some(param), T::NOUN))
}

/// The secret of an `Authorization: Bearer fk_…` header, if the request has one.
pub fn bearer_secret(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?
        .strip_prefix("Bearer ")
        .filter(|s| s.starts_with(farthing_service::keys::KEY_PREFIX))
}

fn authenticate(parts: &Parts, state: &SharedState) -> Result<Principal, ApiError> {
    // Authenticated already by the Idempotency-Key layer.
    if let Some(principal) = crate::idempotency::authenticated(parts) {
        return Ok(principal);
    }
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::unauthenticated("missing Authorization: Bearer <API key>"))?;
    let secret = header
        .strip_prefix("Bearer ")
        .filter(|s| s.starts_with(farthing_service::keys::KEY_PREFIX))
        .ok_or_else(|| ApiError::unauthenticated("Authorization must be `Bearer fk_…`"))?;
    Ok(state.authenticate(secret)?)
}

/// Parses JSON into `T`; an error names the field (`amount`, `transfers[2].amount`) with
/// `prefix` in front, or `body` when the JSON itself is malformed.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8], prefix: &str) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    // Strict: a struct is accepted only as a JSON object, never as an array by position.
    let value = serde_path_to_error::deserialize(crate::strict::Strict(&mut deserializer))
        .map_err(|error| {
            let path = error.path().to_string();
            let message = error.inner().to_string();
            // A missing field is reported at its parent; name the field itself.
            let field = message
                .split('`')
                .nth(1)
                .filter(|_| message.starts_with("missing field `"));
            // "?" is where serde_path_to_error could not tell (malformed JSON): the body itself.
            let mut param = if path == "." || path == "?" {
                String::new()
            } else {
                path
            };
            if let Some(field) = field {
                if !param.is_empty() {
                    param.push('.');
                }
                param.push_str(field);
            }
            let param = match (prefix, param.is_empty()) {
                ("", true) => "body".to_string(),
                (prefix, true) => prefix.trim_end_matches('.').to_string(),
                (prefix, false) => format!("{prefix}{param}"),
            };
            ApiError::invalid(
                &param,
                "invalid_json",
                format!("invalid request body: {message}"),
            )
        })?;
    // Only whitespace may follow the value.
    deserializer.end().map_err(|error| {
        let param = prefix.trim_end_matches('.');
        ApiError::invalid(
            if param.is_empty() { "body" } else { param },
            "invalid_json",
            format!("invalid request body: {error}"),
        )
    })?;
    Ok(value)
}

/// A JSON body whose errors name the field: malformed JSON, unknown, missing or mistyped
/// fields all become 400 with `param`.
pub struct ApiJson<T>(pub T, pub axum::body::Bytes);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<ApiJson<T>, ApiError> {
        let RawBody(bytes) = RawBody::from_request(request, state).await?;
        let value = parse_json_body(&bytes)?;
        Ok(ApiJson(value, bytes))
    }
}

/// Parses a whole request body as JSON into `T`; errors name the field.
pub fn parse_json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    T::deserialize(crate::strict::Strict(&mut deserializer))
        .and_then(|value| deserializer.end().map(|()| value))
        .map_err(|error| {
            let message = error.to_string();
            let param = message
                .split('`')
                .nth(1)
                .filter(|_| message.contains("field"))
                .unwrap_or("body")
                .to_string();
            ApiError::invalid(
                &param,
                "invalid_json",
                format!("invalid request body: {message}"),
            )
        })
}

/// The raw request body, with a too-large body refused as 413 naming `body`.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<RawBody, ApiError> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::with_status(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        farthing_service::ServiceError::invalid(
                            "body",
                            "body_too_large",
                            "request body is too large",
                        ),
                    )
                } else {
                    ApiError::invalid("body", "body_unreadable", rejection.body_text())
                }
            })?;
        Ok(RawBody(bytes))
    }
}
