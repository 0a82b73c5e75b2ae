//! Sizes and durations as people write them: the contract crate's parsers,
//! so the orchestrator and every client read `64G` and `24h` alike.

pub use vessel_api::units::*;
