//! CORS, only for the endpoints a web page calls with a merchant's publishable key
//! ([`PAGE_ROUTES`]), and only for the origins publishable keys declare.
//!
//! - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) carries no key,
//!   so it is answered (204) when the route is a page route taking that method and some
//!   publishable key declares the origin ([`AppState::declares_origin`]); anything else is 403
//!   `origin_not_allowed` without CORS headers, which the browser reads as a refusal.
//! - The request itself gets `Access-Control-Allow-Origin: <its Origin>` only when
//!   [`crate::extract::PageKey`] accepted a publishable key from that origin (the key's own
//!   origins, [`farthing_service::state::Principal::check_origin`]): it records the grant
//!   in the request's [`Grant`]. Secret keys never get CORS headers; a browser page must not
//!   hold them. Credentials (cookies) are never allowed.
//!
//! [`AppState::declares_origin`]: farthing_service::state::AppState::declares_origin

use std::sync::{Arc, OnceLock};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use farthing_service::state::SharedState;
use farthing_service::{ErrorKind, ServiceError};

use crate::error::ApiError;

/// The routes a page calls with a publishable key: each takes a [`crate::extract::PageKey`].
pub const PAGE_ROUTES: &[(Method, &str)] = &[
    (Method::GET, "/v1/offers"),
    (Method::GET, "/v1/offers/{id}"),
    (Method::POST, "/v1/entitlements/verify"),
];

/// How long a browser may cache a preflight's answer, in seconds.
pub const PREFLIGHT_MAX_AGE_S: u32 = 600;

/// The request headers a page may send.
const ALLOWED_HEADERS: &str = "authorization, content-type, idempotency-key, request-id";
/// The response headers a page may read besides the simple ones.
const EXPOSED_HEADERS: &str = "request-id, idempotent-replayed";

/// The origin a [`crate::extract::PageKey`] accepted for this request, if any.
#[derive(Clone, Default)]
pub struct Grant(Arc<OnceLock<HeaderValue>>);

impl Grant {
    /// Allows the request's `origin` to read the answer.
    pub fn allow(&self, origin: &str) {
        if let Ok(value) = HeaderValue::from_str(origin) {
            let _ = self.0.set(value);
        }
    }
}

fn is_page_route(method: &Method, route: &str) -> bool {
    PAGE_ROUTES.iter().any(|(m, r)| m == method && *r == route)
}

/// The CORS middleware (a route layer: the route is matched before it runs).
pub async fn cors(State(state): State<SharedState>, mut request: Request, next: Next) -> Response {
    let Some(origin) = request.headers().get(header::ORIGIN).cloned() else {
        return next.run(request).await;
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    if request.method() == Method::OPTIONS {
        if let Some(asked) = request.headers().get(header::ACCESS_CONTROL_REQUEST_METHOD) {
            return preflight(&state, &route, &origin, asked);
        }
    }
    let page_route = PAGE_ROUTES.iter().any(|(_, r)| *r == route);
    let grant = Grant::default();
    request.extensions_mut().insert(grant.clone());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if let Some(allowed) = grant.0.get() {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed.clone());
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
    }
    if page_route {
        // The answer depends on the Origin: a shared cache must not give it to another page.
        headers.append(header::VARY, HeaderValue::from_static("origin"));
    }
    response
}

fn preflight(
    state: &SharedState,
    route: &str,
    origin: &HeaderValue,
    asked: &HeaderValue,
) -> Response {
    let method = asked
        .to_str()
        .ok()
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok());
    let declared = origin.to_str().is_ok_and(|o| state.declares_origin(o));
    let allowed = method.is_some_and(|m| is_page_route(&m, route)) && declared;
    if !allowed {
        let refusal = ServiceError::new(
            ErrorKind::Forbidden,
            "origin_not_allowed",
            "cross-origin requests are answered only on the paywall's page endpoints, from an \
             origin a publishable key declares",
        )
        .with_param("Origin");
        return ApiError::from(refusal).into_response();
    }
    let methods = PAGE_ROUTES
        .iter()
        .filter(|(_, r)| *r == route)
        .map(|(m, _)| m.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    if let Ok(methods) = HeaderValue::from_str(&methods) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, methods);
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(PREFLIGHT_MAX_AGE_S),
    );
    headers.insert(header::VARY, HeaderValue::from_static("origin"));
    response
}
