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
    #[error("{what}: {source}")]
    Orchestrator {
        what: String,
        #[source]
        source: ClientError,
    },
    /// The identity provider or another HTTP party did not answer well.
    #[error("{0}")]
    Remote(String),
    #[error("{what}: {source}")]
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
            | CliError::Io { .. } => Exit::User,
            CliError::Refused(_) => Exit::Refused,
            CliError::NotFound(_) => Exit::NotFound,
            CliError::Remote(_) => Exit::Server,
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

/// The whole chain of causes, one line: what the user reads.
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
    out
}
