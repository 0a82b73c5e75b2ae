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
