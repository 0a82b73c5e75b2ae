//! What each command and button does, whatever the transport: Slack and the
//! console both call `Bot::command` and `Bot::button` and render the
//! `Message` they get back.

use std::collections::HashSet;
use std::sync::Arc;

use vessel_api::users::SetUser;
use vessel_api::vessels::{CreateVessel, VesselView};
use vessel_api::{ErrorCode, QueueName, Span, VesselState};

use crate::clock::{Clock, SystemClock};
use crate::commands::{
    self, Command, FleetCommand, VesselCommand, CREATE_USAGE, FLEET_USAGE, LIMIT_USAGE,
    VESSEL_USAGE,
};
use crate::config::BotConfig;
use crate::orchestrator::{Actor, ApiFailure, Orchestrator};
use crate::views::{self, fleet, line, vessel, Message};

pub struct Bot {
    pub orch: Orchestrator,
    pub config: BotConfig,
    admins: HashSet<String>,
    clock: Arc<dyn Clock>,
}

impl Bot {
    pub fn new(config: BotConfig) -> Result<Self, crate::orchestrator::SetupError> {
        Bot::with_clock(config, Arc::new(SystemClock))
    }

    /// With a clock of the caller's: tests set the time tokens and
    /// messages are stamped with.
    pub fn with_clock(
        config: BotConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, crate::orchestrator::SetupError> {
        let admins = config
            .slack
            .as_ref()
            .map(|s| s.admins.iter().cloned().collect())
            .unwrap_or_default();
        Ok(Bot {
            orch: Orchestrator::new(&config, clock.clone())?,
            config,
            admins,
            clock,
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

    /// The request with the bot's default queue when none was named.
    pub fn with_default_queue(&self, mut request: CreateVessel) -> Result<CreateVessel, Message> {
        if request.queue.is_none() {
            request.queue = self
                .config
                .default_queue
                .as_deref()
                .and_then(|q| QueueName::parse(q).ok());
        }
        if request.queue.is_none() {
            return Err(views::error(
                "which queue? Add `queue=…` (see `/fleet status` or ask an admin for the queues).",
                Some(CREATE_USAGE),
            ));
        }
        Ok(request)
    }

    pub async fn create(&self, actor: &Actor, request: CreateVessel) -> Message {
        let request = match self.with_default_queue(request) {
            Ok(r) => r,
            Err(m) => return m,
        };
        match self.orch.create(actor, &request).await {
            Ok(v) => created(&v),
            Err(e) => create_failure(&e, &request),
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
            VesselCommand::Create(request) => return self.create(actor, request).await,
            VesselCommand::List => self
                .orch
                .list(actor)
                .await
                .map(|l| vessel::list(&l.vessels, "You have")),
            VesselCommand::Queue => self
                .orch
                .list(actor)
                .await
                .map(|l| line::mine(&l.vessels, self.clock.now())),
            VesselCommand::Show(name) => self.orch.show(actor, &name).await.map(|v| vessel::show(&v)),
            VesselCommand::Ssh(name) => self.orch.show(actor, &name).await.map(|v| {
                if v.ssh.is_some() {
                    vessel::running(&v)
                } else {
                    views::error(
                        &format!(
                            "`{name}` is {}, so there is nothing to SSH into yet",
                            v.state
                        ),
                        None,
                    )
                }
            }),
            VesselCommand::Extend { name, by } => {
                self.orch.extend(actor, &name, by).await.map(|v| {
                    Message::says(format!(
                        ":hourglass: *{}* now lives until {}.",
                        v.name,
                        vessel::when(v.expires_at)
                    ))
                })
            }
            VesselCommand::Hibernate(name) => self.orch.hibernate(actor, &name).await.map(|v| {
                Message::says(format!(
                    ":zzz: Hibernating *{}*. {}",
                    v.name,
                    vessel::HIBERNATE_ENDS
                ))
            }),
            VesselCommand::Wake { name, anywhere } => self
                .orch
                .wake(actor, &name, anywhere)
                .await
                .map(|v| woken(&v)),
            VesselCommand::Kill(name) => self.orch.kill(actor, &name).await.map(|v| {
                Message::says(format!(
                    ":wastebasket: Killing *{}*: the container is being removed and its resources freed.",
                    v.name
                ))
            }),
            VesselCommand::Keys => self.orch.keys(actor).await.map(|k| vessel::keys(&k.keys)),
            VesselCommand::KeysAdd(key) => self.orch.add_key(actor, &key).await.map(|k| {
                Message::says(format!(
                    ":key: Key `{}` {}. New vessels will accept it.",
                    k.fingerprint,
                    if k.added { "added" } else { "was already registered" }
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
            FleetCommand::Queue => self
                .orch
                .line(actor)
                .await
                .map(|l| line::fleet(&l, self.clock.now())),
            FleetCommand::Limit {
                user,
                queue,
                limits,
            } => {
                return self
                    .orch
                    .set_limits(actor, &user, queue.as_str(), &limits)
                    .await
                    .map(|l| line::limits(&l))
                    .unwrap_or_else(|e| failure(&e, LIMIT_USAGE))
            }
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
                .map(|l| vessel::list(&l.vessels, "Live vessels")),
            FleetCommand::User {
                user,
                unix_name,
                uid,
            } => self
                .orch
                .set_user(actor, &user, &SetUser { unix_name, uid })
                .await
                .map(|u| {
                    Message::says(format!(
                        ":bust_in_silhouette: <@{user}> is `{}` (uid {}) on their next vessels.",
                        u.unix_name, u.uid
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
                    .map(|a| fleet::audit(&a.entries))
            }
            FleetCommand::Kill(name) => self.orch.kill(actor, &name).await.map(|v| {
                Message::says(format!(":wastebasket: Killing *{}* of {}.", v.name, v.owner))
            }),
        };
        result.unwrap_or_else(|e| failure(&e, FLEET_USAGE))
    }

    /// A button pressed on one of our messages.
    pub async fn button(&self, actor: &Actor, action_id: &str, value: &str) -> Option<Message> {
        let result = match action_id {
            vessel::KILL => self
                .orch
                .kill(actor, value)
                .await
                .map(|v| Message::says(format!(":wastebasket: Killing *{}*…", v.name))),
            vessel::EXTEND => self
                .orch
                .extend(actor, value, Span::from_secs(24 * 3600))
                .await
                .map(|v| Message::says(format!(":hourglass: *{}* extended by 24h.", v.name))),
            vessel::HIBERNATE => self.orch.hibernate(actor, value).await.map(|v| {
                Message::says(format!(
                    ":zzz: Hibernating *{}*. {}",
                    v.name,
                    vessel::HIBERNATE_ENDS
                ))
            }),
            vessel::WAKE => self.orch.wake(actor, value, false).await.map(|v| woken(&v)),
            vessel::KEEP => self.orch.keep(actor, value).await.map(|v| {
                Message::says(format!(
                    ":ok_hand: Keeping *{}*; it will not be reclaimed for idleness for a while.",
                    v.name
                ))
            }),
            // Leaving the line is the waiting vessel's kill; the waiting DM
            // is edited when the orchestrator says it ended.
            line::CANCEL => self.orch.kill(actor, value).await.map(|v| {
                Message::says(format!(
                    ":wastebasket: Cancelling *{}*{}: it leaves the line.",
                    v.name,
                    if v.owner_id == actor.subject {
                        String::new()
                    } else {
                        format!(" of {}", v.owner)
                    }
                ))
            }),
            line::FRONT => self.orch.to_front(actor, value).await.map(|v| {
                Message::says(format!(
                    ":arrow_up: *{}* of {} is now {} in line for `{}`.",
                    v.name,
                    v.owner,
                    v.line
                        .as_ref()
                        .map(|p| format!("#{}", p.position))
                        .unwrap_or_else(|| "first".into()),
                    v.queue
                ))
            }),
            // Link buttons (VS Code) also report a click; nothing to do.
            _ => return None,
        };
        Some(result.unwrap_or_else(|e| failure(&e, VESSEL_USAGE)))
    }
}

/// The answer to a wake: waiting for its host, or starting.
fn woken(v: &VesselView) -> Message {
    match (&v.state, &v.line) {
        (VesselState::Pending, Some(p)) => Message::says(format!(
            ":alarm_clock: Waking *{}*: #{} in line — {}. Its DM is updated when it runs.",
            v.name, p.position, p.reason
        )),
        _ => Message::says(format!(
            ":alarm_clock: Waking *{}* on `{}`; its DM is updated when it is ready.",
            v.name,
            v.host.as_deref().unwrap_or("its host")
        )),
    }
}

/// The answer to a create the orchestrator took: on its way, or waiting.
pub fn created(v: &VesselView) -> Message {
    if v.state == VesselState::Pending {
        line::queued(v)
    } else {
        vessel::provisioning(v)
    }
}

fn create_failure(e: &ApiFailure, request: &CreateVessel) -> Message {
    if e.code() == Some(ErrorCode::Invalid) && e.to_string().contains("no SSH key") {
        return vessel::no_keys();
    }
    if e.code() == Some(ErrorCode::NoCapacity) && request.wait == Some(false) {
        return views::error(
            &format!(
                "{e} — try fewer GPUs or another queue, or leave out `--no-wait` to wait in line."
            ),
            None,
        );
    }
    if e.code() == Some(ErrorCode::NoCapacity) {
        return views::error(&e.to_string(), None);
    }
    if e.code() == Some(ErrorCode::TooManyWaiting) {
        return views::error(
            &format!("{e} — see them with `/vessel queue`; cancel one to line up another."),
            None,
        );
    }
    failure(e, CREATE_USAGE)
}

/// A refusal shows the usage line when the words were the problem; a missing
/// vessel or an orchestrator that is down does not.
fn failure(e: &ApiFailure, usage: &'static str) -> Message {
    let message = match e {
        ApiFailure::Api { .. } => e.to_string(),
        other => format!("{other}; try again in a minute"),
    };
    if e.is_server_side() || e.code() == Some(ErrorCode::NotFound) {
        views::error(&message, None)
    } else {
        views::error(&message, Some(usage))
    }
}
