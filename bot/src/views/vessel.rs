//! Vessels as messages: the running DM (SSH config, known_hosts, Jupyter,
//! VS Code, Extend / Kill), state changes, lists, keys and help.

use chrono::{DateTime, Utc};
use vessel_api::users::KeyView;
use vessel_api::vessels::VesselView;
use vessel_api::VesselState;

use super::{Block, Button, Message};
use crate::commands::{FLEET_USAGE, VESSEL_USAGE};

pub const EXTEND: &str = "vessel.extend";
pub const KILL: &str = "vessel.kill";
pub const KEEP: &str = "vessel.keep";
pub const HIBERNATE: &str = "vessel.hibernate";
pub const WAKE: &str = "vessel.wake";

/// What hibernating means, wherever it is offered.
pub const HIBERNATE_ENDS: &str =
    "Its running processes end; every file (not only your home), its address and its host key are kept.";

/// A vessel on its way to sleep: nothing to press until it sleeps.
pub fn hibernating(v: &VesselView) -> Message {
    let name = v.name.as_str();
    let host = v.host.as_deref().unwrap_or("its host");
    Message::new(format!("{name} is going to sleep on {host}")).block(Block::Section(format!(
        ":zzz: *{name}* is going to sleep on `{host}`: its processes are ending. Its files are kept; you can wake it once it is hibernated."
    )))
}

/// A vessel put to sleep, as its DM says it: what is kept, and Wake / Kill.
pub fn hibernated(v: &VesselView) -> Message {
    let name = v.name.as_str();
    let host = v.host.as_deref().unwrap_or("its host");
    let id = v.id.to_string();
    let why = v
        .reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    Message::new(format!("{name} is hibernated on {host}"))
        .block(Block::Section(format!(
            ":zzz: *{name}* is hibernated on `{host}`{why}. Its GPUs, cores and memory went back to the line;              every file, its address and its host key are kept, so your SSH config still works once it wakes."
        )))
        .block(Block::Actions(vec![
            Button::action("Wake", WAKE, &id).primary(),
            Button::action("Kill", KILL, &id).danger().confirm(
                "Kill it?",
                &format!("{name} and every file outside your home will be removed."),
                "Kill",
            ),
        ]))
}
pub const VSCODE: &str = "vessel.vscode";

fn summary(v: &VesselView) -> String {
    format!(
        "{} GPU{} · {} CPU{} · {}",
        v.gpus,
        if v.gpus == 1 { "" } else { "s" },
        v.cpus,
        if v.cpus == 1 { "" } else { "s" },
        v.memory
    )
}

/// A time as the DMs show it.
pub fn when(t: DateTime<Utc>) -> String {
    t.format("%a %d %b %H:%M UTC").to_string()
}

fn host(v: &VesselView) -> &str {
    v.host.as_deref().unwrap_or("")
}

/// The ephemeral answer to a create: it is on its way.
pub fn provisioning(v: &VesselView) -> Message {
    let text = format!(
        ":hourglass_flowing_sand: Provisioning *{}* on `{}` ({}, queue `{}`). I'll DM you the SSH config when it is ready.",
        v.name,
        host(v),
        summary(v),
        v.queue
    );
    let mut m = Message::says(text);
    m.text = format!("Provisioning {} on {}", v.name, host(v));
    m
}

/// The DM a running vessel gets; updated in place as the vessel changes.
/// Without SSH access (not the owner's view) it is the plain summary.
pub fn running(v: &VesselView) -> Message {
    let Some(ssh) = &v.ssh else {
        return show_summary(v);
    };
    let name = v.name.as_str();
    let id = v.id.to_string();
    let mut m = Message::new(format!("{name} is running: ssh {name}"))
        .block(Block::Header(format!("🚢 {name} is running")))
        .block(Block::Fields(vec![
            ("Host".into(), format!("`{}`", host(v))),
            ("Resources".into(), summary(v)),
            ("Address".into(), format!("`{}`", ssh.address)),
            ("Expires".into(), when(v.expires_at)),
        ]))
        .block(Block::Section(
            "Add this to `~/.ssh/config`, then `ssh ".to_string() + name + "`:",
        ))
        .block(Block::Code(ssh.config.trim_end().to_string()))
        .block(Block::Section(
            "And this line to `~/.ssh/known_hosts` (the vessel's own host key — no trust on first use):"
                .into(),
        ))
        .block(Block::Code(ssh.known_hosts.clone()));
    if let Some(url) = &ssh.jupyter_url {
        // Jupyter listens on the vessel's loopback: reached through SSH.
        let port = url
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or("8888");
        m = m.block(Block::Section(format!(
            "Jupyter listens on the vessel's loopback: run `vessel jupyter {name}` (or `ssh -N -L {port}:127.0.0.1:{port} {name}`), then <{url}|open JupyterLab>"
        )));
    }
    if !v.gpu_uuids.is_empty() {
        m = m.block(Block::Context(format!("GPUs: {}", v.gpu_uuids.join(", "))));
    }
    m.block(Block::Actions(vec![
        Button::link("Open in VS Code", VSCODE, &ssh.vscode_url).primary(),
        Button::action("Extend 24h", EXTEND, &id),
        Button::action("Hibernate", HIBERNATE, &id).confirm(
            "Hibernate it?",
            HIBERNATE_ENDS,
            "Hibernate",
        ),
        Button::action("Kill", KILL, &id).danger().confirm(
            "Kill this vessel?",
            &format!("*{name}* will be stopped and removed. Your home directory stays."),
            "Kill",
        ),
    ]))
}

