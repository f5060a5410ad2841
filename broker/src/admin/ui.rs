//! The built-in page, `GET /ui` (`/` redirects to it): one HTML file with plain
//! JavaScript (`ui.html`), embedded in the binary with `include_str!`, no build step and
//! nothing fetched from elsewhere. The page only reads the `/v1` API, with GET, every
//! 5 s: it shows the cluster's health, brokers, topics with each partition's leader, ISR
//! and high watermark, groups with their lag, and the last records of a chosen partition
//! (or a notice when `admin_peek` is off). It writes nothing.
//!
//! The page inserts every value with `textContent`, never as HTML, so record contents
//! and names cannot inject markup; the Content-Security-Policy below forbids any other
//! script, style or connection source as a second line.

use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use super::AdminState;

/// The page.
pub const PAGE: &str = include_str!("ui.html");

/// Only this page's own inline script and style, and GETs to this origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// `/ui` and the redirect from `/`.
pub fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/ui", get(page))
        .route("/", get(|| async { Redirect::to("/ui") }))
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        PAGE,
    )
        .into_response()
}
