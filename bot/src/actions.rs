//! What each command and button does, whatever the transport: Slack and the
//! console both call `Bot::command` and `Bot::button` and render the
//! `Message` they get back.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::commands::{
    self, Command, CreateArgs, FleetCommand, VesselCommand, CREATE_USAGE, FLEET_USAGE, VESSEL_USAGE,
};
use crate::config::BotConfig;
use crate::orchestrator::{Actor, ApiFailure, Orchestrator};
use crate::views::{self, fleet, vessel, Message};

pub struct Bot {
    pub orch: Orchestrator,
    pub config: BotConfig,
    admins: HashSet<String>,
}

impl Bot {
    pub fn new(config: BotConfig) -> Result<Self, jsonwebtoken::errors::Error> {
        let admins = config
            .slack
            .as_ref()
            .map(|s| s.admins.iter().cloned().collect())
            .unwrap_or_default();
        Ok(Bot {
            orch: Orchestrator::new(&config)?,
            config,
            admins,
        })
    }

    pub fn is_admin(&self, user: &str) -> bool {
        self.admins.contains(user)
    }

    pub async fn command(&self, actor: &Actor, command: Command) -> Message {
        match command {
            Command::Vessel(c) => self.vessel(actor, c).await,
            Command::Fleet(c) => {
                if !actor.admin {
                    return views::error(
                        "Sorry — `/fleet` is for fleet admins. If something about the fleet needs attention, ask in the admin channel.",
                        None,
                    );
                }
                self.fleet(actor, c).await
            }
        }
    }

    /// The orchestrator's request body for a create.
    pub fn create_body(&self, args: &CreateArgs) -> Result<Value, Message> {
        let Some(queue) = args.queue.clone().or(self.config.default_queue.clone()) else {
            return Err(views::error(
                "which queue? Add `queue=…` (see `/fleet status` or ask an admin for the queues).",
                Some(CREATE_USAGE),
            ));
        };
        let mut body = json!({ "queue": queue });
        if let Some(g) = args.gpus {
            body["gpus"] = json!(g);
        }
        if let Some(c) = args.cpus {
            body["cpus"] = json!(c);
        }
        if let Some(m) = &args.memory {
            body["memory"] = json!(m);
        }
        if let Some(i) = &args.image {
            body["image"] = json!(i);
        }
        if let Some(n) = &args.name {
            body["name"] = json!(n);
        }
        if let Some(l) = &args.lifetime {
            body["lifetime"] = json!(l);
        }
        Ok(body)
    }

    pub async fn create(&self, actor: &Actor, args: &CreateArgs) -> Message {
        let body = match self.create_body(args) {
            Ok(b) => b,
            Err(m) => return m,
        };
        match self.orch.create(actor, body).await {
            Ok(v) => vessel::provisioning(&v),
            Err(e) => create_failure(&e),
        }
    }

    async fn vessel(&self, actor: &Actor, c: VesselCommand) -> Message {
        let result: Result<Message, ApiFailure> = match c {
            VesselCommand::Help => Ok(vessel::help()),
            // Transports that have a form open it before getting here.
            VesselCommand::CreateModal => Ok(views::error(
                "give the options inline here, e.g. `/vessel create queue=3090 gpu=1`",
                Some(CREATE_USAGE),
            )),
            VesselCommand::Create(args) => return self.create(actor, &args).await,
            VesselCommand::List => self.orch.list(actor).await.map(|l| {
                vessel::list(
                    l["vessels"].as_array().map(Vec::as_slice).unwrap_or_default(),
                    "You have",
                )
            }),
            VesselCommand::Show(name) => self.orch.show(actor, &name).await.map(|v| vessel::show(&v)),
            VesselCommand::Ssh(name) => self.orch.show(actor, &name).await.map(|v| {
                if v["ssh"].is_object() {
                    vessel::running(&v)
                } else {
                    views::error(
                        &format!(
                            "`{name}` is {}, so there is nothing to SSH into yet",
                            v["state"].as_str().unwrap_or("?")
                        ),
                        None,
                    )
                }
            }),
            VesselCommand::Extend { name, by } => self
                .orch
                .extend(actor, &name, &by)
                .await
                .map(|v| {
                    Message::says(format!(
                        ":hourglass: *{}* now lives until {}.",
                        v["name"].as_str().unwrap_or(&name),
                        v["expires_at"].as_str().unwrap_or("?")
                    ))
                }),
            VesselCommand::Kill(name) => self.orch.kill(actor, &name).await.map(|v| {
                Message::says(format!(
                    ":wastebasket: Killing *{}*: the container is being removed and its resources freed.",
                    v["name"].as_str().unwrap_or(&name)
                ))
            }),
            VesselCommand::Keys => self.orch.keys(actor).await.map(|k| {
                vessel::keys(k["keys"].as_array().map(Vec::as_slice).unwrap_or_default())
            }),
            VesselCommand::KeysAdd(key) => self.orch.add_key(actor, &key).await.map(|k| {
                Message::says(format!(
                    ":key: Key `{}` {}. New vessels will accept it.",
                    k["fingerprint"].as_str().unwrap_or("?"),
                    if k["added"] == true { "added" } else { "was already registered" }
                ))
            }),
            VesselCommand::KeysRemove(fp) => self.orch.remove_key(actor, &fp).await.map(|_| {
                Message::says(format!(
                    ":key: Key `{fp}` removed. Running vessels keep the keys they started with."
                ))
            }),
        };
        result.unwrap_or_else(|e| failure(&e, VESSEL_USAGE))
    }

