//! The admin HTTP listener (axum, HTTP/1): `GET /healthz`, `GET /readyz`, `GET /metrics`,
//! the JSON admin API `GET /v1/…` (`super::api`) and the page `GET /ui` (`super::ui`).
//!
//! It starts before the data directory is opened, so `/readyz` answers `booting` while
//! logs recover, and it keeps answering during a shutdown (`shutting_down`) until the
//! process exits. It has no authentication: it binds to loopback by default.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::metrics::refresh_gauges;
use super::readiness::judge;
use super::AdminState;

/// The Prometheus text exposition format, version 0.0.4.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The routes of the admin listener.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(super::api::routes())
        .merge(super::ui::routes())
        .with_state(state)
}

/// Serves the admin routes on `listener` until the process exits.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AdminState>,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Liveness: the process and its runtime answer. No dependency is checked, so an
/// orchestrator never restarts a broker for a network partition.
async fn healthz() -> Response {
    json(StatusCode::OK, r#"{"status":"ok"}"#.to_owned())
}

async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    let verdict = judge(&state.facts());
    let status =
        StatusCode::from_u16(verdict.status_code()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    json(status, verdict.to_json())
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    let Some(handle) = state.metrics() else {
        return (
            StatusCode::NOT_FOUND,
            "metrics are not recorded by this process\n",
        )
            .into_response();
    };
    super::metrics::publish_build_info();
    if let Some(connections) = state.connections() {
        connections.publish();
    }
    if let Some((node, groups)) = state.serving() {
        refresh_gauges(node, groups, state.per_partition_metrics()).await;
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        handle.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn get_path(state: &Arc<AdminState>, path: &str) -> (StatusCode, String) {
        let request = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router(Arc::clone(state)).oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn healthz_is_ok_even_while_booting() {
        let state = AdminState::new(None);
        assert_eq!(
            get_path(&state, "/healthz").await,
            (StatusCode::OK, r#"{"status":"ok"}"#.to_owned())
        );
    }

    #[tokio::test]
    async fn readyz_is_503_booting_before_the_node_starts_and_shutting_down_after_the_signal() {
        let state = AdminState::new(None);
        let (status, body) = get_path(&state, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            r#"{"status":"booting","reasons":["log recovery in progress","listeners not bound"]}"#
        );
        state.lifecycle().shutting_down();
        let (status, body) = get_path(&state, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.starts_with(r#"{"status":"shutting_down""#), "{body}");
    }

    #[tokio::test]
    async fn unknown_paths_are_404() {
        let state = AdminState::new(None);
        assert_eq!(
            get_path(&state, "/v1/nothing").await.0,
            StatusCode::NOT_FOUND
        );
    }
}
