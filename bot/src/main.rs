//! `vessel-bot [--config PATH] serve` — the Slack bot (HTTP or Socket Mode).
//! `vessel-bot [--config PATH] console --as NAME [--admin]` — the same
//! commands in a terminal, no Slack needed.
//! `vessel-bot [--config PATH] check-config` — checks the config, starts
//! nothing.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use vessel_bot::config::BotConfig;

const USAGE: &str = "usage:
  vessel-bot [--config PATH] serve                       serve Slack (see [slack] in the config)
  vessel-bot [--config PATH] console --as NAME [--admin] a terminal with the same commands
  vessel-bot [--config PATH] check-config                check the config (keys named), start nothing
The config is PATH, else $VESSEL_BOT_CONFIG, else ./vessel-bot.toml; VESSEL_BOT_A__B=v overrides a.b.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let take = |args: &mut Vec<String>, flag: &str| -> anyhow::Result<Option<String>> {
        match args.iter().position(|a| a == flag) {
            Some(i) => {
                let value = args
                    .get(i + 1)
                    .cloned()
                    .with_context(|| format!("{flag} needs a value"))?;
                args.drain(i..=i + 1);
                Ok(Some(value))
            }
            None => Ok(None),
        }
    };
    if args.iter().any(|a| a == "--help" || a == "-h") || args.is_empty() {
        println!("{USAGE}");
        return Ok(());
    }
    let path = take(&mut args, "--config")?
        .or_else(|| std::env::var("VESSEL_BOT_CONFIG").ok())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("vessel-bot.toml"));
    // The error names the file; `main`'s report adds the TOML's reason.
    let config = BotConfig::load(&path)?;
    match args.first().map(String::as_str) {
        Some("serve") => {
            init_logs(false);
            let running = vessel_bot::startup::start(config).await?;
            // SIGTERM or SIGINT: the waiting DMs' last edits go out, then
            // it exits 0.
            running.run_until_stopped().await?;
            Ok(())
        }
        Some("console") => {
            // Logs would garble the screen: warnings only, to stderr.
            init_logs(true);
            let user = take(&mut args, "--as")?.context("console needs --as NAME")?;
            let admin = args.iter().any(|a| a == "--admin");
            vessel_bot::startup::install_crypto();
            let bot = Arc::new(vessel_bot::actions::Bot::new(config)?);
            vessel_bot::console::run(bot, &user, admin).await
        }
        Some("check-config") => {
            // Loading checked every key; building the bot parses the
            // service key and the orchestrator's URL, and connects nowhere.
            vessel_bot::startup::install_crypto();
            vessel_bot::actions::Bot::new(config)?;
            println!("{}: ok", path.display());
            Ok(())
        }
        Some(other) => bail!("unknown command `{other}`\n{USAGE}"),
        None => bail!("{USAGE}"),
    }
}

fn init_logs(quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
