//! The API refuses what it cannot trust or understand, says why, and
//! changes nothing.

use serde_json::json;

use crate::rig::{gpu_host, Options, Rig};

async fn vessel_rows(rig: &Rig) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM vessels")
        .fetch_one(&rig.db)
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_the_field_named_and_nothing_written() -> anyhow::Result<()> {
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 2, "3090")],
        Options {
            workers: 0,
            ..Options::default()
        },
    )
    .await?;
    let http = reqwest::Client::new();

    // No token, a garbage token, a token signed with another key.
    let resp = http.get(rig.url("/v1/vessels")).send().await?;
    assert_eq!(resp.status(), 401);
    let body: serde_json::Value = resp.json().await?;
    assert_eq!(body["error"], "unauthorized");
    let resp = http
        .post(rig.url("/v1/vessels"))
        .bearer_auth("not.a.jwt")
        .json(&json!({ "queue": "3090" }))
        .send()
        .await?;
    assert_eq!(resp.status(), 401);
    // Signed with an Ed25519 key that is not the service's.
    let forged = vessel_orchestrator::api::auth::issue(
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIOE/U7SUYTI90RBo9LHCOrpJl0cSluGZBKvIyMK40maf\n-----END PRIVATE KEY-----\n",
        "vessel-bot",
        "vessel-orchestrator",
        "mallory",
        &["vessels:create"],
        60,
    )?;
    let (status, _) = rig.create(&forged, json!({ "queue": "3090" })).await?;
    assert_eq!(status, 401);
    // Health needs nothing.
    assert_eq!(http.get(rig.url("/health")).send().await?.status(), 200);

    // A token without the permission.
    let reader = rig.token("alice", &["vessels:read"]);
    let (status, body) = rig.create(&reader, json!({ "queue": "3090" })).await?;
    assert_eq!(status, 403, "{body}");

    let alice = rig.researcher("alice");
    // No key yet: told how to add one.
    let (status, body) = rig.create(&alice, json!({ "queue": "3090" })).await?;
    assert_eq!(status, 422, "{body}");
    assert!(body["message"].as_str().unwrap().contains("/v1/me/keys"));
    rig.add_key(&alice).await?;

    let cases = [
        (json!({ "queue": "3090", "gpus": "two" }), "gpus"),
        (json!({ "queue": "3090", "gpuz": 2 }), "gpuz"),
        (json!({ "queue": "h100" }), "queue"),
        (json!({ "queue": "3090", "memory": "lots" }), "memory"),
        (json!({ "queue": "3090", "cpus": 0 }), "cpus"),
        (json!({ "queue": "3090", "name": "Bad Name" }), "name"),
        (json!({ "queue": "3090", "lifetime": "30d" }), "lifetime"),
        (json!({ "queue": "3090", "image": "-rm -rf" }), "image"),
    ];
    for (body, field) in cases {
        let (status, answer) = rig.create(&alice, body.clone()).await?;
        assert_eq!(status, 422, "{body} → {answer}");
        let named = answer["field"].as_str().unwrap_or_default();
        assert!(
            named == field || answer["message"].as_str().unwrap().contains(field),
            "{body} → {answer}"
        );
    }
    // Not JSON at all.
    let resp = http
        .post(rig.url("/v1/vessels"))
        .bearer_auth(&alice)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await?;
    assert_eq!(resp.status(), 422);

    let (status, body) = rig
        .call(
            reqwest::Method::POST,
            "/v1/me/keys",
            &alice,
            Some(json!({ "public_key": "ssh-ed25519 garbage" })),
        )
        .await?;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "public_key");

    assert_eq!(
        vessel_rows(&rig).await?,
        0,
        "a refused request wrote a vessel"
    );

    // Too big for any host even when empty: refused, never queued, naming
    // the largest host there is.
    let (status, body) = rig
        .create(&alice, json!({ "queue": "3090", "gpus": 3 }))
        .await?;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "gpus", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("the largest is gpu-1 (2 GPUs"),
        "{body}"
    );
    assert_eq!(vessel_rows(&rig).await?, 0);

    // Names are unique among live vessels.
    let (status, v) = rig
        .create(&alice, json!({ "queue": "3090", "name": "mine" }))
        .await?;
    assert_eq!(status, 202, "{v}");
    let (status, _) = rig
        .create(&alice, json!({ "queue": "3090", "name": "mine" }))
        .await?;
    assert_eq!(status, 409);

    // Bob may not show, extend or kill Alice's vessel: 403, nothing
    // changes, and each refusal is in the audit log.
    let bob = rig.researcher("bob");
    let id = v["id"].as_str().unwrap();
    let before = rig.show(&alice, id).await?;
    for (method, path, body) in [
        (reqwest::Method::GET, format!("/v1/vessels/{id}"), None),
        (
            reqwest::Method::POST,
            format!("/v1/vessels/{id}/extend"),
            Some(json!({ "by": "24h" })),
        ),
        (reqwest::Method::DELETE, format!("/v1/vessels/{id}"), None),
    ] {
        let (status, answer) = rig.call(method.clone(), &path, &bob, body).await?;
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert!(!answer.to_string().contains(&bob), "the token was echoed");
    }
    let after = rig.show(&alice, id).await?;
    assert_eq!(after["state"], before["state"]);
    assert_eq!(after["expires_at"], before["expires_at"]);
    let denied: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE actor = 'bob' AND outcome = 'denied' AND target = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&rig.db)
    .await?;
    assert_eq!(denied, vec!["vessel.show", "vessel.extend", "vessel.kill"]);
    let sources: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT source FROM audit_log WHERE actor = 'bob'")
            .fetch_all(&rig.db)
            .await?;
    assert_eq!(
        sources,
        vec!["127.0.0.1"],
        "where the refused requests came from"
    );
    // By name, Bob's namespace has no `mine`.
    let (status, _) = rig
        .call(reqwest::Method::GET, "/v1/vessels/mine", &bob, None)
        .await?;
    assert_eq!(status, 404);

    // Admins read the audit log; researchers do not.
    let (status, _) = rig
        .call(reqwest::Method::GET, "/v1/audit", &alice, None)
        .await?;
    assert_eq!(status, 403);
    let auditor = rig.token("root-admin", &["audit:read"]);
    let (status, log) = rig
        .call(reqwest::Method::GET, "/v1/audit?actor=bob", &auditor, None)
        .await?;
    assert_eq!(status, 200, "{log}");
    assert_eq!(log["entries"].as_array().unwrap().len(), 3, "{log}");
    Ok(())
}
