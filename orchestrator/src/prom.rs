//! Every PromQL read, through `prometheus-http-query`: GPU utilisation now
//! (the undertaker), its history (the portal's sparklines), and which GPUs'
//! DCGM series stopped arriving (the GPU watchdog). Series are keyed by the
//! exporter's `UUID` label, which is how GPUs are allocated; the host comes
//! from the database, not from a label that differs between exporter
//! versions (CRATE-NOTES).
//!
//! The crate is used without its TLS features (plain HTTP, the usual
//! in-cluster Prometheus), so no second rustls provider is linked.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use std::sync::Arc;

use prometheus_http_query::Client;

use crate::clock::{Clock, SystemClock};

/// The DCGM exporter's utilisation gauge (%), one series per GPU.
const GPU_UTIL: &str = "DCGM_FI_DEV_GPU_UTIL";

/// A query that takes longer is abandoned: a sweep or a tick must not hang
/// on a Prometheus that accepts and never answers.
const QUERY_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum PromError {
    #[error("cannot make an HTTP client")]
    Client(#[source] prometheus_http_query::reqwest::Error),
    #[error("not a Prometheus URL")]
    Url(#[source] prometheus_http_query::Error),
    #[error("cannot ask Prometheus")]
    Query(#[source] prometheus_http_query::Error),
    #[error("Prometheus did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Prometheus answered `{query}` with another kind of result than asked")]
    Shape { query: String },
}

/// Which watched GPUs (by UUID) have a recent sample and which went quiet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Freshness {
    /// A sample within `stale_after`.
    pub fresh: BTreeSet<String>,
    /// A sample within the lookback but none within `stale_after`.
    pub stale: BTreeSet<String>,
}

/// A Prometheus server's HTTP API. A range query ends at the clock's now.
#[derive(Clone)]
pub struct Prometheus {
    client: Client,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("url", &self.client.base_url().as_str())
            .finish()
    }
}

/// `[5m]` → `300s`: PromQL durations in whole seconds, at least one.
fn promql_secs(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

impl Prometheus {
    /// A client for the server at `url` (`http://prometheus:9090`).
    pub fn new(url: &str) -> Result<Prometheus, PromError> {
        let http = prometheus_http_query::reqwest::Client::builder()
            .timeout(QUERY_TIMEOUT)
            .build()
            .map_err(PromError::Client)?;
        let client = Client::from(http, url).map_err(PromError::Url)?;
        Ok(Prometheus {
            client,
            clock: Arc::new(SystemClock),
        })
    }

    /// The same client, reading "now" from `clock` (the orchestrator's, so
    /// tests that move time move the sparklines' window too).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Prometheus {
        Prometheus { clock, ..self }
    }

    /// Each GPU's utilisation (%) averaged over the last `window`, by GPU
    /// UUID. A GPU without samples in the window is absent (unknown, not
    /// idle).
    pub async fn utilisation(&self, window: Duration) -> Result<HashMap<String, f64>, PromError> {
        let query = format!("avg_over_time({GPU_UTIL}[{}])", promql_secs(window));
        Ok(self
            .instant(&query)
            .await?
            .into_iter()
            .collect::<HashMap<_, _>>())
    }

    /// Each GPU's utilisation (%) over the last `range`, one value per
    /// `step`, oldest first, by GPU UUID: what a sparkline draws. Steps
    /// without a sample (the exporter was down) are left out, so a series
    /// can be shorter than `range / step`.
    pub async fn utilisation_history(
        &self,
        range: Duration,
        step: Duration,
    ) -> Result<HashMap<String, Vec<f64>>, PromError> {
        let end = self.clock.now().timestamp();
        let start = end - range.as_secs() as i64;
        let step = step.as_secs_f64().max(1.0);
        let query = format!("max by (UUID) ({GPU_UTIL})");
        let result = self
            .timed(self.client.query_range(&query, start, end, step).get())
            .await?;
        let matrix = result
            .data()
            .as_matrix()
            .ok_or_else(|| PromError::Shape { query })?;
        Ok(matrix
            .iter()
            .filter_map(|series| {
                let uuid = series.metric().get("UUID")?.clone();
                Some((uuid, series.samples().iter().map(|s| s.value()).collect()))
            })
            .collect())
    }

    /// Which GPUs' series stopped arriving: those with a sample in the last
    /// `lookback` but none in the last `stale_after`. A GPU that never
    /// reported is neither (nothing was expected of it).
    pub async fn freshness(
        &self,
        stale_after: Duration,
        lookback: Duration,
    ) -> Result<Freshness, PromError> {
        // Range selectors skip the staleness markers a failed scrape
        // writes, so "a sample in the window" is exactly what counts.
        let seen = |window: Duration| {
            format!(
                "count by (UUID) (count_over_time({GPU_UTIL}[{}]))",
                promql_secs(window)
            )
        };
        let fresh: BTreeSet<String> = self
            .instant(&seen(stale_after))
            .await?
            .into_iter()
            .map(|(uuid, _)| uuid)
            .collect();
        let stale = self
            .instant(&seen(lookback))
            .await?
            .into_iter()
            .map(|(uuid, _)| uuid)
            .filter(|uuid| !fresh.contains(uuid))
            .collect();
        Ok(Freshness { fresh, stale })
    }

    /// An instant vector as (UUID, value) pairs.
    async fn instant(&self, query: &str) -> Result<Vec<(String, f64)>, PromError> {
        let result = self.timed(self.client.query(query).get()).await?;
        let vector = result.data().as_vector().ok_or_else(|| PromError::Shape {
            query: query.to_string(),
        })?;
        Ok(vector
            .iter()
            .filter_map(|s| Some((s.metric().get("UUID")?.clone(), s.sample().value())))
            .collect())
    }

    async fn timed<T>(
        &self,
        query: impl std::future::Future<Output = Result<T, prometheus_http_query::Error>>,
    ) -> Result<T, PromError> {
        tokio::time::timeout(QUERY_TIMEOUT, query)
            .await
            .map_err(|_| PromError::Timeout(QUERY_TIMEOUT))?
            .map_err(PromError::Query)
    }
}
