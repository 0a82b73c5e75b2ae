//! `vessel create --wait`: follows the request — its place in line while
//! it waits, then placed on a host → starting → ready — on one line
//! redrawn in place on a terminal, as plain lines otherwise. Ctrl-C asks
//! whether to cancel the request. What to say for each sighting is the
//! pure `progress`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use vessel_api::vessels::VesselView;
use vessel_api::VesselState;

use crate::ctx::Ctx;
use crate::error::{from_client, CliError};
use crate::render;
use crate::vessel::Vessel;

/// How often the vessel is read while following it.
const EVERY: Duration = Duration::from_millis(500);

/// "placed on gpu-1 (GPUs …)": said once, when a host is first seen, even
/// if the vessel was already running by the next look.
pub fn placement(v: &VesselView) -> Option<String> {
    let host = v.host.as_deref()?;
    Some(format!(
        "{}: placed on {host}{}",
        v.name,
        if v.gpu_uuids.is_empty() {
            String::new()
        } else {
            format!(" (GPUs {})", v.gpu_uuids.join(", "))
        }
    ))
}

/// Where a followed request stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// Still going; the line to show.
    Going(String),
    Ready,
    /// It ended without running: why, and whether the orchestrator failed
    /// it (else it was refused: expired, cancelled).
    Ended {
        why: String,
        failed: bool,
    },
}

pub fn progress(v: &VesselView) -> Progress {
    match v.state {
        VesselState::Requested => Progress::Going(format!("{}: requested", v.name)),
        VesselState::Pending => Progress::Going(match &v.line {
            Some(p) => format!(
                "{}: waiting in line for {}: {}",
                v.name,
                v.queue,
                render::place(p)
            ),
            None => format!("{}: waiting in line for {}", v.name, v.queue),
        }),
        VesselState::Provisioning => Progress::Going(format!(
            "{}: starting on {} (container, sshd, host key)",
            v.name,
            v.host.as_deref().unwrap_or("its host")
        )),
        VesselState::Running if v.ssh.is_some() => Progress::Ready,
        VesselState::Running => {
            Progress::Going(format!("{}: running; waiting for its SSH access", v.name))
        }
        VesselState::Failed | VesselState::Lost => Progress::Ended {
            why: format!(
                "{} {}: {}",
                v.name,
                v.state,
                v.reason.as_deref().unwrap_or("no reason given")
            ),
            failed: true,
        },
        VesselState::Hibernating | VesselState::Hibernated => Progress::Ended {
            why: format!(
                "{} is {}: {}",
                v.name,
                v.state,
                v.reason.as_deref().unwrap_or("no reason given")
            ),
            failed: true,
        },
        VesselState::Stopping | VesselState::Buried | VesselState::Expired => Progress::Ended {
            why: format!(
                "{} ended ({}) before it ran: {}",
                v.name,
                v.state,
                v.reason.as_deref().unwrap_or("no reason given")
            ),
            failed: false,
        },
    }
}

/// Draws progress on stderr: one line redrawn on a terminal, a new line
/// per change otherwise (logs, CI).
struct Screen {
    tty: bool,
    last: String,
}

