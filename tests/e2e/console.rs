//! The console front end: the Slack commands in a terminal, against the
//! real orchestrator, with DMs printed as they happen.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::rig::{binary, bot_auth_toml, cpu_host, Rig};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_creates_a_vessel_and_prints_its_dm() -> anyhow::Result<()> {
    let rig = Rig::start(&[cpu_host("cpu-1")]).await?;
    let config = rig.dir.join("vessel-bot.toml");
    std::fs::write(
        &config,
        format!(
            "orchestrator_url = \"{}\"\ndefault_queue = \"cpu\"\n{}",
            rig.url(""),
            bot_auth_toml()
        ),
    )?;
    let mut child = tokio::process::Command::new(binary("vessel-bot")?)
        .args([
            "--config",
            &config.display().to_string(),
            "console",
            "--as",
            "dana",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let key = std::fs::read_to_string(rig.user_key.with_extension("pub"))?;
    stdin
        .write_all(format!("keys add {}\ncreate name=c1\nlist\n", key.trim()).as_bytes())
        .await?;

    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            seen.push(line.clone());
            if line.contains("c1 is running") {
                return anyhow::Ok(true);
            }
        }
        Ok(false)
    })
    .await;
    let screen = seen.join("\n");
    assert!(
        matches!(found, Ok(Ok(true))),
        "no running DM on the console:\n{screen}"
    );
    assert!(
        screen.contains("Key `") || screen.contains("Key SHA256"),
        "{screen}"
    );
    assert!(screen.contains("Provisioning c1"), "{screen}");

    // Buttons are numbered choices: the DM's [3] is Hibernate, and the
    // hibernated DM's [2] is Kill.
    stdin.write_all(b"3\n").await?;
    let slept = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            seen.push(line.clone());
            if line.contains("c1 is hibernated on") {
                return anyhow::Ok(true);
            }
        }
        Ok(false)
    })
    .await;
    assert!(
        matches!(slept, Ok(Ok(true))),
        "Hibernate did not put c1 to sleep:\n{}",
        seen.join("\n")
    );
    stdin.write_all(b"2\n").await?;
    let killed = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            seen.push(line.clone());
            if line.contains("c1 was buried") {
                return anyhow::Ok(true);
            }
        }
        Ok(false)
    })
    .await;
    assert!(
        matches!(killed, Ok(Ok(true))),
        "Kill did not bury c1:\n{}",
        seen.join("\n")
    );
    stdin.write_all(b"quit\n").await?;
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await??;
    assert!(status.success());
    Ok(())
}
