//! A real browser for the portal's tests: Debian's `chromium`, headless,
//! driven over WebDriver by `chromium-driver` (one driver process per test
//! on its own port, one throw-away profile). The driver speaks plain HTTP
//! on loopback, so fantoccini is built without TLS (no second crypto
//! provider in the test binary).
//!
//! Chromium would otherwise reach out on its own (component updates,
//! safe browsing, DNS prefetch): the flags below turn that off and map
//! every host name to "not found", so the browser can only reach the
//! loopback addresses the tests give it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder};
// The tests find elements with it.
pub use fantoccini::Locator;
use serde_json::{json, Value};

use crate::eventually;

pub struct Browser {
    pub client: Client,
    driver: Child,
    /// Where this test's screenshots go (printed as they are written).
    pub shots: PathBuf,
    base: String,
}

/// The flags that keep chromium quiet, local and headless.
const FLAGS: &[&str] = &[
    "--headless=new",
    // Tests run as root in CI: chromium's sandbox refuses root.
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--window-size=1280,1000",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--no-pings",
    "--metrics-recording-only",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
];

impl Browser {
    /// Starts chromedriver and a browser session. `base` is the portal's
    /// address (`http://127.0.0.1:port`); `shots` the screenshot folder.
    pub async fn start(base: &str, profile: &Path, shots: PathBuf) -> Result<Browser> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        std::fs::create_dir_all(&shots)?;
        std::fs::create_dir_all(profile)?;
        let mut cmd = Command::new("chromedriver");
        // Its log next to the profile: what the browser was asked, when a
        // test fails.
        let log = profile.with_extension("chromedriver.log");
        cmd.arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so the browser it starts goes with it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = cmd
            .spawn()
            .context("chromedriver (run scripts/ensure-rig.sh: chromium-driver)")?;
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let status = format!("{url}/status");
        let mut this_driver = Some(driver);
        let ready = eventually("chromedriver to answer", Duration::from_secs(20), || {
            let http = http.clone();
            let status = status.clone();
            async move {
                Ok(match http.get(&status).send().await {
                    Ok(r) => {
                        let v: Value = r.json().await.unwrap_or_default();
                        (v["value"]["ready"] == true).then_some(())
                    }
                    Err(_) => None,
                })
            }
        })
        .await;
        if let Err(e) = ready {
            if let Some(mut d) = this_driver.take() {
                let _ = d.kill();
            }
            return Err(e);
        }
        let mut args: Vec<String> = FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({
            "goog:chromeOptions": { "binary": chromium()?, "args": args },
        });
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.as_object().cloned().unwrap_or_default())
            .connect(&url)
            .await
            .context("a chromium session")?;
        Ok(Browser {
            client,
            driver: this_driver.take().context("driver")?,
            shots,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn goto(&self, path: &str) -> Result<()> {
        self.client.goto(&self.url(path)).await?;
        Ok(())
    }

    /// Types `text` into the element `css` names, as a person would.
    pub async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let field = self.client.find(Locator::Css(css)).await;
        field
            .with_context(|| format!("no {css}"))?
            .send_keys(text)
            .await?;
        Ok(())
    }

    /// Clicks the element `css` names.
    pub async fn click(&self, css: &str) -> Result<()> {
        let element = self.client.find(Locator::Css(css)).await;
        element
            .with_context(|| format!("no {css}"))?
            .click()
            .await?;
        Ok(())
    }

    /// The visible text of the element `css` names.
    pub async fn text(&self, css: &str) -> Result<String> {
        Ok(self.client.find(Locator::Css(css)).await?.text().await?)
    }

    /// The current page's path.
    pub async fn path(&self) -> Result<String> {
        Ok(self.client.current_url().await?.path().to_string())
    }

    /// Writes a PNG of the window to the screenshot folder, prints its path,
    /// and returns it.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let png = self.client.screenshot().await?;
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        println!("screenshot: {}", path.display());
        Ok(path)
    }

    /// Grants the page a browser permission (clipboard-read, …) through
    /// chromedriver's Set Permission extension.
    pub async fn grant(&self, permission: &str) -> Result<()> {
        self.client
            .issue_cmd(SetPermission(permission.to_string()))
            .await
            .with_context(|| format!("granting {permission}"))?;
        Ok(())
    }

    /// What the page's clipboard holds now.
    pub async fn clipboard(&self) -> Result<String> {
        let v = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 navigator.clipboard.readText().then(done, e => done('ERROR: ' + e));",
                vec![],
            )
            .await?;
        let text = v.as_str().context("clipboard text")?.to_string();
        if text.starts_with("ERROR: ") {
            bail!("reading the clipboard: {text}");
        }
        Ok(text)
    }

    /// Waits until `css` matches an element, up to `deadline`.
    pub async fn wait_for(&self, what: &str, css: &str, deadline: Duration) -> Result<()> {
        let client = self.client.clone();
        eventually(what, deadline, || {
            let client = client.clone();
            let css = css.to_string();
            async move { Ok(client.find(Locator::Css(&css)).await.ok().map(|_| ())) }
        })
        .await
    }

    /// Ends the session (the browser quits) and the driver.
    pub async fn close(mut self) -> Result<()> {
        self.client.clone().close().await?;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failed test drops without close: take the browser down with
        // the driver's process group.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        // The driver itself, whatever became of its group: `wait` must not
        // hang on a live process.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn chromium() -> Result<String> {
    for path in ["/usr/bin/chromium", "/usr/lib/chromium/chromium"] {
        if Path::new(path).exists() {
            return Ok(path.to_string());
        }
    }
    bail!("chromium is not installed (run scripts/ensure-rig.sh)")
}

/// `POST /session/{id}/permissions`: chromedriver's Set Permission.
#[derive(Debug)]
struct SetPermission(String);

impl WebDriverCompatibleCommand for SetPermission {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/permissions",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "descriptor": { "name": self.0 }, "state": "granted" });
        (http::Method::POST, Some(body.to_string()))
    }
}
