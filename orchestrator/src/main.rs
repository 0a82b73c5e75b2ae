//! `vessel-orchestrator [--config PATH]` runs the service;
//! `vessel-orchestrator token SUBJECT [PERM…]` prints a service token signed
//! with the config's key (for operators, scripts and curl).

use std::path::PathBuf;

use anyhow::{bail, Context};
use vessel_orchestrator::api::auth;
use vessel_orchestrator::config::Config;
use vessel_orchestrator::startup::Application;

const USAGE: &str = "usage:
  vessel-orchestrator [--config PATH]                  run the orchestrator
  vessel-orchestrator [--config PATH] token SUBJECT [--ttl SECS] [PERM...]
                                                       print a token for SUBJECT
The config is PATH, else $VESSEL_CONFIG, else ./vessel.toml; VESSEL_A__B=v
overrides key a.b. Without PERMs a token carries a researcher's permissions
(vessels:create vessels:read fleet:read).";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    vessel_orchestrator::telemetry::init();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut path = std::env::var("VESSEL_CONFIG").ok().map(PathBuf::from);
    if let Some(i) = args.iter().position(|a| a == "--config" || a == "-c") {
        let Some(p) = args.get(i + 1).cloned() else {
            bail!("--config needs a path\n{USAGE}");
        };
        path = Some(PathBuf::from(p));
        args.drain(i..=i + 1);
    }
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    let path = path.unwrap_or_else(|| PathBuf::from("vessel.toml"));
    let config = Config::load(&path).with_context(|| format!("config {}", path.display()))?;
    match args.first().map(String::as_str) {
        None => {
            let app = Application::build(config).await?;
            app.run_until_stopped()
                .await
                .context("cannot handle stop signals")
        }
        Some("token") => {
            let Some(subject) = args.get(1) else {
                bail!("token needs a SUBJECT\n{USAGE}");
            };
            let mut ttl = 3600;
            let mut perms: Vec<String> = Vec::new();
            let mut rest = args[2..].iter();
            while let Some(a) = rest.next() {
                if a == "--ttl" {
                    ttl = rest
                        .next()
                        .and_then(|t| t.parse().ok())
                        .context("--ttl needs a number of seconds")?;
                } else {
                    perms.push(a.clone());
                }
            }
            if perms.is_empty() {
                perms = [
                    auth::perm::VESSELS_CREATE,
                    auth::perm::VESSELS_READ,
                    auth::perm::FLEET_READ,
                ]
                .map(String::from)
                .to_vec();
            }
            let perms: Vec<&str> = perms.iter().map(String::as_str).collect();
            let token = auth::issue(
                config.auth.hs256_secret.expose(),
                &config.auth.issuer,
                &config.auth.audience,
                subject,
                &perms,
                ttl,
            )?;
            println!("{token}");
            Ok(())
        }
        Some(other) => bail!("unknown command `{other}`\n{USAGE}"),
    }
}
