//! Attacks on the API from inside the lab (issue 10): each test is named
//! after the attack and checks that it fails and changes nothing.

use reqwest::Method;
use serde_json::{json, Value};

use crate::rig::{cpu_host, gpu_host, Options, Rig};

/// Every way a researcher could list or read another's vessel, and what the
/// admin and the fleet view show: nowhere the owner's Jupyter token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_researcher_cannot_read_anothers_jupyter_token() -> anyhow::Result<()> {
    let rig = Rig::start(&[gpu_host("gpu-1", 2, "3090")]).await?;
    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    let v = rig.launch(&alice, json!({ "queue": "3090" })).await?;
    let id = v["id"].as_str().unwrap().to_string();
    assert!(v["ssh"].is_object(), "the owner sees their SSH access: {v}");
    let token: String = sqlx::query_scalar("SELECT jupyter_token FROM vessels WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&rig.db)
        .await?;

    let bob = rig.researcher("bob");
    for path in ["/v1/vessels?all=true", "/v1/vessels?owner=alice"] {
        let (status, body) = rig.call(Method::GET, path, &bob, None).await?;
        assert_eq!(status, 403, "{path}: {body}");
    }
    let (status, _) = rig
        .call(Method::GET, &format!("/v1/vessels/{id}"), &bob, None)
        .await?;
    assert_eq!(status, 403);
    let (status, fleet) = rig.call(Method::GET, "/v1/fleet", &bob, None).await?;
    assert_eq!(status, 200);
    assert!(!fleet.to_string().contains(&token), "the fleet view leaks");

    // An admin sees the vessel, but not the owner's secrets.
    let admin = rig.token("root-admin", vessel_api::perm::ADMIN);
    let (status, all) = rig
        .call(Method::GET, "/v1/vessels?all=true", &admin, None)
        .await?;
    assert_eq!(status, 200, "{all}");
    let listed: Vec<&Value> = all["vessels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["id"] == id.as_str())
        .collect();
    assert_eq!(listed.len(), 1, "{all}");
    assert!(listed[0].get("ssh").is_none(), "{all}");
    let shown = rig.show(&admin, &id).await?;
    assert!(shown.get("ssh").is_none(), "{shown}");
    let metrics = reqwest::Client::new()
        .get(rig.url("/metrics"))
        .bearer_auth(&admin)
        .send()
        .await?
        .text()
        .await?;
    for body in [all.to_string(), shown.to_string(), metrics] {
        assert!(!body.contains(&token), "a secret leaked: {body}");
    }
    Ok(())
}

/// An image nobody listed for the queue — another team's, present on the
/// host — is refused before anything is placed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_the_queue_does_not_list_is_refused() -> anyhow::Result<()> {
    let rig = Rig::start(&[cpu_host("cpu-1")]).await?;
    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    // The test host's own image is on the engine: present, but not allowed.
    let (status, body) = rig
        .create(
            &alice,
            json!({ "queue": "cpu", "image": crate::rig::TEST_HOST_IMAGE }),
        )
        .await?;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "image", "{body}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM vessels")
        .fetch_one(&rig.db)
        .await?;
    assert_eq!(rows, 0);
    Ok(())
}

