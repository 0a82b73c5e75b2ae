//! Signing in and out of the portal: the sign-in page (single sign-on,
//! and the loopback-only dev sign-in for the quick start) and sign-out.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
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

pub async fn sign_in_page(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
) -> Response {
    let pre = session::token();
    let body = html! {
        @if let Some(o) = &state.ctx.config.portal.oidc {
            p.card { a.button href="/sign-in/oidc" { "Sign in with " (o.issuer) } }
        }
        @if state.ctx.config.portal.dev_sign_in {
            form.card method="post" action="/sign-in/dev" {
                p.muted { "Dev sign-in (loopback only): any subject, no password. For the local quick start." }
                input type="hidden" name="csrf" value=(pre);
                label for="f-subject" { "Subject" }
                input id="f-subject" name="subject" required autocomplete="username";
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
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Fields,
) -> Response {
    let refuse = |why: &str| refusal(None, OpError::Forbidden(why.to_string()));
    if !state.ctx.config.portal.dev_sign_in {
        return refuse("the dev sign-in is off (`[portal] dev_sign_in`)");
    }
    if !peer.is_some_and(|Extension(ConnectInfo(p))| p.ip().is_loopback()) {
        return refuse("the dev sign-in answers only on loopback");
    }
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
