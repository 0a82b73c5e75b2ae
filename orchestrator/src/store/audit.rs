//! The audit log: who did what to which target, from where, written in the
//! transaction of the change itself.

use sqlx::PgConnection;

tokio::task_local! {
    /// Where the current request came from, set by the API's middleware;
    /// outside a request (the conductor, other jobs) it is `system`.
    pub static SOURCE: String;
}

fn source() -> String {
    SOURCE
        .try_with(|s| s.clone())
        .unwrap_or_else(|_| "system".into())
}

/// What was done, with one spelling each: the audit log's `action` column
/// and its filter (`vessel` matches every `vessel.…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    VesselCreate,
    VesselCancel,
    VesselKill,
    VesselExtend,
    VesselKeep,
    VesselShow,
    VesselPlace,
    VesselExpire,
    VesselBury,
    VesselHibernate,
    VesselWake,
    VesselDiskStop,
    HostDrain,
    HostUndrain,
    KeyAdd,
    KeyRemove,
    LineFront,
    UserSet,
    IdentityLink,
    IdentityUnlink,
    UserLimits,
    /// A portal sign-in (`detail.method`: `dev` or `oidc`).
    SignIn,
}

impl Action {
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::VesselCreate => "vessel.create",
            Action::VesselCancel => "vessel.cancel",
            Action::VesselKill => "vessel.kill",
            Action::VesselExtend => "vessel.extend",
            Action::VesselKeep => "vessel.keep",
            Action::VesselShow => "vessel.show",
            Action::VesselPlace => "vessel.place",
            Action::VesselExpire => "vessel.expire",
            Action::VesselBury => "vessel.bury",
            Action::VesselHibernate => "vessel.hibernate",
            Action::VesselWake => "vessel.wake",
            Action::VesselDiskStop => "vessel.disk_stop",
            Action::HostDrain => "host.drain",
            Action::HostUndrain => "host.undrain",
            Action::KeyAdd => "key.add",
            Action::KeyRemove => "key.remove",
            Action::LineFront => "line.front",
            Action::UserSet => "user.set",
            Action::IdentityLink => "user.link",
            Action::IdentityUnlink => "user.unlink",
            Action::UserLimits => "user.limits",
            Action::SignIn => "portal.sign_in",
        }
    }
}

pub async fn record(
    conn: &mut PgConnection,
    actor: &str,
    action: Action,
    target: Option<&str>,
    outcome: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO audit_log (actor, action, target, outcome, detail, source)
         VALUES ($1, $2, $3, $4, $5, $6)",
        actor,
        action.as_str(),
        target,
        outcome,
        detail,
        source()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A refusal, written at most once a minute per actor, action and target:
/// a caller hammering someone else's vessel must not flood the log.
pub async fn record_denied(
    conn: &mut PgConnection,
    actor: &str,
    action: Action,
    target: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO audit_log (actor, action, target, outcome, detail, source)
         SELECT $1, $2, $3, 'denied', $4, $5
         WHERE NOT EXISTS (SELECT 1 FROM audit_log
                           WHERE actor = $1 AND action = $2 AND target = $3
                             AND outcome = 'denied' AND at > now() - interval '1 minute')",
        actor,
        action.as_str(),
        target,
        detail,
        source()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The audit log's filters; `None` matches everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Filter<'a> {
    pub actor: Option<&'a str>,
    /// An id, or a vessel's name.
    pub target: Option<&'a str>,
    /// An action or its family: `vessel` matches `vessel.create`, ….
    pub action: Option<&'a str>,
    /// `ok` or `denied`.
    pub outcome: Option<&'a str>,
}

/// Newest first, filtered.
pub async fn list(
    db: &sqlx::PgPool,
    f: Filter<'_>,
    limit: i64,
) -> Result<Vec<vessel_api::audit::AuditEntry>, sqlx::Error> {
    sqlx::query_as!(
        vessel_api::audit::AuditEntry,
        r#"SELECT id, at, actor, action, target, outcome, source, detail FROM audit_log
           WHERE ($1::text IS NULL OR actor = $1)
             AND ($2::text IS NULL OR target = $2
                  OR target IN (SELECT id::text FROM vessels WHERE name = $2))
             AND ($3::text IS NULL OR action = $3 OR starts_with(action, $3 || '.'))
             AND ($4::text IS NULL OR outcome = $4)
           ORDER BY id DESC LIMIT $5"#,
        f.actor,
        f.target,
        f.action,
        f.outcome,
        limit
    )
    .fetch_all(db)
    .await
}
