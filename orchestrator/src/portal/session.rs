//! Portal sessions: an opaque random id in an `HttpOnly`, `SameSite=Lax`
//! cookie (`Secure` when served over TLS) naming a server-side record of who
//! signed in, what they may do, their CSRF token and when it all expires.
//! Kept in memory: a restart signs everyone out, which is the safe side.

use std::collections::{HashMap, VecDeque};
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
    flows: Mutex<Flows>,
    /// Open `/live` streams per session id.
    streams: Arc<Mutex<HashMap<String, usize>>>,
    ttl: Duration,
    secure: bool,
}

/// Sign-ins under way, bounded: each lives ten minutes, so the order they
/// began in is the order they expire in, and expiring is popping the front
/// (never a scan of the whole table under its lock).
#[derive(Default)]
struct Flows {
    by_state: HashMap<String, Flow>,
    order: VecDeque<(Instant, String)>,
}

/// The most sign-ins under way at once: anonymous requests start them, so
/// they must not grow the table without end.
pub const MAX_FLOWS: usize = 10_000;
/// How long a sign-in at the issuer may take.
const FLOW_TTL: Duration = Duration::from_secs(600);
/// The most live-update streams one session may hold open (a few tabs).
pub const MAX_STREAMS: usize = 8;

/// One open `/live` stream; its session's count goes down when it ends.
pub struct StreamSlot {
    streams: Arc<Mutex<HashMap<String, usize>>>,
    id: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.streams.lock().expect("streams lock");
        if let Some(n) = open.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.id);
            }
        }
    }
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
            flows: Mutex::new(Flows::default()),
            streams: Arc::default(),
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

    /// Remembers a sign-in started at the issuer for ten minutes; `false`
    /// when `MAX_FLOWS` are already under way.
    pub fn begin_flow(&self, state: &str, verifier: String, redirect: String) -> bool {
        let mut flows = self.flows.lock().expect("flows lock");
        let now = Instant::now();
        while flows.order.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, old)) = flows.order.pop_front() {
                flows.by_state.remove(&old);
            }
        }
        if flows.by_state.len() >= MAX_FLOWS {
            return false;
        }
        let expires = now + FLOW_TTL;
        flows.order.push_back((expires, state.to_string()));
        flows.by_state.insert(
            state.to_string(),
            Flow {
                verifier,
                redirect,
                expires,
            },
        );
        true
    }

    /// A slot for one more `/live` stream of session `id`, unless it holds
    /// `MAX_STREAMS` already.
    pub fn open_stream(&self, id: &str) -> Option<StreamSlot> {
        let mut open = self.streams.lock().expect("streams lock");
        let n = open.entry(id.to_string()).or_default();
        if *n >= MAX_STREAMS {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            streams: self.streams.clone(),
            id: id.to_string(),
        })
    }

    /// The verifier and redirect of a live flow, once: a replayed callback
    /// finds nothing.
    pub fn take_flow(&self, state: &str) -> Option<(String, String)> {
        // Its entry in `order` stays until it expires: popped then, it
        // finds nothing to remove.
        let flow = self
            .flows
            .lock()
            .expect("flows lock")
            .by_state
            .remove(state)?;
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
    fn sign_ins_under_way_are_bounded_and_streams_capped() {
        let s = Sessions::new(Duration::from_secs(60), false);
        for i in 0..MAX_FLOWS {
            assert!(s.begin_flow(&i.to_string(), "v".into(), "r".into()));
        }
        assert!(!s.begin_flow("one-more", "v".into(), "r".into()));
        assert!(s.take_flow("7").is_some() && s.take_flow("7").is_none());
        let slots: Vec<_> = (0..MAX_STREAMS)
            .filter_map(|_| s.open_stream("a"))
            .collect();
        assert_eq!(slots.len(), MAX_STREAMS);
        assert!(s.open_stream("a").is_none());
        assert!(s.open_stream("b").is_some());
        drop(slots);
        assert!(s.open_stream("a").is_some());
    }

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
