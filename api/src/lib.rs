//! vessel-api: the one definition of the wire between the orchestrator and
//! every client (the Slack bot, the console, the CLI, the portal). Request
//! and response bodies, error codes, event kinds and their payloads,
//! permission names, token claims, and the domain values requests are made
//! of, which exist only once parsed. A field renamed here fails to compile
//! on both sides instead of rendering blank on one.

pub mod audit;
pub mod claims;
pub mod client;
pub mod error;
pub mod events;
pub mod fleet;
pub mod grammar;
pub mod line;
pub mod names;
pub mod perm;
pub mod signin;
pub mod ssh;
pub mod units;
pub mod users;
pub mod vessels;

pub use client::{Client, ClientError};
pub use error::{ErrorBody, ErrorCode};
pub use names::{ImageRef, NameError, QueueName, UnixName, VesselName, VesselState};
pub use units::{ByteSize, Span, UnitError};
