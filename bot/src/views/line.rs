//! The waiting line as messages: the answer to a create that waits, the
//! waiting DM (edited in place as the place changes, then to say how it
//! left the line), the expiry notice, `/vessel queue`, `/fleet queue` and
//! limits. Pure functions; anything relative ("waiting 12m") takes `now`.

use chrono::{DateTime, Utc};
use vessel_api::line::{Estimate, Limits, Line, LineEntry, LinePlace};
use vessel_api::vessels::VesselView;
use vessel_api::{ByteSize, VesselState};

use super::vessel::when;
use super::{Block, Button, Message};

/// Cancel a waiting request (the vessel's kill).
pub const CANCEL: &str = "vessel.cancel";
/// Move a waiting request to the front of its line (admins).
pub const FRONT: &str = "line.front";

/// Entries `/fleet queue` shows: Slack takes at most 50 blocks a message,
/// and each entry is two.
const FLEET_LINE_MAX: usize = 20;

fn plural(n: u32, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn resources(gpus: u32, cpus: u32, memory: ByteSize) -> String {
    format!(
        "{} · {} · {memory}",
        plural(gpus, "GPU", "GPUs"),
        plural(cpus, "CPU", "CPUs")
    )
}

/// A duration as people say it: `45s`, `12m`, `3h 5m`, `2d 4h`.
pub fn span(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    let (days, hours, mins) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (days, hours, mins) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// "#3 of 5 in line for `3090`".
fn place_words(place: &LinePlace, queue: &str) -> String {
    format!("#{} of {} in line for `{queue}`", place.position, place.of)
}

/// "At the latest by Tue 01 Dec 14:00 UTC, when 2 vessels expire on `gpu-3`."
pub fn estimate(e: &Estimate) -> String {
    format!(
        "At the latest by {}, when {} on `{}`.",
        when(e.by),
        if e.vessels == 1 {
            "1 vessel expires".to_string()
        } else {
            format!("{} vessels expire", e.vessels)
        },
        e.host
    )
}

fn cancel_button(v_id: &str, name: &str) -> Button {
    Button::action("Cancel", CANCEL, v_id).danger().confirm(
        "Leave the line?",
        &format!("*{name}* stops waiting; nothing was started, so nothing is lost."),
        "Leave the line",
    )
}

/// The answer to a create that waits: where it stands, why, when it may
/// start at the latest, and that a DM follows.
pub fn queued(v: &VesselView) -> Message {
    let name = v.name.as_str();
    let id = v.id.to_string();
    let Some(place) = &v.line else {
        // Pending without a place: an orchestrator that has not filled it in.
        return Message::says(format!(
            ":hourglass_flowing_sand: *{name}* is waiting in line for `{}`. I'll DM you when it starts.",
            v.queue
        ));
    };
    let mut m = Message::new(format!(
        "Queued {name}, #{} in line for {} — {}",
        place.position, v.queue, place.reason
    ))
    .block(Block::Section(format!(
        ":hourglass_flowing_sand: Queued *{name}*, #{} in line for `{}` — {}.",
        place.position, v.queue, place.reason
    )));
    if let Some(e) = &place.estimate {
        m = m.block(Block::Section(estimate(e)));
    }
    m.block(Block::Context(format!(
        "A DM follows with your place as it changes, and the SSH config when it starts. It gives up at {}.",
        when(place.gives_up_at)
    )))
    .block(Block::Actions(vec![cancel_button(&id, name)]))
}

/// The waiting DM while the request is pending: edited in place as its
/// place or reason changes.
pub fn waiting(v: &VesselView) -> Message {
    let name = v.name.as_str();
    let id = v.id.to_string();
    let mut m = match &v.line {
        Some(place) => {
            let mut m = Message::new(format!(
                "{name} is waiting: #{} of {} in line for {} — {}",
                place.position, place.of, v.queue, place.reason
            ))
            .block(Block::Section(format!(
                ":hourglass_flowing_sand: *{name}* is waiting: *{}*.",
                place_words(place, v.queue.as_str())
            )))
            .block(Block::Fields(vec![
                ("Why".into(), place.reason.clone()),
                ("Asked for".into(), resources(v.gpus, v.cpus, v.memory)),
                ("Waiting since".into(), when(place.since)),
                ("Gives up".into(), when(place.gives_up_at)),
            ]));
            if let Some(e) = &place.estimate {
                m = m.block(Block::Section(estimate(e)));
            }
            if let Some(host) = &place.holds {
                m = m.block(Block::Context(format!(
                    "`{host}` is held for it: smaller requests no longer overtake it."
                )));
            }
            m
        }
        None => Message::says(format!(
            ":hourglass_flowing_sand: *{name}* is waiting in line for `{}`.",
            v.queue
        )),
    };
    m = m.block(Block::Context(
        "This message follows your place; you get a new one when it starts.".into(),
    ));
    m.block(Block::Actions(vec![cancel_button(&id, name)]))
}

/// The waiting DM, as the vessel stands now: waiting, or how it left the line.
pub fn line_dm(v: &VesselView) -> Message {
    let name = v.name.as_str();
    let host = v.host.as_deref().unwrap_or("?");
    let reason = v.reason.as_deref().unwrap_or("no reason recorded");
    let (text, note) = match v.state {
        VesselState::Pending | VesselState::Requested => return waiting(v),
        VesselState::Provisioning => (
            format!(":arrow_forward: *{name}* left the line: placed on `{host}`, starting now."),
            Some("The SSH config comes in a new message when it is ready.".to_string()),
        ),
        VesselState::Running | VesselState::Stopping => (
            format!(
                ":white_check_mark: *{name}* was placed on `{host}`{}.",
                v.started_at
                    .map(|t| format!(" and has run since {}", when(t)))
                    .unwrap_or_default()
            ),
            Some("The SSH config is in the message below this one.".to_string()),
        ),
        VesselState::Hibernating | VesselState::Hibernated => (
            format!(":zzz: *{name}* stays asleep on `{host}`: {reason}."),
            Some(format!(
                "Its files are kept. `/vessel wake {name}` puts it in line again."
            )),
        ),
        VesselState::Expired => (
            format!(
                ":hourglass: *{name}* expired after waiting {} in line for `{}`: {reason}.",
                waited(v),
                v.queue
            ),
            Some("Nothing was started and nothing is reserved.".to_string()),
        ),
        // Ended without ever starting: it was cancelled in line.
        VesselState::Buried if v.started_at.is_none() => (
            format!(":wastebasket: *{name}* was cancelled and left the line."),
            Some(format!("{reason}. Nothing was started.")),
        ),
        VesselState::Failed => (
            format!(":x: *{name}* was placed on `{host}` but failed: {reason}"),
            None,
        ),
        VesselState::Buried | VesselState::Lost => (
            format!(":anchor: *{name}* ended ({}): {reason}", v.state),
            None,
        ),
    };
    let mut m = Message::says(text.clone());
    m.text = super::unmark(&text);
    if let Some(note) = note {
        m = m.block(Block::Context(note));
    }
    m
}

/// How long it stood in line, until it ended (or now).
fn waited(v: &VesselView) -> String {
    span(v.ended_at.unwrap_or(v.created_at) - v.created_at)
}

/// A new DM when a request expired in line: the edit alone would not notify.
pub fn expired(v: &VesselView) -> Message {
    let name = v.name.as_str();
    let text = format!(
        ":hourglass: *{name}* waited {} in line for `{}` and expired; nothing was started.",
        waited(v),
        v.queue
    );
    let mut m = Message::says(text.clone()).block(Block::Context(format!(
        "Ask again with `/vessel create queue={} gpu={}`, try another queue (`/fleet status` shows what is free), or ask an admin.",
        v.queue, v.gpus
    )));
    m.text = super::unmark(&text);
    m
}

/// `/vessel queue`: my waiting requests.
pub fn mine(vessels: &[VesselView], now: DateTime<Utc>) -> Message {
    let waiting: Vec<&VesselView> = vessels
        .iter()
        .filter(|v| v.state == VesselState::Pending)
        .collect();
    if waiting.is_empty() {
        return Message::says("Nothing of yours is waiting in line.");
    }
    let mut m = Message::new(format!(
        "{} waiting in line",
        plural(waiting.len() as u32, "request", "requests")
    ))
    .block(Block::Section("Your requests waiting in line:".into()));
    for v in waiting {
        let name = v.name.as_str();
        let mut lines = vec![format!(
            "*{name}* — {} ({})",
            v.line
                .as_ref()
                .map(|p| place_words(p, v.queue.as_str()))
                .unwrap_or_else(|| format!("in line for `{}`", v.queue)),
            resources(v.gpus, v.cpus, v.memory)
        )];
        if let Some(place) = &v.line {
            lines.push(format!("Why: {}", place.reason));
            lines.push(format!(
                "Waiting {} (since {}) · gives up {}",
                span(now - place.since),
                when(place.since),
                when(place.gives_up_at)
            ));
            if let Some(e) = &place.estimate {
                lines.push(estimate(e));
            }
        }
        m = m
            .block(Block::Section(lines.join("\n")))
            .block(Block::Actions(vec![cancel_button(&v.id.to_string(), name)]));
    }
    m
}

fn fleet_entry(e: &LineEntry, queue: &str, now: DateTime<Utc>) -> Vec<Block> {
    let p = &e.place;
    let mut text = format!(
        "*#{}* *{}* of {} — {} — waiting {}\n{}",
        p.position,
        e.name,
        e.owner,
        resources(e.gpus, e.cpus, e.memory),
        span(now - p.since),
        p.reason
    );
    if let Some(host) = &p.holds {
        text.push_str(&format!("\nholds `{host}`"));
    }
    let id = e.id.to_string();
    let mut buttons = Vec::new();
    if p.position > 1 {
        buttons.push(Button::action("Move to front", FRONT, &id).confirm(
            "Move to the front?",
            &format!(
                "*{}* of {} goes ahead of everyone waiting in `{queue}`.",
                e.name, e.owner
            ),
            "Move to front",
        ));
    }
    buttons.push(Button::action("Cancel", CANCEL, &id).danger().confirm(
        "Cancel this request?",
        &format!(
            "*{}* of {} leaves the line; they are told.",
            e.name, e.owner
        ),
        "Cancel it",
    ));
    vec![Block::Section(text), Block::Actions(buttons)]
}

/// `/fleet queue`: every queue's line, in order, with reasons and buttons.
pub fn fleet(line: &Line, now: DateTime<Utc>) -> Message {
    let total: usize = line.queues.values().map(Vec::len).sum();
    if total == 0 {
        return Message::says("Nobody is waiting: every request fit.");
    }
    let mut m = Message::new(format!("{total} waiting in line"))
        .block(Block::Header("Waiting line".into()));
    let mut shown = 0;
    for (queue, entries) in &line.queues {
        if entries.is_empty() {
            continue;
        }
        m = m.block(Block::Section(format!(
            "*`{queue}`* — {} waiting",
            entries.len()
        )));
        for e in entries {
            if shown == FLEET_LINE_MAX {
                break;
            }
            shown += 1;
            for b in fleet_entry(e, queue.as_str(), now) {
                m = m.block(b);
            }
        }
    }
    if shown < total {
        m = m.block(Block::Context(format!(
            "…and {} more not shown (Slack shows {FLEET_LINE_MAX}); the API's `GET /v1/line` has them all.",
            total - shown
        )));
    }
    m
}

/// The answer to `/fleet limit`: what holds now.
pub fn limits(l: &Limits) -> Message {
    let show = |n: Option<u32>, what: &str| match n {
        Some(n) => format!("at most {n} {what}"),
        None => format!("no limit on {what}"),
    };
    Message::says(format!(
        ":straight_ruler: <@{}> in `{}`: {}, {} ({}).",
        l.subject,
        l.queue,
        show(l.max_gpus, "GPUs"),
        show(l.max_vessels, "vessels"),
        if l.overridden {
            "an admin's override"
        } else {
            "the queue's own limits"
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::collections::BTreeMap;
    use uuid::Uuid;
    use vessel_api::{QueueName, VesselName};

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).unwrap()
    }

    fn place(position: u32) -> LinePlace {
        LinePlace {
            position,
            of: 5,
            reason: "no host has 4 free GPUs in 3090".into(),
            since: t(10, 0),
            gives_up_at: t(22, 0),
            holds: None,
            estimate: Some(Estimate {
                by: t(14, 0),
                host: "gpu-3".into(),
                vessels: 2,
            }),
        }
    }

    fn pending(name: &str, position: u32) -> VesselView {
        VesselView {
            id: Uuid::from_u128(7),
            name: VesselName::parse(name).unwrap(),
            owner: "alice".into(),
            owner_id: "UALICE".into(),
            queue: QueueName::parse("3090").unwrap(),
            image: "vessel/base:latest".into(),
            gpus: 4,
            cpus: 8,
            memory: ByteSize(64 << 30),
            state: VesselState::Pending,
            reason: None,
            host: None,
            gpu_uuids: vec![],
            cores: vec![],
            address: None,
            created_at: t(10, 0),
            started_at: None,
            ended_at: None,
            expires_at: t(23, 0),
            ssh: None,
            line: Some(place(position)),
            idle: None,
            disk: None,
            hibernated_at: None,
        }
    }

    #[test]
    fn a_create_that_waits_says_where_why_and_when_at_the_latest() {
        let m = queued(&pending("wide", 3));
        assert_eq!(
            m.text,
            "Queued wide, #3 in line for 3090 — no host has 4 free GPUs in 3090"
        );
        let text = m.to_text();
        assert!(
            text.contains("At the latest by Tue 01 Dec 14:00 UTC, when 2 vessels expire on gpu-3."),
            "{text}"
        );
        assert!(text.contains("A DM follows"), "{text}");
        let cancel = m.buttons()[0].clone();
        assert_eq!(
            (cancel.action_id.as_str(), cancel.value.as_str()),
            (CANCEL, &*Uuid::from_u128(7).to_string())
        );
        assert!(cancel.confirm.is_some());
    }

    #[test]
    fn the_waiting_dm_shows_place_reason_estimate_and_a_cancel() {
        let mut v = pending("wide", 2);
        v.line.as_mut().unwrap().holds = Some("gpu-3".into());
        let m = waiting(&v);
        let text = m.to_text();
        for says in [
            "wide is waiting: #2 of 5 in line for 3090",
            "Why: no host has 4 free GPUs in 3090",
            "Asked for: 4 GPUs · 8 CPUs · 64G",
            "Waiting since: Tue 01 Dec 10:00 UTC",
            "Gives up: Tue 01 Dec 22:00 UTC",
            "when 2 vessels expire on gpu-3",
            "gpu-3 is held for it",
        ] {
            assert!(text.contains(says), "{says}: {text}");
        }
        assert_eq!(m.buttons().len(), 1);
        assert_eq!(m.buttons()[0].action_id, CANCEL);
        // Without an estimate the line is left out, not guessed.
        v.line.as_mut().unwrap().estimate = None;
        assert!(!waiting(&v).to_text().contains("latest"));
    }

    #[test]
    fn the_waiting_dm_says_how_it_left_the_line() {
        let mut v = pending("wide", 1);
        assert_eq!(line_dm(&v), waiting(&v));
        v.line = None;
        v.host = Some("gpu-3".into());
        v.state = VesselState::Running;
        v.started_at = Some(t(12, 30));
        let m = line_dm(&v);
        assert!(
            m.text
                .contains("wide was placed on gpu-3 and has run since Tue 01 Dec 12:30 UTC"),
            "{}",
            m.text
        );
        assert!(m.buttons().is_empty(), "no Cancel once placed");

        v.state = VesselState::Expired;
        v.host = None;
        v.started_at = None;
        v.ended_at = Some(t(22, 0));
        v.reason = Some("waited the queue's max_wait of 12h".into());
        let m = line_dm(&v);
        assert!(
            m.text
                .contains("wide expired after waiting 12h in line for 3090"),
            "{}",
            m.text
        );
        let notice = expired(&v);
        assert!(
            notice
                .text
                .contains("waited 12h in line for 3090 and expired"),
            "{}",
            notice.text
        );
        assert!(notice.to_text().contains("/vessel create queue=3090 gpu=4"));

        v.state = VesselState::Buried;
        v.reason = Some("cancelled while waiting".into());
        let m = line_dm(&v).to_text();
        assert!(
            m.contains("wide was cancelled") && m.contains("cancelled while waiting"),
            "{m}"
        );
    }

    #[test]
    fn my_queue_lists_only_what_waits() {
        let mut running = pending("busy", 1);
        running.state = VesselState::Running;
        running.line = None;
        let m = mine(&[running.clone(), pending("wide", 3)], t(10, 12));
        let text = m.to_text();
        assert!(text.contains("wide — #3 of 5 in line for 3090"), "{text}");
        assert!(
            text.contains("Waiting 12m (since Tue 01 Dec 10:00 UTC)"),
            "{text}"
        );
        assert!(!text.contains("busy"), "{text}");
        assert_eq!(m.buttons().len(), 1);
        assert_eq!(
            mine(&[running], t(10, 12)).text,
            "Nothing of yours is waiting in line."
        );
    }

    #[test]
    fn the_fleet_line_has_reasons_and_buttons_per_entry() {
        let entry = |name: &str, position: u32| LineEntry {
            id: Uuid::from_u128(position as u128),
            name: VesselName::parse(name).unwrap(),
            owner: "bob".into(),
            owner_id: "UBOB".into(),
            gpus: 4,
            cpus: 8,
            memory: ByteSize(64 << 30),
            place: LinePlace {
                reason: if position == 1 {
                    "no host has 4 free GPUs in 3090".into()
                } else {
                    "over your limit of 4 GPUs in 3090".into()
                },
                ..place(position)
            },
        };
        let line = Line {
            queues: BTreeMap::from([
                (
                    QueueName::parse("3090").unwrap(),
                    vec![entry("first", 1), entry("second", 2)],
                ),
                (QueueName::parse("a100").unwrap(), vec![]),
            ]),
        };
        let m = fleet(&line, t(11, 5));
        let text = m.to_text();
        assert!(text.contains("3090 — 2 waiting"), "{text}");
        assert!(!text.contains("a100"), "empty lines are left out: {text}");
        assert!(
            text.contains("#1 first of bob — 4 GPUs · 8 CPUs · 64G — waiting 1h 5m"),
            "{text}"
        );
        assert!(text.contains("over your limit of 4 GPUs in 3090"), "{text}");
        let ids: Vec<(&str, &str)> = m
            .buttons()
            .iter()
            .map(|b| (b.action_id.as_str(), b.value.as_str()))
            .collect();
        let one = Uuid::from_u128(1).to_string();
        let two = Uuid::from_u128(2).to_string();
        assert_eq!(
            ids,
            vec![
                (CANCEL, one.as_str()),
                (FRONT, two.as_str()),
                (CANCEL, two.as_str())
            ],
            "the head has no Move to front"
        );
        assert_eq!(
            fleet(&Line::default(), t(0, 0)).text,
            "Nobody is waiting: every request fit."
        );
    }

    #[test]
    fn a_long_line_stays_within_slacks_block_limit() {
        let entries: Vec<LineEntry> = (1..=60)
            .map(|i| LineEntry {
                id: Uuid::from_u128(i),
                name: VesselName::parse(&format!("v{i}")).unwrap(),
                owner: "bob".into(),
                owner_id: "UBOB".into(),
                gpus: 1,
                cpus: 1,
                memory: ByteSize(1 << 30),
                place: place(i as u32),
            })
            .collect();
        let line = Line {
            queues: BTreeMap::from([(QueueName::parse("3090").unwrap(), entries)]),
        };
        let m = fleet(&line, t(11, 0));
        assert!(m.to_blocks().len() <= 50, "{}", m.to_blocks().len());
        assert!(m.to_text().contains("and 40 more"), "{}", m.to_text());
    }

    #[test]
    fn spans_and_limits_read_as_people_say_them() {
        let d = chrono::Duration::seconds;
        assert_eq!(span(d(45)), "45s");
        assert_eq!(span(d(12 * 60)), "12m");
        assert_eq!(span(d(3 * 3600 + 5 * 60)), "3h 5m");
        assert_eq!(span(d(2 * 86_400 + 4 * 3600 + 7)), "2d 4h");
        assert_eq!(span(d(-5)), "0s");
        let l = Limits {
            subject: "UBOB".into(),
            queue: QueueName::parse("3090").unwrap(),
            max_gpus: Some(4),
            max_vessels: None,
            overridden: true,
        };
        assert_eq!(
            limits(&l).text,
            ":straight_ruler: <@UBOB> in `3090`: at most 4 GPUs, no limit on vessels (an admin's override)."
        );
    }
}
