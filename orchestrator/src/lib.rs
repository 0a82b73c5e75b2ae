//! vessel-orchestrator: the source of truth for Vessel. HTTP API, placement,
//! the conductor that starts and stops containers on hosts over SSH.

pub mod api;
pub mod clock;
pub mod conductor;
pub mod config;
pub mod cron;
pub mod disk_watch;
pub mod domain;
pub mod error_chain;
pub mod gate;
pub mod gpu_watchdog;
pub mod hosts;
pub mod identity;
pub mod line;
pub mod lineup;
pub mod metrics;
pub mod ops;
pub mod placement;
pub mod portal;
pub mod portal_config;
pub mod prom;
pub mod reconciler;
pub mod schedule;
pub mod shutdown;
pub mod sshkeys;
pub mod startup;
pub mod store;
pub mod survey;
pub mod tailnet;
pub mod telemetry;
pub mod undertaker;
pub mod units;
pub mod watchdog;
pub mod work_hours;
