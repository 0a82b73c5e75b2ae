//! The `vessel` CLI run as a process, as a researcher would, against the
//! real orchestrator, real containers, real OpenSSH and a real identity
//! provider (Glewlwyd): single sign-on by the device grant, a create that
//! waits in line, `ssh` with the pinned host key, `config-ssh` then plain
//! `ssh NAME`, refresh and revocation, and the bot's grammar. Every run has
//! its own HOME and XDG dirs; the real ~/.ssh is never read or written.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::rig::glewlwyd::Glewlwyd;
use crate::rig::{binary, cpu_host, docker, eventually, gpu_host, run, Options, Rig};
use vessel_orchestrator::api::auth::perm;
use vessel_orchestrator::config::Config;
use vessel_orchestrator::startup::Application;

/// A researcher's machine: a home of their own with their SSH key.
struct Desk {
    home: PathBuf,
}

impl Desk {
    fn new(rig: &Rig, name: &str) -> Result<Desk> {
        let home = rig.dir.join(format!("home-{name}"));
        let ssh = home.join(".ssh");
        std::fs::create_dir_all(&ssh)?;
        std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o700))?;
        std::fs::copy(&rig.user_key, ssh.join("id_ed25519"))?;
        std::fs::copy(
            rig.user_key.with_extension("pub"),
            ssh.join("id_ed25519.pub"),
        )?;
        std::fs::set_permissions(
            ssh.join("id_ed25519"),
            std::fs::Permissions::from_mode(0o600),
        )?;
        Ok(Desk { home })
    }

    fn command(&self, args: &[&str]) -> Result<tokio::process::Command> {
        let mut cmd = tokio::process::Command::new(binary("vessel")?);
        cmd.args(args)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env_remove("VESSEL_SERVER")
            .env_remove("VESSEL_IDENTITY")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        Ok(cmd)
    }

    async fn run(&self, args: &[&str]) -> Result<Output> {
        let out = self.command(args)?.output();
        tokio::time::timeout(Duration::from_secs(60), out)
            .await
            .with_context(|| format!("vessel {args:?} did not finish"))?
            .map_err(Into::into)
    }

    /// Runs and expects success; returns stdout.
    async fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args).await?;
        anyhow::ensure!(
            out.status.success(),
            "vessel {args:?}: {:?}\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn credentials(&self) -> PathBuf {
        self.home.join(".config/vessel/credentials.json")
    }

    fn stored(&self) -> Result<Value> {
        Ok(serde_json::from_str(&std::fs::read_to_string(
            self.credentials(),
        )?)?)
    }

    /// Plain OpenSSH with only the user's config: what `ssh NAME` does
    /// after `vessel config-ssh` (OpenSSH reads ~ from the password
    /// database, so the test's home is named with -F).
    fn plain_ssh(&self, host: &str, command: &str) -> Result<String> {
        let config = self.home.join(".ssh/config").display().to_string();
        run(
            "ssh",
            &[
                "-F",
                &config,
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                host,
                command,
            ],
        )
    }
}

fn mode(path: &Path) -> Result<u32> {
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A scratch directory for the identity provider, which must run before
/// the rig (the orchestrator's config names it).
fn idp_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("vessel-idp-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// `vessel login` by the device grant: reads the code the CLI prints,
/// enters it as `user` would in the browser, and waits for the CLI to
/// finish. Returns what it printed.
async fn sign_in(
    desk: &Desk,
    rig: &Rig,
    idp: &Glewlwyd,
    user: &str,
    password: &str,
) -> Result<String> {
    let mut child = desk
        .command(&["login", "--server", &rig.url(""), "--no-browser"])?
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
    let mut said = String::new();
    let code = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            said.push_str(&line);
            said.push('\n');
            if let Some(code) = line.strip_prefix("and enter the code ") {
                return anyhow::Ok(code.trim().to_string());
            }
        }
        anyhow::bail!("no code printed:\n{said}")
    })
    .await
    .context("no code in time")??;
    idp.approve(user, password, &code).await?;
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await??;
    while let Some(line) = lines.next_line().await? {
        said.push_str(&line);
        said.push('\n');
    }
    anyhow::ensure!(status.success(), "login failed:\n{said}");
    Ok(said)
}

