//! A fetch session (`ClientApi.FetchStream`): one request, answered again and again from
//! where each partition's previous answer ended.
//!
//! A consumer reading one partition with unary fetches has one answer in flight: the
//! broker sits idle while the client takes in an answer and asks again, and the client
//! waits while the broker reads the next one. In a session the broker reads the next
//! answer as soon as the previous one is handed to HTTP/2, so it is on its way while the
//! client decodes. How far ahead the broker may run is bounded twice: it reads an answer
//! only once the one before it has left the channel (capacity 1) for the response body,
//! and the body is polled only while the stream's HTTP/2 window has room, which the
//! client opens only as it reads.
//!
//! The rule is [`strata_proto::fetch_session::next_request`] (pure, shared with the
//! client); [`run`] drives it.

use std::sync::Arc;

use strata_proto::api::v1::{FetchRequest, FetchResponse};
use strata_proto::fetch_session::next_request;
use tokio::sync::mpsc;

use super::client_api::fetch_response;
use crate::node::Node;

/// Answers `request` and its successors into `answers`, each turned into what the
/// response body sends by `frame`, until the session ends or the receiver is dropped
/// (the client cancelled the stream).
pub async fn run<T>(
    node: Arc<Node>,
    mut request: FetchRequest,
    answers: mpsc::Sender<T>,
    frame: impl Fn(FetchResponse) -> T,
) {
    loop {
        // Read the next answer only once the previous one has been taken.
        let Ok(slot) = answers.reserve().await else {
            return;
        };
        let answer = tokio::select! {
            answer = fetch_response(&node, request.clone()) => answer,
            () = answers.closed() => return,
        };
        let next = next_request(request, &answer);
        slot.send(frame(answer));
        match next {
            Some(next) => request = next,
            None => return,
        }
    }
}
