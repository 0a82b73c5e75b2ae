//! The metrics half of the rig: a small DCGM-format exporter whose per-GPU
//! values the test sets, and a real Prometheus (Debian's package) scraping
//! it every second — and the orchestrator's `/metrics` too, once a test
//! names it ([`Prometheus::scrape_orchestrator`]: the orchestrator is made
//! after Prometheus, whose URL its config needs).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Result};

use crate::eventually;

pub struct Exporter {
    pub addr: SocketAddr,
    values: Arc<Mutex<BTreeMap<(String, String), f64>>>,
    /// A stopped exporter answers 503: Prometheus keeps its connections
    /// open, so closing the listener alone would not stop the scrapes.
    stopped: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Exporter {
    pub async fn start() -> Result<Exporter> {
        let values: Arc<Mutex<BTreeMap<(String, String), f64>>> = Arc::default();
        let stopped: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let shared = values.clone();
        let down = stopped.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let values = shared.clone();
                let down = down.clone();
                async move {
                    use axum::response::IntoResponse;
                    if down.load(std::sync::atomic::Ordering::SeqCst) {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
                    }
                    let mut out = String::from(
                        "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n",
                    );
                    for (i, ((host, uuid), v)) in values.lock().unwrap().iter().enumerate() {
                        out.push_str(&format!(
                            "DCGM_FI_DEV_GPU_UTIL{{gpu=\"{i}\",UUID=\"{uuid}\",device=\"nvidia{i}\",modelName=\"NVIDIA GeForce RTX 3090\",Hostname=\"{host}\"}} {v}\n"
                        ));
                    }
                    out.into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Exporter {
            addr,
            values,
            stopped,
            task,
        })
    }

    /// The exporter stops (true) or starts again (false): a host's DCGM
    /// exporter dying, or coming back.
    pub fn set_stopped(&self, stopped: bool) {
        self.stopped
            .store(stopped, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn set(&self, host: &str, uuid: &str, utilisation: f64) {
        self.values
            .lock()
            .unwrap()
            .insert((host.into(), uuid.into()), utilisation);
    }
}

pub struct Prometheus {
    pub url: String,
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Prometheus {
    pub async fn start(exporter: &Exporter) -> Result<Prometheus> {
        Prometheus::scraping(&[exporter]).await
    }

    /// Scraping several exporters (one per host, as in a lab), each a
    /// target of its own.
    pub async fn scraping(exporters: &[&Exporter]) -> Result<Prometheus> {
        let dir =
            std::env::temp_dir().join(format!("vessel-prom-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("prometheus.yml");
        // The orchestrator's job reads its target and its bearer token from
        // files written later: Prometheus watches the one and reads the
        // other at every scrape.
        let targets = dir.join("vessel-targets.json");
        let token = dir.join("vessel-token");
        std::fs::write(&targets, "[]")?;
        std::fs::write(&token, "")?;
        std::fs::write(
            &config,
            format!(
                "global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: dcgm
    static_configs:
      - targets: [{}]
  - job_name: vessel
    authorization:
      credentials_file: {}
    file_sd_configs:
      - files: ['{}']
        refresh_interval: 1s
",
                exporters
                    .iter()
                    .map(|e| format!("'{}'", e.addr))
                    .collect::<Vec<_>>()
                    .join(", "),
                token.display(),
                targets.display()
            ),
        )?;
        // A free port: bind, note, release (Prometheus binds it right after).
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!("cannot start prometheus (scripts/ensure-prometheus.sh): {e}")
            })?;
        let p = Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            child,
            dir,
        };
        let http = reqwest::Client::new();
        eventually("prometheus to be ready", Duration::from_secs(30), || {
            let http = http.clone();
            let url = format!("{}/-/ready", p.url);
            async move {
                Ok(http
                    .get(url)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ()))
            }
        })
        .await?;
        Ok(p)
    }

    /// Scrapes the orchestrator at `base_url` (`http://host:port`) with the
    /// scrape `token` from now on (job `vessel`).
    pub fn scrape_orchestrator(&self, base_url: &str, token: &str) -> Result<()> {
        let target = base_url.trim_start_matches("http://").trim_end_matches('/');
        std::fs::write(self.dir.join("vessel-token"), token)?;
        // Written whole and renamed: Prometheus must not read half a file.
        let tmp = self.dir.join("vessel-targets.json.tmp");
        std::fs::write(
            &tmp,
            serde_json::json!([{ "targets": [target] }]).to_string(),
        )?;
        std::fs::rename(tmp, self.dir.join("vessel-targets.json"))?;
        Ok(())
    }

    /// Asks PromQL `query` now; the whole answer (`status`, `data`, `error`).
    pub async fn query(&self, query: &str) -> Result<serde_json::Value> {
        Ok(reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", query)])
            .send()
            .await?
            .json()
            .await?)
    }

    /// Waits until PromQL sees `utilisation` averaged for every UUID.
    pub async fn wait_for(&self, window: &str, uuids: &[String], utilisation: f64) -> Result<()> {
        let http = reqwest::Client::new();
        let query = format!("avg_over_time(DCGM_FI_DEV_GPU_UTIL[{window}])");
        eventually(
            "prometheus to see the exporter's values",
            Duration::from_secs(60),
            || {
                let http = http.clone();
                let query = query.clone();
                let url = format!("{}/api/v1/query", self.url);
                async move {
                    let body: serde_json::Value = http
                        .get(url)
                        .query(&[("query", query)])
                        .send()
                        .await?
                        .json()
                        .await?;
                    let seen: BTreeMap<String, f64> = body["data"]["result"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|s| {
                            Some((
                                s["metric"]["UUID"].as_str()?.to_string(),
                                s["value"][1].as_str()?.parse().ok()?,
                            ))
                        })
                        .collect();
                    Ok(uuids
                        .iter()
                        .all(|u| seen.get(u).is_some_and(|v| (v - utilisation).abs() < 1e-9))
                        .then_some(()))
                }
            },
        )
        .await
        .map_err(|e| {
            if e.to_string().contains("timed out") {
                anyhow::anyhow!("{e}")
            } else {
                e
            }
        })?;
        Ok(())
    }
}

pub fn ensure_installed() -> Result<()> {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        bail!("prometheus is not installed: run scripts/ensure-prometheus.sh");
    }
    Ok(())
}
