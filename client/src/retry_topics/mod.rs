//! Retry and dead-letter topics, the parts that do no I/O (`docs/RETRY.md`).
//!
//! A group consumer built with `.retry(RetryPolicy::default())` hands each record its
//! handler fails to the group's retry topic for the next attempt, or to its dead-letter
//! topic once no attempt is left or the error cannot be retried. The consumer's side
//! (creating the topics, the hand-off, waiting for due times) is in `consumer/retry/`.
//!
//! - `policy`: [`RetryPolicy`], [`Ordering`], the waits and the retry levels.
//! - `handler_error`: [`HandlerError`], what a handler returns, and its classification.
//! - `names`: [`RetryTopicNames`], `<topic>.<group>.retry.<n>` and `<topic>.<group>.dlt`.
//! - `headers`: the `strata.` headers of a forwarded record.

mod handler_error;
pub mod headers;
mod names;
mod policy;

pub use handler_error::HandlerError;
pub use headers::attempts_made;
pub use names::RetryTopicNames;
pub use policy::{FailureKind, Ordering, RetryPolicy, MAX_ATTEMPTS_LIMIT};

pub(crate) use policy::Decision;

/// Where [`Consumer::fail`](crate::Consumer::fail) put a failed record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Handoff {
    /// Produced to a retry topic, acknowledged by every in-sync replica: the record comes
    /// back to the group from there at `due_ms`.
    Retry {
        topic: String,
        /// Attempts made so far.
        attempt: u32,
        due_ms: i64,
    },
    /// `Ordering::BlockPartition`: the partition stopped and reads the record again at
    /// `due_ms`.
    RetryInPlace { attempt: u32, due_ms: i64 },
    /// Produced to the dead-letter topic, acknowledged by every in-sync replica.
    DeadLetter {
        topic: String,
        attempt: u32,
        kind: FailureKind,
    },
}
