//! `vessel-orchestrator [--config PATH]` (or `VESSEL_CONFIG`).

use std::path::PathBuf;

use anyhow::Context;
use vessel_orchestrator::config::Config;
use vessel_orchestrator::startup::Application;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    vessel_orchestrator::telemetry::init();
    let mut args = std::env::args().skip(1);
    let mut path = std::env::var("VESSEL_CONFIG").ok().map(PathBuf::from);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => path = args.next().map(PathBuf::from),
            "--help" | "-h" => {
                println!("usage: vessel-orchestrator [--config PATH]\n\nReads PATH (default: $VESSEL_CONFIG, else vessel.toml); VESSEL_A__B overrides key a.b.");
                return Ok(());
            }
            other => anyhow::bail!("unknown argument `{other}`; try --help"),
        }
    }
    let path = path.unwrap_or_else(|| PathBuf::from("vessel.toml"));
    let config = Config::load(&path).with_context(|| format!("config {}", path.display()))?;
    let app = Application::build(config).await?;
    app.run_until_stopped().await;
    Ok(())
}
