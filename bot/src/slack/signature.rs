//! Request signatures (v0). slack-morphism's events layer checks the HMAC
//! and the ±5-minute window; this module adds what the crate lacks: a
//! replay guard (the same valid signature inside the window is not acted on
//! twice), the answer a refused request gets, and Slack-side signing for
//! tests and fakes (the crate verifies but does not sign).

use std::collections::HashMap;
use std::error::Error;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use slack_morphism::prelude::*;
use slack_morphism::signature_verifier::{
    SlackEventAbsentSignatureError, SlackEventSignatureVerifier, SlackEventSignatureVerifierError,
};

/// Slack's window, as the crate enforces it.
pub const WINDOW: Duration =
    Duration::from_secs(SlackEventSignatureVerifier::MAX_TIMESTAMP_AGE_SECONDS as u64);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("this request was already received")]
pub struct Replayed;

/// The signing secret for the events layer, and the signatures it let
/// through lately.
pub struct Verifier {
    secret: SlackSigningSecret,
    seen: Mutex<HashMap<String, Instant>>,
}

impl Verifier {
    pub fn new(secret: &str) -> Self {
        Verifier {
            secret: SlackSigningSecret::new(secret.to_string()),
            seen: Mutex::new(HashMap::new()),
        }
    }

    pub fn secret(&self) -> &SlackSigningSecret {
        &self.secret
    }

    /// Call only with a signature the events layer verified, so garbage
    /// cannot fill this. A signature may be up to a window old or a window
    /// ahead, so it is remembered for two.
    pub fn first_time(&self, signature: &str) -> Result<(), Replayed> {
        let mut seen = self.seen.lock().expect("poisoned");
        let now = Instant::now();
        seen.retain(|_, at| now.duration_since(*at) < WINDOW * 2);
        if seen.insert(signature.to_string(), now).is_some() {
            return Err(Replayed);
        }
        Ok(())
    }
}

/// What the events layer answers when it refuses a request: 401 for a
/// missing, wrong or stale signature, 400 when the body cannot be read.
/// The crate's errors keep the expected signature out of their messages,
/// so logging them is safe.
pub fn refusal(err: &(dyn Error + 'static)) -> StatusCode {
    let unsigned = err.is::<SlackEventSignatureVerifierError>()
        || err.is::<SlackEventAbsentSignatureError>()
        || err.is::<axum::http::header::ToStrError>();
    if unsigned {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    }
}

/// `v0=` + hex HMAC of `v0:{timestamp}:{body}`, exactly as Slack computes it.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, SystemClock};

    /// The machine's time: slack-morphism checks the window against it,
    /// not against a clock of ours.
    fn now() -> i64 {
        SystemClock.now().timestamp()
    }

    #[test]
    fn slacks_documented_example_verifies() {
        // From Slack's "Verifying requests" guide.
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        assert_eq!(
            sign(
                b"8f742231b10e8888abcd99yyyzzz85a5",
                "1531420618",
                body.as_bytes()
            ),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
    }

    /// Our signing and the crate's checking agree, and each refusal gets
    /// its status.
    #[test]
    fn forged_stale_and_replayed_requests_are_refused() {
        let crate_verifier = SlackEventSignatureVerifier::new(&"secret".to_string().into());
        let ts = now().to_string();
        let good = sign(b"secret", &ts, b"body");
        assert!(crate_verifier.verify(&good, "body", &ts).is_ok());
        let status = |r: Result<(), SlackEventSignatureVerifierError>| refusal(&r.unwrap_err());
        assert_eq!(
            status(crate_verifier.verify("v0=00", "body", &ts)),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(crate_verifier.verify(&good, "other", &ts)),
            StatusCode::UNAUTHORIZED
        );
        let old = (now() - 301).to_string();
        let stale = sign(b"secret", &old, b"body");
        assert_eq!(
            status(crate_verifier.verify(&stale, "body", &old)),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            refusal(&SlackEventAbsentSignatureError::new()),
            StatusCode::UNAUTHORIZED
        );
        let undecodable = serde_json::from_str::<u8>("x").unwrap_err();
        assert_eq!(refusal(&undecodable), StatusCode::BAD_REQUEST);

        let v = Verifier::new("secret");
        assert_eq!(v.first_time(&good), Ok(()));
        assert_eq!(v.first_time(&good), Err(Replayed));
        assert_eq!(v.first_time(&stale), Ok(()));
    }
}
