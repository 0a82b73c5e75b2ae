//! Permission names as they appear in tokens (`perms` claim) and in the
//! orchestrator's route table, and the sets the standard roles carry.

pub const VESSELS_CREATE: &str = "vessels:create";
pub const VESSELS_READ: &str = "vessels:read";
/// Act on anyone's vessel (admins).
pub const VESSELS_MANAGE_ANY: &str = "vessels:manage:any";
pub const FLEET_READ: &str = "fleet:read";
pub const FLEET_MANAGE: &str = "fleet:manage";
pub const EVENTS_READ: &str = "events:read";
/// The bot's own key-value state (cursor, message references).
pub const BOT_STATE: &str = "bot:state";
pub const HOSTS_MANAGE: &str = "hosts:manage";
pub const AUDIT_READ: &str = "audit:read";

/// Every permission there is.
pub const ALL: &[&str] = &[
    VESSELS_CREATE,
    VESSELS_READ,
    VESSELS_MANAGE_ANY,
    FLEET_READ,
    FLEET_MANAGE,
    EVENTS_READ,
    BOT_STATE,
    HOSTS_MANAGE,
    AUDIT_READ,
];

/// A researcher: their own vessels and keys, the fleet at a glance.
pub const RESEARCHER: &[&str] = &[VESSELS_CREATE, VESSELS_READ, FLEET_READ];

/// A fleet admin: everything a researcher does, on anyone's vessels, plus
/// the hosts and the audit log.
pub const ADMIN: &[&str] = &[
    VESSELS_CREATE,
    VESSELS_READ,
    FLEET_READ,
    VESSELS_MANAGE_ANY,
    FLEET_MANAGE,
    AUDIT_READ,
];

/// The bot as itself (not acting for a user): the outbox and its state.
pub const BOT_SERVICE: &[&str] = &[EVENTS_READ, BOT_STATE];

/// A permission as a type: what the orchestrator's permission table and a
/// caller's grants are made of. Tokens and config spell it as the strings
/// above; `parse` is the one way from those to a `Perm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Perm {
    VesselsCreate,
    VesselsRead,
    VesselsManageAny,
    FleetRead,
    FleetManage,
    EventsRead,
    BotState,
    HostsManage,
    AuditRead,
}

impl Perm {
    /// Every permission, in the order of `ALL`.
    pub const EVERY: [Perm; 9] = [
        Perm::VesselsCreate,
        Perm::VesselsRead,
        Perm::VesselsManageAny,
        Perm::FleetRead,
        Perm::FleetManage,
        Perm::EventsRead,
        Perm::BotState,
        Perm::HostsManage,
        Perm::AuditRead,
    ];

    /// Its spelling in tokens and config.
    pub const fn as_str(self) -> &'static str {
        match self {
            Perm::VesselsCreate => VESSELS_CREATE,
            Perm::VesselsRead => VESSELS_READ,
            Perm::VesselsManageAny => VESSELS_MANAGE_ANY,
            Perm::FleetRead => FLEET_READ,
            Perm::FleetManage => FLEET_MANAGE,
            Perm::EventsRead => EVENTS_READ,
            Perm::BotState => BOT_STATE,
            Perm::HostsManage => HOSTS_MANAGE,
            Perm::AuditRead => AUDIT_READ,
        }
    }

    /// `None` for a name no permission has: it grants nothing.
    pub fn parse(name: &str) -> Option<Perm> {
        Perm::EVERY.into_iter().find(|p| p.as_str() == name)
    }
}

impl std::fmt::Display for Perm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_permission_has_one_spelling_and_parses_back() {
        assert_eq!(Perm::EVERY.len(), ALL.len());
        for (p, name) in Perm::EVERY.into_iter().zip(ALL) {
            assert_eq!(p.as_str(), *name);
            assert_eq!(Perm::parse(name), Some(p));
        }
        assert_eq!(Perm::parse("vessels:everything"), None);
    }
}
