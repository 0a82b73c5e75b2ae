//! Linking an SSO identity to a person (an admin's act, audited): until
//! linked, an OIDC identity is the person `SUB@NAME`, never a Slack user
//! who happens to share its subject (see `identity`).

use serde_json::json;
use vessel_api::error::ErrorCode;
use vessel_api::users::{IdentityLink, LinkIdentity, LinkList};

use super::{Action, Caller, Ctx, OpError};
use crate::store::{audit, identities, users};

fn view(l: identities::Link) -> IdentityLink {
    IdentityLink {
        issuer: l.issuer,
        subject: l.subject,
        user: l.user_id,
        linked_by: l.linked_by,
        linked_at: l.linked_at,
    }
}

/// The configured OIDC issuer names, for the refusal that lists them.
fn issuer_names(ctx: &Ctx) -> Vec<String> {
    ctx.config.auth.oidc.iter().map(|o| o.name()).collect()
}

/// The identity, checked: a configured issuer's name and a plausible `sub`.
fn checked(ctx: &Ctx, issuer: &str, subject: &str) -> Result<(), OpError> {
    let names = issuer_names(ctx);
    if !names.iter().any(|n| n == issuer) {
        let known = if names.is_empty() {
            "no [[auth.oidc]] issuer is configured".to_string()
        } else {
            format!("configured: {}", names.join(", "))
        };
        return Err(OpError::invalid(
            "issuer",
            format!("no [[auth.oidc]] issuer is named `{issuer}` ({known})"),
        ));
    }
    if subject.is_empty() || subject.len() > 255 || subject.chars().any(char::is_control) {
        return Err(OpError::invalid(
            "subject",
            "the identity's `sub`: 1 to 255 characters, none of them control characters",
        ));
    }
    Ok(())
}

pub async fn list(ctx: &Ctx, caller: &Caller, user: &str) -> Result<LinkList, OpError> {
    caller.require(Action::ListLinks)?;
    let links = identities::of_user(&ctx.db, user).await?;
    Ok(LinkList {
        links: links.into_iter().map(view).collect(),
    })
}

/// Links `body`'s identity to `user`: from now on its tokens act as `user`
/// (their vessels, keys, unix name and role). The person must exist (have
/// used Vessel once); an identity already linked must be unlinked first.
pub async fn link(
    ctx: &Ctx,
    caller: &Caller,
    user: &str,
    body: LinkIdentity,
) -> Result<IdentityLink, OpError> {
    caller.require(Action::LinkIdentity)?;
    checked(ctx, &body.issuer, &body.subject)?;
    if users::find(&ctx.db, user).await?.is_none() {
        return Err(OpError::NotFound(format!(
            "nobody is `{user}` here yet: they must use Vessel once (a DM to the bot, say) before an identity can be linked to them"
        )));
    }
    if crate::identity::qualified(&body.subject, &body.issuer) == user {
        return Err(OpError::invalid(
            "subject",
            format!("`{user}` is that identity already"),
        ));
    }
    let mut tx = ctx.db.begin().await?;
    let Some(link) =
        identities::link(&mut tx, &body.issuer, &body.subject, user, &caller.subject).await?
    else {
        let holder = identities::get(&mut tx, &body.issuer, &body.subject)
            .await?
            .map(|l| l.user_id)
            .unwrap_or_default();
        return Err(OpError::conflict(
            ErrorCode::IdentityTaken,
            format!(
                "{}@{} is linked to `{holder}` already: unlink it there first",
                body.subject, body.issuer
            ),
        ));
    };
    audit::record(
        &mut tx,
        &caller.subject,
        audit::Action::IdentityLink,
        Some(user),
        "ok",
        json!({ "issuer": body.issuer, "subject": body.subject }),
    )
    .await?;
    tx.commit().await?;
    Ok(view(link))
}

/// Removes `user`'s link to an identity: its tokens are `SUB@NAME` again.
pub async fn unlink(
    ctx: &Ctx,
    caller: &Caller,
    user: &str,
    issuer: &str,
    subject: &str,
) -> Result<(), OpError> {
    caller.require(Action::UnlinkIdentity)?;
    let mut tx = ctx.db.begin().await?;
    if !identities::unlink(&mut tx, issuer, subject, user).await? {
        return Err(OpError::NotFound(format!(
            "{subject}@{issuer} is not linked to `{user}`"
        )));
    }
    audit::record(
        &mut tx,
        &caller.subject,
        audit::Action::IdentityUnlink,
        Some(user),
        "ok",
        json!({ "issuer": issuer, "subject": subject }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
