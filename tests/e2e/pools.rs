//! Addresses and the wire: two hosts that are one Docker engine on one
//! network (the quick start's shape) never hand out one address twice, and
//! the API served over TLS answers only TLS.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use crate::rig::{cpu_host, eventually, gpu_host, run, Options, Rig};

/// Before: both hosts drew from one pool, each blind to the other's
/// reservations, and the second vessel failed "Address already in use".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hosts_on_one_network_never_hand_out_one_address_twice() -> anyhow::Result<()> {
    let rig = Rig::start(&[gpu_host("gpu-1", 2, "3090"), cpu_host("cpu-1")]).await?;
    let alice = rig.researcher("alice@lab.org");
    rig.add_key(&alice).await?;

    // At once, as `demo` and then `create queue=cpu` in the console.
    let (demo, cpu) = tokio::join!(
        rig.launch(
            &alice,
            json!({ "queue": "3090", "gpus": 1, "name": "demo" })
        ),
        rig.launch(&alice, json!({ "queue": "cpu", "name": "scratch" })),
    );
    let (demo, cpu) = (demo?, cpu?);
    assert_eq!(demo["host"], "gpu-1", "{demo}");
    assert_eq!(cpu["host"], "cpu-1", "{cpu}");
    let addresses: HashSet<&str> = [&demo, &cpu]
        .iter()
        .map(|v| v["address"].as_str().context("an address"))
        .collect::<anyhow::Result<_>>()?;
    assert_eq!(addresses.len(), 2, "one address twice: {demo} {cpu}");

    // A second vessel on the CPU host while both run: still a fresh address.
    let more = rig
        .launch(&alice, json!({ "queue": "cpu", "name": "more" }))
        .await?;
    let third = more["address"].as_str().context("an address")?;
    assert!(!addresses.contains(third), "{third} reused: {more}");
    Ok(())
}

/// A bearer token sent to a non-loopback orchestrator in the clear can be
/// read off the LAN: with `[tls]`, the API speaks only TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_over_tls_answers_only_tls() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("vessel-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let (cert, key) = (dir.join("api.crt"), dir.join("api.key"));
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ed25519",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=vessel-test",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            // A server's own certificate, not a CA (webpki refuses a CA
            // as the end entity, and openssl makes one by default).
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
            "-keyout",
            &key.display().to_string(),
            "-out",
            &cert.display().to_string(),
        ],
    )?;
    let rig = Rig::start_with(
        &[],
        Options {
            extra_config: format!(
                "[tls]\ncert = {{ file = \"{}\" }}\nkey = {{ file = \"{}\" }}\n",
                cert.display(),
                key.display()
            ),
            ..Options::default()
        },
    )
    .await?;
    let url = rig.url("/health");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    // A client that trusts this certificate, and only it.
    let trusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&cert)?)?)
        .timeout(Duration::from_secs(10))
        .build()?;
    let answer = eventually("https /health", Duration::from_secs(10), || async {
        let resp = trusting.get(&url).send().await?;
        Ok(Some((resp.status().as_u16(), resp.text().await?)))
    })
    .await?;
    assert_eq!(answer, (200, "ok".to_string()));

    // The same port in the clear: no HTTP answer at all.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?
        .get(url.replacen("https://", "http://", 1))
        .send()
        .await;
    assert!(plain.is_err(), "plain http answered: {plain:?}");

    // A client that does not trust the certificate refuses it.
    let stranger = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(10))
        .build()?
        .get(&url)
        .send()
        .await;
    assert!(stranger.is_err(), "an untrusted certificate was accepted");

    // Graceful stop still works over TLS.
    let mut rig = rig;
    let app = rig.app.take().context("started")?;
    tokio::time::timeout(Duration::from_secs(15), app.stop())
        .await
        .context("the TLS server did not stop")?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
