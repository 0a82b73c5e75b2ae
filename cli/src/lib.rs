//! `vessel`, the researcher's terminal: a client of the orchestrator's API
//! (the `vessel-api` contract) with single sign-on by the device grant,
//! the bot's create grammar, progress while a request waits, and SSH with
//! pinned host keys (`ssh`, `code`, `config-ssh`, `jupyter` through a forward).

pub mod args;
pub mod commands;
pub mod ctx;
pub mod error;
pub mod login;
pub mod oidc;
pub mod paths;
pub mod render;
pub mod secure_url;
pub mod session;
pub mod ssh;
pub mod sshconf;
pub mod vessel;
pub mod wait;

pub use commands::create_request;