/// Keep for centuries, or with a number that overflows dates; extend again
/// and again past the queue's limit: each is refused and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeping_or_extending_past_the_queues_limits_is_refused() -> anyhow::Result<()> {
    let rig = Rig::start(&[gpu_host("gpu-1", 1, "3090")]).await?;
    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    let v = rig.launch(&alice, json!({ "queue": "3090" })).await?;
    let id = v["id"].as_str().unwrap().to_string();

    for (body, field) in [
        (json!({ "for": "9000000000000ms" }), "for"),
        (json!({ "for": "99999999999999999999d" }), "for"),
        (json!({ "for": "30d" }), "for"),
    ] {
        let (status, answer) = rig
            .call(
                Method::POST,
                &format!("/v1/vessels/{id}/keep"),
                &alice,
                Some(body.clone()),
            )
            .await?;
        assert_eq!(status, 422, "{body} → {answer}");
        assert!(
            answer["field"] == field || answer["message"].as_str().unwrap_or("").contains(field),
            "{body} → {answer}"
        );
    }
    let kept: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM vessel_idle WHERE vessel_id = $1::uuid AND keep_until IS NOT NULL",
    )
    .bind(&id)
    .fetch_one(&rig.db)
    .await?;
    assert_eq!(kept, 0, "a refused keep was written");

    // The queue allows 7 days in all (the rig's 3090 queue): 6 more days on
    // a 1-day vessel is fine, and then nothing more.
    let path = format!("/v1/vessels/{id}/extend");
    let extend = |by: &str| rig.call(Method::POST, &path, &alice, Some(json!({ "by": by })));
    let (status, body) = extend("5d").await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = extend("2d").await?;
    assert_eq!(status, 422, "past the 7 days: {body}");
    assert_eq!(body["field"], "by", "{body}");
    let (status, body) = extend("1d").await?;
    assert_eq!(status, 200, "up to the 7 days: {body}");
    let expires = body["expires_at"].clone();
    for by in ["1h", "1d"] {
        let (status, body) = extend(by).await?;
        assert_eq!(status, 422, "extend {by} again: {body}");
        assert_eq!(body["field"], "by", "{body}");
    }
    assert_eq!(rig.show(&alice, &id).await?["expires_at"], expires);
    Ok(())
}

/// Bodies a caller controls: a huge body is 413, two keys pasted as one are
/// refused, and a flood of denied reads does not flood the audit log. (A
/// forged `x-vessel-via` is the OIDC test's: only the service issuer relays.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_caller_sends_cannot_forge_or_flood_the_audit_log() -> anyhow::Result<()> {
    let rig = Rig::start(&[gpu_host("gpu-1", 1, "3090")]).await?;
    let http = reqwest::Client::new();
    let mallory = rig.researcher("mallory");

    let key = std::fs::read_to_string(rig.user_key.with_extension("pub"))?;

    // Two keys in one paste.
    let (status, body) = rig
        .call(
            Method::POST,
            "/v1/me/keys",
            &mallory,
            Some(json!({ "public_key": format!("{}\n{}", key.trim(), key.trim()) })),
        )
        .await?;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "public_key");

    // A body far past what the API reads.
    let huge = "x".repeat(2 << 20);
    let resp = http
        .post(rig.url("/v1/me/keys"))
        .bearer_auth(&mallory)
        .header("content-type", "application/json")
        .body(format!("{{\"public_key\":\"{huge}\"}}"))
        .send()
        .await?;
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await?;
    assert_eq!(body["error"], "too_large", "{body}");

    // Denied reads of another's vessel, many times: coalesced.
    let alice = rig.researcher("alice");
    rig.add_key(&alice).await?;
    let (status, v) = rig.create(&alice, json!({ "queue": "3090" })).await?;
    assert_eq!(status, 202, "{v}");
    let id = v["id"].as_str().unwrap();
    for _ in 0..30 {
        let (status, _) = rig
            .call(Method::GET, &format!("/v1/vessels/{id}"), &mallory, None)
            .await?;
        assert_eq!(status, 403);
    }
    let denied: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE actor = 'mallory' AND outcome = 'denied'",
    )
    .fetch_one(&rig.db)
    .await?;
    assert!(
        (1..=2).contains(&denied),
        "{denied} denied rows for 30 reads"
    );
    Ok(())
}

