//! Signing in and out of the portal: the sign-in page (single sign-on,
//! and the loopback-only dev sign-in for the quick start) and sign-out.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::html;

use super::pages::{csrf_refused, refusal, Fields};
use super::session::{self, Signed, COOKIE, PRE_COOKIE};
use super::view::page;
use super::Sessions;
use crate::api::AppState;
use crate::domain::UnixName;
use crate::ops::Caller;
use crate::ops::OpError;

/// The dev sign-in's key, from `[portal] dev_sign_in_key_file`.
#[derive(Clone)]
pub struct DevKey(pub Arc<vessel_common::Secret>);

/// `?key=` on the sign-in page: the quick start prints a link that carries
/// the dev sign-in's key, so its form comes filled in.
#[derive(Debug, Default, serde::Deserialize)]
pub struct SignInQuery {
    key: Option<String>,
}

pub async fn sign_in_page(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    Query(q): Query<SignInQuery>,
) -> Response {
    let pre = session::token();
    let body = html! {
        @if let Some(o) = &state.ctx.config.portal.oidc {
            p.card { a.button href="/sign-in/oidc" { "Sign in with " (o.issuer) } }
        }
        @if state.ctx.config.portal.dev_sign_in {
            form.card method="post" action="/sign-in/dev" {
                p.muted { "Dev sign-in (loopback only): any subject, with the key in the operator's key file (the quick start's link fills it in). For the local quick start." }
                input type="hidden" name="csrf" value=(pre);
                label for="f-subject" { "Subject" }
                input id="f-subject" name="subject" required autocomplete="username";
                label for="f-key" { "Key" }
                input id="f-key" name="key" type="password" required autocomplete="off" value=(q.key.unwrap_or_default());
                p { button type="submit" { "Sign in" } }
            }
        }
        @if state.ctx.config.portal.oidc.is_none() && !state.ctx.config.portal.dev_sign_in {
            p.card { "No sign-in is set up for the portal: see `[portal]` in the orchestrator's config." }
        }
    };
    let cookie = sessions.cookie(PRE_COOKIE, &pre, std::time::Duration::from_secs(600));
    ([(header::SET_COOKIE, cookie)], page("Sign in", None, body)).into_response()
}

pub async fn dev_sign_in(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    Extension(DevKey(key)): Extension<DevKey>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Fields,
) -> Response {
    let refuse = |why: &str| refusal(None, OpError::Forbidden(why.to_string()));
    let Some(Extension(ConnectInfo(peer))) = peer.filter(|p| p.0 .0.ip().is_loopback()) else {
        return refuse("the dev sign-in answers only on loopback");
    };
    let pre = session::cookie_value(&headers, PRE_COOKIE);
    if !matches!((pre, form.get("csrf")), (Some(a), Some(b)) if session::same(&a, b)) {
        return refuse(
            "the form is stale or forged (no valid CSRF token); reload the page and try again",
        );
    }
    let Some(subject) = form
        .get("subject")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    else {
        return refusal(None, OpError::invalid("subject", "give a subject"));
    };
    let source = format!("{} via portal", peer.ip());
    let given = form.get("key").map(|k| k.trim()).unwrap_or_default();
    if !session::same(given, key.expose()) {
        let _ = audited(&state, subject, &source, "dev", false).await;
        return refuse("that is not the dev sign-in's key (see `[portal] dev_sign_in_key_file`)");
    }
    if let Err(e) = audited(&state, subject, &source, "dev", true).await {
        return refusal(None, e);
    }
    // Like a token without a unix_name claim: the name is derived from the
    // subject where it can be.
    let unix_name = UnixName::parse(subject).ok();
    let perms = state.verifier.role_of(subject);
    let caller = Caller::new(subject.to_string(), false, perms, unix_name, None);
    let (id, ttl) = sessions.start(caller, None);
    (
        [(header::SET_COOKIE, sessions.cookie(COOKIE, &id, ttl))],
        Redirect::to("/"),
    )
        .into_response()
}

/// Every sign-in attempt that reached a decision, in the audit log: the
/// subject, the method, and from where. A refusal is written at most once a
/// minute per subject.
pub(super) async fn audited(
    state: &AppState,
    subject: &str,
    source: &str,
    method: &str,
    ok: bool,
) -> Result<(), OpError> {
    use crate::store::audit;
    let mut conn = state.ctx.db.acquire().await?;
    let detail = serde_json::json!({ "method": method });
    let write = async {
        if ok {
            audit::record(
                &mut conn,
                subject,
                audit::Action::SignIn,
                None,
                "ok",
                detail,
            )
            .await
        } else {
            audit::record_denied(&mut conn, subject, audit::Action::SignIn, method, detail).await
        }
    };
    audit::SOURCE.scope(source.to_string(), write).await?;
    Ok(())
}

pub async fn sign_out(
    Extension(sessions): Extension<Arc<Sessions>>,
    s: Signed,
    Form(form): Fields,
) -> Response {
    if let Some(r) = csrf_refused(&s, &form) {
        return r;
    }
    sessions.end(&s.id);
    (
        [(
            header::SET_COOKIE,
            sessions.cookie(COOKIE, "", std::time::Duration::ZERO),
        )],
        Redirect::to("/sign-in"),
    )
        .into_response()
}
