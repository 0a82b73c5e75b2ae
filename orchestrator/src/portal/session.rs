//! Portal sessions: an opaque random id in an `HttpOnly`, `SameSite=Lax`
//! cookie (`Secure` when served over TLS) naming a server-side record of who
//! signed in, what they may do, their CSRF token and when it all expires.
//! Kept in memory: a restart signs everyone out, which is the safe side.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use rand::Rng;

use crate::api::AppState;
use crate::ops::Caller;

pub const COOKIE: &str = "vessel_session";
/// The sign-in form's own CSRF token (double-submit), before any session.
pub const PRE_COOKIE: &str = "vessel_signin";

#[derive(Clone)]
pub struct Session {
    pub caller: Caller,
    pub csrf: String,
    expires: Instant,
}

/// A sign-in under way at the issuer: its PKCE verifier and redirect URI.
struct Flow {
    verifier: String,
    redirect: String,
    expires: Instant,
}

pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
    flows: Mutex<HashMap<String, Flow>>,
    ttl: Duration,
    secure: bool,
}

/// A random token, hex: session ids and CSRF tokens.
pub fn token() -> String {
    let bytes: [u8; 32] = rand::thread_rng().gen();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal without telling by timing how much of it matched.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

impl Sessions {
    pub fn new(ttl: Duration, secure: bool) -> Self {
        Sessions {
            by_id: Mutex::new(HashMap::new()),
            flows: Mutex::new(HashMap::new()),
            ttl,
            secure,
        }
    }

    /// A `Set-Cookie` value with the portal's attributes.
    pub fn cookie(&self, name: &str, value: &str, max_age: Duration) -> String {
        format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
            max_age.as_secs(),
            if self.secure { "; Secure" } else { "" }
        )
    }

    /// Signs `caller` in: the new session's id, for the cookie.
    pub fn start(&self, caller: Caller, expires_in: Option<Duration>) -> (String, Duration) {
        let ttl = expires_in.map_or(self.ttl, |d| d.min(self.ttl));
        let id = token();
        let mut map = self.by_id.lock().expect("sessions lock");
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        map.insert(
            id.clone(),
            Session {
                caller,
                csrf: token(),
                expires: now + ttl,
            },
        );
        (id, ttl)
    }

    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.by_id.lock().expect("sessions lock");
        match map.get(id) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    /// Remembers a sign-in started at the issuer for ten minutes.
    pub fn begin_flow(&self, state: &str, verifier: String, redirect: String) {
        let mut flows = self.flows.lock().expect("flows lock");
        let now = Instant::now();
        flows.retain(|_, f| f.expires > now);
        flows.insert(
            state.to_string(),
            Flow {
                verifier,
                redirect,
                expires: now + Duration::from_secs(600),
            },
        );
    }

    /// The verifier and redirect of a live flow, once: a replayed callback
    /// finds nothing.
    pub fn take_flow(&self, state: &str) -> Option<(String, String)> {
        let flow = self.flows.lock().expect("flows lock").remove(state)?;
        (flow.expires > Instant::now()).then_some((flow.verifier, flow.redirect))
    }

    pub fn end(&self, id: &str) {
        self.by_id.lock().expect("sessions lock").remove(id);
    }
}

/// The signed-in person of a page request; without a live session the
/// request is sent to the sign-in page.
pub struct Signed {
    pub id: String,
    pub session: Session,
    /// The browser's address, for the audit log.
    pub peer: String,
}

impl Signed {
    /// "From where" in the audit log for what this person does here.
    pub fn source(&self) -> String {
        format!("{} via portal", self.peer)
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Response> {
        let sessions = parts
            .extensions
            .get::<Arc<Sessions>>()
            .cloned()
            .ok_or_else(|| axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response())?;
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string());
        cookie_value(&parts.headers, COOKIE)
            .and_then(|id| {
                let session = sessions.get(&id)?;
                Some(Signed { id, session, peer })
            })
            .ok_or_else(|| Redirect::to("/sign-in").into_response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_session_is_gone() {
        let s = Sessions::new(Duration::from_millis(0), false);
        let caller = Caller::new("u".into(), false, Default::default(), None, None);
        let (id, _) = s.start(caller, None);
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_over_tls() {
        let plain =
            Sessions::new(Duration::from_secs(60), false).cookie("a", "b", Duration::from_secs(60));
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Lax"));
        assert!(!plain.contains("Secure"));
        let tls =
            Sessions::new(Duration::from_secs(60), true).cookie("a", "b", Duration::from_secs(60));
        assert!(tls.ends_with("; Secure"));
    }

    #[test]
    fn a_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "x=1; vessel_session=abc; y=2".parse().unwrap(),
        );
        assert_eq!(cookie_value(&h, COOKIE).as_deref(), Some("abc"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