fn tokens_of(stored: &Value) -> Vec<String> {
    [
        stored["access_token"].as_str(),
        stored["sso"]["refresh_token"].as_str(),
    ]
    .into_iter()
    .flatten()
    .map(str::to_string)
    .collect()
}

fn assert_no_token(tokens: &[String], output: &str, what: &str) {
    for t in tokens {
        assert!(
            !output.contains(t.as_str()),
            "{what} printed a token:\n{output}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_researcher_signs_in_waits_in_line_and_logs_in_with_the_pinned_key() -> Result<()> {
    let idp = Glewlwyd::start(&idp_dir()?, 60).await?;
    idp.add_user("alice", "alice-pw", perm::RESEARCHER, "alice")
        .await?;
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 1, "3090")],
        Options {
            extra_config: idp.orchestrator_config(),
            ..Options::default()
        },
    )
    .await?;
    idp.ready().await?;
    let desk = Desk::new(&rig, "alice")?;

    let said = sign_in(&desk, &rig, &idp, "alice", "alice-pw").await?;
    assert!(said.contains("Signed in to"), "{said}");
    assert_eq!(mode(&desk.credentials())?, 0o600);
    assert_eq!(mode(desk.credentials().parent().unwrap())?, 0o700);
    let stored = desk.stored()?;
    let tokens = tokens_of(&stored);
    assert_eq!(tokens.len(), 2, "an access and a refresh token are kept");
    assert_no_token(&tokens, &said, "login");
    let me: Value = serde_json::from_str(&desk.ok(&["whoami", "--json"]).await?)?;
    assert_eq!(me["unix_name"], "alice", "{me}");
    let added = desk.ok(&["keys", "add"]).await?;
    assert!(added.contains("Added SHA256:"), "{added}");

    // Someone else holds the only GPU: alice's request waits in line.
    let bob = rig.researcher("bob");
    rig.add_key(&bob).await?;
    let first = rig
        .launch(
            &bob,
            json!({ "queue": "3090", "gpus": 1, "cpus": 1, "memory": "256M" }),
        )
        .await?;
    let mut create = desk
        .command(&[
            "create",
            "gpu=1",
            "queue=3090",
            "cpu=1",
            "mem=256M",
            "name=train",
            "--wait",
        ])?
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdout = create.stdout.take().context("stdout")?;
    let printed = tokio::spawn(async move {
        let mut s = String::new();
        stdout.read_to_string(&mut s).await.map(|_| s)
    });
    let mut progress = BufReader::new(create.stderr.take().context("stderr")?).lines();
    let mut seen = Vec::new();
    let waiting = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = progress.next_line().await? {
            seen.push(line.clone());
            if line.contains("waiting in line for 3090: position 1 of 1") {
                return anyhow::Ok(());
            }
        }
        anyhow::bail!("ended")
    })
    .await;
    assert!(
        matches!(waiting, Ok(Ok(()))),
        "no place in line shown: {seen:#?}"
    );

    rig.kill(&bob, first["id"].as_str().unwrap()).await?;
    let status = tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(line) = progress.next_line().await? {
            seen.push(line);
        }
        anyhow::Ok(create.wait().await?)
    })
    .await??;
    let out = printed.await??;
    assert!(status.success(), "create --wait failed: {seen:#?}\n{out}");
    let screen = seen.join("\n");
    assert!(screen.contains("train: placed on gpu-1"), "{screen}");
    assert!(screen.contains("train: ready on gpu-1"), "{screen}");
    assert!(out.contains("Host train\n"), "{out}");
    assert!(out.contains("StrictHostKeyChecking yes"), "{out}");

    // Through real OpenSSH, host key pinned by the CLI, no prompt.
    let who = desk.ok(&["ssh", "train", "--", "id", "-un"]).await?;
    assert_eq!(who.trim(), "alice");

    let configured = desk.ok(&["config-ssh"]).await?;
    assert!(configured.contains("Added `Include"), "{configured}");
    assert_eq!(desk.plain_ssh("train", "id -un")?.trim(), "alice");
    desk.ok(&["ssh", "train", "--", "true"]).await?;

    // Ctrl-C while waiting, with no terminal to ask on: the request stays
    // in line and the CLI says how to cancel it; `kill` cancels it.
    let mut later = desk
        .command(&[
            "create",
            "gpu=1",
            "queue=3090",
            "cpu=1",
            "mem=256M",
            "name=later",
            "--wait",
        ])?
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(later.stderr.take().context("stderr")?).lines();
    let mut said = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            said.push(line.clone());
            if line.contains("later: waiting in line") {
                return anyhow::Ok(());
            }
        }
        anyhow::bail!("ended: {said:?}")
    })
    .await??;
    run("kill", &["-INT", &later.id().context("pid")?.to_string()])?;
    let status = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await? {
            said.push(line);
        }
        anyhow::Ok(later.wait().await?)
    })
    .await??;
    assert_eq!(status.code(), Some(2), "{said:#?}");
    assert!(
        said.iter().any(|l| l.contains("it is still requested")),
        "{said:#?}"
    );
    let still: Value = serde_json::from_str(&desk.ok(&["show", "later", "--json"]).await?)?;
    assert_eq!(still["state"], "pending", "{still}");
    let cancelled = desk.ok(&["kill", "later"]).await?;
    assert!(cancelled.contains("later is cancelled"), "{cancelled}");

    let listed: Value = serde_json::from_str(&desk.ok(&["ls", "--json"]).await?)?;
    assert_eq!(listed["vessels"][0]["name"], "train", "{listed}");
    let killed = desk.ok(&["kill", "train"]).await?;
    assert!(killed.contains("train is stopping"), "{killed}");
    let admin = rig.token("root-admin", perm::ADMIN);
    let id = listed["vessels"][0]["id"].as_str().unwrap().to_string();
    rig.wait_state(&admin, &id, &["buried"], Duration::from_secs(30))
        .await?;
    desk.ok(&["config-ssh"]).await?;
    let file = std::fs::read_to_string(desk.home.join(".ssh/config.d/vessel"))?;
    assert!(
        !file.contains("Host train"),
        "an ended vessel's block stayed:\n{file}"
    );

    let stored = desk.stored()?;
    for args in [&["ls"][..], &["whoami"], &["show", "train"]] {
        let out = desk.run(args).await?;
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_no_token(&tokens_of(&stored), &all, &format!("{args:?}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_renewed_and_a_revoked_sign_in_asks_to_log_in_again(
) -> Result<()> {
    // Access tokens live 5 s: every call renews, and the first renewal
    // happens after the first token has expired.
    let idp = Glewlwyd::start(&idp_dir()?, 5).await?;
    idp.add_user("dana", "dana-pw", perm::RESEARCHER, "dana")
        .await?;
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 1, "3090")],
        Options {
            workers: 0,
            extra_config: idp.orchestrator_config(),
            ..Options::default()
        },
    )
    .await?;
    idp.ready().await?;
    let desk = Desk::new(&rig, "dana")?;
    sign_in(&desk, &rig, &idp, "dana", "dana-pw").await?;
    let before = desk.stored()?;
    let expiry = before["expires_at"].as_u64().context("an expiry")?;
    eventually(
        "the first access token to expire",
        Duration::from_secs(30),
        || async { Ok((now() > expiry).then_some(())) },
    )
    .await?;
    desk.ok(&["whoami"]).await?;
    let after = desk.stored()?;
    assert_ne!(after["access_token"], before["access_token"], "not renewed");
    assert!(after["expires_at"].as_u64() > Some(expiry));
    assert_eq!(mode(&desk.credentials())?, 0o600, "the renewed file");

    // The person revokes the CLI's sign-in at the identity provider.
    assert!(idp.revoke_refresh_tokens("dana", "dana-pw").await? >= 1);
    let out = desk.run(&["ls"]).await?;
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("run `vessel login`"), "{said}");
    assert_no_token(&tokens_of(&after), &said, "the refusal");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn config_ssh_adds_one_include_line_changes_nothing_twice_and_drops_ended_vessels(
) -> Result<()> {
    let rig = Rig::start(&[cpu_host("cpu-1")]).await?;
    let desk = Desk::new(&rig, "carol")?;
    // The quick start's way in: a token the operator printed.
    let token_file = rig.dir.join("carol.token");
    let token = rig.researcher("carol");
    std::fs::write(&token_file, format!("{token}\n"))?;
    let out = desk
        .run(&[
            "login",
            "--server",
            &rig.url(""),
            "--token-file",
            &token_file.display().to_string(),
        ])
        .await?;
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{said}");
    assert!(!said.contains(&token), "login printed the token");
    assert_eq!(mode(&desk.credentials())?, 0o600);

    let user_config = desk.home.join(".ssh/config");
    let original = "# my machines\nHost lab\n    HostName lab.example.org\n    User me\n\n\
                    # the cluster\nHost *.cluster\n    ProxyJump lab\n";
    std::fs::write(&user_config, original)?;
    std::fs::set_permissions(&user_config, std::fs::Permissions::from_mode(0o644))?;

    desk.ok(&["keys", "add"]).await?;
    desk.ok(&["create", "queue=cpu", "name=nb", "--wait"])
        .await?;
    desk.ok(&["config-ssh"]).await?;
    let vessel_file = desk.home.join(".ssh/config.d/vessel");
    let after_first = std::fs::read_to_string(&user_config)?;
    assert_eq!(
        after_first,
        format!("Include {}\n{original}", vessel_file.display()),
        "only the Include line is added, on top"
    );
    assert_eq!(mode(&user_config)?, 0o644, "the user's own mode is kept");
    assert_eq!(
        std::fs::read_to_string(desk.home.join(".ssh/config.vessel-backup"))?,
        original
    );
    assert!(std::fs::read_to_string(&vessel_file)?.contains("Host nb\n"));
    assert_eq!(desk.plain_ssh("nb", "true")?, "");

    // Twice: nothing changes, not even a timestamp.
    let stamp = |p: &Path| -> Result<(String, SystemTime)> {
        Ok((
            std::fs::read_to_string(p)?,
            std::fs::metadata(p)?.modified()?,
        ))
    };
    let known = desk.home.join(".ssh/config.d/vessel.known_hosts");
    let files = [user_config.clone(), vessel_file.clone(), known.clone()];
    let before: Vec<_> = files.iter().map(|f| stamp(f)).collect::<Result<_>>()?;
    let again = desk.ok(&["config-ssh"]).await?;
    assert!(again.starts_with("Unchanged:"), "{again}");
    let after: Vec<_> = files.iter().map(|f| stamp(f)).collect::<Result<_>>()?;
    assert_eq!(before, after, "a second run changed a file");

    // Hibernated and woken (issue 21): the same SSH config logs in after,
    // since the address and host key are kept.
    let slept = desk.ok(&["hibernate", "nb"]).await?;
    assert!(
        slept.contains("its files, address and host key are kept"),
        "{slept}"
    );
    eventually("nb to hibernate", Duration::from_secs(30), || async {
        let v: Value = serde_json::from_str(&desk.ok(&["show", "nb", "--json"]).await?)?;
        Ok((v["state"] == "hibernated").then_some(()))
    })
    .await?;
    desk.ok(&["wake", "nb", "--wait"]).await?;
    assert_eq!(desk.plain_ssh("nb", "true")?, "");

    // Every read answers, in JSON where asked; an admin's verb is refused
    // (exit 2) to a researcher.
    let fleet: Value = serde_json::from_str(&desk.ok(&["fleet", "--json"]).await?)?;
    assert_eq!(fleet["hosts"][0]["name"], "cpu-1", "{fleet}");
    let line: Value = serde_json::from_str(&desk.ok(&["queue", "--json"]).await?)?;
    assert!(line["queues"].is_object(), "{line}");
    assert!(desk.ok(&["fleet", "queue"]).await?.contains("cpu"));
    let keys: Value = serde_json::from_str(&desk.ok(&["keys", "ls", "--json"]).await?)?;
    assert_eq!(keys["keys"].as_array().map(Vec::len), Some(1), "{keys}");
    for admin_only in [&["drain", "cpu-1"][..], &["fleet", "front", "nb"]] {
        let out = desk.run(admin_only).await?;
        assert_eq!(out.status.code(), Some(2), "{admin_only:?}: {out:?}");
    }

    // An unknown vessel: its name and what exists, exit 3.
    let out = desk.run(&["show", "nope"]).await?;
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(said.contains("no vessel `nope`; yours: nb"), "{said}");

    desk.ok(&["kill", "nb"]).await?;
    let admin = rig.token("root-admin", perm::ADMIN);
    let list: Value = serde_json::from_str(&desk.ok(&["ls", "--json", "--ended"]).await?)?;
    let id = list["vessels"][0]["id"].as_str().context("id")?.to_string();
    rig.wait_state(&admin, &id, &["buried"], Duration::from_secs(30))
        .await?;
    desk.ok(&["config-ssh"]).await?;
    assert!(!std::fs::read_to_string(&vessel_file)?.contains("Host nb"));
    assert_eq!(std::fs::read_to_string(&known)?, "");
    assert_eq!(std::fs::read_to_string(&user_config)?, after_first);
    Ok(())
}

