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
use serde::Deserialize;

use crate::api::AppState;
pub use session::Sessions;
pub use usage::{Snapshot, Usage};

/// `[portal]` in the orchestrator's config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalConfig {
    /// A sign-in form that takes any subject without a password, for the
    /// local quick start. Refused at startup unless `listen` is loopback,
    /// and answered only to loopback peers.
    #[serde(default)]
    pub dev_sign_in: bool,
    /// How long a session lives after sign-in.
    #[serde(default = "default_session_hours")]
    pub session_hours: u64,
    /// Single sign-on: the authorization code flow with PKCE.
    pub oidc: Option<PortalOidc>,
}

/// `[portal.oidc]`: the portal as a client of one `[[auth.oidc]]` issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalOidc {
    /// Exactly one `auth.oidc[*].issuer`: its tokens are the ones verified.
    pub issuer: String,
    /// The portal's client id there (list it in that issuer's
    /// `allowed_clients`).
    pub client_id: String,
    /// For a confidential client; a public one relies on PKCE alone.
    pub client_secret: Option<crate::config::Secret>,
    /// What the access token is made out to (`audience` / `resource`): the
    /// issuer's `audience` in `[[auth.oidc]]`.
    pub audience: String,
    /// `https://vessel.lab/sign-in/callback`; by default this request's own
    /// host and scheme.
    pub redirect_url: Option<String>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into()]
}

impl PortalConfig {
    /// Checks what the config parser cannot: the issuer is one the API
    /// trusts. Errors are (key, message).
    pub fn validate<'a>(
        &self,
        mut issuers: impl Iterator<Item = &'a str>,
    ) -> Result<(), (&'static str, String)> {
        if let Some(o) = &self.oidc {
            if !issuers.any(|i| i == o.issuer) {
                return Err((
                    "portal.oidc.issuer",
                    format!("`{}` is not one of the [[auth.oidc]] issuers", o.issuer),
                ));
            }
            if !o.scopes.iter().any(|s| s == "openid") {
                return Err(("portal.oidc.scopes", "must include `openid`".into()));
            }
        }
        if self.session_hours == 0 {
            return Err(("portal.session_hours", "must be at least 1".into()));
        }
        Ok(())
    }
}

fn default_session_hours() -> u64 {
    12
}

impl Default for PortalConfig {
    fn default() -> Self {
        PortalConfig {
            dev_sign_in: false,
            session_hours: default_session_hours(),
            oidc: None,
        }
    }
}

/// The portal's routes; merged into the API router outside its bearer-token
/// middleware.
pub fn router(state: &AppState) -> Router<AppState> {
    let sessions = Arc::new(Sessions::new(
        std::time::Duration::from_secs(state.ctx.config.portal.session_hours * 3600),
        state.ctx.config.tls.is_some(),
    ));
    let usage = Usage::new(state.ctx.config.undertaker.prometheus_url.as_deref());
    Router::new()
        .route("/", get(pages::my_vessels))
        .route("/new", get(pages::new_form).post(pages::new_submit))
        .route("/fleet", get(fleet::page))
        .route("/vessels/{id}/kill", post(pages::kill))
        .route("/vessels/{id}/extend", post(pages::extend))
        .route("/vessels/{id}/keep", post(pages::keep))
        .route("/admin", get(admin::hosts_and_line))
        .route("/admin/users", get(admin::people))
        .route("/admin/users/{subject}/limits", post(admin::set_limits))
        .route("/admin/audit", get(admin::audit))
        .route("/admin/hosts/{name}/{action}", post(admin::host_action))
        .route("/admin/line/{id}/front", post(admin::line_front))
        .route("/admin/line/{id}/cancel", post(admin::line_cancel))
        .route("/sign-in", get(signin::sign_in_page))
        .route("/sign-in/dev", post(signin::dev_sign_in))
        .route("/sign-in/oidc", get(oidc::start))
        .route("/sign-in/callback", get(oidc::callback))
        .route("/sign-out", post(signin::sign_out))
        .route("/live", get(live::stream))
        .route("/portal.css", get(view::css))
        .route("/portal.js", get(view::js))
        .layer(axum::Extension(usage))
        .layer(axum::Extension(sessions))
}
