//! `/vessel …` and `/fleet …` text parsed into typed commands, once. The
//! parser is strict (unknown options are errors, with a suggestion) and kind
//! (every error names the problem and carries the usage line).

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Vessel(VesselCommand),
    Fleet(FleetCommand),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VesselCommand {
    /// `/vessel create` with no options opens the modal instead.
    CreateModal,
    Create(CreateArgs),
    List,
    Show(String),
    Ssh(String),
    Extend {
        name: String,
        by: String,
    },
    Kill(String),
    Keys,
    KeysAdd(String),
    KeysRemove(String),
    Help,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateArgs {
    pub gpus: Option<u32>,
    pub queue: Option<String>,
    pub cpus: Option<u32>,
    pub memory: Option<String>,
    pub image: Option<String>,
    pub name: Option<String>,
    pub lifetime: Option<String>,
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
        unix_name: String,
        uid: Option<u32>,
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

const CREATE_OPTIONS: &[&str] = &["gpu", "queue", "cpu", "mem", "image", "name", "for"];
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
                by: "24h".into(),
            }),
            [name, by] => {
                check_duration(by).map_err(|m| err(m, "/vessel extend NAME [24h]"))?;
                Ok(VesselCommand::Extend {
                    name: name.to_string(),
                    by: by.to_string(),
                })
            }
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

fn parse_create(words: &[&str]) -> Result<CreateArgs, ParseError> {
    let mut args = CreateArgs::default();
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(err(
                format!("`{word}` is not an option: write key=value, like gpu=2"),
                CREATE_USAGE,
            ));
        };
        let key_lc = key.to_ascii_lowercase();
        if value.is_empty() {
            return Err(err(format!("`{key}` needs a value"), CREATE_USAGE));
        }
        let dup = |present: bool| -> Result<(), ParseError> {
            if present {
                Err(err(format!("`{key}` is given twice"), CREATE_USAGE))
            } else {
                Ok(())
            }
        };
        match key_lc.as_str() {
            "gpu" => {
                dup(args.gpus.is_some())?;
                args.gpus = Some(number(value, "gpu", 0, 64)?);
            }
            "cpu" => {
                dup(args.cpus.is_some())?;
                args.cpus = Some(number(value, "cpu", 1, 1024)?);
            }
            "queue" => {
                dup(args.queue.is_some())?;
                if !value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    || value.len() > 32
                {
                    return Err(err(format!("`{value}` is not a queue name"), CREATE_USAGE));
                }
                args.queue = Some(value.to_string());
            }
            "mem" => {
                dup(args.memory.is_some())?;
                check_size(value).map_err(|m| err(m, CREATE_USAGE))?;
                args.memory = Some(value.to_string());
            }
            "image" => {
                dup(args.image.is_some())?;
                args.image = Some(value.to_string());
            }
            "name" => {
                dup(args.name.is_some())?;
                args.name = Some(value.to_string());
            }
            "for" => {
                dup(args.lifetime.is_some())?;
                check_duration(value).map_err(|m| err(m, CREATE_USAGE))?;
                args.lifetime = Some(value.to_string());
            }
            _ => {
                return Err(err(
                    match suggest(&key_lc, CREATE_OPTIONS) {
                        Some(s) => format!("unknown option `{key}` — did you mean `{s}`?"),
                        None => format!(
                            "unknown option `{key}`; options are {}",
                            CREATE_OPTIONS.join(", ")
                        ),
                    },
                    CREATE_USAGE,
                ))
            }
        }
    }
    Ok(args)
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
            let uid = uid
                .map(|u| {
                    u.parse::<u32>()
                        .map_err(|_| err(format!("`{u}` is not a uid"), usage))
                })
                .transpose()?;
            Ok(FleetCommand::User {
                user,
                unix_name: name.to_string(),
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

fn number(value: &str, key: &str, min: u32, max: u32) -> Result<u32, ParseError> {
    match value.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(err(
            format!("`{key}` must be a whole number from {min} to {max}, not `{value}`"),
            CREATE_USAGE,
        )),
    }
}

/// Sizes as `docker run -m` reads them: 512M, 64G, 1T.
pub fn check_size(value: &str) -> Result<(), String> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let unit_ok = matches!(
        unit.to_ascii_lowercase().as_str(),
        "m" | "mb" | "mib" | "g" | "gb" | "gib" | "t" | "tb" | "tib"
    );
    if digits.is_empty() || digits.len() > 7 || !unit_ok || digits.parse::<u64>().ok() == Some(0) {
        return Err(format!(
            "`{value}` is not a size: write a number and M, G or T, like 512M or 64G"
        ));
    }
    Ok(())
}

/// Durations: 90m, 24h, 2d, 1w.
pub fn check_duration(value: &str) -> Result<(), String> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    if digits.is_empty()
        || digits.len() > 5
        || !matches!(unit, "m" | "h" | "d" | "w")
        || digits.parse::<u64>().ok() == Some(0)
    {
        return Err(format!(
            "`{value}` is not a duration: write a number and m, h, d or w, like 90m, 24h or 2d"
        ));
    }
    Ok(())
}

/// The closest known word, if it is close enough to be a typo.
fn suggest(word: &str, known: &[&'static str]) -> Option<&'static str> {
    known
        .iter()
        .map(|k| (distance(word, k), *k))
        .filter(|(d, k)| *d <= 2.min(k.len() / 2 + 1) || (word.len() > 2 && k.starts_with(word)))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(64).collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
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
        assert_eq!(
            c,
            Command::Vessel(VesselCommand::Create(CreateArgs {
                gpus: Some(2),
                queue: Some("3090".into()),
                cpus: Some(8),
                memory: Some("64G".into()),
                image: Some("vessel/cuda12:latest".into()),
                name: Some("train".into()),
                lifetime: Some("2d".into()),
            }))
        );
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
                by: "36h".into()
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