impl Screen {
    fn show(&mut self, line: &str) {
        if line == self.last {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
        self.last = line.to_string();
    }

    fn done(&mut self) {
        if self.tty && !self.last.is_empty() {
            eprintln!();
        }
        self.last.clear();
    }
}

/// Follows `v` until it runs; returns it running (with its SSH access).
/// Each reading is parsed: hostile SSH access ends the wait.
pub async fn follow(ctx: &mut Ctx, mut vessel: Vessel) -> Result<Vessel, CliError> {
    let mut screen = Screen {
        tty: std::io::stderr().is_terminal(),
        last: String::new(),
    };
    let id = vessel.view.id.to_string();
    // Registered before the first line is shown, so a Ctrl-C at any point
    // reaches the question rather than ending the process.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(CliError::io("cannot watch for Ctrl-C"))?;
    let mut placed = false;
    loop {
        let v = &vessel.view;
        if !placed && v.state.is_live() {
            if let Some(line) = placement(v) {
                // Its own line even on a terminal: where it went stays on
                // screen.
                screen.show(&line);
                screen.done();
                placed = true;
            }
        }
        match progress(v) {
            Progress::Ready => {
                screen.show(&format!(
                    "{}: ready on {}",
                    v.name,
                    v.host.as_deref().unwrap_or("its host")
                ));
                screen.done();
                return Ok(vessel);
            }
            Progress::Ended { why, failed } => {
                screen.done();
                return Err(if failed {
                    CliError::Remote(why)
                } else {
                    CliError::Refused(why)
                });
            }
            Progress::Going(line) => screen.show(&line),
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = interrupt.recv() => {
                screen.done();
                return interrupted(ctx, &vessel.view).await;
            }
        }
        let token = ctx.token().await?;
        let seen = ctx
            .client
            .show(&token, &id)
            .await
            .map_err(|e| from_client(format!("cannot follow {}", vessel.view.name), e))?;
        vessel = Vessel::parse(seen)?;
    }
}

/// Ctrl-C while following: on a terminal, ask whether to cancel; without
/// one (a script), leave the request as it is and say how to cancel.
async fn interrupted(ctx: &mut Ctx, v: &VesselView) -> Result<Vessel, CliError> {
    let keep = || {
        CliError::Refused(format!(
            "stopped following {name}; it is still requested (vessel show {name}, vessel kill {name})",
            name = v.name
        ))
    };
    if !std::io::stdin().is_terminal() {
        return Err(keep());
    }
    eprint!("Cancel the request for {}? [y/N] ", v.name);
    let _ = std::io::stderr().flush();
    let answer = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await
    .ok()
    .and_then(Result::ok)
    .unwrap_or_default();
    if !answer.trim().eq_ignore_ascii_case("y") && !answer.trim().eq_ignore_ascii_case("yes") {
        return Err(keep());
    }
    let token = ctx.token().await?;
    let killed = ctx
        .client
        .kill(&token, &v.id.to_string())
        .await
        .map_err(|e| from_client(format!("cannot cancel {}", v.name), e))?;
    Err(CliError::Refused(format!(
        "{} is {}, at your request",
        killed.name,
        if killed.state == VesselState::Buried {
            "cancelled"
        } else {
            "stopping"
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vessel(state: &str, extra: serde_json::Value) -> VesselView {
        let mut v = serde_json::json!({
            "id": "00000000-0000-4000-8000-000000000001", "name": "train",
            "owner": "alice", "owner_id": "a", "queue": "3090", "image": "i",
            "gpus": 1, "cpus": 1, "memory_bytes": 1024, "state": state,
            "reason": null, "host": null, "gpu_uuids": [], "cores": [],
            "address": null, "created_at": "2026-11-29T10:00:00Z",
            "started_at": null, "ended_at": null, "expires_at": "2026-11-30T10:00:00Z",
        });
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn each_state_says_where_the_request_stands() {
        let waiting = vessel(
            "pending",
            serde_json::json!({ "line": { "position": 2, "of": 3,
                "reason": "no host has 1 free GPU in 3090",
                "since": "2026-11-29T10:00:00Z", "gives_up_at": "2026-11-30T10:00:00Z" } }),
        );
        match progress(&waiting) {
            Progress::Going(l) => assert!(
                l.contains("position 2 of 3 — no host has 1 free GPU"),
                "{l}"
            ),
            other => panic!("{other:?}"),
        }
        let placed = vessel(
            "provisioning",
            serde_json::json!({ "host": "gpu-1", "gpu_uuids": ["GPU-1"] }),
        );
        assert_eq!(
            placement(&placed).unwrap(),
            "train: placed on gpu-1 (GPUs GPU-1)"
        );
        assert!(placement(&waiting).is_none());
        assert!(matches!(progress(&placed), Progress::Going(l) if l.contains("starting on gpu-1")));
        let failed = vessel("failed", serde_json::json!({ "reason": "image missing" }));
        assert_eq!(
            progress(&failed),
            Progress::Ended {
                why: "train failed: image missing".into(),
                failed: true
            }
        );
        assert!(matches!(
            progress(&vessel("expired", serde_json::json!({}))),
            Progress::Ended { failed: false, .. }
        ));
        assert!(matches!(
            progress(&vessel("running", serde_json::json!({}))),
            Progress::Going(_)
        ));
    }
}
