//! vessel-bot: the Slack surface of Vessel (and its console twin). It parses
//! commands and interactions into typed requests, calls the orchestrator,
//! renders the answers, and delivers the orchestrator's events as DMs. It
//! keeps no state of its own: what must survive a restart lives in the
//! orchestrator.

pub mod actions;
pub mod clock;
pub mod commands;
pub mod config;
pub mod console;
pub mod events;
pub mod orchestrator;
pub mod shutdown;
pub mod slack;
pub mod startup;
pub mod throttle;
pub mod views;

/// An error and its causes on one line, each said once (a library's error
/// that repeats its source is not repeated): what a log line or a user
/// reads. Our errors say what failed; their sources say why.
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_chain_says_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("Slack's chat.update failed")]
        struct Ours(#[source] Repeating);
        /// A library error that also prints its source.
        #[derive(Debug)]
        struct Repeating(std::io::Error);
        impl std::fmt::Display for Repeating {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "http: {}", self.0)
            }
        }
        impl std::error::Error for Repeating {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Ours(Repeating(std::io::Error::other("connection reset")));
        assert_eq!(
            super::chain(&e),
            "Slack's chat.update failed: http: connection reset"
        );
    }
}