/// The same words to the bot's parser and to the CLI: the same request, or
/// the same sentence. The CLI binary says it before asking for a sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reads_create_as_the_bot_does() -> Result<()> {
    use vessel_bot::commands::{parse, Command, VesselCommand};
    let inputs = [
        "gpu=2 queue=3090",
        "queue=a100 gpu=4 cpu=16 mem=64G image=vessel/cuda12:latest name=train for=2d",
        "GPU=1 queue=cpu mem=512M",
        "gpus=2",
        "gpu=two",
        "mem=lots",
        "for=3y",
        "gpu=2 gpu=3",
        "gpu",
        "cpu=0",
        "name=Bad",
        "image=-rm",
        "colour=blue",
    ];
    let home = idp_dir()?;
    for input in inputs {
        let words: Vec<&str> = input.split_whitespace().collect();
        let bot = parse("/vessel", &format!("create {input}"));
        let cli = vessel_cli::create_request(&words);
        match (bot, cli) {
            (Ok(Command::Vessel(VesselCommand::Create(b))), Ok(c)) => assert_eq!(b, c, "{input}"),
            (Err(b), Err(vessel_cli::error::CliError::Usage { message, .. })) => {
                assert_eq!(b.message, message, "{input}");
                let mut args = vec!["create"];
                args.extend(&words);
                let out = tokio::process::Command::new(binary("vessel")?)
                    .args(&args)
                    .env("HOME", &home)
                    .env("XDG_CONFIG_HOME", home.join(".config"))
                    .output()
                    .await?;
                assert_eq!(out.status.code(), Some(1), "{input}");
                let said = String::from_utf8_lossy(&out.stderr);
                assert!(said.contains(&b.message), "{input}: {said}");
            }
            (bot, cli) => panic!(
                "{input}: the bot says {bot:?}, the CLI {:?}",
                cli.map_err(|e| e.to_string())
            ),
        }
    }

    // Not signed in, and a server that does not answer: each says so.
    let vessel = |args: &[&str]| {
        let mut cmd = std::process::Command::new(binary("vessel").unwrap());
        cmd.args(args)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"));
        cmd.output().unwrap()
    };
    let out = vessel(&["ls"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("run `vessel login`"));
    let token = home.join("t");
    std::fs::write(&token, "a.b.c")?;
    let out = vessel(&[
        "login",
        "--server",
        "http://127.0.0.1:9",
        "--token-file",
        &token.display().to_string(),
    ]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{said}");
    assert!(
        said.contains("http://127.0.0.1:9/v1/me") && said.contains("refused"),
        "{said}"
    );
    let _ = std::fs::remove_dir_all(&home);
    Ok(())
}

/// vessel/base with a stand-in `jupyter` (an HTTP server that listens where
/// `jupyter lab --ip=… --port=…` is told to) and the label that names its
/// port: the init starts it as it starts Jupyter.
fn jupyter_standin_image(rig: &Rig) -> Result<String> {
    let image = format!("vessel/jupyter-standin:{}", rig.id);
    let builder = format!("vessel-{}-jupyterbuild", rig.id);
    let script = r#"set -e
cat > /usr/local/bin/jupyter <<'SH'
#!/bin/sh
for a in "$@"; do
  case "$a" in --ip=*) ip=${a#--ip=} ;; --port=*) port=${a#--port=} ;; esac
done
mkdir -p /tmp/standin/lab && echo standin-jupyter > /tmp/standin/lab/index.html
cd /tmp/standin && exec python3 -m http.server --bind "$ip" "$port"
SH
chmod 755 /usr/local/bin/jupyter"#;
    docker(&[
        "run",
        "--name",
        &builder,
        "--entrypoint",
        "/bin/sh",
        crate::rig::VESSEL_IMAGE,
        "-c",
        script,
    ])?;
    let committed = docker(&[
        "commit",
        "--change",
        "LABEL org.vessel.jupyter=8888",
        &builder,
        &image,
    ]);
    docker(&["rm", "-f", &builder])?;
    committed?;
    Ok(image)
}

/// Jupyter's token travels in a plain-HTTP URL (issue: "Jupyter listens on
/// every interface with its token in a plain-HTTP URL"): it listens on the
/// vessel's loopback only, so nobody on the vessel's network reaches it,
/// and `vessel jupyter` reaches it through a forward over SSH.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jupyter_is_not_on_the_vessels_address_and_vessel_jupyter_forwards_to_it() -> Result<()> {
    let mut rig = Rig::start_with(
        &[cpu_host("cpu-1")],
        Options {
            orchestrator: false,
            ..Options::default()
        },
    )
    .await?;
    let allowed = "\"vessel/rogue-sshd:*\"]";
    anyhow::ensure!(rig.config_text.contains(allowed), "{}", rig.config_text);
    rig.config_text = rig.config_text.replace(
        allowed,
        "\"vessel/rogue-sshd:*\", \"vessel/jupyter-standin:*\"]",
    );
    rig.app = Some(Application::build(Config::from_toml_str(&rig.config_text)?).await?);
    let image = jupyter_standin_image(&rig)?;
    let outcome = jupyter_through_a_forward(&rig, &image).await;
    docker(&["rmi", "-f", &image]).ok();
    outcome
}

