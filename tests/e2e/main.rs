//! End-to-end tests across the orchestrator against real parts: Postgres,
//! the machine's Docker engine, test hosts reached over SSH. One binary, so
//! it links once.

mod api;
mod authz;
mod concurrency;
mod console;
mod core_path;
mod failures;
mod fake_slack;
mod fake_tailnet;
mod hardening;
mod oidc;
mod prometheus;
mod recovery;
mod rig;
mod shutdown;
mod slack;
mod tailnet;
mod undertaker;
