//! `/vessel …` and `/fleet …` text parsed into typed commands, once. The
//! parser is strict (unknown options are errors, with a suggestion) and kind
//! (every error names the problem and carries the usage line). The create
//! options are the contract's grammar (`vessel_api::grammar`), shared with
//! the CLI.

use vessel_api::grammar::{self, suggest};
use vessel_api::vessels::CreateVessel;
use vessel_api::{Span, UnixName};

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
    Keys,
    KeysAdd(String),
    KeysRemove(String),
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

pub const VESSEL_USAGE: &str = "/vessel create [gpu=N] [queue=Q] [cpu=N] [mem=64G] [image=I] [name=N] [for=2d] · list · show NAME · ssh NAME · extend NAME [24h] · kill NAME · keys [add KEY | remove FINGERPRINT] · help";
pub const CREATE_USAGE: &str =
    "/vessel create [gpu=N] [queue=Q] [cpu=N] [mem=64G] [image=I] [name=N] [for=2d]";
pub const FLEET_USAGE: &str =
    "/fleet status · hosts · drain HOST · undrain HOST · vessels [@user] · kill VESSEL · audit [@user|VESSEL] · user @user NAME [UID]";

const VESSEL_VERBS: &[&str] = &[
    "create", "list", "show", "ssh", "extend", "kill", "keys", "help",
];
const FLEET_VERBS: &[&str] = &[
    "status", "hosts", "drain", "undrain", "vessels", "kill", "help",
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
        "show" => one_name(rest, "vessel", "/vessel show NAME").map(VesselCommand::Show),
        "ssh" => one_name(rest, "vessel", "/vessel ssh NAME").map(VesselCommand::Ssh),
        "kill" => one_name(rest, "vessel", "/vessel kill NAME").map(VesselCommand::Kill),
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
        "status" | "hosts" => Err(err(format!("`{verb}` takes no options"), FLEET_USAGE)),
        other => Err(err(
            match suggest(other, FLEET_VERBS) {
                Some(s) => format!("unknown command `{other}` — did you mean `{s}`?"),
                None => format!("unknown command `{other}`"),
            },
            FLEET_USAGE,
        )),
    }
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
