//! The web portal under `/`: server-rendered pages (maud) for My vessels,
//! New vessel, the Fleet grid and Admin, signed in by a session cookie. The
//! pages act only as the signed-in person: each one checks the same
//! `ROUTES` row the API would and then calls the API's own handler with a
//! `Caller` built from the session, so what the API refuses, the portal
//! refuses with the same words.

mod admin;
mod fleet;
mod live;
mod oidc;
mod pages;
mod session;
mod signin;
mod usage;
mod view;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::api::AppState;
pub use crate::portal_config::{PortalConfig, PortalOidc};
pub use session::Sessions;
pub use usage::{Snapshot, Usage};

/// The portal's routes; merged into the API router outside its bearer-token
/// middleware.
pub fn router(state: &AppState) -> Router<AppState> {
    let portal = &state.ctx.config.portal;
    let sessions = Arc::new(Sessions::new(
        std::time::Duration::from_secs(portal.session_hours * 3600),
        portal.is_https(state.ctx.config.tls.is_some()),
    ));
    let usage = Usage::new(state.ctx.config.undertaker.prometheus_url.as_deref());
    // A sign-in that is off is not there at all (it cannot be made to read
    // a body, or answer anything but 404). Validated at start-up.
    let dev_key = portal.dev_sign_in.then(|| portal.dev_key().ok()).flatten();
    let mut router = Router::new();
    if let Some(key) = dev_key {
        router = router
            .route("/sign-in/dev", post(signin::dev_sign_in))
            .layer(axum::Extension(signin::DevKey(Arc::new(key))));
    }
    router
        .route("/", get(pages::my_vessels))
        .route("/new", get(pages::new_form).post(pages::new_submit))
        .route("/fleet", get(fleet::page))
        .route("/vessels/{id}/kill", post(pages::kill))
        .route("/vessels/{id}/extend", post(pages::extend))
        .route("/vessels/{id}/keep", post(pages::keep))
        .route("/vessels/{id}/hibernate", post(pages::hibernate))
        .route("/vessels/{id}/wake", post(pages::wake))
        .route("/admin", get(admin::hosts_and_line))
        .route("/admin/users", get(admin::people))
        .route("/admin/users/{subject}/limits", post(admin::set_limits))
        .route("/admin/audit", get(admin::audit))
        .route("/admin/hosts/{name}/{action}", post(admin::host_action))
        .route("/admin/line/{id}/front", post(admin::line_front))
        .route("/admin/line/{id}/cancel", post(admin::line_cancel))
        .route("/sign-in", get(signin::sign_in_page))
        .route("/sign-in/oidc", get(oidc::start))
        .route("/sign-in/callback", get(oidc::callback))
        .route("/sign-out", post(signin::sign_out))
        .route("/live", get(live::stream))
        .route("/portal.css", get(view::css))
        .route("/portal.js", get(view::js))
        .layer(axum::Extension(usage))
        .layer(axum::Extension(sessions))
        .layer(axum::middleware::from_fn_with_state(
            portal.is_https(state.ctx.config.tls.is_some()),
            guard_headers,
        ))
}

/// What every portal answer carries: no framing by other sites and only our
/// own scripts and styles (a content security policy), pages never stored
/// by a cache (they carry SSH material and Jupyter tokens), and on https
/// HSTS.
async fn guard_headers(
    axum::extract::State(https): axum::extract::State<bool>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let is_page = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html") || v.starts_with("text/event-stream"));
    if is_page {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if https {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    resp
}
