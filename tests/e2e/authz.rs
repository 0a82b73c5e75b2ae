//! Every route × every role: the route table is the only door.

use serde_json::json;
use vessel_orchestrator::api::auth::perm::*;
use vessel_orchestrator::api::{PUBLIC, ROUTES};

use crate::rig::{gpu_host, Options, Rig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_role_as_the_table_says() -> anyhow::Result<()> {
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 1, "3090")],
        Options {
            workers: 0,
            ..Options::default()
        },
    )
    .await?;
    let roles: Vec<(&str, Vec<&str>)> = vec![
        ("no permissions", vec![]),
        ("researcher", vec![VESSELS_CREATE, VESSELS_READ, FLEET_READ]),
        (
            "admin",
            vec![
                VESSELS_CREATE,
                VESSELS_READ,
                VESSELS_MANAGE_ANY,
                FLEET_READ,
                FLEET_MANAGE,
                HOSTS_MANAGE,
                AUDIT_READ,
            ],
        ),
        ("bot service", vec![EVENTS_READ, BOT_STATE]),
    ];
    let http = reqwest::Client::new();
    let mut checked = 0;
    for route in ROUTES {
        let path = route
            .path
            .replace("{vessel}", "00000000-0000-4000-8000-000000000000")
            .replace("{fingerprint}", "SHA256:nope")
            .replace("{name}", "gpu-1")
            .replace("{key}", "matrix");
        let method: reqwest::Method = route.method.parse()?;
        let send = |token: Option<String>| {
            let mut req = http.request(method.clone(), rig.url(&path));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if matches!(route.method, "POST" | "PUT") {
                req = req.json(&json!({}));
            }
            req.send()
        };
        let anonymous = send(None).await?.status().as_u16();
        assert_eq!(anonymous, 401, "anonymous {} {}", route.method, route.path);
        for (role, perms) in &roles {
            // The bot's service subject is the one that may hold its
            // permissions; roles are the orchestrator's to decide.
            let subject = match *role {
                "bot service" => "vessel-bot".to_string(),
                other => format!("matrix-{other}"),
            };
            let token = rig.token(&subject, perms);
            let status = send(Some(token)).await?.status().as_u16();
            let allowed = route
                .action
                .perms()
                .iter()
                .any(|p| perms.contains(&p.as_str()));
            if allowed {
                assert!(
                    status != 401 && status != 403,
                    "{role} should pass {} {} but got {status}",
                    route.method,
                    route.path
                );
            } else {
                assert_eq!(status, 403, "{role} on {} {}", route.method, route.path);
            }
            checked += 1;
        }
    }
    assert_eq!(checked, ROUTES.len() * roles.len());
    // The open doors: health, and where to sign in (404 here: the rig
    // configures no single sign-on; never 401).
    assert_eq!(PUBLIC, ["/health", "/v1/auth/config"]);
    assert_eq!(http.get(rig.url("/health")).send().await?.status(), 200);
    let sign_in = http.get(rig.url("/v1/auth/config")).send().await?;
    assert_eq!(sign_in.status(), 404, "{:?}", sign_in.text().await);
    Ok(())
}
