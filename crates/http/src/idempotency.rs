//! Every POST with an `Idempotency-Key` runs under the service's one rule
//! ([`farthing_service::idempotency`]): this layer only reads the request (the key, the caller,
//! the whole body for the fingerprint), runs the handler inside [`AppState::once`], hands it
//! the answer to store, and renders a replay. New POST routes are covered without doing
//! anything. A replay carries `Idempotent-Replayed: true`.
//!
//! A request this layer cannot place (no key, a malformed key, no or a bad API key) goes to
//! its handler untouched, which answers with the usual error in the usual order.
//!
//! [`AppState::once`]: farthing_service::state::AppState

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use farthing_service::idempotency::{request_fingerprint, Answer, Once};
use farthing_service::state::{Principal, SharedState};
use futures_util::future::Either;
use tower::{Layer, Service, ServiceExt};

use crate::error::ApiError;
use crate::extract::{bearer_secret, idempotency_key, RawBody};

/// The header a replayed answer carries.
pub const REPLAYED: &str = "idempotent-replayed";

/// The layer of every route ([`Router::route_layer`](axum::Router::route_layer)).
#[derive(Clone)]
pub struct IdempotencyLayer {
    pub state: SharedState,
}

impl<S> Layer<S> for IdempotencyLayer {
    type Service = Idempotency<S>;

    fn layer(&self, inner: S) -> Idempotency<S> {
        Idempotency {
            inner,
            state: self.state.clone(),
        }
    }
}

/// A route behind [`IdempotencyLayer`]. A request without a key (almost all of them) goes
/// straight to the route: no boxing, no copy, one header lookup.
#[derive(Clone)]
pub struct Idempotency<S> {
    inner: S,
    state: SharedState,
}

type Keyed = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S> Service<Request> for Idempotency<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, Keyed>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.method() != Method::POST || !request.headers().contains_key(KEY_HEADER) {
            return Either::Left(self.inner.call(request));
        }
        // The clone is ready only if polled; keep the one that was (tower's usual dance).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Either::Right(Box::pin(
            async move { Ok(keyed(state, request, inner).await) },
        ))
    }
}

const KEY_HEADER: &str = "idempotency-key";

/// A POST with an `Idempotency-Key`.
async fn keyed<S>(state: SharedState, request: Request, route: S) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    let Ok(Some(key)) = idempotency_key(request.headers()) else {
        return pass(route, request).await;
    };
    let principal = bearer_secret(request.headers()).and_then(|s| state.authenticate(s).ok());
    let Some(principal) = principal else {
        return pass(route, request).await;
    };
    let (mut parts, body) = request.into_parts();
    // The handler's extractors take the caller from here rather than counting it against the
    // key's rate limit twice.
    parts.extensions.insert(principal.clone());
    let mut reading = Request::new(body);
    *reading.extensions_mut() = parts.extensions.clone();
    let body = match RawBody::from_request(reading, &()).await {
        Ok(RawBody(body)) => body,
        Err(error) => return error.into_response(),
    };
    // The media type without its parameters: `application/json; charset=utf-8` is the same
    // request as `application/json`.
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let target = parts.uri.path_and_query().map_or("", |p| p.as_str());
    let fingerprint = request_fingerprint(parts.method.as_str(), target, &content_type, &body);
    let request = Request::from_parts(parts, Body::from(body));
    let outcome = state
        .once(&principal, &key, fingerprint, || run(request, route))
        .await;
    match outcome {
        Ok(Once::Ran(response)) => response,
        Ok(Once::Replayed(answer)) => replay(answer),
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// The route's answer, as it gives it.
async fn pass<S>(route: S, request: Request) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    match route.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// Runs the handler; a success is read whole, to be stored and still sent.
async fn run<S>(request: Request, route: S) -> (Response, Option<Answer>)
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let response = pass(route, request).await;
    if !response.status().is_success() {
        return (response, None);
    }
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => {
            let answer = Answer {
                status: parts.status.as_u16(),
                content_type: parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                body: bytes.to_vec(),
            };
            (Response::from_parts(parts, Body::from(bytes)), Some(answer))
        }
        Err(error) => (
            ApiError::from(farthing_service::ServiceError::internal(format!(
                "reading the answer: {error}"
            )))
            .into_response(),
            None,
        ),
    }
}

/// The stored answer, as first sent.
fn replay(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let content_type = answer
        .content_type
        .and_then(|t| HeaderValue::from_str(&t).ok())
        .unwrap_or(HeaderValue::from_static("application/json"));
    let mut response = (status, answer.body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

/// The caller this layer authenticated, if it did.
pub fn authenticated(parts: &axum::http::request::Parts) -> Option<Principal> {
    parts.extensions.get::<Principal>().cloned()
}
