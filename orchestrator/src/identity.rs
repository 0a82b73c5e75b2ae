//! Who a person is, across issuers. A subject means something only with its
//! issuer: the service issuer's subjects (the Slack user ids the bot relays
//! for, machines, the operator's tokens and dev sign-ins) are Vessel's
//! people as they are; an OIDC issuer's subject `S` is the person `S@NAME`
//! (`NAME` is the issuer's `name` in config), unless an admin linked that
//! identity to a person. So an SSO account whose `sub` equals a Slack user
//! id is not that Slack user, and never receives their DMs. A leaf.

/// The person an unlinked OIDC identity is: its subject, qualified by the
/// issuer's name. Names hold no `@`, so the last one splits it back.
pub fn qualified(subject: &str, issuer_name: &str) -> String {
    format!("{subject}@{issuer_name}")
}

/// An issuer's default name: its URL's host (and port), e.g.
/// `lab.eu.auth0.com` for `https://lab.eu.auth0.com/`.
pub fn default_name(issuer: &str) -> String {
    let rest = issuer.split_once("://").map_or(issuer, |(_, rest)| rest);
    let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    // user@host would put an `@` in the name.
    host.rsplit('@').next().unwrap_or(host).to_string()
}

/// Whether `name` can qualify subjects: short, no `@`, nothing a URL path
/// or a Slack message would read differently.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oidc_subject_is_qualified_by_its_issuer() {
        assert_eq!(qualified("U0ALICE", "sso"), "U0ALICE@sso");
        assert_eq!(qualified("alice@lab.org", "sso"), "alice@lab.org@sso");
        let cases = [
            ("https://lab.eu.auth0.com/", "lab.eu.auth0.com"),
            ("http://127.0.0.1:4593/api/oidc", "127.0.0.1:4593"),
            ("https://u:p@idp.lab/realms/x", "idp.lab"),
            ("idp.lab", "idp.lab"),
        ];
        for (issuer, name) in cases {
            assert_eq!(default_name(issuer), name, "{issuer}");
            assert!(valid_name(name), "{name}");
        }
        for bad in ["", "a@b", "a/b", "a b", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
