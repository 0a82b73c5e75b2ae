//! Vessels as messages: the running DM (SSH config, known_hosts, Jupyter,
//! VS Code, Extend / Kill), state changes, lists, keys and help.

use serde_json::Value;

use super::{size, Block, Button, Message};
use crate::commands::{FLEET_USAGE, VESSEL_USAGE};

pub const EXTEND: &str = "vessel.extend";
pub const KILL: &str = "vessel.kill";
pub const KEEP: &str = "vessel.keep";
pub const VSCODE: &str = "vessel.vscode";

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

fn summary(v: &Value) -> String {
    let gpus = v["gpus"].as_i64().unwrap_or(0);
    format!(
        "{} GPU{} · {} CPU{} · {}",
        gpus,
        if gpus == 1 { "" } else { "s" },
        v["cpus"].as_i64().unwrap_or(0),
        if v["cpus"].as_i64() == Some(1) {
            ""
        } else {
            "s"
        },
        if v["memory"].is_string() {
            s(v, "memory").to_string()
        } else {
            size(v["memory_bytes"].as_i64().unwrap_or(0))
        }
    )
}

fn expires(v: &Value) -> String {
    match v["expires_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    {
        Some(t) => t.format("%a %d %b %H:%M UTC").to_string(),
        None => "?".into(),
    }
}

/// The ephemeral answer to a create: it is on its way.
pub fn provisioning(v: &Value) -> Message {
    let text = format!(
        ":hourglass_flowing_sand: Provisioning *{}* on `{}` ({}, queue `{}`). I'll DM you the SSH config when it is ready.",
        s(v, "name"),
        s(v, "host"),
        summary(v),
        s(v, "queue")
    );
    let mut m = Message::says(text);
    m.text = format!("Provisioning {} on {}", s(v, "name"), s(v, "host"));
    m
}

/// The DM a running vessel gets; updated in place as the vessel changes.
pub fn running(v: &Value) -> Message {
    let name = s(v, "name");
    let id = s(v, "id");
    let ssh = &v["ssh"];
    let mut m = Message::new(format!("{name} is running: ssh {name}"))
        .block(Block::Header(format!("🚢 {name} is running")))
        .block(Block::Fields(vec![
            ("Host".into(), format!("`{}`", s(v, "host"))),
            ("Resources".into(), summary(v)),
            ("Address".into(), format!("`{}`", s(ssh, "address"))),
            ("Expires".into(), expires(v)),
        ]))
        .block(Block::Section(
            "Add this to `~/.ssh/config`, then `ssh ".to_string() + name + "`:",
        ))
        .block(Block::Code(s(ssh, "config").trim_end().to_string()))
        .block(Block::Section(
            "And this line to `~/.ssh/known_hosts` (the vessel's own host key — no trust on first use):"
                .into(),
        ))
        .block(Block::Code(s(ssh, "known_hosts").to_string()));
    if let Some(url) = ssh["jupyter_url"].as_str() {
        m = m.block(Block::Section(format!("Jupyter: <{url}|open JupyterLab>")));
    }
    let gpus: Vec<&str> = v["gpu_uuids"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !gpus.is_empty() {
        m = m.block(Block::Context(format!("GPUs: {}", gpus.join(", "))));
    }
    m.block(Block::Actions(vec![
        Button::link("Open in VS Code", VSCODE, s(ssh, "vscode_url")).primary(),
        Button::action("Extend 24h", EXTEND, id),
        Button::action("Kill", KILL, id).danger().confirm(
            "Kill this vessel?",
            &format!("*{name}* will be stopped and removed. Your home directory stays."),
            "Kill",
        ),
    ]))
}

/// What the DM becomes when the vessel stops being usable, or a new DM when
/// it never ran.
pub fn ended(v: &Value) -> Message {
    let name = s(v, "name");
    let reason = v["reason"].as_str().unwrap_or("no reason recorded");
    let (icon, verb) = match s(v, "state") {
        "stopping" => (":hourglass:", "is stopping"),
        "buried" => (":anchor:", "was buried"),
        "failed" => (":x:", "failed"),
        "lost" => (":warning:", "was lost"),
        other => (":grey_question:", other),
    };
    let mut m = Message::new(format!("{name} {verb}: {reason}"))
        .block(Block::Section(format!("{icon} *{name}* {verb}: {reason}")));
    match s(v, "state") {
        "failed" => {
            m = m.block(Block::Context(format!(
                "Nothing is left running and nothing is reserved. Try again with `/vessel create queue={}`, or ask in the admin channel if it keeps failing.",
                s(v, "queue")
            )))
        }
        "buried" | "lost" => {
            m = m.block(Block::Context(format!(
                "Your home directory is kept. Start again with `/vessel create queue={} name={name}`.",
                s(v, "queue")
            )))
        }
        _ => {}
    }
    m
}

pub fn show(v: &Value) -> Message {
    if s(v, "state") == "running" && v["ssh"].is_object() {
        return running(v);
    }
    let name = s(v, "name");
    let mut m = Message::new(format!("{name}: {}", s(v, "state")))
        .block(Block::Section(format!("*{name}* is {}", s(v, "state"))))
        .block(Block::Fields(vec![
            ("Host".into(), format!("`{}`", s(v, "host"))),
            ("Resources".into(), summary(v)),
            ("Queue".into(), format!("`{}`", s(v, "queue"))),
            ("Expires".into(), expires(v)),
        ]));
    if let Some(reason) = v["reason"].as_str() {
        m = m.block(Block::Context(format!("Reason: {reason}")));
    }
    m
}

pub fn list(vessels: &[Value], whose: &str) -> Message {
    if vessels.is_empty() {
        return Message::says(format!(
            "{whose} no live vessels. Start one with `/vessel create queue=…`."
        ));
    }
    let lines: Vec<String> = vessels
        .iter()
        .map(|v| {
            format!(
                "• *{}* — {} on `{}` ({}){}",
                s(v, "name"),
                s(v, "state"),
                s(v, "host"),
                summary(v),
                if s(v, "owner").is_empty() {
                    String::new()
                } else {
                    format!(" — {}", s(v, "owner"))
                }
            )
        })
        .collect();
    Message::new(format!("{} vessels", vessels.len()))
        .block(Block::Section(format!("{whose}:")))
        .block(Block::Section(lines.join("\n")))
}

pub fn keys(keys: &[Value]) -> Message {
    if keys.is_empty() {
        return no_keys();
    }
    let lines: Vec<String> = keys
        .iter()
        .map(|k| {
            let key = s(k, "public_key");
            let short: String = key.chars().take(40).collect();
            format!("• `{}` {short}…", s(k, "fingerprint"))
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
             Options: `gpu=N cpu=N mem=64G image=I name=N for=2d`; anything left out comes from the queue's defaults.\n\
             *Your machines*\n`/vessel list` · `/vessel show NAME` · `/vessel ssh NAME` (the SSH config again) · \
             `/vessel extend NAME [24h]` · `/vessel kill NAME`\n\
             *Your keys*\n`/vessel keys` · `/vessel keys add <public key>` · `/vessel keys remove <fingerprint>`"
                .into(),
        ))
        .block(Block::Context(format!(
            "Usage: `{VESSEL_USAGE}` · Admins: `{FLEET_USAGE}`"
        )))
}
