//! What a person reads: vessels, the line, the fleet and keys as plain
//! text tables (pure functions of the contract's types). Scripts use
//! `--json` instead, which prints the types themselves.

use chrono::{DateTime, Local, Utc};
use vessel_api::fleet::FleetStatus;
use vessel_api::line::{Line, LinePlace};
use vessel_api::users::{KeyView, Me};
use vessel_api::vessels::VesselView;
use vessel_api::VesselState;

fn when(t: DateTime<Utc>) -> String {
    t.with_timezone(&Local).format("%a %d %b %H:%M").to_string()
}

/// Columns padded to their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            width[i] = width[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = width[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// "position 2 of 3 — no host has 2 free GPUs in 3090 (by Tue 14:00 at the latest)".
pub fn place(p: &LinePlace) -> String {
    let mut s = format!("position {} of {} — {}", p.position, p.of, p.reason);
    if let Some(e) = &p.estimate {
        s.push_str(&format!(
            " (room by {} at the latest, on {})",
            when(e.by),
            e.host
        ));
    }
    if let Some(h) = &p.holds {
        s.push_str(&format!("; holding {h}"));
    }
    s
}

fn status(v: &VesselView) -> String {
    match (&v.state, &v.line) {
        (VesselState::Pending, Some(p)) => format!("waiting {}/{}", p.position, p.of),
        (state, _) => state.to_string(),
    }
}

pub fn vessels(list: &[VesselView]) -> String {
    if list.is_empty() {
        return "No vessels. Request one: vessel create gpu=1 queue=Q\n".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|v| {
            vec![
                v.name.to_string(),
                status(v),
                v.queue.to_string(),
                v.gpus.to_string(),
                v.cpus.to_string(),
                v.memory.to_string(),
                v.host.clone().unwrap_or_else(|| "-".into()),
                when(v.expires_at),
            ]
        })
        .collect();
    table(
        &[
            "NAME", "STATE", "QUEUE", "GPUS", "CPUS", "MEM", "HOST", "EXPIRES",
        ],
        &rows,
    )
}

pub fn vessel(v: &VesselView) -> String {
    let mut out = format!(
        "{name}  {state}\n  owner    {owner}\n  queue    {queue}: {gpus} GPU(s), {cpus} cores, {mem}\n  image    {image}\n",
        name = v.name,
        state = v.state,
        owner = v.owner,
        queue = v.queue,
        gpus = v.gpus,
        cpus = v.cpus,
        mem = v.memory,
        image = v.image,
    );
    if let Some(h) = &v.host {
        out.push_str(&format!("  host     {h}\n"));
    }
    // A sleeper holds no GPU: the row's are the ones it last had.
    if !v.gpu_uuids.is_empty() && v.state != VesselState::Hibernated {
        out.push_str(&format!("  gpus     {}\n", v.gpu_uuids.join(", ")));
    }
    if let Some(at) = v
        .hibernated_at
        .filter(|_| v.state == VesselState::Hibernated)
    {
        out.push_str(&format!(
            "  asleep   since {} (its processes ended; files, address and host key kept): vessel wake {}\n",
            when(at),
            v.name
        ));
    }
    if let Some(p) = &v.line {
        out.push_str(&format!(
            "  line     {}\n  gives up {}\n",
            place(p),
            when(p.gives_up_at)
        ));
    }
    if let Some(r) = &v.reason {
        out.push_str(&format!("  reason   {r}\n"));
    }
    let paused = if v.state == VesselState::Hibernated {
        " (paused while it sleeps)"
    } else {
        ""
    };
    out.push_str(&format!("  expires  {}{paused}\n", when(v.expires_at)));
    if let Some(d) = &v.disk {
        out.push_str(&format!("  disk     {}\n", d.summary()));
    }
    if let Some(ssh) = &v.ssh {
        out.push_str(&format!(
            "  ssh      vessel ssh {name}   (or `vessel config-ssh`, then ssh {name})\n  vscode   {url}\n",
            name = v.name,
            url = ssh.vscode_url
        ));
        if let Some(j) = &ssh.jupyter_url {
            // Jupyter listens on the vessel's loopback: the URL works
            // through a forward.
            out.push_str(&format!(
                "  jupyter  {j}\n           (after `vessel jupyter {name}`, a forward over SSH)\n",
                name = v.name
            ));
        }
    }
    out
}

