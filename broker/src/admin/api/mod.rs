//! The read-only JSON admin API, `GET /v1/…` (`docs/OPERATIONS.md`, "JSON admin API").
//!
//! One file per resource: [`cluster`] (`/v1/cluster`, `/v1/cluster/health`,
//! `/v1/brokers`), [`topics`] (`/v1/topics`, `/v1/topics/{topic}`,
//! `/v1/topics/{topic}/partitions`), [`groups`] (`/v1/groups`, `/v1/groups/{group}`) and
//! [`records`] (`/v1/topics/{topic}/records`, the peek). Bodies are the
//! `strata_proto::views` structs that the CLI prints with `--format json`, so the field
//! names are the same in both. Every answer comes from this broker's own state (its
//! metadata image, its partitions, its group coordinator); what only another broker knows
//! (the ends of a partition led elsewhere, a group coordinated elsewhere, records led
//! elsewhere) is asked of that broker over gRPC, as the coordinator does for lag.
//!
//! Errors are `{"error": {"code": "...", "message": "..."}}` ([`ApiFailure`]): 404 for an
//! unknown topic, partition or group, 400 for a bad query parameter, 403 for the peek when
//! `admin_peek` is off, 503 before the broker has started. Nothing here writes.

pub mod cluster;
pub mod group_retry_topics;
pub mod groups;
pub mod groups_remote;
pub mod records;
pub mod topics;

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use strata_proto::views::ApiError;

use super::AdminState;
use crate::node::{GroupCoordinator, Node};

/// The `/v1` routes.
pub fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/v1/cluster", get(cluster::cluster))
        .route("/v1/cluster/health", get(cluster::health))
        .route("/v1/brokers", get(cluster::brokers))
        .route("/v1/topics", get(topics::list))
        .route("/v1/topics/{topic}", get(topics::describe))
        .route("/v1/topics/{topic}/partitions", get(topics::partitions))
        .route("/v1/topics/{topic}/records", get(records::peek))
        .route("/v1/groups", get(groups::list))
        .route("/v1/groups/{group}", get(groups::describe))
}

/// An error answer: its HTTP status and its JSON body.
#[derive(Debug)]
pub struct ApiFailure {
    status: StatusCode,
    body: ApiError,
}

impl ApiFailure {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiFailure {
        ApiFailure {
            status,
            body: ApiError::new(code, message),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiFailure {
        ApiFailure::new(StatusCode::BAD_REQUEST, "INVALID_REQUEST", message)
    }

    pub fn unknown_topic(topic: &str) -> ApiFailure {
        ApiFailure::new(
            StatusCode::NOT_FOUND,
            "UNKNOWN_TOPIC_OR_PARTITION",
            format!("unknown topic {topic:?}"),
        )
    }

    /// Another broker (or this one) could not give what was asked.
    pub fn unavailable(code: &str, message: impl Into<String>) -> ApiFailure {
        ApiFailure::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        json_response(self.status, &self.body)
    }
}

/// `value` as a JSON answer with `status`.
pub fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        // Views are strings, numbers and lists: serialising them cannot fail.
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

/// `value` as a 200 JSON answer.
pub fn ok<T: Serialize>(value: &T) -> Response {
    json_response(StatusCode::OK, value)
}

/// The node and its group coordinator, or 503 while the broker is still starting.
pub fn serving(state: &AdminState) -> Result<(Arc<Node>, Arc<GroupCoordinator>), ApiFailure> {
    state
        .serving()
        .map(|(node, groups)| (Arc::clone(node), Arc::clone(groups)))
        .ok_or_else(|| {
            ApiFailure::unavailable(
                "BROKER_NOT_AVAILABLE",
                "the broker is still starting (log recovery in progress)",
            )
        })
}

/// The `name=value` pairs of a query string. Values are taken as written (the API's
/// parameters are numbers; anything else is refused by their parser).
pub fn query_pairs(query: Option<&str>) -> Vec<(&str, &str)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::query_pairs;

    #[test]
    fn query_pairs_split_on_ampersands_and_the_first_equals_sign() {
        assert_eq!(
            query_pairs(Some("partition=2&limit=5&flag&x=a=b")),
            [
                ("partition", "2"),
                ("limit", "5"),
                ("flag", ""),
                ("x", "a=b")
            ]
        );
        assert!(query_pairs(None).is_empty());
        assert!(query_pairs(Some("")).is_empty());
    }
}
