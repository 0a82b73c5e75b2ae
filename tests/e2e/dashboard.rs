//! The Grafana dashboard (`manifests/grafana/vessel.json`) against a real
//! Prometheus scraping a real orchestrator with the machine scrape token:
//! after a create, a kill, a request placed from the line and an idle
//! burial, every panel's query parses and returns data, and the dashboard
//! is built on exactly the series `/metrics` exports.
//!
//! PromQL goes through the test's reqwest, not `prometheus-http-query`: the
//! test needs the raw `status`/`error` of a query that may not parse, which
//! a typed client turns into an error type, and the rig already speaks the
//! HTTP API this way (`testrig::prometheus`).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::rig::eventually;
use crate::undertaker::Idle;

const DASHBOARD: &str = include_str!("../../manifests/grafana/vessel.json");

/// Grafana's variables as Grafana would fill them for a day's view.
fn as_grafana_sends(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "1h")
}

/// `vessel_…` names in a PromQL expression, histogram suffixes dropped: the
/// families it reads.
fn families_in(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|t| t.starts_with("vessel_"))
        .map(|t| {
            ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| t.strip_suffix(s))
                .unwrap_or(t)
                .to_string()
        })
        .collect()
}

/// The families `/metrics` declares (`# TYPE name kind`).
fn families_exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The value of the one sample `query` returns now, if exactly one.
async fn scalar(t: &Idle, query: &str) -> Result<Option<f64>> {
    let body = t.prometheus.query(query).await?;
    let result = body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok(match result.as_slice() {
        [one] => one["value"][1].as_str().and_then(|v| v.parse().ok()),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_dashboard_panel_query_parses_and_returns_data() -> Result<()> {
    let dashboard: Value = serde_json::from_str(DASHBOARD).context("the dashboard's JSON")?;
    // An idle vessel holding one of gpu-1's two GPUs, on the undertaker's
    // clock (Monday 09:00 in Berlin).
    let t = Idle::start("2026-11-30T08:00:00Z").await?;
    let scrape = t
        .rig
        .token_for("prometheus", &[vessel_api::perm::FLEET_READ], 3600);
    t.prometheus.scrape_orchestrator(&t.rig.url(""), &scrape)?;
    // Scraped before anything happens: the counters' zeros are recorded,
    // so `increase` and `rate` see what follows.
    eventually(
        "Prometheus to scrape the orchestrator",
        Duration::from_secs(30),
        || async { Ok((scalar(&t, r#"up{job="vessel"}"#).await? == Some(1.0)).then_some(())) },
    )
    .await?;

    // Six idle work-hours: the owner is warned (Monday 15:00 in Berlin).
    t.sweep_at("2026-11-30T08:00:00Z").await?;
    t.sweep_at("2026-11-30T14:00:00Z").await?;

    // A vessel its owner kills; then a request for both GPUs, which waits
    // behind the idle one (its day in line runs on the same clock).
    let short = t
        .rig
        .launch(
            &t.token,
            json!({ "queue": "3090", "gpus": 1, "name": "short" }),
        )
        .await?;
    let (status, big) = t
        .rig
        .create(
            &t.token,
            json!({ "queue": "3090", "gpus": 2, "name": "big", "lifetime": "7d" }),
        )
        .await?;
    assert_eq!(status, 202, "{big}");
    let big = big["id"].as_str().context("id")?.to_string();
    t.rig
        .wait_state(&t.token, &big, &["pending"], Duration::from_secs(10))
        .await?;
    t.rig
        .kill(&t.token, short["id"].as_str().context("id")?)
        .await?;

    // Twelve idle work-hours: the undertaker buries the idle vessel, and
    // the request in line gets both GPUs.
    t.sweep_at("2026-12-01T11:00:00Z").await?;
    t.wait_buried().await?;
    t.rig
        .wait_state(&t.token, &big, &["running"], Duration::from_secs(60))
        .await?;

    // Prometheus has scraped the end state. Counters are the process's:
    // under `cargo test` (one process) other tests add to them, hence
    // "at least"; the gauges are this rig's database.
    eventually(
        "Prometheus to scrape the burials and the placement",
        Duration::from_secs(30),
        || async {
            let idle = scalar(&t, r#"vessel_burials_total{job="vessel",reason="idle"}"#).await?;
            let owner = scalar(&t, r#"vessel_burials_total{job="vessel",reason="owner"}"#).await?;
            let held = scalar(&t, r#"vessel_gpus_allocated{job="vessel",queue="3090"}"#).await?;
            let seen = |v: Option<f64>| v.is_some_and(|v| v >= 1.0);
            Ok((seen(idle) && seen(owner) && held == Some(2.0)).then_some(()))
        },
    )
    .await?;

    let mut read = BTreeSet::new();
    let panels = dashboard["panels"].as_array().context("panels")?;
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?");
        assert_eq!(
            panel["datasource"]["uid"], "${DS_PROMETHEUS}",
            "panel {title}: the datasource is the dashboard's input"
        );
        let targets = panel["targets"].as_array().context("targets")?;
        assert!(!targets.is_empty(), "panel {title} has no query");
        for target in targets {
            let expr = target["expr"].as_str().context("expr")?;
            read.extend(families_in(expr));
            let body = t.prometheus.query(&as_grafana_sends(expr)).await?;
            assert_eq!(body["status"], "success", "panel {title}: {expr}: {body}");
            let result = body["data"]["result"].as_array();
            assert!(
                result.is_some_and(|r| !r.is_empty()),
                "panel {title}: {expr} returned no data: {body}"
            );
        }
    }

    // What the panels show is what happened.
    let burials = t
        .prometheus
        .query(r#"sum by (reason) (increase(vessel_burials_total[1h]))"#)
        .await?;
    let by_reason = |reason: &str| {
        burials["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["metric"]["reason"] == reason)
            .and_then(|s| s["value"][1].as_str()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(by_reason("idle") > 0.0, "{burials}");
    assert!(by_reason("owner") > 0.0, "{burials}");
    let reclaimed = scalar(&t, "vessel_undertaker_idle_gpu_hours_total").await?;
    // One GPU, idle for twelve work-hours.
    assert!(reclaimed.is_some_and(|h| h >= 12.0), "{reclaimed:?}");

    // Exactly the series /metrics exports, each on a panel.
    let text = reqwest::Client::new()
        .get(t.rig.url("/metrics"))
        .bearer_auth(&scrape)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    assert_eq!(
        read,
        families_exported(&text),
        "the dashboard's series vs /metrics"
    );
    Ok(())
}
