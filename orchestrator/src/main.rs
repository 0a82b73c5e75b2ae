//! `vessel-orchestrator [--config PATH]` runs the service;
//! `vessel-orchestrator [--config PATH] check-config` checks the config and
//! its hosts file without starting anything (no database, no hosts);
//! `vessel-orchestrator token SUBJECT --key FILE [PERM…]` prints a service
//! token signed with the bot's private key (for operators, scripts, curl
//! and the Prometheus scrape); the orchestrator itself holds no key that
//! signs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use vessel_orchestrator::api::auth;
use vessel_orchestrator::config::Config;
use vessel_orchestrator::startup::Application;

const USAGE: &str = "usage:
  vessel-orchestrator [--config PATH]                  run the orchestrator
  vessel-orchestrator [--config PATH] check-config     check the config and hosts file, start nothing
  vessel-orchestrator [--config PATH] token SUBJECT --key FILE [--ttl SECS] [PERM...]
                                                       print a token for SUBJECT
The config is PATH, else $VESSEL_CONFIG, else ./vessel.toml; VESSEL_A__B=v
overrides key a.b. FILE is the service's Ed25519 private key (PEM), the one
the bot signs with. Without PERMs a token asks for a researcher's permissions
(vessels:create vessels:read fleet:read); it gets at most what the subject's
role allows (auth.admins, auth.machines). --ttl is at most auth.max_token_ttl
(or the machine's max_token_ttl); the default is that maximum.";

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
        Some("token") => print_token(&config, &args[1..]),
        Some("check-config") => check_config(&config, &path),
        Some(other) => bail!("unknown command `{other}`\n{USAGE}"),
    }
}

/// `check-config`: what start-up would refuse before it touches the
/// database or a host. Loading the config already checked every key (and
/// named the bad one, making this exit non-zero); this adds what start-up
/// reads from files besides: the TLS pair, the service key, the hosts'
/// SSH private keys.
fn check_config(config: &Config, path: &std::path::Path) -> anyhow::Result<()> {
    if let Some(tls) = &config.tls {
        tls.parts()?;
    }
    auth::Verifier::new(&config.auth)?;
    for (i, host) in config.hosts.iter().enumerate() {
        russh::keys::load_secret_key(&host.ssh.key_path, None).map_err(|e| {
            anyhow::anyhow!(
                "hosts[{i}].ssh.key_path: {} is not an unencrypted OpenSSH private key: {e}",
                host.ssh.key_path.display()
            )
        })?;
    }
    println!(
        "{}: ok ({} hosts, {} queues, listening on {})",
        path.display(),
        config.hosts.len(),
        config.queues.len(),
        config.listen
    );
    Ok(())
}

/// `token SUBJECT --key FILE [--ttl SECS] [PERM…]`: refuses a lifetime the
/// orchestrator would refuse, so an operator never holds a dead token.
fn print_token(config: &Config, args: &[String]) -> anyhow::Result<()> {
    let Some(subject) = args.first() else {
        bail!("token needs a SUBJECT\n{USAGE}");
    };
    let verifier = auth::Verifier::new(&config.auth)?;
    let mut ttl = None;
    let mut key = None;
    let mut perms: Vec<String> = Vec::new();
    let mut rest = args[1..].iter();
    while let Some(a) = rest.next() {
        match a.as_str() {
            "--ttl" => {
                let secs: u64 = rest
                    .next()
                    .and_then(|t| t.parse().ok())
                    .context("--ttl needs a number of seconds")?;
                ttl = Some(secs);
            }
            "--key" => key = Some(rest.next().context("--key needs the private key's file")?),
            _ => perms.push(a.clone()),
        }
    }
    let key = key.context("token needs --key FILE, the service's private key")?;
    let key = std::fs::read_to_string(key).with_context(|| format!("--key {key}"))?;
    // The longest this subject may have: the default, and the limit.
    let max = verifier
        .allows_ttl(subject, Duration::MAX)
        .err()
        .unwrap_or(Duration::from_secs(600));
    let ttl = ttl.unwrap_or(max.as_secs());
    if ttl > max.as_secs() {
        bail!(
            "refusing: a token for `{subject}` may live at most {}s here \
             (auth.max_token_ttl, or auth.machines.{subject}.max_token_ttl)",
            max.as_secs()
        );
    }
    if perms.is_empty() {
        perms = auth::perm::RESEARCHER
            .iter()
            .map(|p| p.to_string())
            .collect();
    }
    let perms: Vec<&str> = perms.iter().map(String::as_str).collect();
    let token = auth::issue(
        &key,
        &config.auth.issuer,
        &config.auth.audience,
        subject,
        &perms,
        ttl,
    )?;
    println!("{token}");
    Ok(())
}
