//! Storage engine (being written).
pub mod error;