/// What the DM becomes when the vessel stops being usable, or a new DM when
/// it never ran.
pub fn ended(v: &VesselView) -> Message {
    let name = v.name.as_str();
    let reason = v.reason.as_deref().unwrap_or("no reason recorded");
    let (icon, verb) = match v.state {
        VesselState::Stopping => (":hourglass:", "is stopping"),
        VesselState::Buried => (":anchor:", "was buried"),
        VesselState::Failed => (":x:", "failed"),
        VesselState::Lost => (":warning:", "was lost"),
        VesselState::Expired => (":hourglass:", "expired waiting in line"),
        other => (":grey_question:", other.as_str()),
    };
    let mut m = Message::new(format!("{name} {verb}: {reason}"))
        .block(Block::Section(format!("{icon} *{name}* {verb}: {reason}")));
    match v.state {
        VesselState::Failed => {
            m = m.block(Block::Context(format!(
                "Nothing is left running and nothing is reserved. Try again with `/vessel create queue={}`, or ask in the admin channel if it keeps failing.",
                v.queue
            )))
        }
        VesselState::Buried | VesselState::Lost => {
            m = m.block(Block::Context(format!(
                "Your home directory is kept. Start again with `/vessel create queue={} name={name}`.",
                v.queue
            )))
        }
        _ => {}
    }
    m
}

pub fn show(v: &VesselView) -> Message {
    if v.state == VesselState::Running && v.ssh.is_some() {
        return running(v);
    }
    show_summary(v)
}

fn show_summary(v: &VesselView) -> Message {
    let name = v.name.as_str();
    let mut m = Message::new(format!("{name}: {}", v.state))
        .block(Block::Section(format!("*{name}* is {}", v.state)))
        .block(Block::Fields(vec![
            ("Host".into(), format!("`{}`", host(v))),
            ("Resources".into(), summary(v)),
            ("Queue".into(), format!("`{}`", v.queue)),
            ("Expires".into(), when(v.expires_at)),
        ]));
    if let Some(reason) = &v.reason {
        m = m.block(Block::Context(format!("Reason: {reason}")));
    }
    m
}

pub fn list(vessels: &[VesselView], whose: &str) -> Message {
    if vessels.is_empty() {
        return Message::says(format!(
            "{whose} no live vessels. Start one with `/vessel create queue=…`."
        ));
    }
    let lines: Vec<String> = vessels
        .iter()
        .map(|v| {
            let whereabouts = match (&v.line, v.host.as_deref()) {
                (Some(p), _) => format!(
                    "waiting, #{} of {} in line for `{}`",
                    p.position, p.of, v.queue
                ),
                (None, Some(host)) => format!("{} on `{host}`", v.state),
                (None, None) => format!("{} in `{}`", v.state, v.queue),
            };
            format!(
                "• *{}* — {whereabouts} ({}){}",
                v.name,
                summary(v),
                if v.owner.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", v.owner)
                }
            )
        })
        .collect();
    Message::new(format!("{} vessels", vessels.len()))
        .block(Block::Section(format!("{whose}:")))
        .block(Block::Section(lines.join("\n")))
}

pub fn keys(keys: &[KeyView]) -> Message {
    if keys.is_empty() {
        return no_keys();
    }
    let lines: Vec<String> = keys
        .iter()
        .map(|k| {
            let short: String = k.public_key.chars().take(40).collect();
            format!("• `{}` {short}…", k.fingerprint)
        })
        .collect();
    Message::new(format!("{} SSH keys", keys.len()))
        .block(Block::Section("Your SSH keys:".into()))
        .block(Block::Section(lines.join("\n")))
        .block(Block::Context(
            "Remove one with `/vessel keys remove <fingerprint>`.".into(),
        ))
}

pub fn no_keys() -> Message {
    Message::new("You have no SSH key registered yet.")
        .block(Block::Section(
            ":key: You have no SSH key registered yet. Add your *public* key, then create again:"
                .into(),
        ))
        .block(Block::Code(
            "/vessel keys add ssh-ed25519 AAAA… you@laptop".into(),
        ))
        .block(Block::Context(
            "Print it with `cat ~/.ssh/id_ed25519.pub` (or make one: `ssh-keygen -t ed25519`)."
                .into(),
        ))
}

pub fn help() -> Message {
    Message::new("Vessel: GPU machines from Slack")
        .block(Block::Header("Vessel: GPU machines from Slack".into()))
        .block(Block::Section(
            "*Get a machine*\n`/vessel create gpu=2 queue=3090` — or `/vessel create` alone for a form. \
             Options: `gpu=N cpu=N mem=64G image=I name=N for=2d`; anything left out comes from the queue's defaults. \
             When nothing fits, it waits in line and a DM keeps your place; add `--no-wait` to be told at once instead.\n\
             *Your machines*\n`/vessel list` · `/vessel queue` (what waits in line) · `/vessel show NAME` · `/vessel ssh NAME` (the SSH config again) · \
             `/vessel extend NAME [24h]` · `/vessel kill NAME` (also leaves the line)\n\
             *Your keys*\n`/vessel keys` · `/vessel keys add <public key>` · `/vessel keys remove <fingerprint>`"
                .into(),
        ))
        .block(Block::Context(format!(
            "Usage: `{VESSEL_USAGE}` · Admins: `{FLEET_USAGE}`"
        )))
}