    async fn fleet(&self, actor: &Actor, c: FleetCommand) -> Message {
        let result = match c {
            FleetCommand::Help => Ok(views::error("what about the fleet?", Some(FLEET_USAGE))),
            FleetCommand::Status => self.orch.fleet(actor).await.map(|f| fleet::status(&f)),
            FleetCommand::Hosts => self.orch.fleet(actor).await.map(|f| fleet::hosts(&f)),
            FleetCommand::Drain(host) => self.orch.set_host(actor, &host, true).await.map(|_| {
                Message::says(format!(
                    ":construction: `{host}` is draining: no new vessels go there; running ones stay."
                ))
            }),
            FleetCommand::Undrain(host) => self.orch.set_host(actor, &host, false).await.map(|_| {
                Message::says(format!(":white_check_mark: `{host}` takes new vessels again."))
            }),
            FleetCommand::Vessels(user) => self
                .orch
                .list_all(actor, user.as_deref())
                .await
                .map(|l| {
                    vessel::list(
                        l["vessels"].as_array().map(Vec::as_slice).unwrap_or_default(),
                        "Live vessels",
                    )
                }),
            FleetCommand::User {
                user,
                unix_name,
                uid,
            } => self
                .orch
                .set_user(actor, &user, &unix_name, uid)
                .await
                .map(|u| {
                    Message::says(format!(
                        ":bust_in_silhouette: <@{user}> is `{}` (uid {}) on their next vessels.",
                        u["unix_name"].as_str().unwrap_or("?"),
                        u["uid"]
                    ))
                }),
            FleetCommand::Audit(filter) => {
                let (user, target) = match &filter {
                    Some(commands::AuditFilter::User(u)) => (Some(u.as_str()), None),
                    Some(commands::AuditFilter::Vessel(v)) => (None, Some(v.as_str())),
                    None => (None, None),
                };
                self.orch
                    .audit(actor, user, target)
                    .await
                    .map(|a| fleet::audit(a["entries"].as_array().map(Vec::as_slice).unwrap_or_default()))
            }
            FleetCommand::Kill(name) => self.orch.kill(actor, &name).await.map(|v| {
                Message::says(format!(
                    ":wastebasket: Killing *{}* of {}.",
                    v["name"].as_str().unwrap_or(&name),
                    v["owner"].as_str().unwrap_or("?")
                ))
            }),
        };
        result.unwrap_or_else(|e| failure(&e, FLEET_USAGE))
    }

    /// A button pressed on one of our messages.
    pub async fn button(&self, actor: &Actor, action_id: &str, value: &str) -> Option<Message> {
        let result = match action_id {
            vessel::KILL => self.orch.kill(actor, value).await.map(|v| {
                Message::says(format!(
                    ":wastebasket: Killing *{}*…",
                    v["name"].as_str().unwrap_or("the vessel")
                ))
            }),
            vessel::EXTEND => self.orch.extend(actor, value, "24h").await.map(|v| {
                Message::says(format!(
                    ":hourglass: *{}* extended by 24h.",
                    v["name"].as_str().unwrap_or("the vessel")
                ))
            }),
            vessel::KEEP => self
                .orch
                .call(
                    actor,
                    reqwest::Method::POST,
                    &format!("/v1/vessels/{value}/keep"),
                    Some(json!({})),
                )
                .await
                .map(|v| {
                    Message::says(format!(
                        ":ok_hand: Keeping *{}*; it will not be reclaimed for idleness for a while.",
                        v["name"].as_str().unwrap_or("the vessel")
                    ))
                }),
            // Link buttons (VS Code) also report a click; nothing to do.
            _ => return None,
        };
        Some(result.unwrap_or_else(|e| failure(&e, VESSEL_USAGE)))
    }
}

fn create_failure(e: &ApiFailure) -> Message {
    if e.error == "invalid" && e.message.contains("no SSH key") {
        return vessel::no_keys();
    }
    if e.error == "no_capacity" {
        return views::error(
            &format!(
                "{} — try fewer GPUs or another queue, or wait for one to free up.",
                e.message
            ),
            None,
        );
    }
    failure(e, CREATE_USAGE)
}

fn failure(e: &ApiFailure, usage: &'static str) -> Message {
    match e.status {
        404 => views::error(&e.message, None),
        0 | 500.. => views::error(&e.message, None),
        _ => views::error(&e.message, Some(usage)),
    }
}
