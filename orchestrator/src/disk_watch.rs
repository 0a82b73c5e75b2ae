//! A vessel's writable layer (what it writes outside its home: packages,
//! `/tmp`, `/opt`) against its queue's `disk` limit, where its host's engine
//! cannot size the container: the undertaker measures it each sweep, warns
//! the owner once it is over, and stops the vessel if it is still over at
//! the next sweep; back under, the warning is withdrawn. The verdict is the
//! pure [`decide`]; the undertaker does the I/O.

use bollard::query_parameters::InspectContainerOptions;
use bollard::Docker;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Under the limit, and not warned.
    Within,
    /// Over it for the first time: the owner is told, with a sweep's grace.
    Warn,
    /// Over it, warned at an earlier sweep, and still over: stopped.
    Stop,
    /// Back under after a warning: the warning no longer stands.
    Withdraw,
}

/// What to do with a vessel that wrote `used` bytes against `limit`.
pub fn decide(used: u64, limit: u64, warned: bool) -> Verdict {
    match (used > limit, warned) {
        (false, false) => Verdict::Within,
        (false, true) => Verdict::Withdraw,
        (true, false) => Verdict::Warn,
        (true, true) => Verdict::Stop,
    }
}

/// The container's writable layer in bytes (the engine's `SizeRw`, which it
/// computes by walking the layer: a cost paid once per vessel per sweep).
/// None when the engine would not say.
pub async fn layer_size(docker: &Docker, container: &str) -> Option<u64> {
    let options = InspectContainerOptions { size: true };
    let info = docker
        .inspect_container(container, Some(options))
        .await
        .ok()?;
    info.size_rw.and_then(|s| u64::try_from(s).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_once_is_a_warning_over_twice_a_stop() {
        let cases = [
            ("under, never warned", 10, false, Verdict::Within),
            ("exactly at the limit", 100, false, Verdict::Within),
            ("over for the first time", 101, false, Verdict::Warn),
            ("still over after the warning", 150, true, Verdict::Stop),
            ("cleaned up after the warning", 50, true, Verdict::Withdraw),
        ];
        for (story, used, warned, expected) in cases {
            assert_eq!(decide(used, 100, warned), expected, "{story}");
        }
    }
}
