//! Single sign-on for the portal: the OpenID Connect authorization code
//! flow with PKCE (S256) against one of the `[[auth.oidc]]` issuers. The
//! access token it brings back is checked by the API's own verifier, so a
//! portal session holds exactly what that token would open on `/v1`, and
//! lives no longer than it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::session::{self, Sessions, COOKIE};
use super::PortalOidc;
use crate::api::AppState;
use crate::ops::OpError;

/// Binds the flow to the browser that started it: the `state` the issuer
/// hands back must equal this cookie.
pub const FLOW_COOKIE: &str = "vessel_oidc";

#[derive(Clone, Deserialize)]
struct Discovery {
    authorization_endpoint: String,
    token_endpoint: String,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<u64>,
}

/// The S256 challenge of a PKCE verifier (RFC 7636).
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Where the issuer sends the browser back: configured, or this request's
/// own host (the issuer accepts only redirect URIs registered for the
/// client, so a forged Host header leads nowhere).
fn redirect_uri(
    config: &PortalOidc,
    public_url: Option<&str>,
    headers: &HeaderMap,
    tls: bool,
) -> Option<String> {
    if let Some(url) = &config.redirect_url {
        return Some(url.clone());
    }
    // Behind a proxy the request's own scheme is http: the public URL says
    // what people use.
    if let Some(base) = public_url {
        return Some(format!("{base}/sign-in/callback"));
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let scheme = if tls { "https" } else { "http" };
    Some(format!("{scheme}://{host}/sign-in/callback"))
}

/// How long a discovery document is reused: an issuer moves its endpoints
/// rarely, and anonymous sign-in starts must not each fetch it again.
const DISCOVERY_LIFETIME: Duration = Duration::from_secs(3600);

/// The last discovery document, by issuer, with when it was fetched. One
/// lock held across the fetch, so a burst at expiry fetches once.
static DISCOVERED: tokio::sync::Mutex<Option<(String, std::time::Instant, Discovery)>> =
    tokio::sync::Mutex::const_new(None);

async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Discovery, OpError> {
    let mut cached = DISCOVERED.lock().await;
    if let Some((who, at, doc)) = cached.as_ref() {
        if who == issuer && at.elapsed() < DISCOVERY_LIFETIME {
            return Ok(doc.clone());
        }
    }
    let doc = fetch_discovery(http, issuer).await?;
    *cached = Some((issuer.to_string(), std::time::Instant::now(), doc.clone()));
    Ok(doc)
}

async fn fetch_discovery(http: &reqwest::Client, issuer: &str) -> Result<Discovery, OpError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let fail = |e: reqwest::Error| {
        OpError::Internal(format!("the issuer's discovery document at {url}: {e}").into())
    };
    http.get(&url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(fail)?
        .json()
        .await
        .map_err(fail)
}

fn client() -> Result<reqwest::Client, OpError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| OpError::Internal(Box::new(e)))
}

