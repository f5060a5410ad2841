//! [`Consumer::run`]: the handler loop of a consumer with a retry policy.
//!
//! Each record goes to the handler; `Ok` marks it processed, `Err` goes to
//! [`Consumer::fail`]. Records of one partition are handled one at a time, in order, and
//! a record is done before the next one is asked for, so `CommitMode::Auto` and
//! `Marked` both commit exactly what was handled or handed off.

use std::future::Future;

use tokio_stream::StreamExt;

use crate::consumer::Consumer;
use crate::error::Error;
use crate::record::ConsumedRecord;
use crate::retry_topics::HandlerError;

impl Consumer {
    /// Calls `handler` for every record until the stream ends; failed records are
    /// retried through the group's retry topics and end in its dead-letter topic
    /// ([`Consumer::fail`]). The handler also sees the records of the retry topics, when
    /// they are due (`strata.attempt` says how many attempts were made before,
    /// [`attempts_made`](crate::retry_topics::attempts_made)).
    ///
    /// A retriable stream error is logged and the loop goes on; a non-retriable one is
    /// returned (that partition is stopped until `seek`). To stop, use
    /// [`Consumer::run_until`], then `close()`.
    pub async fn run<F, Fut>(&mut self, handler: F) -> Result<(), Error>
    where
        F: FnMut(ConsumedRecord) -> Fut,
        Fut: Future<Output = Result<(), HandlerError>>,
    {
        self.run_until(handler, std::future::pending()).await
    }

    /// [`Consumer::run`] until `stop` completes. `stop` is only checked between records:
    /// a handler and its hand-off always finish.
    pub async fn run_until<F, Fut, S>(&mut self, mut handler: F, stop: S) -> Result<(), Error>
    where
        F: FnMut(ConsumedRecord) -> Fut,
        Fut: Future<Output = Result<(), HandlerError>>,
        S: Future<Output = ()>,
    {
        tokio::pin!(stop);
        loop {
            let item = tokio::select! {
                biased;
                () = &mut stop => return Ok(()),
                item = self.next() => item,
            };
            let record = match item {
                None => return Ok(()),
                Some(Ok(record)) => record,
                Some(Err(error)) if error.is_retriable() => {
                    tracing::warn!(%error, "consumer stream error; going on");
                    continue;
                }
                Some(Err(error)) => return Err(error),
            };
            match handler(record.clone()).await {
                Ok(()) => self.mark(&record),
                Err(failure) => {
                    if let Err(error) = self.fail(&record, failure).await {
                        // The partition is held and the hand-off resent (see `fail`).
                        tracing::warn!(%error, topic = %record.topic,
                            partition = record.partition, offset = record.offset,
                            "hand-off of a failed record not acknowledged yet");
                    }
                }
            }
        }
    }
}
