//! A real identity provider for sign-in tests: Glewlwyd (Debian's
//! `glewlwyd` package, an OAuth 2 / OpenID Connect server that implements
//! the device authorization grant), run per test on a free loopback port
//! with its own SQLite database. The rig configures it through its admin
//! API (an OIDC plugin signing RS256 access tokens with a key made here,
//! the `vessel` scope whose resource is the orchestrator's audience, the
//! CLI as a public client) and acts for the person at the browser: signs
//! in, grants the scopes, enters the user code. It can also revoke a
//! person's refresh tokens, as they would on their profile page.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::{eventually, run};

/// The orchestrator's audience; the access token's `aud` through RFC 8707.
pub const AUDIENCE: &str = "https://vessel.lab/api";
pub const CLIENT_ID: &str = "vessel-cli";
/// The web portal, a public client of the authorization code flow (PKCE).
pub const PORTAL_CLIENT_ID: &str = "vessel-portal";
/// The scope the CLI asks for besides `openid`.
pub const SCOPE: &str = "vessel";
const ADMIN_PASSWORD: &str = "password";
/// The schema and first admin as Debian's package ships them.
const SCHEMA: &str = "/usr/share/dbconfig-common/data/glewlwyd/install/sqlite3";
const CONFIG_TEMPLATE: &str = "/etc/glewlwyd/glewlwyd.conf";

pub struct Glewlwyd {
    child: Child,
    /// Its database, key and log; removed with it.
    dir: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The OIDC issuer (`{base}/api/oidc`).
    pub issuer: String,
    http: reqwest::Client,
    admin_cookie: String,
}

