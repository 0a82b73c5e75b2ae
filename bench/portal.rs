//! The portal's page times (`cargo bench --bench portal`), server side, on
//! a fleet declared in the database (1,000 hosts, 8,000 GPUs, all free: no
//! vessels are declared yet): each page fetched over loopback HTTP with an
//! admin's session, p50/p99 and its size. Goal: p99 under 20 ms, pages under
//! 100 KB (the fleet grid at this size is the one expected to exceed it).

use std::time::Instant;

use anyhow::{bail, Context, Result};
use sqlx::PgPool;
use vessel_testrig::figures::{ms, percentile};
use vessel_testrig::{Options, Rig};

const ROUNDS: usize = 200;

async fn declare_fleet(db: &PgPool) -> Result<()> {
    vessel_testrig::figures::declare_fleet(db).await?;
    sqlx::query("ANALYZE").execute(db).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let rig = Rig::start_with(
        &[],
        Options {
            workers: 0,
            extra_config: "[portal]\ndev_sign_in = true\n".into(),
            ..Options::default()
        },
    )
    .await?;
    declare_fleet(&rig.db).await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    // Dev sign-in as an admin, so every page renders.
    let page = http.get(rig.url("/sign-in")).send().await?;
    let pre = page
        .headers()
        .get("set-cookie")
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').next())
        .context("sign-in cookie")?
        .to_string();
    let body = page.text().await?;
    let at = body.find(r#"name="csrf" value=""#).context("csrf")? + 19;
    let csrf = &body[at..at + 64];
    let signed = http
        .post(rig.url("/sign-in/dev"))
        .header("cookie", &pre)
        .form(&[("csrf", csrf), ("subject", "root-admin")])
        .send()
        .await?;
    let session = signed
        .headers()
        .get("set-cookie")
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').next())
        .context("session cookie")?
        .to_string();
    println!("portal page times, 1,000 hosts / 8,000 GPUs, {ROUNDS} fetches each:");
    for path in ["/fleet", "/", "/new", "/admin"] {
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
            "  {path:<7} p50 {:6.2} ms  p99 {:6.2} ms  {:7.1} KB",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            size as f64 / 1024.0
        );
    }
    Ok(())
}
