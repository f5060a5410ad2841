//! [`HandlerError`]: what a record handler returns when it fails a record, and how the
//! retry policy tells retryable failures from the rest.
//!
//! A `HandlerError` keeps the error itself (so a classifier can `is::<T>()` or
//! `downcast_ref::<T>()` it), the Rust type name it was built from (the
//! `strata.error.type` header) and whether it was marked non-retryable. It does not
//! implement `std::error::Error` itself, which is what lets `?` turn any error into one
//! (the same trade `anyhow::Error` makes).

use std::error::Error as StdError;
use std::fmt;

/// The most bytes of the source chain written into `strata.error.detail`.
pub(crate) const DETAIL_BYTES_MAX: usize = 8 * 1024;

/// A handler's failure: the error, its type name, and whether it may be retried.
pub struct HandlerError {
    error: Box<dyn StdError + Send + Sync + 'static>,
    type_name: &'static str,
    non_retryable: bool,
}

impl HandlerError {
    /// A retryable failure (unless the policy's classifier says otherwise).
    pub fn new<E: StdError + Send + Sync + 'static>(error: E) -> HandlerError {
        HandlerError {
            error: Box::new(error),
            type_name: std::any::type_name::<E>(),
            non_retryable: false,
        }
    }

    /// A failure that no retry can fix (bad input, a validation error): the record goes
    /// to the dead-letter topic at once.
    pub fn non_retryable<E: StdError + Send + Sync + 'static>(error: E) -> HandlerError {
        HandlerError {
            non_retryable: true,
            ..HandlerError::new(error)
        }
    }

    /// A retryable failure from a message alone.
    pub fn msg(message: impl fmt::Display) -> HandlerError {
        HandlerError {
            error: Box::new(Message(message.to_string())),
            type_name: "message",
            non_retryable: false,
        }
    }

    /// Marks this failure non-retryable.
    #[must_use]
    pub fn into_non_retryable(mut self) -> HandlerError {
        self.non_retryable = true;
        self
    }

    /// Whether the error is of type `T`.
    pub fn is<T: StdError + 'static>(&self) -> bool {
        self.error.is::<T>()
    }

    /// The error as a `T`, when it is one.
    pub fn downcast_ref<T: StdError + 'static>(&self) -> Option<&T> {
        self.error.downcast_ref::<T>()
    }

    /// The Rust type name of the error (`billing::PaymentDeclined`), or `message` for
    /// [`HandlerError::msg`].
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// Whether the error was marked non-retryable, or is a decode error of the standard
    /// library or of this crate (retrying the same bytes cannot decode them).
    pub fn is_marked_non_retryable(&self) -> bool {
        self.non_retryable || self.is_decode_error()
    }

    fn is_decode_error(&self) -> bool {
        self.is::<std::str::Utf8Error>()
            || self.is::<std::string::FromUtf8Error>()
            || self.is::<std::num::ParseIntError>()
            || self.is::<std::num::ParseFloatError>()
            || self.is::<std::str::ParseBoolError>()
            || self.is::<strata_proto::record::RecordError>()
    }

    /// The error's sources, one per line, cut at 8 KiB (`strata.error.detail`).
    pub(crate) fn detail(&self) -> String {
        let mut detail = String::new();
        let mut source = self.error.source();
        while let Some(error) = source {
            if !detail.is_empty() {
                detail.push('\n');
            }
            detail.push_str("caused by: ");
            detail.push_str(&error.to_string());
            source = error.source();
        }
        cut_at_char_boundary(&mut detail, DETAIL_BYTES_MAX);
        detail
    }
}

/// Shortens `text` to at most `bytes_max` bytes without splitting a character.
pub(crate) fn cut_at_char_boundary(text: &mut String, bytes_max: usize) {
    if text.len() <= bytes_max {
        return;
    }
    let mut end = bytes_max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
}

impl<E: StdError + Send + Sync + 'static> From<E> for HandlerError {
    fn from(error: E) -> HandlerError {
        HandlerError::new(error)
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("type_name", &self.type_name)
            .field("error", &self.error)
            .field("non_retryable", &self.non_retryable)
            .finish()
    }
}

/// The error of [`HandlerError::msg`].
#[derive(Debug)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Message {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("card declined")]
    struct Declined {
        #[source]
        source: std::io::Error,
    }

    fn declined() -> Declined {
        Declined {
            source: std::io::Error::other("bank said no"),
        }
    }

    #[test]
    fn keeps_the_type_the_message_and_the_source_chain() {
        let error = HandlerError::from(declined());
        assert!(error.is::<Declined>());
        assert!(
            error.type_name().ends_with("Declined"),
            "{}",
            error.type_name()
        );
        assert_eq!(error.to_string(), "card declined");
        assert_eq!(error.detail(), "caused by: bank said no");
        assert!(!error.is_marked_non_retryable());
        assert!(error.into_non_retryable().is_marked_non_retryable());
        assert!(HandlerError::non_retryable(declined()).is_marked_non_retryable());
    }

    #[test]
    fn decode_errors_are_non_retryable_by_default() {
        let parse = "x".parse::<u32>().map_err(HandlerError::from);
        assert!(parse.is_err_and(|error| error.is_marked_non_retryable()));
        let utf8 = String::from_utf8(vec![0xff]).map_err(HandlerError::from);
        assert!(utf8.is_err_and(|error| error.is_marked_non_retryable()));
        assert!(!HandlerError::msg("try later").is_marked_non_retryable());
    }

    #[test]
    fn detail_is_cut_at_8_kib_on_a_character_boundary() {
        let mut text = "é".repeat(5000);
        cut_at_char_boundary(&mut text, DETAIL_BYTES_MAX);
        assert_eq!(text.len(), DETAIL_BYTES_MAX);
        let mut odd = format!("a{}", "é".repeat(5000));
        cut_at_char_boundary(&mut odd, DETAIL_BYTES_MAX);
        assert_eq!(odd.len(), DETAIL_BYTES_MAX - 1);
    }
}
