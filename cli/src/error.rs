//! What can go wrong, as a sentence a researcher can act on and an exit code
//! a script can branch on: 0 ok, 1 your mistake, 2 refused, 3 not found,
//! 4 the server or the network.

use vessel_api::{ClientError, ErrorCode};

/// The exit codes, documented in `vessel --help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    User = 1,
    Refused = 2,
    NotFound = 3,
    Server = 4,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments, a bad file, a value the grammar refuses.
    #[error("{message}")]
    Usage {
        message: String,
        usage: Option<&'static str>,
    },
    #[error("you are not signed in: run `vessel login`")]
    NotLoggedIn,
    /// The sign-in cannot be renewed (revoked, expired refresh token, a
    /// token file's token that expired).
    #[error("your sign-in has ended ({why}): run `vessel login`")]
    SessionEnded { why: String },
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotFound(String),
    /// What failed; the orchestrator's refusal or the network's trouble
    /// is the source, printed after it by `chain`.
    #[error("{what}")]
    Orchestrator {
        what: String,
        #[source]
        source: ClientError,
    },
    /// The identity provider or another HTTP party did not answer well.
    #[error("{0}")]
    Remote(String),
    /// The identity provider could not be reached, or its answer not read.
    #[error("{what}")]
    Http {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    /// The identity provider answered something that is not what it must.
    #[error("{what}")]
    Unreadable {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// A URL the CLI would send a token to, or take SSH access from, over
    /// plain http to another machine.
    #[error(
        "refusing {url} for {what}: use https (plain http goes only to this machine: 127.0.0.0/8, ::1, localhost)"
    )]
    PlainHttp { what: &'static str, url: String },
    /// The orchestrator's answer carries SSH access the CLI must not use
    /// (it would go into `~/.ssh`, a file name or ssh's command line).
    #[error("refusing the orchestrator's answer about vessel {vessel}")]
    Untrusted {
        vessel: String,
        #[source]
        source: vessel_api::ssh::SshFieldError,
    },
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl CliError {
    pub fn usage(message: impl Into<String>, usage: &'static str) -> Self {
        CliError::Usage {
            message: message.into(),
            usage: Some(usage),
        }
    }

    pub fn user(message: impl Into<String>) -> Self {
        CliError::Usage {
            message: message.into(),
            usage: None,
        }
    }

    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
        let what = what.into();
        move |source| CliError::Io { what, source }
    }

    pub fn exit(&self) -> Exit {
        match self {
            CliError::Usage { .. }
            | CliError::NotLoggedIn
            | CliError::SessionEnded { .. }
            | CliError::Io { .. }
            | CliError::PlainHttp { .. } => Exit::User,
            CliError::Refused(_) => Exit::Refused,
            CliError::NotFound(_) => Exit::NotFound,
            CliError::Remote(_)
            | CliError::Http { .. }
            | CliError::Unreadable { .. }
            | CliError::Untrusted { .. } => Exit::Server,
            CliError::Orchestrator { source, .. } => exit_of(source),
        }
    }
}

/// The orchestrator's answer, as an exit code.
fn exit_of(e: &ClientError) -> Exit {
    match (e.status(), e.code()) {
        (None, _) => Exit::Server,
        (_, Some(ErrorCode::NotFound)) => Exit::NotFound,
        (_, Some(ErrorCode::Invalid | ErrorCode::TooLarge)) => Exit::User,
        (Some(s), _) if s >= 500 => Exit::Server,
        (Some(_), _) => Exit::Refused,
    }
}

/// Turns an orchestrator error into ours: 401 means the sign-in is over;
/// anything else keeps the orchestrator's own sentence.
pub fn from_client(what: impl Into<String>, e: ClientError) -> CliError {
    match e.code() {
        Some(ErrorCode::Unauthorized) => CliError::SessionEnded { why: e.to_string() },
        _ => CliError::Orchestrator {
            what: what.into(),
            source: e,
        },
    }
}

/// The whole chain of causes on one line, each said once: what the user
/// reads. Our variants leave their source out of their own message; a
/// cause from a library that repeats its own source (the contract's
/// `ClientError::Transport`) is not said twice. Control characters are
/// shown escaped: a message may quote what a server sent.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_said_once_after_what_failed() {
        let e = CliError::io("cannot write /x/credentials.json")(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "permission denied",
        ));
        assert_eq!(e.to_string(), "cannot write /x/credentials.json");
        assert_eq!(
            chain(&e),
            "cannot write /x/credentials.json: permission denied"
        );
        let refused = from_client(
            "cannot kill",
            ClientError::Api {
                status: 403,
                body: vessel_api::ErrorBody {
                    error: ErrorCode::Forbidden,
                    message: "not yours".into(),
                    field: None,
                },
            },
        );
        assert_eq!(chain(&refused), "cannot kill: not yours");
        assert_eq!(refused.exit(), Exit::Refused);
    }

    #[test]
    fn what_a_server_sent_cannot_draw_on_the_terminal() {
        let e = CliError::Refused("`a\nHost *\x1b[2J` is bad".into());
        assert_eq!(chain(&e), "`a\\nHost *\\u{1b}[2J` is bad");
    }
}