/// The service key's holder (the bot, or whoever stole its token) claims
/// admin permissions for a subject the orchestrator does not know as an
/// admin; claims a lifetime of a year; or signs with the verifier (the
/// public key) as an HMAC secret. None of it works: roles and lifetimes are
/// the orchestrator's to decide, and it holds nothing that signs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_token_cannot_mint_an_admin_or_live_for_a_year() -> anyhow::Result<()> {
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 1, "3090")],
        crate::rig::Options {
            workers: 0,
            ..Default::default()
        },
    )
    .await?;
    let drain = |token: String| {
        let rig = &rig;
        async move {
            rig.call(Method::POST, "/v1/hosts/gpu-1/drain", &token, None)
                .await
                .map(|(s, _)| s)
        }
    };
    let mallory = rig.token("mallory", vessel_api::perm::ADMIN);
    assert_eq!(drain(mallory.clone()).await?, 403, "a self-made admin");
    let (status, _) = rig.call(Method::GET, "/v1/audit", &mallory, None).await?;
    assert_eq!(status, 403);
    let (status, _) = rig
        .call(Method::GET, "/v1/vessels?all=true", &mallory, None)
        .await?;
    assert_eq!(status, 403);
    // A researcher's own permissions still work for them.
    let (status, _) = rig.call(Method::GET, "/v1/vessels", &mallory, None).await?;
    assert_eq!(status, 200);

    let long = rig.token_for("root-admin", vessel_api::perm::ADMIN, 365 * 86_400);
    let (status, body) = rig.call(Method::GET, "/v1/fleet", &long, None).await?;
    assert_eq!(status, 401, "a year-long user token: {body}");

    // HS256 with the public key as the secret: algorithm confusion.
    let confused = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "sub": "root-admin", "iss": "vessel-bot", "aud": "vessel-orchestrator",
                 "exp": chrono::Utc::now().timestamp() + 60, "perms": vessel_api::perm::ADMIN }),
        &jsonwebtoken::EncodingKey::from_secret(crate::rig::SERVICE_PUBLIC_KEY.as_bytes())?,
    )?;
    assert_eq!(drain(confused).await?, 401);

    // A machine gets its listed permissions and lifetime, nothing more.
    let prometheus = rig.token_for(
        "prometheus",
        &[
            vessel_api::perm::FLEET_READ,
            vessel_api::perm::VESSELS_CREATE,
        ],
        300 * 86_400,
    );
    let resp = reqwest::Client::new()
        .get(rig.url("/metrics"))
        .bearer_auth(&prometheus)
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let (status, _) = rig.create(&prometheus, json!({ "queue": "3090" })).await?;
    assert_eq!(status, 403, "a scrape token creates vessels");

    // The real admin may.
    assert_eq!(
        drain(rig.token("root-admin", vessel_api::perm::ADMIN)).await?,
        200
    );
    let state: String = sqlx::query_scalar("SELECT state FROM hosts WHERE name = 'gpu-1'")
        .fetch_one(&rig.db)
        .await?;
    assert_eq!(state, "draining");
    Ok(())
}

/// The attack: a machine token (a Prometheus scrape, a year long) leaks.
/// Setting the machine's `issued_after` revokes every token issued before
/// it, without rotating the service key; tokens minted after still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_machine_token_is_revoked_without_rotating_the_service_key() -> anyhow::Result<()>
{
    let now = chrono::Utc::now();
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 1, "3090")],
        Options {
            extra_config: format!(
                "[auth.machines.scraper]\nperms = [\"fleet:read\"]\nmax_token_ttl = \"365d\"\nissued_after = \"{}\"\n",
                (now - chrono::Duration::seconds(60)).to_rfc3339()
            ),
            ..Options::default()
        },
    )
    .await?;
    let leaked = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
        &json!({ "sub": "scraper", "iss": "vessel-bot", "aud": "vessel-orchestrator",
                 "iat": (now - chrono::Duration::hours(1)).timestamp(),
                 "exp": now.timestamp() + 86_400, "perms": [vessel_api::perm::FLEET_READ] }),
        &jsonwebtoken::EncodingKey::from_ed_pem(crate::rig::SERVICE_KEY.as_bytes())?,
    )?;
    let scrape = |token: String| {
        let url = rig.url("/metrics");
        async move {
            let resp = reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await?;
            anyhow::Ok((resp.status().as_u16(), resp.text().await?))
        }
    };
    let (status, body) = scrape(leaked).await?;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("revoked"), "{body}");
    let fresh = rig.token_for("scraper", &[vessel_api::perm::FLEET_READ], 300 * 86_400);
    assert_eq!(scrape(fresh).await?.0, 200);
    Ok(())
}

/// The attack: the database password leaks (it sits in config files). The
/// role the orchestrator and the tests use must not be a superuser, who
/// reads the server's files and runs programs on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_role_is_not_a_superuser() -> anyhow::Result<()> {
    let rig = Rig::start(&[gpu_host("gpu-1", 1, "3090")]).await?;
    let superuser: bool =
        sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&rig.db)
            .await?;
    assert!(!superuser);
    Ok(())
}
