//! `identity_links`: OIDC identities (issuer name, subject) an admin linked
//! to a person; every other OIDC identity is the person `SUB@NAME`.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

/// The person an identity is linked to, if any.
pub async fn resolve(
    db: &PgPool,
    issuer: &str,
    subject: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT user_id FROM identity_links WHERE issuer = $1 AND subject = $2",
        issuer,
        subject
    )
    .fetch_optional(db)
    .await
}

#[derive(Debug, Clone)]
pub struct Link {
    pub issuer: String,
    pub subject: String,
    pub user_id: String,
    pub linked_by: String,
    pub linked_at: DateTime<Utc>,
}

/// Links an identity to a person. None when the identity is linked already
/// (to whomever): a link is changed by removing it first.
pub async fn link(
    conn: &mut PgConnection,
    issuer: &str,
    subject: &str,
    user_id: &str,
    by: &str,
) -> Result<Option<Link>, sqlx::Error> {
    sqlx::query_as!(
        Link,
        "INSERT INTO identity_links (issuer, subject, user_id, linked_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (issuer, subject) DO NOTHING
         RETURNING issuer, subject, user_id, linked_by, linked_at",
        issuer,
        subject,
        user_id,
        by
    )
    .fetch_optional(conn)
    .await
}

/// The link of an identity, whoever it is to.
pub async fn get(
    conn: &mut PgConnection,
    issuer: &str,
    subject: &str,
) -> Result<Option<Link>, sqlx::Error> {
    sqlx::query_as!(
        Link,
        "SELECT issuer, subject, user_id, linked_by, linked_at FROM identity_links
         WHERE issuer = $1 AND subject = $2",
        issuer,
        subject
    )
    .fetch_optional(conn)
    .await
}

/// Removes a person's link to an identity; false when there was none.
pub async fn unlink(
    conn: &mut PgConnection,
    issuer: &str,
    subject: &str,
    user_id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM identity_links WHERE issuer = $1 AND subject = $2 AND user_id = $3",
        issuer,
        subject,
        user_id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Every link of a person.
pub async fn of_user(db: &PgPool, user_id: &str) -> Result<Vec<Link>, sqlx::Error> {
    sqlx::query_as!(
        Link,
        "SELECT issuer, subject, user_id, linked_by, linked_at FROM identity_links
         WHERE user_id = $1 ORDER BY issuer, subject",
        user_id
    )
    .fetch_all(db)
    .await
}
