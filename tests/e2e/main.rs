//! End-to-end tests across the orchestrator against real parts: Postgres,
//! the machine's Docker engine, test hosts reached over SSH. One binary, so
//! it links once. The rig and the fakes are the `vessel-testrig` crate,
//! shared with the benches.

mod api;
mod api_security;
mod authz;
mod bot_shutdown;
mod cli;
mod concurrency;
mod console;
mod core_path;
mod dashboard;
mod deploy;
mod failures;
mod gpu_watchdog;
mod hardening;
mod hibernation;
mod homes;
mod isolation;
mod line;
mod line_slack;
mod oidc;
mod pools;
mod portal;
mod portal_browser;
mod probe;
mod races;
mod readiness;
mod recovery;
mod replicas;
mod shutdown;
mod slack;
mod slow_clients;
mod tailnet;
mod undertaker;

// Under their old module names, so the tests say `crate::rig::…`.
use vessel_testrig as rig;
use vessel_testrig::{fake_slack, fake_tailnet, prometheus};
