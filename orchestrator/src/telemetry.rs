//! Logs: pretty for people, JSON for machines (`VESSEL_LOG_FORMAT=json`),
//! filtered by `RUST_LOG` (default `info`); and the span every API request
//! runs in.

use std::io::IsTerminal;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

/// The variable that asks for JSON logs (`json`). Not a config override:
/// the config skips it.
pub const LOG_FORMAT_VAR: &str = "VESSEL_LOG_FORMAT";

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var(LOG_FORMAT_VAR).is_ok_and(|f| f == "json");
    // The formatter writes to stdout (its default writer).
    let colour = use_colour(json, std::io::stdout().is_terminal());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour);
    // A second init (tests) is not an error worth stopping for.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Colour codes only for a person at a terminal: a log in a file, a pipe
/// or the journal would keep them as text (`\x1b[2m…`) that `grep` and
/// `less` show as noise. JSON is never coloured.
fn use_colour(json: bool, writes_to_terminal: bool) -> bool {
    !json && writes_to_terminal
}

/// Middleware: runs the request in a `request` span (method, route, a
/// short id), so whatever a handler logs, its error chain included, says
/// which request it was; the answer's status and time are logged at debug.
pub async fn request_span(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("(no route)", MatchedPath::as_str)
        .to_owned();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route,
        id = &id[..8],
    );
    let started = Instant::now();
    async move {
        let response = next.run(req).await;
        tracing::debug!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "answered"
        );
        response
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_for_pretty_logs_on_a_terminal() {
        assert!(use_colour(false, true), "pretty, on a terminal");
        assert!(!use_colour(false, false), "pretty, into a file or a pipe");
        assert!(!use_colour(true, true), "JSON");
        assert!(!use_colour(true, false), "JSON, into a file");
    }
}
