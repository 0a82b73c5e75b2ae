//! A vessel as its viewer may see it (`VesselView`): the SSH block, with the
//! Jupyter token, only for its owner once it runs; the line's place of a
//! waiting one; the undertaker's ledger of a running one, and its writable
//! layer against its queue's `disk` limit.

use std::collections::{BTreeSet, HashMap};

use uuid::Uuid;
use vessel_api::fleet::DiskEnforcement;
use vessel_api::line::LinePlace;
use vessel_api::vessels::{DiskView, SshAccess, VesselView};

use super::{Ctx, OpError};
use crate::domain::{VesselName, VesselState};
use crate::store::{self, vessels::VesselRow};
use crate::units::ByteSize;

pub fn view(v: VesselRow, key_fingerprints: &[String], for_owner: bool) -> VesselView {
    let ssh = if for_owner {
        ssh_access(&v, key_fingerprints)
    } else {
        None
    };
    VesselView {
        id: v.id,
        name: VesselName::parse(&v.name)
            .unwrap_or_else(|_| VesselName::parse("unnamed").expect("a valid name")),
        state: v.state(),
        memory: ByteSize(v.memory_bytes.max(0) as u64),
        owner: v.owner_unix,
        owner_id: v.owner_id,
        queue: v.queue,
        image: v.image,
        gpus: v.gpus.max(0) as u32,
        cpus: v.cpus.max(0) as u32,
        reason: v.reason,
        host: v.host_name,
        gpu_uuids: v.gpu_uuids,
        cores: v.cores.into_iter().map(|c| c.max(0) as u32).collect(),
        address: v.address,
        created_at: v.created_at,
        started_at: v.started_at,
        ended_at: v.ended_at,
        expires_at: v.expires_at,
        ssh,
        line: None,
        idle: None,
        disk: None,
        hibernated_at: v.hibernated_at,
    }
}

fn ssh_access(v: &VesselRow, key_fingerprints: &[String]) -> Option<SshAccess> {
    let (Some(address), Some(host_key), VesselState::Running) =
        (&v.address, &v.host_public_key, v.state())
    else {
        return None;
    };
    let hint = match key_fingerprints.first() {
        Some(fp) => format!("the private half of your registered key {fp}"),
        None => "the private half of your registered key".to_string(),
    };
    // With MagicDNS the config names the vessel, and the known_hosts line
    // vouches for the name and the address.
    let (host_name, known_as) = match &v.dns_name {
        Some(dns) => (dns.clone(), format!("{dns},{address}")),
        None => (address.clone(), address.clone()),
    };
    Some(SshAccess {
        host_alias: v.name.clone(),
        address: address.clone(),
        user: v.owner_unix.clone(),
        config: format!(
            "Host {name}\n    HostName {host_name}\n    User {user}\n    # IdentityFile: {hint}\n    IdentityFile ~/.ssh/id_ed25519\n",
            name = v.name,
            user = v.owner_unix,
        ),
        known_hosts: format!("{known_as} {host_key}"),
        vscode_url: format!(
            "vscode://vscode-remote/ssh-remote+{}/home/{}",
            v.name, v.owner_unix
        ),
        // Jupyter listens on the vessel's loopback (the init): the URL is
        // the one that works after `vessel jupyter NAME`, or
        // `ssh -L PORT:127.0.0.1:PORT NAME`, on the same port locally.
        jupyter_url: v.jupyter_port.map(|port| {
            format!(
                "http://127.0.0.1:{port}/lab?token={}",
                v.jupyter_token.as_deref().unwrap_or_default()
            )
        }),
    })
}

/// The undertaker's ledgers of the running ones among `views`.
pub(super) async fn add_idle(ctx: &Ctx, views: &mut [VesselView]) -> Result<(), OpError> {
    let running: Vec<Uuid> = views
        .iter()
        .filter(|v| v.state == VesselState::Running)
        .map(|v| v.id)
        .collect();
    if running.is_empty() {
        return Ok(());
    }
    let ledgers: HashMap<_, _> = store::idle::ledgers(&ctx.db, &running)
        .await?
        .into_iter()
        .collect();
    for v in views.iter_mut() {
        v.idle = ledgers.get(&v.id).cloned();
    }
    add_disk(ctx, views, &running).await
}

/// The writable layer of the running ones whose queue has a `disk` limit.
async fn add_disk(ctx: &Ctx, views: &mut [VesselView], running: &[Uuid]) -> Result<(), OpError> {
    let limit_of = |queue: &str| ctx.config.queues.get(queue).and_then(|q| q.disk);
    let limited: Vec<Uuid> = views
        .iter()
        .filter(|v| running.contains(&v.id) && limit_of(v.queue.as_str()).is_some())
        .map(|v| v.id)
        .collect();
    if limited.is_empty() {
        return Ok(());
    }
    let ledgers: HashMap<Uuid, store::disk::Ledger> = store::disk::ledgers(&ctx.db, &limited)
        .await?
        .into_iter()
        .map(|l| (l.vessel_id, l))
        .collect();
    for v in views.iter_mut() {
        let (Some(limit), Some(l)) = (limit_of(v.queue.as_str()), ledgers.get(&v.id)) else {
            continue;
        };
        v.disk = Some(DiskView {
            limit,
            enforced: DiskEnforcement::of(l.sized),
            used: l.used.map(|b| ByteSize(b.max(0) as u64)),
            measured_at: l.measured_at,
            warned_at: l.warned_at,
        });
    }
    Ok(())
}

/// The places in line of the waiting ones among `rows`, one read per queue.
pub(super) async fn places_of(
    ctx: &Ctx,
    rows: &[VesselRow],
) -> Result<HashMap<Uuid, LinePlace>, OpError> {
    let queues: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.state() == VesselState::Pending)
        .map(|r| r.queue.as_str())
        .collect();
    let mut out = HashMap::new();
    let mut conn = ctx.db.acquire().await?;
    for queue in queues {
        for (w, place) in crate::line::places(&mut conn, queue, None).await? {
            out.insert(w.waiter.id, place);
        }
    }
    Ok(out)
}
