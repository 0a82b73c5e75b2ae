//! People: the caller's own identity and SSH keys; admins listing everyone
//! with what they hold, and setting a researcher's unix identity. The old
//! name and uid stay the researcher's (the database refuses them to anyone
//! else), so their files never pass to a newcomer. Also where the CLI signs
//! people in (public).

use std::collections::BTreeSet;

use serde_json::json;
use vessel_api::signin::SignInConfig;
use vessel_api::users::{
    AddKey, KeyAdded, KeyList, KeyView, Me, QueueUse, SetUser, UserList, UserSummary, UserView,
};
use vessel_api::ErrorCode;

use super::{Action, Caller, Ctx, OpError};
use crate::domain::SshPublicKey;
use crate::lineup::Usage;
use crate::store::line::Override;
use crate::store::{self, audit, line, users, users::User, users::UserError};

/// The caller's user row, made on first sight.
pub async fn current_user(ctx: &Ctx, caller: &Caller) -> Result<User, OpError> {
    users::ensure(
        &ctx.db,
        &caller.subject,
        caller.unix_name.as_ref(),
        caller.uid,
    )
    .await
    .map_err(|e| match e {
        UserError::NameTaken(_) => OpError::conflict(ErrorCode::UnixNameTaken, e.to_string()),
        UserError::Db(e) => e.into(),
    })
}

fn key_views(keys: Vec<users::StoredKey>) -> Vec<KeyView> {
    keys.into_iter()
        .map(|k| KeyView {
            fingerprint: k.fingerprint,
            public_key: k.public_key,
            created_at: k.created_at,
        })
        .collect()
}

pub async fn me(ctx: &Ctx, caller: &Caller) -> Result<Me, OpError> {
    caller.require(Action::ShowMe)?;
    let user = current_user(ctx, caller).await?;
    let keys = key_views(users::keys(&ctx.db, &user.id).await?);
    Ok(Me {
        id: user.id,
        unix_name: user.unix_name,
        uid: user.uid,
        keys,
    })
}

pub async fn keys(ctx: &Ctx, caller: &Caller) -> Result<KeyList, OpError> {
    caller.require(Action::ListKeys)?;
    let user = current_user(ctx, caller).await?;
    let keys = key_views(users::keys(&ctx.db, &user.id).await?);
    Ok(KeyList { keys })
}

/// Adds a key; `added` is false when it was there already.
pub async fn add_key(ctx: &Ctx, caller: &Caller, body: AddKey) -> Result<KeyAdded, OpError> {
    caller.require(Action::AddKey)?;
    let key = SshPublicKey::parse(&body.public_key)
        .map_err(|e| OpError::invalid("public_key", e.to_string()))?;
    let user = current_user(ctx, caller).await?;
    let added = users::add_key(&ctx.db, &user, &key).await?;
    Ok(KeyAdded {
        fingerprint: key.fingerprint,
        public_key: key.openssh,
        added,
    })
}

pub async fn remove_key(ctx: &Ctx, caller: &Caller, fingerprint: &str) -> Result<(), OpError> {
    caller.require(Action::RemoveKey)?;
    let user = current_user(ctx, caller).await?;
    if users::remove_key(&ctx.db, &user, fingerprint).await? {
        Ok(())
    } else {
        Err(OpError::NotFound(format!(
            "you have no key with fingerprint {fingerprint}"
        )))
    }
}

/// Everyone, with what they hold per queue and the limits on them: the
/// queue's own, or an admin's override.
pub async fn list(ctx: &Ctx, caller: &Caller) -> Result<UserList, OpError> {
    caller.require(Action::ListUsers)?;
    let people = users::all(&ctx.db).await?;
    let usage = line::all_usage(&ctx.db).await?;
    let overrides = line::all_overrides(&ctx.db).await?;
    let users = people
        .into_iter()
        .map(|u| UserSummary {
            queues: queue_uses(ctx, &u.id, &usage, &overrides),
            id: u.id,
            unix_name: u.unix_name,
            uid: u.uid,
        })
        .collect();
    Ok(UserList { users })
}

