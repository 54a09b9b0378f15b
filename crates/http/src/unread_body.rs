//! Requests answered before their body was read.
//!
//! An early answer (401, 403, 404, 405, 408, 413, 429) leaves the rest of the request's body on
//! the connection. hyper then closes the connection, and a client that already sent its next
//! request on it sees a broken pipe and cannot tell whether that request was applied. So the
//! server says it up front: an answer given while the request's body was unread carries
//! `Connection: close`, and a well-behaved client opens a new connection for the next request.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};

/// A request body that records when it has been read to its end.
struct TrackedBody {
    inner: Body,
    finished: Arc<AtomicBool>,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.finished.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Watches `request`'s body; call the returned function on the response.
pub fn watch(request: Request) -> (Request, impl FnOnce(&mut Response)) {
    let has_body = !request.body().is_end_stream();
    let finished = Arc::new(AtomicBool::new(!has_body));
    let request = if has_body {
        let watched = Arc::clone(&finished);
        request.map(|inner| {
            Body::new(TrackedBody {
                inner,
                finished: watched,
            })
        })
    } else {
        request
    };
    let mark = move |response: &mut Response| {
        if !finished.load(Ordering::Relaxed) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    };
    (request, mark)
}
