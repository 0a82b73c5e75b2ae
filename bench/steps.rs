//! Where provisioning time goes: a tracing layer that records when each of
//! the conductor's step spans (and the host connection's) opened and closed,
//! keyed by the vessel of the `job` span it ran under, and a table of them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vessel_testrig::figures::ms;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// One closed span.
#[derive(Clone, Debug)]
pub struct Record {
    pub vessel: Option<String>,
    /// The span's name; a Docker request's method and path (ids elided).
    pub label: String,
    pub start: Instant,
    pub end: Instant,
}

/// The spans that closed so far, shared with the layer.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Record>>>);

impl Recorder {
    pub fn layer(&self) -> StepLayer {
        StepLayer(self.clone())
    }

    /// The records of one vessel, taken out of the recorder.
    pub fn take(&self, vessel: &str) -> Vec<Record> {
        let mut all = self.0.lock().expect("poisoned");
        let (mine, rest): (Vec<_>, Vec<_>) = all
            .drain(..)
            .partition(|r| r.vessel.as_deref() == Some(vessel));
        *all = rest;
        mine
    }
}

pub struct StepLayer(Recorder);

struct Timing {
    start: Instant,
    vessel: Option<String>,
    label: String,
}

/// Picks the fields a label or an attribution needs out of a span's
/// attributes.
#[derive(Default)]
struct Fields {
    vessel: Option<String>,
    method: Option<String>,
    path: Option<String>,
    output: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "vessel" => self.vessel = Some(text),
            "method" => self.method = Some(text),
            "path" => self.path = Some(text),
            "output" => self.output = Some(text),
            _ => {}
        }
    }
}

/// `/v1.41/containers/vessel-…/start?x=y` → `containers/{container}/start`.
fn docker_path(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let mut out: Vec<&str> = Vec::new();
    for segment in path
        .split('/')
        .filter(|s| !s.is_empty() && !s.starts_with("v1."))
    {
        let named = match out.last() {
            Some(&"containers") if segment.starts_with("vessel-") => "{container}",
            Some(&"networks") if segment.starts_with("vessel-") => "{network}",
            _ => segment,
        };
        out.push(named);
    }
    out.join("/")
}

impl<S> Layer<S> for StepLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let target = attrs.metadata().target();
        if !(target.starts_with("vessel_orchestrator::conductor")
            || target.starts_with("vessel_orchestrator::hosts"))
        {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let name = attrs.metadata().name();
        let vessel = if name == "job" {
            fields.vessel
        } else {
            span.parent().and_then(|p| {
                p.extensions()
                    .get::<Timing>()
                    .and_then(|t| t.vessel.clone())
            })
        };
        let label = match (name, fields.method, fields.path) {
            ("docker_request", Some(method), Some(path)) => {
                format!("  docker {method} {}", docker_path(&path))
            }
            _ => name.to_string(),
        };
        span.extensions_mut().insert(Timing {
            start: Instant::now(),
            vessel,
            label,
        });
    }

    /// What the container wrote while readiness listened, as a moment:
    /// when the init said it was done, when sshd said it listens.
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let Some(output) = fields.output else { return };
        let vessel = ctx.event_span(event).and_then(|span| {
            span.extensions()
                .get::<Timing>()
                .and_then(|t| t.vessel.clone())
        });
        // The first words name the line; the rest (names, ids) differ per vessel.
        let words: Vec<&str> = output.split_whitespace().take(3).collect();
        let now = Instant::now();
        self.0 .0.lock().expect("poisoned").push(Record {
            vessel,
            label: format!("  container said \"{}…\"", words.join(" ")),
            start: now,
            end: now,
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let extensions = span.extensions();
        let Some(timing) = extensions.get::<Timing>() else {
            return;
        };
        self.0 .0.lock().expect("poisoned").push(Record {
            vessel: timing.vessel.clone(),
            label: timing.label.clone(),
            start: timing.start,
            end: Instant::now(),
        });
    }
}

/// One line of the breakdown: when a step first started after the create
/// was sent, how long all its occurrences took together (steps that ran
/// side by side overlap), and how many there were, per vessel.
#[derive(Default)]
pub struct Step {
    starts: Vec<Duration>,
    totals: Vec<Duration>,
    counts: Vec<usize>,
}

/// Per-step figures over many vessels, in the order steps first started.
#[derive(Default)]
pub struct Breakdown {
    steps: BTreeMap<String, Step>,
    runs: usize,
}

fn median<T: Ord + Copy + Default>(values: &[T]) -> T {
    let mut v = values.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

impl Breakdown {
    /// Adds one vessel's spans, and the bench's own marks (a label and the
    /// interval it covers), measured from `sent`, when the create went out.
    pub fn add(&mut self, sent: Instant, records: &[Record], marks: &[(&str, Instant, Instant)]) {
        self.runs += 1;
        let mut per: BTreeMap<&str, (Duration, Duration, usize)> = BTreeMap::new();
        let spans = records
            .iter()
            .map(|r| (r.label.as_str(), r.start, r.end))
            .chain(marks.iter().copied());
        for (label, start, end) in spans {
            let from = start.saturating_duration_since(sent);
            let took = end.saturating_duration_since(start);
            let e = per.entry(label).or_insert((from, Duration::ZERO, 0));
            e.0 = e.0.min(from);
            e.1 += took;
            e.2 += 1;
        }
        for (label, (from, took, n)) in per {
            let step = self.steps.entry(label.to_string()).or_default();
            step.starts.push(from);
            step.totals.push(took);
            step.counts.push(n);
        }
    }

    pub fn render(&self) -> String {
        let mut rows: Vec<(Duration, &String, &Step)> = self
            .steps
            .iter()
            .map(|(label, s)| (median(&s.starts), label, s))
            .collect();
        rows.sort_by_key(|(start, label, _)| (*start, label.starts_with("  ")));
        let mut out = String::new();
        let _ = writeln!(
            out,
            "  {:<44} {:>3} {:>10} {:>10}  ran in",
            "step (p50 over the runs it ran in)", "n", "starts at", "takes"
        );
        for (start, label, step) in rows {
            let ran_in = if step.starts.len() < self.runs {
                format!("{}/{} runs", step.starts.len(), self.runs)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {:<44} {:>3} {:>7.1} ms {:>7.1} ms  {}",
                label,
                median(&step.counts),
                ms(start),
                ms(median(&step.totals)),
                ran_in,
            );
        }
        out
    }
}
