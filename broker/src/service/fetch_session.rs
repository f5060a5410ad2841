//! A fetch session (`ClientApi.FetchStream`): one fetch, answered again and again from
//! where each partition's previous answer ended, as the client grants answers.
//!
//! A consumer reading one partition with unary fetches has one answer in flight: the
//! broker sits idle while the client takes in an answer and asks again, and the client
//! waits while the broker reads the next one. In a session the broker reads the next
//! answer while the client is still taking in the last one, and sends it as soon as the
//! client has granted it, without a round trip per answer.
//!
//! Grants, not HTTP/2 flow control, decide how far ahead the broker runs: at most one
//! answer read and not yet granted, plus the granted answers on their way. A client that
//! keeps its grants within half its stream window never makes the broker wait for
//! window, so each answer leaves as whole as a unary one (h2 cuts a data frame where the
//! window runs out, and an answer cut inside a batch costs the client a copy).
//!
//! The rule of moving on is [`strata_proto::fetch_session::next_request`] (pure, shared
//! with the client); [`run`] drives it.

use std::sync::Arc;

use strata_proto::api::v1::{FetchResponse, FetchSessionRequest};
use strata_proto::fetch_session::next_request;
use tokio::sync::mpsc;
use tokio_stream::{Stream, StreamExt};
use tonic::Status;

use super::client_api::fetch_response;
use crate::node::Node;

/// The most answers a client may have granted and not yet received.
pub const GRANTS_MAX: u32 = 64;

/// Serves the session whose client messages are `requests`, sending each answer, turned
/// into what the response body sends by `frame`, into `answers`. Ends when the session
/// ends (an error or a partition that did not move on), when the client has closed its
/// side and every grant is used, when `answers` is dropped (the client cancelled), or
/// after sending the status a bad client message is refused with.
pub async fn run<T, S>(
    node: Arc<Node>,
    mut requests: S,
    answers: mpsc::Sender<Result<T, Status>>,
    frame: impl Fn(FetchResponse) -> Result<T, Status>,
) where
    S: Stream<Item = Result<FetchSessionRequest, Status>> + Unpin,
{
    let first = tokio::select! {
        first = requests.next() => first,
        () = answers.closed() => return,
    };
    let (mut request, mut grants) = match first {
        None => return,
        Some(Err(status)) => return refuse(&answers, status).await,
        Some(Ok(FetchSessionRequest {
            fetch: Some(fetch),
            grant,
        })) => (fetch, grant.min(GRANTS_MAX)),
        Some(Ok(FetchSessionRequest { fetch: None, .. })) => {
            let status =
                Status::invalid_argument("the first message of a fetch session carries no fetch");
            return refuse(&answers, status).await;
        }
    };
    let mut client_open = true;
    loop {
        let answer = tokio::select! {
            answer = fetch_response(&node, request.clone()) => answer,
            () = answers.closed() => return,
        };
        let next = next_request(request, &answer);
        while grants == 0 {
            if !client_open {
                return;
            }
            let message = tokio::select! {
                message = requests.next() => message,
                () = answers.closed() => return,
            };
            match message {
                None => client_open = false,
                Some(Ok(FetchSessionRequest { fetch: None, grant })) => {
                    grants = grant.min(GRANTS_MAX);
                }
                Some(Ok(FetchSessionRequest { fetch: Some(_), .. })) => {
                    let status = Status::invalid_argument(
                        "only the first message of a fetch session carries a fetch",
                    );
                    return refuse(&answers, status).await;
                }
                Some(Err(status)) => return refuse(&answers, status).await,
            }
        }
        grants -= 1;
        if answers.send(frame(answer)).await.is_err() {
            return;
        }
        match next {
            Some(next) => request = next,
            None => return,
        }
    }
}

async fn refuse<T>(answers: &mpsc::Sender<Result<T, Status>>, status: Status) {
    // The client may be gone already; then nobody is left to tell.
    let _ = answers.send(Err(status)).await;
}
