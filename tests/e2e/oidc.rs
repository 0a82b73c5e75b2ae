//! Tokens from an OIDC issuer (RS256/ES256 keys from a JWKS the test
//! serves): good ones pass; every kind of bad one is a 401.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use vessel_orchestrator::api::auth::perm;

use crate::rig::{eventually, gpu_host, run, Options, Rig};

const ISSUER: &str = "https://lab.example.auth0.com/";
const AUDIENCE: &str = "https://vessel.lab/api";

struct Jwks {
    addr: std::net::SocketAddr,
    keys: Arc<Mutex<Value>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Jwks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_jwks() -> anyhow::Result<Jwks> {
    let keys = Arc::new(Mutex::new(json!({ "keys": [] })));
    let shared = keys.clone();
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let keys = shared.clone();
            async move { axum::Json(keys.lock().unwrap().clone()) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Jwks { addr, keys, task })
}

struct Key {
    kid: String,
    alg: Algorithm,
    pem: Vec<u8>,
    public_pem: Vec<u8>,
    jwk: Value,
}

fn rsa_key(dir: &std::path::Path, kid: &str) -> anyhow::Result<Key> {
    let path = dir.join(format!("{kid}.pem"));
    let p = path.display().to_string();
    run(
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &p,
        ],
    )?;
    let modulus = run("openssl", &["rsa", "-in", &p, "-noout", "-modulus"])?;
    let n = hex_decode(modulus.trim_start_matches("Modulus="));
    let public = run("openssl", &["rsa", "-in", &p, "-pubout"])?;
    Ok(Key {
        kid: kid.into(),
        alg: Algorithm::RS256,
        pem: std::fs::read(&path)?,
        public_pem: public.into_bytes(),
        jwk: json!({ "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": B64.encode(n), "e": "AQAB" }),
    })
}

fn ec_key(dir: &std::path::Path, kid: &str) -> anyhow::Result<Key> {
    let raw = dir.join(format!("{kid}-raw.pem")).display().to_string();
    let pk8 = dir.join(format!("{kid}.pem"));
    run(
        "openssl",
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &raw,
        ],
    )?;
    run(
        "openssl",
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            &raw,
            "-out",
            &pk8.display().to_string(),
        ],
    )?;
    let der = dir.join(format!("{kid}.der")).display().to_string();
    run(
        "openssl",
        &[
            "ec", "-in", &raw, "-pubout", "-outform", "DER", "-out", &der,
        ],
    )?;
    let der = std::fs::read(&der)?;
    let xy = &der[der.len() - 64..];
    Ok(Key {
        kid: kid.into(),
        alg: Algorithm::ES256,
        pem: std::fs::read(&pk8)?,
        public_pem: Vec::new(),
        jwk: json!({ "kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
                     "x": B64.encode(&xy[..32]), "y": B64.encode(&xy[32..]) }),
    })
}

fn hex_decode(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> Value {
    json!({
        "sub": "auth0|alice", "iss": ISSUER, "aud": AUDIENCE,
        "iat": now(), "exp": now() + 600, "permissions": ["vessels:read"],
    })
}

fn sign(key: &Key, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    let encoding = match key.alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&key.pem).unwrap(),
        _ => EncodingKey::from_ec_pem(&key.pem).unwrap(),
    };
    jsonwebtoken::encode(&header, claims, &encoding).unwrap()
}

fn with(mut c: Value, key: &str, value: Value) -> Value {
    c[key] = value;
    c
}