/// One person's holdings and limits in every queue they hold in or have
/// an override for.
fn queue_uses(
    ctx: &Ctx,
    id: &str,
    usage: &[(String, String, Usage)],
    overrides: &[(String, Override)],
) -> Vec<QueueUse> {
    let mut queues: BTreeSet<&str> = usage
        .iter()
        .filter(|(owner, _, _)| owner == id)
        .map(|(_, q, _)| q.as_str())
        .collect();
    queues.extend(
        overrides
            .iter()
            .filter(|(_, o)| o.user_id == id)
            .map(|(q, _)| q.as_str()),
    );
    queues
        .into_iter()
        .map(|q| {
            let held = usage
                .iter()
                .find(|(owner, queue, _)| owner == id && queue == q)
                .map(|(_, _, use_)| *use_)
                .unwrap_or_default();
            let o = overrides
                .iter()
                .find(|(queue, o)| o.user_id == id && queue == q)
                .map(|(_, o)| o);
            let limit = ctx
                .config
                .queue(q)
                .map(|qc| crate::line::limit_with(qc, o))
                .unwrap_or_default();
            QueueUse {
                queue: q.to_string(),
                gpus: held.gpus.max(0) as u32,
                vessels: held.vessels.max(0) as u32,
                max_gpus: limit.max_gpus.map(|n| n.max(0) as u32),
                max_vessels: limit.max_vessels.map(|n| n.max(0) as u32),
                overridden: o.is_some(),
            }
        })
        .collect()
}

/// Sets a researcher's unix identity, when none of their vessels is live.
pub async fn set_identity(
    ctx: &Ctx,
    caller: &Caller,
    subject: &str,
    body: SetUser,
) -> Result<UserView, OpError> {
    caller.require(Action::SetUser)?;
    if matches!(body.uid, Some(uid) if !(1000..=2_000_000_000).contains(&uid)) {
        return Err(OpError::invalid("uid", "between 1000 and 2000000000"));
    }
    let mut tx = ctx.db.begin().await?;
    let live = users::live_vessels(&mut tx, subject).await?;
    if live > 0 {
        return Err(OpError::conflict(
            ErrorCode::HasLiveVessels,
            format!(
                "`{subject}` has {live} live vessel(s) running as the old identity; change it when they have ended"
            ),
        ));
    }
    let user = match users::set_identity(&mut tx, subject, body.unix_name.as_str(), body.uid).await
    {
        Ok(u) => u,
        Err(e) if store::is_unique_violation(&e) => {
            return Err(OpError::conflict(
                ErrorCode::IdentityTaken,
                format!(
                    "the unix name `{}` or that uid belongs, or once belonged, to someone else: \
                     a name or uid is never given to a second person, whose files it would own",
                    body.unix_name
                ),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    audit::record(
        &mut tx,
        &caller.subject,
        audit::Action::UserSet,
        Some(subject),
        "ok",
        json!({ "unix_name": user.unix_name, "uid": user.uid }),
    )
    .await?;
    tx.commit().await?;
    Ok(UserView {
        id: user.id,
        unix_name: user.unix_name,
        uid: user.uid,
    })
}

/// Where the CLI signs people in; public (a client must learn where to get
/// a token before it has one), naming only what the identity provider
/// publishes anyway.
pub fn sign_in_config(ctx: &Ctx) -> Result<SignInConfig, OpError> {
    let cli = ctx.config.cli.as_ref().ok_or_else(|| {
        OpError::NotFound(
            "this orchestrator has no single sign-on for the CLI ([cli] is not configured); \
             ask an operator for a token and use `vessel login --token-file`"
                .into(),
        )
    })?;
    // Validated at start-up: `cli.issuer` is one of the OIDC issuers.
    let audience = ctx
        .config
        .auth
        .oidc
        .iter()
        .find(|o| o.issuer == cli.issuer)
        .map(|o| o.audience.clone())
        .ok_or_else(|| OpError::bug("cli.issuer is not an auth.oidc issuer"))?;
    Ok(SignInConfig {
        issuer: cli.issuer.clone(),
        client_id: cli.client_id.clone(),
        scope: cli.scopes.join(" "),
        audience,
    })
}
