//! Who is asking, and what they may do: a verified token's subject and
//! permissions (the API), or a session's (the portal). Operations check an
//! `Action` against it; nothing else decides.

use std::collections::BTreeSet;

use vessel_api::perm::Perm;

use super::action::Action;
use super::error::OpError;
use crate::domain::UnixName;

#[derive(Debug, Clone)]
pub struct Caller {
    pub subject: String,
    /// The token came from the service issuer (the bot), which relays for
    /// users and may say so in `x-vessel-via`.
    pub from_service: bool,
    perms: BTreeSet<Perm>,
    pub unix_name: Option<UnixName>,
    pub uid: Option<i32>,
}

impl Caller {
    pub fn new(
        subject: String,
        from_service: bool,
        perms: BTreeSet<Perm>,
        unix_name: Option<UnixName>,
        uid: Option<i32>,
    ) -> Caller {
        Caller {
            subject,
            from_service,
            perms,
            unix_name,
            uid,
        }
    }

    pub fn perms(&self) -> &BTreeSet<Perm> {
        &self.perms
    }

    /// Whether the table lets this caller do `action`.
    pub fn may(&self, action: Action) -> bool {
        action.perms().iter().any(|p| self.perms.contains(p))
    }

    /// `may`, as the refusal every front door shows.
    pub fn require(&self, action: Action) -> Result<(), OpError> {
        if self.may(action) {
            Ok(())
        } else {
            Err(OpError::Forbidden(action.needs()))
        }
    }

    /// Whether the vessel owned by `owner` is this caller's own.
    pub fn owns(&self, owner: &str) -> bool {
        self.subject == owner
    }
}
