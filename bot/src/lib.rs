//! vessel-bot: the Slack surface of Vessel (and its console twin). It parses
//! commands and interactions into typed requests, calls the orchestrator,
//! renders the answers, and delivers the orchestrator's events as DMs. It
//! keeps no state of its own: what must survive a restart lives in the
//! orchestrator.

pub mod actions;
pub mod commands;
pub mod config;
pub mod console;
pub mod events;
pub mod orchestrator;
pub mod slack;
pub mod startup;
pub mod throttle;
pub mod views;
