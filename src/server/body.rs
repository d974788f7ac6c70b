//! Request bodies: read whole up to a limit, or left unread and dealt with
//! after the answer.
//!
//! An answer given without reading the request body (413, 415, 404, 405)
//! must reach the client as an answer:
//!
//! - over HTTP/2, dropping the unread body resets the stream — with CANCEL
//!   while the response is sent, NO_ERROR after it (RFC 9113, section 8.1) —
//!   and curl 7.88, Debian 12's, reports either as an error (exit 92). So the
//!   answer goes first and the response ends only after the rest of the body
//!   has been read and discarded;
//! - over HTTP/1.1 the connection is closed after an answer whose request
//!   was not read, under a client that may still be writing its body, which
//!   then fails to write instead of reading the answer. So the rest of the
//!   body is read and discarded first, then the answer goes — unless the
//!   client asked `Expect: 100-continue`: it waits for the answer and sends
//!   nothing (curl does this for large bodies).
//!
//! Both stop discarding after [`DRAIN_LIMIT`] bytes (nginx's "lingering
//! close" has the same idea and bound).

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, Version, header};
use axum::response::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};

/// Why a body was not read whole, and the body, to keep.
pub(super) struct Unread {
    pub status: StatusCode,
    pub message: String,
    pub body: Body,
}

/// The whole body, or why not: over `limit` bytes (413, known from
/// Content-Length before anything is read), or cut off (400).
pub(super) async fn read(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Unread> {
    let declared = declared_length(headers);
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(body));
    }
    let mut body = body;
    let mut whole: Option<Bytes> = None;
    let mut more: Vec<u8> = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let data = match frame.map(Frame::into_data) {
            Ok(Ok(data)) => data,
            // Trailers: nothing gracehook reads.
            Ok(Err(_)) => continue,
            Err(error) => {
                return Err(Unread {
                    status: StatusCode::BAD_REQUEST,
                    message: format!("reading the request body: {error}"),
                    body,
                });
            }
        };
        let received = whole.as_ref().map_or(0, Bytes::len) + more.len() + data.len();
        if received > limit {
            return Err(too_large(body));
        }
        // One frame, the usual case, is used as it is; more are joined.
        match whole.take() {
            None if more.is_empty() => whole = Some(data),
            first => {
                more.extend_from_slice(first.as_deref().unwrap_or_default());
                more.extend_from_slice(&data);
            }
        }
    }
    Ok(whole.unwrap_or_else(|| Bytes::from(more)))
}

/// The body's length as its Content-Length declares it.
pub(super) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

fn too_large(body: Body) -> Unread {
    Unread {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: "the request body is over the limit of 7 MiB".to_string(),
        body,
    }
}

/// How much of an unread HTTP/2 body is read and discarded after the answer;
/// a client sending more gets its stream reset.
pub(super) const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

/// `response`, to a request whose `body` is left unread: see the module's
/// documentation.
pub(super) async fn answer_unread(
    response: Response,
    mut body: Body,
    version: Version,
    headers: &HeaderMap,
) -> Response {
    if version != Version::HTTP_2 {
        let expects_continue = headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if !expects_continue {
            let mut drained = 0usize;
            while drained <= DRAIN_LIMIT {
                match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                    Some(Ok(frame)) => {
                        drained = drained.saturating_add(frame.data_ref().map_or(0, Bytes::len));
                    }
                    _ => break,
                }
            }
        }
        return response;
    }
    let (parts, answer) = response.into_parts();
    Response::from_parts(
        parts,
        Body::new(AnswerFirst {
            answer,
            request: Some(body),
            drained: 0,
        }),
    )
}

/// A response body that, once its own frames are sent, drains the request
/// body it answered before reading.
struct AnswerFirst {
    answer: Body,
    request: Option<Body>,
    drained: usize,
}

impl HttpBody for AnswerFirst {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match Pin::new(&mut self.answer).poll_frame(cx) {
            Poll::Ready(None) => {}
            other => return other,
        }
        while let Some(request) = self.request.as_mut() {
            match Pin::new(request).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    let size = frame.data_ref().map_or(0, Bytes::len);
                    self.drained = self.drained.saturating_add(size);
                    if self.drained > DRAIN_LIMIT {
                        self.request = None;
                    }
                }
                Poll::Ready(_) => self.request = None,
            }
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.request.is_none() && self.answer.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.answer.size_hint()
    }
}
