//! People: the caller's unix identity and SSH keys, and an admin setting a
//! researcher's identity.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::names::UnixName;

/// `GET /v1/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub id: String,
    pub unix_name: String,
    pub uid: i32,
    pub keys: Vec<KeyView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyView {
    pub fingerprint: String,
    pub public_key: String,
    pub created_at: DateTime<Utc>,
}

/// `GET /v1/me/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyList {
    pub keys: Vec<KeyView>,
}

/// `POST /v1/me/keys`: one OpenSSH public key line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddKey {
    pub public_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAdded {
    pub fingerprint: String,
    pub public_key: String,
    /// False when the key was already registered.
    pub added: bool,
}

/// `PUT /v1/users/{subject}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetUser {
    pub unix_name: UnixName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: String,
    pub unix_name: String,
    pub uid: i32,
}

/// `GET /v1/users` (admins): everyone who has used Vessel, with what they
/// hold and the limits that apply to them per queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserList {
    pub users: Vec<UserSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    pub id: String,
    pub unix_name: String,
    pub uid: i32,
    /// Per queue where they hold something or have an override.
    pub queues: Vec<QueueUse>,
}

/// One person's use of one queue and the limits on it (after overrides).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueUse {
    pub queue: String,
    pub gpus: u32,
    pub vessels: u32,
    /// None: no limit.
    pub max_gpus: Option<u32>,
    pub max_vessels: Option<u32>,
    /// An admin's override applies rather than the queue's limits.
    pub overridden: bool,
}

/// `PUT /v1/users/{user}/links`: an SSO identity that is this person (an
/// admin's act). `issuer` is the issuer's `name` in the orchestrator's
/// config; `subject` its `sub`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkIdentity {
    pub issuer: String,
    pub subject: String,
}

/// An SSO identity linked to a person: its tokens act as that person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityLink {
    pub issuer: String,
    pub subject: String,
    /// The person it is linked to.
    pub user: String,
    pub linked_by: String,
    pub linked_at: DateTime<Utc>,
}

/// `GET /v1/users/{user}/links`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkList {
    pub links: Vec<IdentityLink>,
}
