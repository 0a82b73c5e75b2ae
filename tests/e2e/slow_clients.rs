//! The attack: a peer on the network opens thousands of connections and
//! sends each request's headers or body a byte at a time. Every one used to
//! hold a file descriptor, so the process ran out of them and could open
//! neither new API connections nor database or host ones. Now connections
//! are capped in total (below the file limit) and per peer, and a request's
//! headers and body must arrive within their timeouts.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::rig::{gpu_host, Rig};

/// The flood: `count` connections from 127.0.0.2 (another loopback
/// address, as another machine would be), each with half a request,
/// held for `hold` seconds; prints `opened N` when they are all tried.
const FLOOD: &str = r#"
import resource, socket, sys, time
port, count, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []
for i in range(count):
    s = socket.socket()
    try:
        s.bind(("127.0.0.2", 0))
        s.connect(("127.0.0.1", port))
        s.send(b"POST /v1/vessels HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")
    except OSError:
        pass
    held.append(s)
print("opened", len(held), flush=True)
time.sleep(hold)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_slow_connections_do_not_stop_a_researcher() -> Result<()> {
    // As the service runs without `LimitNOFILE` (systemd's default soft
    // limit is 1024): this test's process, which holds the orchestrator,
    // gets a small one. Only under nextest, where a test is its own process.
    if std::env::var_os("NEXTEST_RUN_ID").is_some() {
        let pid = std::process::id().to_string();
        let status = Command::new("prlimit")
            .args(["--pid", &pid, "--nofile=1500:"])
            .status()
            .context("prlimit (util-linux)")?;
        if !status.success() {
            bail!("prlimit failed: {status}");
        }
    }
    let rig = Rig::start(&[gpu_host("gpu-1", 2, "3090")]).await?;
    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    let port = url::Url::parse(&rig.url("/"))?
        .port()
        .context("the API's port")?;

    let mut flood = Command::new("python3")
        .args(["-c", FLOOD, &port.to_string(), "2000", "30"])
        .stdout(Stdio::piped())
        .spawn()
        .context("python3")?;
    let out = flood.stdout.take().context("the flood's output")?;
    let opened = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).map(|_| line)
    });
    let opened = tokio::time::timeout(Duration::from_secs(60), opened)
        .await
        .context("the flood did not open its connections within a minute")???;
    assert!(opened.starts_with("opened 2000"), "{opened}");

    // A researcher works as usual meanwhile: each answer in well under the
    // 10 s a stuck connection would wait for the header timeout.
    // Each call on a new connection, as a new client (the CLI, a browser)
    // would open one.
    let result = async {
        let fresh = || {
            reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(30))
                .build()
        };
        for _ in 0..3 {
            let t = Instant::now();
            let resp = fresh()?
                .get(rig.url("/v1/vessels"))
                .bearer_auth(&alice)
                .send()
                .await?;
            assert_eq!(resp.status(), 200);
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "list took {:?}",
                t.elapsed()
            );
        }
        let t = Instant::now();
        let resp = fresh()?
            .post(rig.url("/v1/vessels"))
            .bearer_auth(&alice)
            .json(&json!({ "queue": "3090", "gpus": 1 }))
            .send()
            .await?;
        let status = resp.status();
        assert_eq!(status, 202, "{}", resp.text().await?);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "create took {:?}",
            t.elapsed()
        );
        anyhow::Ok(())
    }
    .await;
    let _ = flood.kill();
    let _ = flood.wait();
    result
}
