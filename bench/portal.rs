//! The portal's page times (`cargo bench --bench portal`), server side, on
//! a fleet declared in the database (1,000 hosts, 8,000 GPUs, half of them
//! held by 100 people's vessels, 200 requests waiting) with utilisation
//! for every GPU from a real Prometheus scraping a DCGM-format exporter:
//! each page fetched over loopback HTTP with an admin's session, p50/p99
//! and its size. Goal: p99 under 20 ms, pages under 100 KB.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sqlx::PgPool;
use vessel_testrig::figures::{self, ms, percentile};
use vessel_testrig::prometheus::{ensure_installed, Exporter, Prometheus};
use vessel_testrig::{eventually, Options, Rig};

const ROUNDS: usize = 200;

/// The fleet, half of it held, a line, and utilisation for every GPU.
async fn declare_fleet(db: &PgPool, exporter: &Exporter) -> Result<()> {
    figures::declare_fleet(db).await?;
    figures::declare_people(db).await?;
    for n in 0..4000 {
        figures::occupy_one(db, n).await?.context("room for half")?;
    }
    let mut tx = db.begin().await?;
    for n in 0..200 {
        figures::vessel(&mut tx, 100_000 + n, "pending").await?;
    }
    tx.commit().await?;
    let gpus: Vec<(String, String)> =
        sqlx::query_as("SELECT h.name, g.uuid FROM gpus g JOIN hosts h ON h.id = g.host_id")
            .fetch_all(db)
            .await?;
    for (i, (host, uuid)) in gpus.iter().enumerate() {
        exporter.set(host, uuid, (i % 101) as f64);
    }
    sqlx::query("ANALYZE").execute(db).await?;
    Ok(())
}

/// The first `name=value` a response sets.
fn set_cookie(resp: &reqwest::Response, what: &str) -> Result<String> {
    Ok(resp
        .headers()
        .get("set-cookie")
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').next())
        .with_context(|| format!("no {what} cookie"))?
        .to_string())
}

/// Signs in with the dev sign-in form; the session cookie.
async fn sign_in(http: &reqwest::Client, rig: &Rig, subject: &str) -> Result<String> {
    let page = http.get(rig.url("/sign-in")).send().await?;
    let pre = set_cookie(&page, "sign-in")?;
    let body = page.text().await?;
    let at = body.find(r#"name="csrf" value=""#).context("csrf")? + 19;
    let csrf = &body[at..at + 64];
    let signed = http
        .post(rig.url("/sign-in/dev"))
        .header("cookie", &pre)
        .form(&[
            ("csrf", csrf),
            ("subject", subject),
            ("key", &rig.dev_key()),
        ])
        .send()
        .await?;
    set_cookie(&signed, "session")
}

#[tokio::main]
async fn main() -> Result<()> {
    ensure_installed()?;
    let exporter = Exporter::start().await?;
    let prometheus = Prometheus::start(&exporter).await?;
    let rig = Rig::start_with(
        &[],
        Options {
            workers: 0,
            extra_config: format!(
                "[portal]\ndev_sign_in = true\n[undertaker]\nprometheus_url = \"{}\"\n",
                prometheus.url
            ),
            ..Options::default()
        },
    )
    .await?;
    declare_fleet(&rig.db, &exporter).await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    // Dev sign-in as an admin, so every page renders.
    let session = sign_in(&http, &rig, "root-admin").await?;
    // Prometheus has every GPU before the first look; the grid's
    // utilisation then arrives in the background after it.
    let all = "count(DCGM_FI_DEV_GPU_UTIL)";
    let prom = &prometheus;
    eventually(
        "Prometheus to have 8,000 GPUs",
        Duration::from_secs(120),
        move || async move {
            let v = prom.query(all).await?;
            let n = v["data"]["result"][0]["value"][1].as_str().unwrap_or("0");
            Ok((n == "8000").then_some(()))
        },
    )
    .await?;
    // The grid's utilisation arrives in the background after a first look.
    let (h, cookie) = (&http, &session);
    let fleet = rig.url("/fleet");
    eventually(
        "utilisation on the fleet page",
        Duration::from_secs(120),
        move || {
            let fleet = fleet.clone();
            async move {
                let page = h
                    .get(&fleet)
                    .header("cookie", cookie)
                    .send()
                    .await?
                    .text()
                    .await?;
                Ok((page.contains("utilisation as of") && page.contains("svg")).then_some(()))
            }
        },
    )
    .await?;
    println!(
        "portal page times, 1,000 hosts / 8,000 GPUs (4,000 held, 200 waiting, utilisation \
         from Prometheus), {ROUNDS} fetches each:"
    );
    let pages = [
        "/fleet",
        "/fleet?page=10",
        "/fleet?queue=3090&page=5",
        "/",
        "/new",
        "/admin",
        "/admin/users",
        "/admin/audit",
        "/portal.css",
        "/portal.js",
    ];
    for path in pages {
        let mut times = Vec::with_capacity(ROUNDS);
        let mut size = 0;
        for _ in 0..ROUNDS {
            let start = Instant::now();
            let resp = http
                .get(rig.url(path))
                .header("cookie", &session)
                .send()
                .await?;
            if resp.status() != 200 {
                bail!("{path}: {}", resp.status());
            }
            size = resp.bytes().await?.len();
            times.push(start.elapsed());
        }
        times.sort();
        println!(
            "  {path:<26} p50 {:6.2} ms  p99 {:6.2} ms  {:7.1} KB",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            size as f64 / 1024.0
        );
    }
    Ok(())
}
