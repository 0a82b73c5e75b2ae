//! The host probe as an attack surface: what `nvidia-smi` prints on a host
//! ends up in the env file the container's root sources, so a host whose
//! GPU inventory is not what nvidia-smi prints is refused, named.

use serde_json::json;

use crate::rig::{gpu_host, HostDecl, Rig};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gpu_uuid_crafted_to_run_commands_as_root_in_vessels_fails_the_probe(
) -> anyhow::Result<()> {
    let payload = "GPU-0000'; touch /tmp/pwned-by-the-probe; echo '";
    let rig = Rig::start(&[HostDecl {
        nvidia_smi: Some(format!(
            "0, {payload}, NVIDIA GeForce RTX 3090, 24576 MiB, 00000000:01:00.0\n"
        )),
        ..gpu_host("gpu-1", 1, "3090")
    }])
    .await?;

    // The start-up survey has run: the host is offline, and says why.
    let (online, error): (bool, Option<String>) =
        sqlx::query_as("SELECT online, probe_error FROM hosts WHERE name = 'gpu-1'")
            .fetch_one(&rig.db)
            .await?;
    assert!(!online, "a host with a forged GPU UUID takes vessels");
    let error = error.unwrap_or_default();
    assert!(
        error.contains("host gpu-1") && error.contains("GPU 0") && error.contains("UUID"),
        "{error}"
    );
    let gpus: i64 = sqlx::query_scalar("SELECT count(*) FROM gpus")
        .fetch_one(&rig.db)
        .await?;
    assert_eq!(gpus, 0, "the forged GPU was registered");

    // And a vessel asked of that queue is not placed there.
    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    let (status, body) = rig.create(&alice, json!({ "queue": "3090" })).await?;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["state"], "pending",
        "placed on a host with a forged GPU: {body}"
    );
    assert_eq!(body["line"]["reason"], "host gpu-1 is offline", "{body}");
    Ok(())
}