pub fn line(line: &Line) -> String {
    if line.queues.values().all(|q| q.is_empty()) {
        return "Nobody is waiting.\n".into();
    }
    let mut out = String::new();
    for (queue, entries) in &line.queues {
        if entries.is_empty() {
            continue;
        }
        out.push_str(&format!("{queue}:\n"));
        let rows: Vec<Vec<String>> = entries
            .iter()
            .map(|e| {
                vec![
                    format!("  {}", e.place.position),
                    e.name.to_string(),
                    e.owner.clone(),
                    e.gpus.to_string(),
                    when(e.place.since),
                    e.place.reason.clone(),
                ]
            })
            .collect();
        out.push_str(&table(
            &["  #", "NAME", "OWNER", "GPUS", "SINCE", "WHY"],
            &rows,
        ));
    }
    out
}

pub fn fleet(f: &FleetStatus) -> String {
    let rows: Vec<Vec<String>> = f
        .hosts
        .iter()
        .map(|h| {
            let grid: String = h
                .gpus
                .iter()
                .map(|g| if g.is_free() { '·' } else { '■' })
                .collect();
            vec![
                h.name.clone(),
                h.queue.to_string(),
                if h.online {
                    h.state.as_str().to_string()
                } else {
                    "offline".to_string()
                },
                if grid.is_empty() { "-".into() } else { grid },
                format!("{}/{}", h.cores_used, h.cores),
                memory_cell(h.memory_used, h.memory_bytes),
                h.vessels.to_string(),
                h.disk_limit.as_str().to_string(),
            ]
        })
        .collect();
    table(
        &[
            "HOST", "QUEUE", "STATE", "GPUS", "CORES", "MEMORY", "VESSELS", "DISK",
        ],
        &rows,
    )
}

pub fn fleet_queues(f: &FleetStatus) -> String {
    let rows: Vec<Vec<String>> = f
        .queues
        .iter()
        .map(|(name, q)| {
            vec![
                name.to_string(),
                format!("{}/{}", q.hosts_online, q.hosts),
                format!("{}/{}", q.gpus_free, q.gpus),
                format!("{}/{}", q.cores_free, q.cores),
                q.waiting.to_string(),
            ]
        })
        .collect();
    table(
        &["QUEUE", "HOSTS UP", "GPUS FREE", "CORES FREE", "WAITING"],
        &rows,
    )
}

pub fn keys(keys: &[KeyView]) -> String {
    if keys.is_empty() {
        return "No keys. Add one: vessel keys add [~/.ssh/id_ed25519.pub]\n".into();
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            let comment = k.public_key.split_whitespace().nth(2).unwrap_or("");
            vec![
                k.fingerprint.clone(),
                comment.to_string(),
                when(k.created_at),
            ]
        })
        .collect();
    table(&["FINGERPRINT", "COMMENT", "ADDED"], &rows)
}

pub fn me(me: &Me, server: &str) -> String {
    format!(
        "{id} on {server}\n  unix name {unix} (uid {uid}), {n} key(s)\n",
        id = me.id,
        unix = me.unix_name,
        uid = me.uid,
        n = me.keys.len()
    )
}

/// `used/total` memory: nothing reserved reads `0`, not a byte.
fn memory_cell(used: u64, total: u64) -> String {
    let size = |n: u64| {
        if n == 0 {
            "0".to_string()
        } else {
            vessel_api::ByteSize(n).to_string()
        }
    };
    format!("{}/{}", size(used), size(total))
}

#[cfg(test)]
mod memory_tests {
    #[test]
    fn a_host_with_nothing_reserved_shows_zero_used() {
        assert_eq!(crate::render::memory_cell(0, 24_159_191_040), "0/22.5G");
        assert_eq!(crate::render::memory_cell(1 << 30, 2 << 30), "1G/2G");
    }
}