impl Drop for Glewlwyd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        // The directory it was given, if nothing else is in it.
        if let Some(parent) = self.dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Glewlwyd {
    /// Starts one in `dir`, its access tokens living `access_token_secs`.
    pub async fn start(dir: &Path, access_token_secs: u64) -> Result<Glewlwyd> {
        anyhow::ensure!(
            Path::new("/usr/bin/glewlwyd").exists() && Path::new(SCHEMA).exists(),
            "glewlwyd is missing: run scripts/ensure-rig.sh"
        );
        let dir = dir.join("glewlwyd");
        std::fs::create_dir_all(&dir)?;
        let db = dir.join("glewlwyd.sqlite");
        // Another process may take the port between our probe and the
        // bind: try a few (a failed attempt takes its directory along).
        let mut last = None;
        for _ in 0..3 {
            std::fs::create_dir_all(&dir)?;
            init_database(&db)?;
            match Glewlwyd::launch(&dir, &db).await {
                Ok(mut idp) => {
                    idp.configure(&dir, access_token_secs).await?;
                    return Ok(idp);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("glewlwyd did not start")))
    }

    async fn launch(dir: &Path, db: &Path) -> Result<Glewlwyd> {
        let port = free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let template = std::fs::read_to_string(CONFIG_TEMPLATE)
            .with_context(|| format!("cannot read {CONFIG_TEMPLATE}"))?;
        let config: String = template
            .lines()
            .map(|line| {
                let key = line.split('=').next().unwrap_or("").trim();
                match key {
                    "port" => format!("port={port}"),
                    "external_url" => format!("external_url=\"{base}\""),
                    "log_mode" => "log_mode=\"console\"".to_string(),
                    "log_level" => "log_level=\"WARNING\"".to_string(),
                    _ if line.starts_with("@include") => format!(
                        "database = {{ type = \"sqlite3\"\n path = \"{}\" }};",
                        db.display()
                    ),
                    _ => line.to_string(),
                }
            })
            .map(|l| l + "\n")
            .collect();
        let conf = dir.join("glewlwyd.conf");
        std::fs::write(&conf, config)?;
        let log = std::fs::File::create(dir.join("glewlwyd.log"))?;
        let child = Command::new("/usr/bin/glewlwyd")
            .arg("--config-file")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot run glewlwyd")?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        let mut idp = Glewlwyd {
            child,
            dir: dir.to_path_buf(),
            issuer: format!("{base}/api/oidc"),
            base,
            http,
            admin_cookie: String::new(),
        };
        let child_gone = |idp: &mut Glewlwyd| idp.child.try_wait().ok().flatten().is_some();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(cookie) = idp.sign_in("admin", ADMIN_PASSWORD).await {
                idp.admin_cookie = cookie;
                return Ok(idp);
            }
            if child_gone(&mut idp) || std::time::Instant::now() > deadline {
                bail!(
                    "glewlwyd did not start on {}: {}",
                    idp.base,
                    std::fs::read_to_string(dir.join("glewlwyd.log")).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The OIDC plugin, the scope and the client.
    async fn configure(&mut self, dir: &Path, access_token_secs: u64) -> Result<()> {
        let key = dir.join("signing.pem");
        let key_s = key.display().to_string();
        run(
            "openssl",
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                &key_s,
            ],
        )?;
        let public = run("openssl", &["rsa", "-in", &key_s, "-pubout"])?;
        let plugin = json!({
            "module": "oidc", "name": "oidc", "display_name": "Vessel sign-in", "enabled": true,
            "parameters": {
                "iss": self.issuer,
                "jwt-type": "rsa", "jwt-key-size": "256",
                "key": std::fs::read_to_string(&key)?, "cert": format!("{public}\n"),
                "access-token-duration": access_token_secs,
                "refresh-token-duration": 3600,
                "code-duration": 600,
                "allow-non-oidc": true,
                "auth-type-code-enabled": true,
                // The portal's code flow proves itself with PKCE.
                "pkce-allowed": true,
                "auth-type-refresh-enabled": true,
                "auth-type-device-enabled": true,
                "device-authorization-expiration": 600,
                // The CLI must honour it; a short one keeps tests quick.
                "device-authorization-interval": 1,
                "jwks-show": true,
                // RFC 8707: the access token is made out to the orchestrator.
                "resource-allowed": true,
                "resource-scope": { SCOPE: [AUDIENCE] },
                "resource-scope-and-client-property": false,
                // Glewlwyd writes a multi-valued property as one string,
                // comma-separated; the orchestrator reads that form too.
                "additional-parameters": [
                    { "user-parameter": "permissions", "token-parameter": "permissions" },
                    { "user-parameter": "unix_name", "token-parameter": "unix_name" },
                ],
            }
        });
        self.admin("POST", "/api/mod/plugin/", plugin).await?;
        self.admin(
            "POST",
            "/api/scope/",
            json!({ "name": SCOPE, "display_name": "Vessel", "description": "The Vessel API",
                    "password_required": false, "password_max_age": 0 }),
        )
        .await?;
        self.admin(
            "POST",
            "/api/client/",
            json!({ "client_id": CLIENT_ID, "name": "Vessel CLI", "confidential": false,
                    "authorization_type": ["device_authorization", "refresh_token"],
                    "enabled": true }),
        )
        .await?;
        Ok(())
    }

    /// The orchestrator's `[[auth.oidc]]` and `[cli]` tables for this issuer.
    pub fn orchestrator_config(&self) -> String {
        format!(
            "[[auth.oidc]]\nissuer = \"{iss}\"\nname = \"sso\"\naudience = \"{AUDIENCE}\"\n\
             jwks_url = \"{iss}/jwks\"\nunix_name_claim = \"unix_name\"\n\
             allowed_clients = [\"{CLIENT_ID}\", \"{PORTAL_CLIENT_ID}\"]\n\
             [cli]\nissuer = \"{iss}\"\nclient_id = \"{CLIENT_ID}\"\nscopes = [\"openid\", \"{SCOPE}\"]\n",
            iss = self.issuer
        )
    }

    /// The portal as a public client that comes back to `redirect_uri`
    /// (known once the orchestrator listens).
    pub async fn add_portal_client(&self, redirect_uri: &str) -> Result<()> {
        self.admin(
            "POST",
            "/api/client/",
            json!({ "client_id": PORTAL_CLIENT_ID, "name": "Vessel portal", "confidential": false,
                    "authorization_type": ["code"], "redirect_uri": [redirect_uri],
                    "enabled": true }),
        )
        .await
        .map(|_| ())
    }

    /// What the person does in the browser for the portal: signs in,
    /// grants its scopes, and opens the authorization URL the portal sent
    /// them to; returns where the issuer sends them back (the callback).
    pub async fn authorize(&self, username: &str, password: &str, url: &str) -> Result<String> {
        let cookie = self.sign_in(username, password).await?;
        let grant = self
            .http
            .put(format!("{}/api/auth/grant/{PORTAL_CLIENT_ID}", self.base))
            .header("cookie", &cookie)
            .json(&json!({ "scope": format!("openid {SCOPE}") }))
            .send()
            .await?;
        anyhow::ensure!(grant.status() == 200, "granting: {}", grant.status());
        let resp = self
            .http
            .get(format!("{url}&g_continue"))
            .header("cookie", &cookie)
            .send()
            .await?;
        let location = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or_default()
            .to_string();
        anyhow::ensure!(
            resp.status() == 302 && location.contains("code="),
            "authorizing: {} {location}",
            resp.status()
        );
        Ok(location)
    }

    /// A person who may use the CLI, with the permissions their tokens
    /// carry and their unix name.
    pub async fn add_user(
        &self,
        username: &str,
        password: &str,
        perms: &[&str],
        unix_name: &str,
    ) -> Result<()> {
        self.admin(
            "POST",
            "/api/user/",
            json!({ "username": username, "name": username, "enabled": true,
                    "scope": ["openid", SCOPE], "password": password,
                    "permissions": perms, "unix_name": unix_name }),
        )
        .await
        .map(|_| ())
    }

    /// What the person does in the browser: signs in, grants the CLI its
    /// scopes, enters the code.
    pub async fn approve(&self, username: &str, password: &str, user_code: &str) -> Result<()> {
        let cookie = self.sign_in(username, password).await?;
        let grant = self
            .http
            .put(format!("{}/api/auth/grant/{CLIENT_ID}", self.base))
            .header("cookie", &cookie)
            .json(&json!({ "scope": format!("openid {SCOPE}") }))
            .send()
            .await?;
        anyhow::ensure!(grant.status() == 200, "granting: {}", grant.status());
        let url = format!("{}/api/oidc/device?code={user_code}&g_continue", self.base);
        let resp = self.http.get(url).header("cookie", &cookie).send().await?;
        let location = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or_default()
            .to_string();
        anyhow::ensure!(
            resp.status() == 302 && location.contains("deviceComplete"),
            "entering the code: {} {location}",
            resp.status()
        );
        Ok(())
    }

    /// Revokes every refresh token the person holds (their profile page's
    /// "disable"); returns how many.
    pub async fn revoke_refresh_tokens(&self, username: &str, password: &str) -> Result<usize> {
        let cookie = self.sign_in(username, password).await?;
        let list: Value = self
            .http
            .get(format!("{}/api/oidc/token", self.base))
            .header("cookie", &cookie)
            .send()
            .await?
            .json()
            .await?;
        let mut revoked = 0;
        for token in list.as_array().context("a token list")? {
            if token["enabled"] != json!(true) {
                continue;
            }
            let hash = token["token_hash"].as_str().context("token_hash")?;
            let encoded: String = url::form_urlencoded::byte_serialize(hash.as_bytes()).collect();
            let resp = self
                .http
                .delete(format!("{}/api/oidc/token/{encoded}", self.base))
                .header("cookie", &cookie)
                .send()
                .await?;
            anyhow::ensure!(resp.status() == 200, "revoking: {}", resp.status());
            revoked += 1;
        }
        Ok(revoked)
    }

    /// Waits until the discovery document answers (the plugin is loaded).
    pub async fn ready(&self) -> Result<()> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        eventually(
            "glewlwyd's discovery document",
            Duration::from_secs(15),
            || {
                let url = url.clone();
                async move {
                    let ok = self
                        .http
                        .get(&url)
                        .send()
                        .await
                        .map(|r| r.status() == 200)
                        .unwrap_or(false);
                    Ok(ok.then_some(()))
                }
            },
        )
        .await
    }

    /// A session cookie for `username`.
    async fn sign_in(&self, username: &str, password: &str) -> Result<String> {
        let resp = self
            .http
            .post(format!("{}/api/auth/", self.base))
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await?;
        anyhow::ensure!(
            resp.status() == 200,
            "signing in {username}: {}",
            resp.status()
        );
        let cookie = resp
            .headers()
            .get("set-cookie")
            .and_then(|c| c.to_str().ok())
            .and_then(|c| c.split(';').next())
            .context("no session cookie")?;
        Ok(cookie.to_string())
    }

    async fn admin(&self, method: &str, path: &str, body: Value) -> Result<Value> {
        let resp = self
            .http
            .request(method.parse()?, format!("{}{path}", self.base))
            .header("cookie", &self.admin_cookie)
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        anyhow::ensure!(status == 200, "glewlwyd {method} {path}: {status} {text}");
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// The package's schema and first admin, plus two user properties the
/// tokens carry (`permissions`, multi-valued, and `unix_name`).
fn init_database(db: &PathBuf) -> Result<()> {
    let _ = std::fs::remove_file(db);
    let schema = std::fs::read_to_string(SCHEMA)?;
    let property = |multiple: bool| {
        format!(
            "json('{{\"multiple\":{multiple},\"read\":true,\"write\":true,\"profile-read\":false,\"profile-write\":false}}')"
        )
    };
    let sql = format!(
        "{schema}\nUPDATE g_user_module_instance SET gumi_parameters = json_set(gumi_parameters, \
         '$.\"data-format\".permissions', {}, '$.\"data-format\".unix_name', {}) \
         WHERE gumi_name = 'database';\n",
        property(true),
        property(false)
    );
    let mut child = Command::new("sqlite3")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run sqlite3 (scripts/ensure-rig.sh installs it)")?;
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(sql.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "sqlite3 {}: {}",
            db.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
