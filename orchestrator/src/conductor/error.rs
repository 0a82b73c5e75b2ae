//! What can go wrong making or removing a vessel's container: a provision
//! is retried or failed by its error's kind, and a removal that fails keeps
//! the vessel's resources reserved until it succeeds. A leaf of the
//! conductor: the steps that fail import it, it imports none of them.

use bollard::errors::Error as DockerError;

use crate::hosts::HostError;

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// Worth another attempt: the host or its daemon did not answer.
    #[error("{0}")]
    Transient(String),
    /// Another attempt would fail the same way; the reason is for a person.
    #[error("{0}")]
    Permanent(String),
}

impl From<sqlx::Error> for ProvisionError {
    fn from(e: sqlx::Error) -> Self {
        ProvisionError::Transient(format!("database: {e}"))
    }
}

/// Why a vessel's container could not be removed (yet).
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    /// The host is out of reach: the reconciler removes it when it is back.
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("host {host}")]
    Docker {
        host: String,
        #[source]
        source: DockerError,
    },
}
