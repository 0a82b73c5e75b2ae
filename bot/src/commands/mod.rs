//! `/vessel …` and `/fleet …` text parsed into typed commands, once. The
//! parser is strict (unknown options are errors, with a suggestion) and kind
//! (every error names the problem and carries the usage line). The create
//! options are the contract's grammar (`vessel_api::grammar`), shared with
//! the CLI.

use vessel_api::grammar::{self, suggest};
use vessel_api::line::SetLimits;
use vessel_api::vessels::CreateVessel;
use vessel_api::{QueueName, Span, UnixName};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Vessel(VesselCommand),
    Fleet(FleetCommand),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VesselCommand {
    /// `/vessel create` with no options opens the modal instead.
    CreateModal,
    Create(CreateVessel),
    List,
    Show(String),
    Ssh(String),
    Extend {
        name: String,
        by: Span,
    },
    Kill(String),
    /// Its processes end; files, address and host key are kept.
    Hibernate(String),
    /// Back in line for the host its disk is on (or, `anywhere`, another
    /// host when that one is full).
    Wake {
        name: String,
        anywhere: bool,
    },
    Keys,
    KeysAdd(String),
    KeysRemove(String),
    /// My requests waiting in line.
    Queue,
    Help,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetCommand {
    Status,
    Hosts,
    Drain(String),
    Undrain(String),
    /// Optionally one user's (a Slack user id).
    Vessels(Option<String>),
    Kill(String),
    /// The audit log, of a user (a Slack user id) or a vessel.
    Audit(Option<AuditFilter>),
    /// Set a researcher's unix name (and uid).
    User {
        user: String,
        unix_name: UnixName,
        uid: Option<i32>,
    },
    /// The whole waiting line, per queue.
    Queue,
    /// Set (or clear) one researcher's limits in a queue.
    Limit {
        user: String,
        queue: QueueName,
        limits: SetLimits,
    },
    Help,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditFilter {
    User(String),
    Vessel(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub message: String,
    pub usage: &'static str,
}

pub const VESSEL_USAGE: &str = "/vessel create [gpu=N] [queue=Q] [cpu=N] [mem=64G] [image=I] [name=N] [for=2d] [--no-wait] · list · queue · show NAME · ssh NAME · extend NAME [24h] · hibernate NAME · wake NAME [anywhere] · kill NAME · keys [add KEY | remove FINGERPRINT] · help";
pub const CREATE_USAGE: &str =
    "/vessel create [gpu=N] [queue=Q] [cpu=N] [mem=64G] [image=I] [name=N] [for=2d] [--no-wait]";
pub const FLEET_USAGE: &str =
    "/fleet status · hosts · queue · drain HOST · undrain HOST · vessels [@user] · kill VESSEL · audit [@user|VESSEL] · user @user NAME [UID] · limit @user queue=Q [gpus=N|none] [vessels=N|none]";
pub const LIMIT_USAGE: &str = "/fleet limit @user queue=Q [gpus=N|none] [vessels=N|none]";

const VESSEL_VERBS: &[&str] = &[
    "create",
    "list",
    "queue",
    "show",
    "ssh",
    "extend",
    "hibernate",
    "wake",
    "kill",
    "keys",
    "help",
];
const FLEET_VERBS: &[&str] = &[
    "status", "hosts", "queue", "drain", "undrain", "vessels", "kill", "audit", "user", "limit",
    "help",
];

fn err(message: impl Into<String>, usage: &'static str) -> ParseError {
    ParseError {
        message: message.into(),
        usage,
    }
}

/// `command` is the slash command (`/vessel`, `/fleet`; the slash optional),
/// `text` what followed it.
pub fn parse(command: &str, text: &str) -> Result<Command, ParseError> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match command.trim().trim_start_matches('/') {
        "vessel" => parse_vessel(&words).map(Command::Vessel),
        "fleet" => parse_fleet(&words).map(Command::Fleet),
        other => Err(err(
            format!("unknown command `/{other}`; try /vessel help"),
            VESSEL_USAGE,
        )),
    }
}

fn one_name(words: &[&str], what: &str, usage: &'static str) -> Result<String, ParseError> {
    match words {
        [name] => Ok(name.to_string()),
        [] => Err(err(format!("which {what}?"), usage)),
        _ => Err(err(format!("give one {what}, not {}", words.len()), usage)),
    }
}

fn parse_vessel(words: &[&str]) -> Result<VesselCommand, ParseError> {
    let Some((verb, rest)) = words.split_first() else {
        return Ok(VesselCommand::Help);
    };
    match verb.to_ascii_lowercase().as_str() {
        "create" | "new" if rest.is_empty() => Ok(VesselCommand::CreateModal),
        "create" | "new" => parse_create(rest).map(VesselCommand::Create),
        "list" | "ls" if rest.is_empty() => Ok(VesselCommand::List),
        "list" | "ls" => Err(err("`list` takes no options", VESSEL_USAGE)),
        "queue" | "line" if rest.is_empty() => Ok(VesselCommand::Queue),
        "queue" | "line" => Err(err("`queue` takes no options", VESSEL_USAGE)),
        "show" => one_name(rest, "vessel", "/vessel show NAME").map(VesselCommand::Show),
        "ssh" => one_name(rest, "vessel", "/vessel ssh NAME").map(VesselCommand::Ssh),
        "kill" => one_name(rest, "vessel", "/vessel kill NAME").map(VesselCommand::Kill),
        "hibernate" | "sleep" => {
            one_name(rest, "vessel", "/vessel hibernate NAME").map(VesselCommand::Hibernate)
        }
        "wake" => match rest {
            [name] => Ok(VesselCommand::Wake {
                name: name.to_string(),
                anywhere: false,
            }),
            [name, "anywhere" | "--anywhere"] => Ok(VesselCommand::Wake {
                name: name.to_string(),
                anywhere: true,
            }),
            [] => Err(err("which vessel?", "/vessel wake NAME [anywhere]")),
            _ => Err(err(
                "`wake` takes a vessel's name and, optionally, `anywhere`",
                "/vessel wake NAME [anywhere]",
            )),
        },
        "extend" => match rest {
            [name] => Ok(VesselCommand::Extend {
                name: name.to_string(),
                by: Span::from_secs(24 * 3600),
            }),
            [name, by] => Ok(VesselCommand::Extend {
                name: name.to_string(),
                by: grammar::parse_span(by).map_err(|e| err(e.0, "/vessel extend NAME [24h]"))?,
            }),
            _ => Err(err(
                "which vessel, and for how long?",
                "/vessel extend NAME [24h]",
            )),
        },
        "keys" | "key" => match rest {
            [] => Ok(VesselCommand::Keys),
            ["add", key @ ..] if !key.is_empty() => Ok(VesselCommand::KeysAdd(key.join(" "))),
            ["remove" | "rm", fp] => Ok(VesselCommand::KeysRemove(fp.to_string())),
            _ => Err(err(
                "use `keys`, `keys add <public key>` or `keys remove <fingerprint>`",
                "/vessel keys [add KEY | remove FINGERPRINT]",
            )),
        },
        "help" => Ok(VesselCommand::Help),
        other => Err(err(
            match suggest(other, VESSEL_VERBS) {
                Some(s) => format!("unknown command `{other}` — did you mean `{s}`?"),
                None => format!("unknown command `{other}`"),
            },
            VESSEL_USAGE,
        )),
    }
}

fn parse_create(words: &[&str]) -> Result<CreateVessel, ParseError> {
    grammar::parse_create(words.iter().copied()).map_err(|e| err(e.0, CREATE_USAGE))
}

fn parse_fleet(words: &[&str]) -> Result<FleetCommand, ParseError> {
    let Some((verb, rest)) = words.split_first() else {
        return Ok(FleetCommand::Help);
    };
    match verb.to_ascii_lowercase().as_str() {
        "status" if rest.is_empty() => Ok(FleetCommand::Status),
        "hosts" if rest.is_empty() => Ok(FleetCommand::Hosts),
        "queue" | "line" if rest.is_empty() => Ok(FleetCommand::Queue),
        "limit" | "limits" => parse_limit(rest),
        "drain" => one_name(rest, "host", "/fleet drain HOST").map(FleetCommand::Drain),
        "undrain" => one_name(rest, "host", "/fleet undrain HOST").map(FleetCommand::Undrain),
        "kill" => one_name(rest, "vessel", "/fleet kill VESSEL").map(FleetCommand::Kill),
        "vessels" => match rest {
            [] => Ok(FleetCommand::Vessels(None)),
            [user] => Ok(FleetCommand::Vessels(Some(user_id(user).ok_or_else(
                || {
                    err(
                        format!("`{user}` is not a user: mention them, like @alice"),
                        "/fleet vessels [@user]",
                    )
                },
            )?))),
            _ => Err(err("one user at most", "/fleet vessels [@user]")),
        },
        "user" => {
            let usage = "/fleet user @user NAME [UID]";
            let (who, name, uid) = match rest {
                [who, name] => (who, name, None),
                [who, name, uid] => (who, name, Some(*uid)),
                _ => return Err(err("whose identity, and what name?", usage)),
            };
            let user = user_id(who).ok_or_else(|| err(format!("`{who}` is not a user"), usage))?;
            let unix_name = UnixName::parse(name).map_err(|e| err(e.to_string(), usage))?;
            let uid = uid
                .map(|u| {
                    u.parse::<i32>()
                        .map_err(|_| err(format!("`{u}` is not a uid"), usage))
                })
                .transpose()?;
            Ok(FleetCommand::User {
                user,
                unix_name,
                uid,
            })
        }
        "audit" => match rest {
            [] => Ok(FleetCommand::Audit(None)),
            [who] if who.starts_with("<@") => Ok(FleetCommand::Audit(Some(AuditFilter::User(
                user_id(who).ok_or_else(|| {
                    err(
                        format!("`{who}` is not a user"),
                        "/fleet audit [@user|VESSEL]",
                    )
                })?,
            )))),
            [vessel] => Ok(FleetCommand::Audit(Some(AuditFilter::Vessel(
                vessel.to_string(),
            )))),
            _ => Err(err(
                "one user or vessel at most",
                "/fleet audit [@user|VESSEL]",
            )),
        },
        "help" => Ok(FleetCommand::Help),
        "status" | "hosts" | "queue" | "line" => {
            Err(err(format!("`{verb}` takes no options"), FLEET_USAGE))
        }
        other => Err(err(
            match suggest(other, FLEET_VERBS) {
                Some(s) => format!("unknown command `{other}` — did you mean `{s}`?"),
                None => format!("unknown command `{other}`"),
            },
            FLEET_USAGE,
        )),
    }
}

/// `limit @user queue=Q [gpus=N|none] [vessels=N|none]`. The request sets
/// both limits at once (the contract's PUT): one left out, or `none`, falls
/// back to the queue's own limit, so `limit @user queue=Q` alone clears the
/// override.
fn parse_limit(words: &[&str]) -> Result<FleetCommand, ParseError> {
    let usage = LIMIT_USAGE;
    let Some((who, options)) = words.split_first() else {
        return Err(err("whose limits?", usage));
    };
    let user = user_id(who).ok_or_else(|| {
        err(
            format!("`{who}` is not a user: mention them, like @alice"),
            usage,
        )
    })?;
    let mut queue = None;
    let mut limits = SetLimits::default();
    let mut seen = Vec::new();
    for word in options {
        let Some((key, value)) = word.split_once('=') else {
            return Err(err(
                format!("`{word}` is not an option: write key=value, like gpus=4"),
                usage,
            ));
        };
        let key_lc = key.to_ascii_lowercase();
        if seen.contains(&key_lc) {
            return Err(err(format!("`{key}` is given twice"), usage));
        }
        seen.push(key_lc.clone());
        let limit = |value: &str| -> Result<Option<u32>, ParseError> {
            match value.to_ascii_lowercase().as_str() {
                "none" | "default" => Ok(None),
                v => match v.parse::<u32>() {
                    Ok(n) if n <= 1024 => Ok(Some(n)),
                    _ => Err(err(
                        format!("`{key}` must be a whole number or `none`, not `{value}`"),
                        usage,
                    )),
                },
            }
        };
        match key_lc.as_str() {
            "queue" => {
                queue = Some(QueueName::parse(value).map_err(|e| err(e.to_string(), usage))?)
            }
            "gpus" | "gpu" => limits.max_gpus = limit(value)?,
            "vessels" | "vessel" => limits.max_vessels = limit(value)?,
            other => {
                return Err(err(
                    match suggest(other, &["queue", "gpus", "vessels"]) {
                        Some(s) => format!("unknown option `{key}` — did you mean `{s}`?"),
                        None => format!("unknown option `{key}`; options are queue, gpus, vessels"),
                    },
                    usage,
                ))
            }
        }
    }
    let queue = queue.ok_or_else(|| err("in which queue? add `queue=…`", usage))?;
    Ok(FleetCommand::Limit {
        user,
        queue,
        limits,
    })
}

/// A Slack mention (`<@U123|alice>` or `<@U123>`) or a bare user id.
fn user_id(word: &str) -> Option<String> {
    let inner = word
        .strip_prefix("<@")
        .and_then(|w| w.strip_suffix('>'))
        .map(|w| w.split('|').next().unwrap_or(w))
        .unwrap_or(word);
    let ok = !inner.is_empty()
        && inner.len() <= 64
        && inner
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ':' || c == '-' || c == '_' || c == '.');
    ok.then(|| inner.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn create_reads_every_option() {
        let c = parse(
            "/vessel",
            "create gpu=2 queue=3090 cpu=8 mem=64G image=vessel/cuda12:latest name=train for=2d",
        )
        .unwrap();
        let expected = vessel_api::grammar::parse_create(
            "gpu=2 queue=3090 cpu=8 mem=64G image=vessel/cuda12:latest name=train for=2d"
                .split_whitespace(),
        )
        .unwrap();
        assert_eq!(c, Command::Vessel(VesselCommand::Create(expected)));
        assert_eq!(
            parse("/vessel", "create").unwrap(),
            Command::Vessel(VesselCommand::CreateModal)
        );
    }

    #[test]
    fn typos_get_a_suggestion_and_the_usage() {
        let e = parse("/vessel", "create gpus=2").unwrap_err();
        assert_eq!(e.message, "unknown option `gpus` — did you mean `gpu`?");
        assert_eq!(e.usage, CREATE_USAGE);
        let e = parse("/vessel", "craete gpu=1").unwrap_err();
        assert!(e.message.contains("did you mean `create`"), "{}", e.message);
        let e = parse("/fleet", "drian gpu-1").unwrap_err();
        assert!(e.message.contains("did you mean `drain`"), "{}", e.message);
    }

    #[test]
    fn values_are_checked() {
        for bad in [
            "create gpu=two",
            "create mem=lots",
            "create for=3y",
            "create gpu=2 gpu=3",
            "create gpu",
            "create cpu=0",
        ] {
            assert!(parse("/vessel", bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse("/vessel", "extend train 36h").unwrap(),
            Command::Vessel(VesselCommand::Extend {
                name: "train".into(),
                by: Span::parse("36h").unwrap()
            })
        );
    }

    #[test]
    fn hibernate_and_wake_name_one_vessel() {
        assert_eq!(
            parse("/vessel", "hibernate train").unwrap(),
            Command::Vessel(VesselCommand::Hibernate("train".into()))
        );
        assert_eq!(
            parse("/vessel", "wake train").unwrap(),
            Command::Vessel(VesselCommand::Wake {
                name: "train".into(),
                anywhere: false
            })
        );
        assert_eq!(
            parse("/vessel", "wake train anywhere").unwrap(),
            Command::Vessel(VesselCommand::Wake {
                name: "train".into(),
                anywhere: true
            })
        );
        assert!(parse("/vessel", "wake train somewhere").is_err());
        assert!(parse("/vessel", "wake").is_err());
        let e = parse("/vessel", "hibernat train").unwrap_err();
        assert!(
            e.message.contains("did you mean `hibernate`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn fleet_commands_and_mentions() {
        assert_eq!(
            parse("/fleet", "vessels <@U024BE7LH|alice>").unwrap(),
            Command::Fleet(FleetCommand::Vessels(Some("U024BE7LH".into())))
        );
        assert_eq!(
            parse("/fleet", "drain gpu-07").unwrap(),
            Command::Fleet(FleetCommand::Drain("gpu-07".into()))
        );
    }

    #[test]
    fn create_without_waiting_and_the_line_commands() {
        let Command::Vessel(VesselCommand::Create(c)) =
            parse("/vessel", "create gpu=4 queue=3090 --no-wait").unwrap()
        else {
            panic!("not a create");
        };
        assert_eq!(c.wait, Some(false));
        assert!(CREATE_USAGE.contains("--no-wait") && VESSEL_USAGE.contains("--no-wait"));
        let e = parse("/vessel", "create gpu=4 --nowait").unwrap_err();
        assert!(
            e.message.contains("did you mean `--no-wait`"),
            "{}",
            e.message
        );
        assert_eq!(e.usage, CREATE_USAGE);
        assert_eq!(
            parse("/vessel", "queue").unwrap(),
            Command::Vessel(VesselCommand::Queue)
        );
        assert_eq!(
            parse("/fleet", "queue").unwrap(),
            Command::Fleet(FleetCommand::Queue)
        );
        assert!(parse("/fleet", "queue 3090").is_err());
    }

    #[test]
    fn limits_are_read_with_none_falling_back_to_the_queue() {
        assert_eq!(
            parse(
                "/fleet",
                "limit <@U024BE7LH|alice> queue=3090 gpus=4 vessels=2"
            )
            .unwrap(),
            Command::Fleet(FleetCommand::Limit {
                user: "U024BE7LH".into(),
                queue: QueueName::parse("3090").unwrap(),
                limits: SetLimits {
                    max_gpus: Some(4),
                    max_vessels: Some(2)
                },
            })
        );
        let Command::Fleet(FleetCommand::Limit { limits, .. }) =
            parse("/fleet", "limit <@U1> queue=3090 gpus=none").unwrap()
        else {
            panic!("not a limit");
        };
        assert_eq!(limits, SetLimits::default());
        for (bad, says) in [
            ("limit", "whose"),
            ("limit <@U1> gpus=4", "which queue"),
            ("limit <@U1> queue=3090 gpus=lots", "whole number"),
            ("limit <@U1> queue=3090 gpus=4 gpus=2", "given twice"),
            ("limit <@U1> queue=3090 gpsu=4", "did you mean `gpus`"),
            ("limit <@U1> queue=3090 4", "key=value"),
            ("limit n@t! queue=3090", "not a user"),
        ] {
            let e = parse("/fleet", bad).unwrap_err();
            assert!(e.message.contains(says), "{bad}: {}", e.message);
        }
    }

    proptest! {
        #[test]
        fn no_input_panics(cmd in "/?(vessel|fleet|[a-z]{0,8})", text in "\\PC{0,200}") {
            let _ = parse(&cmd, &text);
        }

        #[test]
        fn create_options_in_any_order_parse(gpu in 0u32..=64, cpu in 1u32..=1024, mem in 1u32..999) {
            let text = format!("create mem={mem}G cpu={cpu} gpu={gpu}");
            let parsed = parse("/vessel", &text);
            prop_assert!(parsed.is_ok(), "{:?}", parsed);
        }
    }
}