/// Starts the flow: a fresh state and PKCE verifier, kept server-side, and
/// the browser sent to the issuer.
pub async fn start(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
) -> Response {
    let Some(config) = &state.ctx.config.portal.oidc else {
        return super::pages::refusal(
            None,
            OpError::NotFound("single sign-on is not set up (`[portal.oidc]`)".into()),
        );
    };
    let Some(redirect) = redirect_uri(
        config,
        state.ctx.config.portal.public_url.as_deref(),
        &headers,
        state.ctx.config.tls.is_some(),
    ) else {
        return super::pages::refusal(
            None,
            OpError::invalid("host", "no Host header to come back to"),
        );
    };
    let http = match client() {
        Ok(h) => h,
        Err(e) => return super::pages::refusal(None, e),
    };
    let doc = match discover(&http, &config.issuer).await {
        Ok(d) => d,
        Err(e) => return super::pages::refusal(None, e),
    };
    let flow = session::token();
    let verifier = session::token();
    let nonce = session::token();
    let params = [
        ("response_type", "code"),
        ("client_id", config.client_id.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("scope", &config.scopes.join(" ")),
        ("state", flow.as_str()),
        ("nonce", nonce.as_str()),
        ("code_challenge", &challenge(&verifier)),
        ("code_challenge_method", "S256"),
        // Auth0 reads `audience`, RFC 8707 servers `resource`.
        ("audience", config.audience.as_str()),
        ("resource", config.audience.as_str()),
    ];
    let url = match reqwest::Url::parse_with_params(&doc.authorization_endpoint, params) {
        Ok(u) => u,
        Err(e) => {
            return super::pages::refusal(
                None,
                OpError::Internal(format!("the issuer's authorization endpoint: {e}").into()),
            )
        }
    };
    if !sessions.begin_flow(&flow, verifier, redirect) {
        return super::pages::refusal(
            None,
            OpError::conflict(
                vessel_api::ErrorCode::Busy,
                "too many sign-ins are under way; try again in a few minutes",
            ),
        );
    }
    (
        [(
            header::SET_COOKIE,
            sessions.cookie(FLOW_COOKIE, &flow, Duration::from_secs(600)),
        )],
        Redirect::to(url.as_str()),
    )
        .into_response()
}

/// The code traded with the verifier for tokens at the token endpoint.
async fn exchange(
    http: &reqwest::Client,
    doc: &Discovery,
    config: &PortalOidc,
    code: &str,
    verifier: String,
    redirect: String,
) -> Result<TokenAnswer, String> {
    let mut form = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", code.to_string()),
        ("redirect_uri", redirect),
        ("client_id", config.client_id.clone()),
        ("code_verifier", verifier),
    ];
    if let Some(secret) = &config.client_secret {
        form.push(("client_secret", secret.expose().to_string()));
    }
    match http.post(&doc.token_endpoint).form(&form).send().await {
        Ok(r) if r.status().is_success() => r
            .json()
            .await
            .map_err(|e| format!("the token endpoint's answer: {e}")),
        Ok(r) => Err(format!(
            "the token endpoint refused the code: {}",
            r.status()
        )),
        Err(e) => Err(format!("the token endpoint: {e}")),
    }
}

/// The issuer's answer: the code, traded with the verifier for tokens; the
/// access token verified as the API verifies it; a session made from it.
pub async fn callback(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    peer: Option<Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let refuse = |why: String| super::pages::refusal(None, OpError::Unauthorized(why));
    let Some(config) = &state.ctx.config.portal.oidc else {
        return refuse("single sign-on is not set up (`[portal.oidc]`)".into());
    };
    if let Some(e) = q.get("error") {
        return refuse(format!("the identity provider said: {e}"));
    }
    let (Some(code), Some(flow)) = (q.get("code"), q.get("state")) else {
        return refuse("the identity provider sent no code".into());
    };
    // The state must be the one this browser was given: a code pushed into
    // someone else's browser signs nobody in.
    let bound = session::cookie_value(&headers, FLOW_COOKIE);
    if !bound.is_some_and(|b| session::same(&b, flow)) {
        return refuse("this sign-in was not started in this browser; start again".into());
    }
    let Some((verifier, redirect)) = sessions.take_flow(flow) else {
        return refuse("this sign-in has expired or was used; start again".into());
    };
    let http = match client() {
        Ok(h) => h,
        Err(e) => return super::pages::refusal(None, e),
    };
    let doc = match discover(&http, &config.issuer).await {
        Ok(d) => d,
        Err(e) => return super::pages::refusal(None, e),
    };
    let tokens = match exchange(&http, &doc, config, code, verifier, redirect).await {
        Ok(t) => t,
        Err(why) => return refuse(why),
    };
    let mut bearer = HeaderMap::new();
    let Ok(value) = HeaderValue::from_str(&format!("Bearer {}", tokens.access_token)) else {
        return refuse("the access token is not a header value".into());
    };
    bearer.insert(header::AUTHORIZATION, value);
    let caller = match crate::api::auth::authenticate(&bearer, &state.verifier, &state.ctx.db).await
    {
        Ok(c) => c,
        Err(e) => return super::pages::refusal(None, e),
    };
    let source = peer.map_or_else(
        || "unknown via portal".to_string(),
        |Extension(axum::extract::ConnectInfo(p))| format!("{} via portal", p.ip()),
    );
    if let Err(e) = super::signin::audited(&state, &caller.subject, &source, "oidc", true).await {
        return super::pages::refusal(None, e);
    }
    let lives = tokens.expires_in.map(Duration::from_secs);
    let (id, ttl) = sessions.start(caller, lives);
    let cookies = [
        sessions.cookie(COOKIE, &id, ttl),
        sessions.cookie(FLOW_COOKIE, "", Duration::ZERO),
    ];
    let mut resp = Redirect::to("/").into_response();
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_s256_challenge_is_rfc_7636s() {
        // RFC 7636, appendix B.
        assert_eq!(
            super::challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