async fn jupyter_through_a_forward(rig: &Rig, image: &str) -> Result<()> {
    let desk = Desk::new(rig, "alice")?;
    let token_file = rig.dir.join("alice.token");
    std::fs::write(&token_file, format!("{}\n", rig.researcher("alice")))?;
    desk.ok(&[
        "login",
        "--server",
        &rig.url(""),
        "--token-file",
        &token_file.display().to_string(),
    ])
    .await?;
    desk.ok(&["keys", "add"]).await?;
    desk.ok(&[
        "create",
        "queue=cpu",
        "name=nb",
        &format!("image={image}"),
        "--wait",
    ])
    .await?;
    let shown: Value = serde_json::from_str(&desk.ok(&["show", "nb", "--json"]).await?)?;
    let url = shown["ssh"]["jupyter_url"]
        .as_str()
        .context("no jupyter_url")?;
    let token = url
        .strip_prefix("http://127.0.0.1:8888/lab?token=")
        .with_context(|| format!("not the URL after a forward: {url}"))?
        .to_string();
    let address = shown["address"].as_str().context("no address")?.to_string();

    // Inside the vessel: the listener is on the loopback, and only there.
    let access = shown["ssh"].clone();
    let listening = eventually("the stand-in Jupyter", Duration::from_secs(30), || {
        let out = rig.ssh(&access, "ss -ltnH 'sport = :8888'").ok();
        async move { Ok(out.filter(|o| !o.trim().is_empty())) }
    })
    .await?;
    assert!(
        listening.contains("127.0.0.1:8888")
            && !listening.contains("0.0.0.0:8888")
            && !listening.contains("*:8888")
            && !listening.contains("[::]:8888"),
        "Jupyter listens beyond the loopback: {listening}"
    );
    // From the vessel's network: nothing answers on its address.
    let outside = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect((address.as_str(), 8888)),
    )
    .await;
    assert!(
        !matches!(outside, Ok(Ok(_))),
        "Jupyter answered on the vessel's address {address}"
    );

    // Through `vessel jupyter`: the URL it prints works.
    let local = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let mut child = desk
        .command(&[
            "jupyter",
            "nb",
            "--no-browser",
            "--port",
            &local.to_string(),
        ])?
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let printed = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
    let printed = match printed {
        Ok(Ok(Some(line))) => line,
        other => {
            let _ = child.kill().await;
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err).await;
            }
            anyhow::bail!("vessel jupyter printed no URL ({other:?}): {err}");
        }
    };
    assert_eq!(
        printed,
        format!("http://127.0.0.1:{local}/lab?token={token}")
    );
    let body = reqwest::get(&printed).await?.text().await?;
    assert!(body.contains("standin-jupyter"), "{body}");
    child.kill().await?;
    Ok(())
}
