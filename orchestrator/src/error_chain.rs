//! An error and its causes on one line (`what failed: why: why`), for logs
//! and for the reasons kept in rows. Each error's `Display` says what
//! failed and its `source()` why, so the chain says every cause once.

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its sources, `: `-separated.
pub struct Chain<'a>(&'a (dyn Error + 'static));

/// The whole chain of `error`, for `tracing` fields (`error = %chain(&e)`)
/// and `format!`.
pub fn chain<'a>(error: &'a (dyn Error + 'static)) -> Chain<'a> {
    Chain(error)
}

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read the file")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn each_cause_is_said_once_in_order() {
        let e = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(chain(&e).to_string(), "cannot read the file: disk on fire");
        let alone = std::io::Error::other("alone");
        assert_eq!(chain(&alone).to_string(), "alone");
    }
}
