//! Researchers: a token subject mapped to a unix name and uid (derived on
//! first sight, or named by the token), and the SSH keys they log in with.

use serde::Serialize;
use sqlx::PgPool;

use crate::domain::{SshPublicKey, UnixName};

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: String,
    pub unix_name: String,
    pub uid: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// Held now or held before: a name or uid is never given to a second
    /// subject (the `users_identity_never_reused` trigger).
    #[error("the unix name `{0}` (or the uid asked for) belongs or belonged to someone else; ask an admin to set yours")]
    NameTaken(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Returns the user for a subject, creating it on first sight. A derived name
/// that is taken, now or before, gets a numeric suffix; a name the token asks
/// for does not.
pub async fn ensure(
    db: &PgPool,
    subject: &str,
    requested: Option<&UnixName>,
    uid: Option<i32>,
) -> Result<User, UserError> {
    if let Some(user) = find(db, subject).await? {
        return Ok(user);
    }
    let base = requested
        .cloned()
        .unwrap_or_else(|| UnixName::derive(subject));
    for attempt in 0..20 {
        let name = if attempt == 0 {
            base.as_str().to_string()
        } else if requested.is_some() {
            return Err(UserError::NameTaken(base.as_str().to_string()));
        } else {
            format!("{}{attempt}", base.as_str())
        };
        let inserted = sqlx::query_as!(
            User,
            "INSERT INTO users (id, unix_name, uid)
             VALUES ($1, $2, coalesce($3, nextval('user_uids')::int))
             ON CONFLICT (id) DO NOTHING
             RETURNING id, unix_name, uid",
            subject,
            name,
            uid
        )
        .fetch_optional(db)
        .await;
        match inserted {
            Ok(Some(user)) => return Ok(user),
            // Someone created this subject concurrently.
            Ok(None) => break,
            Err(e) if super::is_unique_violation(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    find(db, subject)
        .await?
        .ok_or_else(|| UserError::NameTaken(base.as_str().to_string()))
}

pub async fn find(db: &PgPool, subject: &str) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as!(
        User,
        "SELECT id, unix_name, uid FROM users WHERE id = $1",
        subject
    )
    .fetch_optional(db)
    .await
}

#[derive(Debug, Serialize)]
pub struct StoredKey {
    pub fingerprint: String,
    pub public_key: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Adds a key; adding the same key twice is not an error.
pub async fn add_key(db: &PgPool, user: &User, key: &SshPublicKey) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let added = sqlx::query!(
        "INSERT INTO ssh_keys (user_id, fingerprint, public_key) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
        user.id,
        key.fingerprint,
        key.openssh
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    // A key that was there already changes nothing: nothing to audit.
    if added {
        super::audit::record(
            &mut tx,
            &user.id,
            super::audit::Action::KeyAdd,
            Some(&key.fingerprint),
            "ok",
            serde_json::json!({}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(added)
}

pub async fn remove_key(db: &PgPool, user: &User, fingerprint: &str) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let removed = sqlx::query!(
        "DELETE FROM ssh_keys WHERE user_id = $1 AND fingerprint = $2",
        user.id,
        fingerprint
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if removed {
        super::audit::record(
            &mut tx,
            &user.id,
            super::audit::Action::KeyRemove,
            Some(fingerprint),
            "ok",
            serde_json::json!({}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(removed)
}

pub async fn keys(db: &PgPool, user_id: &str) -> Result<Vec<StoredKey>, sqlx::Error> {
    sqlx::query_as!(
        StoredKey,
        "SELECT fingerprint, public_key, created_at FROM ssh_keys
         WHERE user_id = $1 ORDER BY created_at",
        user_id
    )
    .fetch_all(db)
    .await
}

/// How many live vessels a subject has (they run as its current identity).
pub async fn live_vessels(
    conn: &mut sqlx::PgConnection,
    subject: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM vessels WHERE owner_id = $1
           AND state IN ('requested', 'pending', 'provisioning', 'running', 'stopping')"#,
        subject
    )
    .fetch_one(conn)
    .await
}

/// Sets (or creates) a subject's unix identity; a uid is kept unless given.
/// A unique violation means the name or uid belongs, or once belonged, to
/// someone else: the old ones stay this subject's for good.
pub async fn set_identity(
    conn: &mut sqlx::PgConnection,
    subject: &str,
    unix_name: &str,
    uid: Option<i32>,
) -> Result<User, sqlx::Error> {
    sqlx::query_as!(
        User,
        "INSERT INTO users (id, unix_name, uid) VALUES ($1, $2, coalesce($3, nextval('user_uids')::int))
         ON CONFLICT (id) DO UPDATE SET unix_name = excluded.unix_name,
           uid = coalesce($3, users.uid)
         RETURNING id, unix_name, uid",
        subject,
        unix_name,
        uid
    )
    .fetch_one(conn)
    .await
}

/// Everyone who has used Vessel, by unix name.
pub async fn all(db: &PgPool) -> Result<Vec<User>, sqlx::Error> {
    sqlx::query_as!(
        User,
        "SELECT id, unix_name, uid FROM users ORDER BY unix_name"
    )
    .fetch_all(db)
    .await
}
