//! GPU utilisation for the fleet grid, from Prometheus (the DCGM exporters'
//! `DCGM_FI_DEV_GPU_UTIL`, joined on `UUID`): the current value per GPU and
//! a six-hour history for the sparklines. Kept as a snapshot that a page
//! reads without waiting: a page that finds it older than its refresh
//! period starts one refresh in the background, so Prometheus sees at most
//! one query per period however many people look, and a slow or absent
//! Prometheus never slows a page (the grid then says "no data").

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::warn;

use crate::prom::Prometheus;

/// How old the current values may get before a page asks for new ones.
const NOW_EVERY: Duration = Duration::from_secs(30);
/// The history moves slower: one point per step.
const HISTORY_EVERY: Duration = Duration::from_secs(300);
/// The sparkline's span and resolution: 6 h in 15-minute points.
const HISTORY_SPAN: Duration = Duration::from_secs(6 * 3600);
const HISTORY_STEP: Duration = Duration::from_secs(900);
/// The window of "now".
const NOW_WINDOW: Duration = Duration::from_secs(300);
const TIMEOUT: Duration = Duration::from_secs(10);

/// What the grid shows; empty until the first answer.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Utilisation (%) per GPU UUID, averaged over the last 5 minutes.
    pub now: HashMap<String, f64>,
    /// Per GPU UUID, oldest first.
    pub history: HashMap<String, Vec<f64>>,
    pub at: Option<DateTime<Utc>>,
}

impl Snapshot {
    /// Which answer this is, as the page carries it (`data-at`).
    pub fn stamp(&self) -> String {
        self.at
            .map(|t| t.timestamp_millis().to_string())
            .unwrap_or_default()
    }

    /// A host's history: the mean over its GPUs at each point (GPUs without
    /// a history are left out; none at all gives an empty line).
    pub fn host_history<'a>(&self, uuids: impl Iterator<Item = &'a str>) -> Vec<f64> {
        let series: Vec<&Vec<f64>> = uuids.filter_map(|u| self.history.get(u)).collect();
        let len = series.iter().map(|s| s.len()).max().unwrap_or(0);
        (0..len)
            .map(|i| {
                let at: Vec<f64> = series.iter().filter_map(|s| s.get(i).copied()).collect();
                at.iter().sum::<f64>() / at.len().max(1) as f64
            })
            .collect()
    }
}

pub struct Usage {
    client: Option<Prometheus>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    snap: Arc<Snapshot>,
    busy: bool,
    now_at: Option<Instant>,
    history_at: Option<Instant>,
}

impl Usage {
    /// `url`: `[undertaker] prometheus_url`; without it the grid has no
    /// utilisation and nothing is asked.
    pub fn new(url: Option<&str>) -> Arc<Usage> {
        let client = url.and_then(|u| match Prometheus::new(u) {
            Ok(c) => Some(c),
            Err(e) => {
                warn!(error = %e, "the portal cannot use prometheus_url");
                None
            }
        });
        Arc::new(Usage {
            client,
            inner: Mutex::new(Inner::default()),
        })
    }

    /// The snapshot as it is now; starts a refresh if it is due.
    pub fn snapshot(self: &Arc<Self>) -> Arc<Snapshot> {
        let mut inner = self.inner.lock().expect("usage lock");
        let due = |at: Option<Instant>, every| at.is_none_or(|t| t.elapsed() >= every);
        let (now_due, history_due) = (
            due(inner.now_at, NOW_EVERY),
            due(inner.history_at, HISTORY_EVERY),
        );
        if self.client.is_some() && !inner.busy && (now_due || history_due) {
            inner.busy = true;
            let this = self.clone();
            tokio::spawn(async move { this.refresh(history_due).await });
        }
        inner.snap.clone()
    }

    async fn refresh(&self, with_history: bool) {
        let Some(client) = &self.client else { return };
        let now = tokio::time::timeout(TIMEOUT, client.utilisation(NOW_WINDOW)).await;
        let history = if with_history {
            let history = client.utilisation_history(HISTORY_SPAN, HISTORY_STEP);
            Some(tokio::time::timeout(TIMEOUT, history).await)
        } else {
            None
        };
        let mut inner = self.inner.lock().expect("usage lock");
        inner.busy = false;
        // A failed read is retried next period, not at every page.
        inner.now_at = Some(Instant::now());
        let mut snap = (*inner.snap).clone();
        match now {
            Ok(Ok(values)) => {
                snap.now = values;
                snap.at = Some(Utc::now());
            }
            Ok(Err(e)) => warn!(error = %e, "GPU utilisation from Prometheus"),
            Err(_) => warn!("GPU utilisation from Prometheus: no answer in {TIMEOUT:?}"),
        }
        if let Some(h) = history {
            match h {
                // An empty history (Prometheus just started, or its first
                // scrape is still to come) is asked again with "now", not
                // in five minutes.
                Ok(Ok(values)) if !values.is_empty() => {
                    inner.history_at = Some(Instant::now());
                    snap.history = values;
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    inner.history_at = Some(Instant::now());
                    warn!(error = %e, "GPU history from Prometheus");
                }
                Err(_) => {
                    inner.history_at = Some(Instant::now());
                    warn!("GPU history from Prometheus: no answer in {TIMEOUT:?}");
                }
            }
        }
        inner.snap = Arc::new(snap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_line_is_the_mean_of_its_gpus_point_by_point() {
        let snap = Snapshot {
            history: HashMap::from([
                ("a".to_string(), vec![0.0, 50.0, 100.0]),
                ("b".to_string(), vec![100.0, 50.0]),
            ]),
            ..Snapshot::default()
        };
        assert_eq!(
            snap.host_history(["a", "b", "missing"].into_iter()),
            vec![50.0, 50.0, 100.0]
        );
        assert!(snap.host_history(["missing"].into_iter()).is_empty());
    }
}