/// A rig whose orchestrator trusts the test issuer, with `more` keys in its
/// `[[auth.oidc]]` table.
async fn rig_trusting(jwks: &Jwks, more: &str) -> anyhow::Result<Rig> {
    let oidc = format!(
        "[[auth.oidc]]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n\
         jwks_url = \"http://{}/.well-known/jwks.json\"\n{more}",
        jwks.addr
    );
    Rig::start_with(
        &[gpu_host("gpu-1", 1, "3090")],
        Options {
            workers: 0,
            extra_config: oidc,
            ..Options::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_tokens_are_checked_and_keys_rotate() -> anyhow::Result<()> {
    let jwks = serve_jwks().await?;
    let rig = rig_trusting(
        &jwks,
        "algorithms = [\"RS256\", \"ES256\"]\nmin_refresh = \"100ms\"\n",
    )
    .await?;
    let first = rsa_key(&rig.dir, "k1")?;
    let second = rsa_key(&rig.dir, "k2")?;
    let ec = ec_key(&rig.dir, "e1")?;
    *jwks.keys.lock().unwrap() = json!({ "keys": [first.jwk, ec.jwk] });

    let status = |token: String| {
        let rig = &rig;
        async move {
            rig.call(reqwest::Method::GET, "/v1/vessels", &token, None)
                .await
                .map(|(s, _)| s)
        }
    };
    let (code, body) = rig
        .call(
            reqwest::Method::GET,
            "/v1/vessels",
            &sign(&first, &claims()),
            None,
        )
        .await?;
    assert_eq!(code, 200, "a good RS256 token: {body}");
    assert_eq!(
        status(sign(&ec, &claims())).await?,
        200,
        "a good ES256 token"
    );

    let refused = [
        (
            "expired",
            sign(&first, &with(claims(), "exp", json!(now() - 120))),
        ),
        (
            "not yet valid",
            sign(&first, &with(claims(), "nbf", json!(now() + 600))),
        ),
        (
            "wrong issuer",
            sign(
                &first,
                &with(claims(), "iss", json!("https://evil.example/")),
            ),
        ),
        (
            "wrong audience",
            sign(&first, &with(claims(), "aud", json!("someone-else"))),
        ),
        ("unknown kid", {
            let mut k = rsa_key(&rig.dir, "stranger")?;
            k.kid = "nobody-knows".into();
            sign(&k, &claims())
        }),
        ("alg none", {
            let header =
                B64.encode(json!({ "alg": "none", "typ": "JWT", "kid": "k1" }).to_string());
            let body = B64.encode(claims().to_string());
            format!("{header}.{body}.")
        }),
        ("HS256 signed with the RS256 public key", {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some("k1".into());
            jsonwebtoken::encode(
                &header,
                &claims(),
                &EncodingKey::from_secret(&first.public_pem).unwrap(),
            )
            .unwrap()
        }),
        ("tampered payload", {
            let good = sign(&first, &claims());
            let parts: Vec<&str> = good.split('.').collect();
            let evil = with(
                claims(),
                "permissions",
                json!(["vessels:manage:any", "fleet:manage"]),
            );
            format!("{}.{}.{}", parts[0], B64.encode(evil.to_string()), parts[2])
        }),
    ];
    for (what, token) in refused {
        let (code, body) = rig
            .call(reqwest::Method::GET, "/v1/vessels", &token, None)
            .await?;
        assert_eq!(code, 401, "{what}: {body}");
        assert!(
            !body.to_string().contains(&token),
            "{what}: the token was echoed"
        );
    }

    // Rotation: the issuer now signs with k2 only; the first k2 token makes
    // the orchestrator refetch the JWKS and pass.
    *jwks.keys.lock().unwrap() = json!({ "keys": [second.jwk] });
    let rotated = sign(&second, &claims());
    eventually(
        "the rotated key to be accepted",
        Duration::from_secs(10),
        || {
            let token = rotated.clone();
            let status = &status;
            async move { Ok((status(token).await? == 200).then_some(())) }
        },
    )
    .await?;
    Ok(())
}

/// A user who can ask the identity provider for any scope asks for
/// `fleet:manage`; a token issued to some other app of the same issuer is
/// presented. Neither opens an admin route, and only `auth.admins` makes an
/// admin, within the issuer's grants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oidc_scope_is_not_a_permission_and_other_clients_are_refused() -> anyhow::Result<()> {
    let jwks = serve_jwks().await?;
    let rig = rig_trusting(&jwks, "allowed_clients = [\"vessel-cli\"]\n").await?;
    let key = rsa_key(&rig.dir, "k1")?;
    *jwks.keys.lock().unwrap() = json!({ "keys": [key.jwk] });
    let drain = |claims: Value| {
        let rig = &rig;
        let token = sign(&key, &claims);
        async move {
            rig.call(reqwest::Method::POST, "/v1/hosts/gpu-1/drain", &token, None)
                .await
        }
    };
    let cli = |c: Value| with(c, "azp", json!("vessel-cli"));

    let scoped = with(
        cli(claims()),
        "scope",
        json!("openid fleet:manage vessels:manage:any"),
    );
    let (status, body) = drain(scoped).await?;
    assert_eq!(status, 403, "scope made an admin: {body}");

    let claimed = with(cli(claims()), "permissions", json!(["fleet:manage"]));
    let (status, body) = drain(claimed).await?;
    assert_eq!(status, 403, "a non-admin's claim made an admin: {body}");

    let other_app = with(
        with(claims(), "azp", json!("someone-elses-app")),
        "sub",
        json!("auth0|root"),
    );
    let (status, body) = drain(with(other_app, "permissions", json!(["fleet:manage"]))).await?;
    assert_eq!(status, 401, "another client's token: {body}");

    let root = with(
        with(cli(claims()), "sub", json!("auth0|root")),
        "permissions",
        json!(["fleet:manage"]),
    );
    // The admin, through a client that claims to relay for the bot: the
    // drain happens, and the audit log does not believe the claim.
    let resp = reqwest::Client::new()
        .post(rig.url("/v1/hosts/gpu-1/drain"))
        .bearer_auth(sign(&key, &root))
        .header("x-vessel-via", "vessel-bot/slack")
        .send()
        .await?;
    assert_eq!(resp.status(), 200, "the configured admin");
    let sources: Vec<String> = sqlx::query_scalar(
        "SELECT source FROM audit_log WHERE actor = 'auth0|root@lab.example.auth0.com'",
    )
    .fetch_all(&rig.db)
    .await?;
    assert_eq!(sources.len(), 1, "{sources:?}");
    assert!(
        !sources[0].contains("via"),
        "a forged relay reached the audit log: {sources:?}"
    );
    Ok(())
}

/// Round three, item 10: people were keyed by the bare subject, so an SSO
/// account whose `sub` equals a Slack user id *was* that Slack user: their
/// vessels, their keys, their DMs. Now an SSO identity is `SUB@NAME` until
/// an admin links it to a person; linking and unlinking are audited, and
/// only admins may do either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sso_subject_equal_to_a_slack_user_id_is_not_that_user_until_linked(
) -> anyhow::Result<()> {
    use reqwest::Method;
    let jwks = serve_jwks().await?;
    let rig = rig_trusting(&jwks, "name = \"sso\"\n").await?;
    let key = rsa_key(&rig.dir, "k1")?;
    *jwks.keys.lock().unwrap() = json!({ "keys": [key.jwk] });

    // The Slack user U0ALICE (through the bot) has a vessel.
    let slack = rig.researcher("U0ALICE");
    rig.add_key(&slack).await?;
    let (status, vessel) = rig.create(&slack, json!({ "queue": "3090" })).await?;
    assert_eq!(status, 202, "{vessel}");
    let id = vessel["id"].as_str().unwrap().to_string();

    // An SSO account whose `sub` is U0ALICE is someone else.
    let sso = sign(
        &key,
        &with(
            with(claims(), "sub", json!("U0ALICE")),
            "permissions",
            json!(["vessels:read", "vessels:create"]),
        ),
    );
    let mine = |token: String| {
        let rig = &rig;
        async move {
            let (s, list) = rig.call(Method::GET, "/v1/vessels", &token, None).await?;
            assert_eq!(s, 200, "{list}");
            let ids: Vec<String> = list["vessels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["id"].as_str().unwrap().to_string())
                .collect();
            anyhow::Ok(ids)
        }
    };
    let (_, me) = rig.call(Method::GET, "/v1/me", &sso, None).await?;
    assert_eq!(me["id"], "U0ALICE@sso", "{me}");
    assert!(
        mine(sso.clone()).await?.is_empty(),
        "it sees U0ALICE's vessels"
    );
    let (s, body) = rig
        .call(Method::DELETE, &format!("/v1/vessels/{id}"), &sso, None)
        .await?;
    assert!(
        s == 403 || s == 404,
        "it killed U0ALICE's vessel: {s} {body}"
    );

    // Only an admin links, to a person who exists, at a configured issuer.
    let link = json!({ "issuer": "sso", "subject": "U0ALICE" });
    let put_link = |token: String, user: &'static str, body: Value| {
        let rig = &rig;
        async move {
            let path = format!("/v1/users/{user}/links");
            rig.call(Method::PUT, &path, &token, Some(body)).await
        }
    };
    let (s, _) = put_link(sso.clone(), "U0ALICE", link.clone()).await?;
    assert_eq!(s, 403, "a researcher linked themselves");
    let admin = rig.token("root-admin", perm::ADMIN);
    let elsewhere = json!({ "issuer": "elsewhere", "subject": "U0ALICE" });
    let (s, body) = put_link(admin.clone(), "U0ALICE", elsewhere).await?;
    assert_eq!((s, body["field"].as_str()), (422, Some("issuer")), "{body}");
    let (s, body) = put_link(admin.clone(), "UNOBODY", link.clone()).await?;
    assert_eq!(s, 404, "{body}");
    let (s, body) = put_link(admin.clone(), "U0ALICE", link.clone()).await?;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["user"], "U0ALICE");
    let (s, body) = put_link(admin.clone(), "U0ALICE", link).await?;
    assert_eq!(s, 409, "linked twice: {body}");

    // Linked: the SSO identity is U0ALICE.
    let (_, me) = rig.call(Method::GET, "/v1/me", &sso, None).await?;
    assert_eq!(me["id"], "U0ALICE", "{me}");
    assert_eq!(mine(sso.clone()).await?, vec![id.clone()]);

    // Unlinked: someone else again.
    let (s, body) = rig
        .call(
            Method::DELETE,
            "/v1/users/U0ALICE/links/sso/U0ALICE",
            &admin,
            None,
        )
        .await?;
    assert_eq!(s, 204, "{body}");
    assert!(mine(sso).await?.is_empty());
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE action LIKE 'user.%link' ORDER BY id",
    )
    .fetch_all(&rig.db)
    .await?;
    assert_eq!(actions, ["user.link", "user.unlink"]);
    Ok(())
}
