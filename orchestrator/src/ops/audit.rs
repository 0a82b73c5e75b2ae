//! Reading the audit log (admins): who did what to which target, and what
//! was refused.

use vessel_api::audit::{AuditList, AuditQuery};

use super::{Action, Caller, Ctx, OpError};
use crate::store::audit;

pub async fn list(ctx: &Ctx, caller: &Caller, q: &AuditQuery) -> Result<AuditList, OpError> {
    caller.require(Action::ReadAudit)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let filter = audit::Filter {
        actor: q.actor.as_deref(),
        target: q.target.as_deref(),
        action: q.action.as_deref(),
        outcome: q.outcome.as_deref(),
    };
    let entries = audit::list(&ctx.db, filter, limit).await?;
    Ok(AuditList { entries })
}
