//! Which URLs the CLI sends a token to, or takes SSH access from: https
//! anywhere, plain http only to this machine (127.0.0.0/8, ::1,
//! `localhost`). Over plain http anyone on the path reads the token and
//! writes the answer, host keys and SSH access included.

use url::{Host, Url};

use crate::error::CliError;

/// `url`, if it may be used for `what` ("the orchestrator").
pub fn check(url: &str, what: &'static str) -> Result<(), CliError> {
    let parsed = Url::parse(url).map_err(|_| CliError::user(format!("`{url}` is not a URL")))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&parsed) => Ok(()),
        "http" => Err(CliError::PlainHttp {
            what,
            url: url.to_string(),
        }),
        other => Err(CliError::user(format!(
            "`{url}` is not an https URL (it is {other})"
        ))),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_goes_only_to_this_machine() {
        for ok in [
            "https://vessel.lab",
            "https://10.0.0.1:8700/api",
            "http://127.0.0.1:8700",
            "http://127.3.2.1",
            "http://[::1]:8700",
            "http://localhost:8700",
            "http://LOCALHOST",
        ] {
            assert!(check(ok, "the orchestrator").is_ok(), "{ok}");
        }
        for refused in [
            "http://vessel.lab",
            "http://10.0.0.1:8700",
            "http://128.0.0.1",
            "http://0.0.0.0:8700",
            "http://[::ffff:127.0.0.1]",
            "http://localhost.evil.example",
            "http://127.0.0.1.nip.io",
        ] {
            let e = check(refused, "the orchestrator").unwrap_err();
            assert!(e.to_string().contains("use https"), "{refused}: {e}");
        }
        assert!(check("ftp://vessel.lab", "the orchestrator").is_err());
        assert!(check("vessel.lab", "the orchestrator").is_err());
    }
}
