//! The web portal over HTTP, as a browser without JavaScript would use it:
//! pages need a session, every form needs its CSRF token, a researcher
//! sees neither the admin page nor anyone else's secrets, and a vessel is
//! created, shown with its SSH access, and killed from the forms.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::rig::{eventually, gpu_host, Options, Rig};

/// A cookie-keeping client that does not follow redirects, so each answer
/// can be checked.
struct Browser<'a> {
    rig: &'a Rig,
    http: reqwest::Client,
    cookies: std::collections::BTreeMap<String, String>,
}

struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

impl<'a> Browser<'a> {
    fn new(rig: &'a Rig) -> Self {
        Browser {
            rig,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: Default::default(),
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Result<Page> {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let resp = req.header("cookie", cookie).send().await?;
        for set in resp.headers().get_all("set-cookie") {
            let set = set.to_str()?;
            let pair = set.split(';').next().unwrap_or_default();
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_string(), v.to_string());
                }
            }
        }
        Ok(Page {
            status: resp.status().as_u16(),
            location: resp
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .map(str::to_string),
            body: resp.text().await?,
        })
    }

    async fn get(&mut self, path: &str) -> Result<Page> {
        let req = self.http.get(self.rig.url(path));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Result<Page> {
        let req = self.http.post(self.rig.url(path)).form(form);
        self.send(req).await
    }

    async fn sign_in(&mut self, subject: &str) -> Result<()> {
        let page = self.get("/sign-in").await?;
        let csrf = csrf_in(&page.body)?;
        let done = self
            .post(
                "/sign-in/dev",
                &[
                    ("csrf", &csrf),
                    ("subject", subject),
                    ("key", &self.rig.dev_key()),
                ],
            )
            .await?;
        if done.status != 303 || !self.cookies.contains_key("vessel_session") {
            bail!("dev sign-in as {subject}: {} {}", done.status, done.body);
        }
        Ok(())
    }

    /// The CSRF token of the signed-in session, from any page's form.
    async fn csrf(&mut self) -> Result<String> {
        csrf_in(&self.get("/new").await?.body)
    }
}

fn csrf_in(html: &str) -> Result<String> {
    let at = html
        .find(r#"name="csrf" value=""#)
        .context("no CSRF field on the page")?;
    let rest = &html[at + r#"name="csrf" value=""#.len()..];
    Ok(rest[..rest.find('"').context("unterminated")?].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_pages_need_a_session_and_forms_their_csrf_token() -> Result<()> {
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 2, "3090")],
        Options {
            extra_config: "[portal]\ndev_sign_in = true\n".into(),
            ..Options::default()
        },
    )
    .await?;
    let mut anon = Browser::new(&rig);
    for path in ["/", "/new", "/fleet", "/admin"] {
        let page = anon.get(path).await?;
        assert_eq!(page.status, 303, "{path} without a session");
        assert_eq!(page.location.as_deref(), Some("/sign-in"), "{path}");
    }
    let page = anon
        .post("/new", &[("queue", "3090"), ("gpu", "1")])
        .await?;
    assert_eq!(page.status, 303, "a form post without a session");
    // The sign-in form's own token: a forged sign-in is refused.
    let forged = anon
        .post("/sign-in/dev", &[("csrf", "nope"), ("subject", "alice")])
        .await?;
    assert_eq!(forged.status, 403, "{}", forged.body);

    let mut alice = Browser::new(&rig);
    alice.sign_in("alice").await?;
    let alice_token = rig.researcher("alice");
    // A form post without the token is refused and changes nothing.
    let page = alice
        .post("/new", &[("queue", "3090"), ("gpu", "1")])
        .await?;
    assert_eq!(page.status, 403, "{}", page.body);
    let (_, list) = rig
        .call(reqwest::Method::GET, "/v1/vessels", &alice_token, None)
        .await?;
    assert_eq!(list["vessels"].as_array().map(Vec::len), Some(0), "{list}");
    // A researcher has no admin page, and cannot drain by posting.
    let admin = alice.get("/admin").await?;
    assert_eq!(admin.status, 403);
    let csrf = alice.csrf().await?;
    let drain = alice
        .post("/admin/hosts/gpu-1/drain", &[("csrf", &csrf)])
        .await?;
    assert_eq!(drain.status, 403, "{}", drain.body);
    let fleet = rig.fleet(&alice_token).await?;
    assert_eq!(fleet["hosts"][0]["state"], "active");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_creates_shows_and_kills_a_vessel_with_field_errors_in_place() -> Result<()> {
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 2, "3090")],
        Options {
            extra_config: "[portal]\ndev_sign_in = true\n".into(),
            ..Options::default()
        },
    )
    .await?;
    // Someone else's running vessel: its secrets must not reach alice.
    let bob = rig.researcher("bob");
    rig.add_key(&bob).await?;
    let theirs = rig
        .launch(&bob, json!({ "queue": "3090", "gpus": 1 }))
        .await?;
    let their_known_hosts = theirs["ssh"]["known_hosts"]
        .as_str()
        .context("bob's known_hosts")?
        .to_string();

    let alice_token = rig.researcher("alice");
    rig.add_key(&alice_token).await?;
    let mut alice = Browser::new(&rig);
    alice.sign_in("alice").await?;
    let csrf = alice.csrf().await?;
    // The form's queue totals come from the hosts' counters: bob's GPU is
    // taken, one of two is free.
    let form = alice.get("/new").await?;
    assert!(form.body.contains("1 free, 0 waiting"), "{}", form.body);

    // A field error sits next to its field, in the grammar's words.
    let bad = alice
        .post(
            "/new",
            &[("csrf", &csrf), ("queue", "3090"), ("gpu", "lots")],
        )
        .await?;
    assert_eq!(bad.status, 422, "{}", bad.body);
    let at = bad.body.find(r#"id="f-gpu""#).context("the gpu field")?;
    let err = bad.body.find(r#"id="e-gpu""#).context("the gpu error")?;
    assert!(
        err > at && !bad.body[at..err].contains("<label"),
        "the error follows its field"
    );

    // The image is a choice among what the queue allows, not free text; a
    // typed tag must still be one the queue allows, refused in place.
    assert!(
        form.body.contains(r#"<select id="f-image" name="image""#)
            && form.body.contains(r#"<option value="vessel/absent:1">"#),
        "{}",
        form.body
    );
    let tag = alice
        .post(
            "/new",
            &[
                ("csrf", &csrf),
                ("queue", "3090"),
                ("image_tag", "lab/other:1"),
            ],
        )
        .await?;
    assert_eq!(tag.status, 422, "{}", tag.body);
    let err = tag
        .body
        .find(r#"id="e-image""#)
        .context("the image error")?;
    assert!(
        tag.body[err..].contains("allows these images"),
        "{}",
        tag.body
    );

    let made = alice
        .post(
            "/new",
            &[
                ("csrf", &csrf),
                ("queue", "3090"),
                ("gpu", "1"),
                ("name", "portal-one"),
            ],
        )
        .await?;
    assert_eq!(made.status, 303, "{}", made.body);
    // It runs, and the page shows its SSH config with a copy button.
    let mine = eventually(
        "the vessel to run on the page",
        Duration::from_secs(60),
        || async {
            let page = Browser {
                rig: &rig,
                http: alice.http.clone(),
                cookies: alice.cookies.clone(),
            }
            .get("/")
            .await?;
            Ok(page
                .body
                .contains(r#"data-state="running""#)
                .then_some(page.body))
        },
    )
    .await?;
    assert!(
        mine.contains("portal-one") && mine.contains("Host portal-one"),
        "{mine}"
    );
    assert!(mine.contains("data-copy=\"ssh-"), "a copy button");
    for path in ["/", "/fleet", "/new"] {
        let page = alice.get(path).await?;
        assert!(
            !page.body.contains(&their_known_hosts),
            "{path} shows bob's known_hosts line"
        );
    }
    let fleet = alice.get("/fleet").await?;
    assert!(
        fleet.body.contains("in use") && fleet.body.contains("alice"),
        "{}",
        fleet.body
    );

    // Kill without ticking the box does nothing; with it, it goes.
    let (_, list) = rig
        .call(reqwest::Method::GET, "/v1/vessels", &alice_token, None)
        .await?;
    let id = list["vessels"][0]["id"].as_str().context("id")?.to_string();
    let unconfirmed = alice
        .post(&format!("/vessels/{id}/kill"), &[("csrf", &csrf)])
        .await?;
    assert_eq!(unconfirmed.status, 422);
    assert_eq!(rig.show(&alice_token, &id).await?["state"], "running");
    let killed = alice
        .post(
            &format!("/vessels/{id}/kill"),
            &[("csrf", &csrf), ("confirm", "on")],
        )
        .await?;
    assert_eq!(killed.status, 303, "{}", killed.body);
    rig.wait_state(&alice_token, &id, &["buried"], Duration::from_secs(30))
        .await?;
    let fleet = rig.fleet(&alice_token).await?;
    let used: Vec<_> = fleet["hosts"][0]["gpus"]
        .as_array()
        .context("gpus")?
        .iter()
        .filter(|g| g["owner"] == "alice")
        .collect();
    assert!(used.is_empty(), "alice's GPU is free again: {fleet}");

    // An admin drains from the Admin page; signing out ends the session.
    let mut admin = Browser::new(&rig);
    admin.sign_in("root-admin").await?;
    assert_eq!(admin.get("/admin").await?.status, 200);
    let token = admin.csrf().await?;
    let drained = admin
        .post("/admin/hosts/gpu-1/drain", &[("csrf", &token)])
        .await?;
    assert_eq!(drained.status, 303, "{}", drained.body);
    assert_eq!(
        rig.fleet(&alice_token).await?["hosts"][0]["state"],
        "draining"
    );
    let out = admin.post("/sign-out", &[("csrf", &token)]).await?;
    assert_eq!(out.status, 303);
    assert_eq!(admin.get("/admin").await?.status, 303);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_signs_in_by_the_code_flow_with_pkce_at_a_real_issuer() -> Result<()> {
    use crate::rig::glewlwyd::{Glewlwyd, AUDIENCE, PORTAL_CLIENT_ID, SCOPE};
    use vessel_orchestrator::api::auth::perm;

    let dir = std::env::temp_dir().join(format!("vessel-idp-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let idp = Glewlwyd::start(&dir, 300).await?;
    idp.add_user("carol", "carol-pw", perm::RESEARCHER, "carol")
        .await?;
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 1, "3090")],
        Options {
            workers: 0,
            extra_config: format!(
                "{}[portal.oidc]\nissuer = \"{}\"\nclient_id = \"{PORTAL_CLIENT_ID}\"\n\
                 audience = \"{AUDIENCE}\"\nscopes = [\"openid\", \"{SCOPE}\"]\n",
                idp.orchestrator_config(),
                idp.issuer
            ),
            ..Options::default()
        },
    )
    .await?;
    idp.ready().await?;
    idp.add_portal_client(&rig.url("/sign-in/callback")).await?;

    let mut carol = Browser::new(&rig);
    let sign_in = carol.get("/sign-in").await?;
    assert!(sign_in.body.contains("/sign-in/oidc"), "{}", sign_in.body);
    assert!(
        !sign_in.body.contains("/sign-in/dev"),
        "no dev sign-in unless configured"
    );
    let start = carol.get("/sign-in/oidc").await?;
    let to_issuer = start.location.context("sent to the issuer")?;
    assert!(
        to_issuer.contains("code_challenge_method=S256"),
        "{to_issuer}"
    );
    assert!(carol.cookies.contains_key("vessel_oidc"));
    let back = idp.authorize("carol", "carol-pw", &to_issuer).await?;
    let path = back
        .strip_prefix(&rig.url(""))
        .context("the issuer sends the browser back to the portal")?
        .to_string();
    // Another browser cannot use the code: the flow is bound to carol's.
    let mut mallory = Browser::new(&rig);
    assert_eq!(mallory.get(&path).await?.status, 401);
    let done = carol.get(&path).await?;
    assert_eq!(done.status, 303, "{}", done.body);
    let home = carol.get("/").await?;
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(home.body.contains("carol"), "signed in as carol");
    // Her token's permissions, not more: no admin page.
    assert_eq!(carol.get("/admin").await?.status, 403);
    // The code is spent: the callback again signs nobody in.
    let mut replay = Browser::new(&rig);
    replay.cookies = carol.cookies.clone();
    replay.cookies.remove("vessel_session");
    assert_eq!(replay.get(&path).await?.status, 401);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_tells_an_open_page_when_what_it_shows_changes() -> Result<()> {
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 1, "3090")],
        Options {
            workers: 0,
            extra_config: "[portal]\ndev_sign_in = true\n".into(),
            ..Options::default()
        },
    )
    .await?;
    let mut anon = Browser::new(&rig);
    assert_eq!(
        anon.get("/live").await?.status,
        303,
        "no stream without a session"
    );
    let alice_token = rig.researcher("alice");
    rig.add_key(&alice_token).await?;
    let mut alice = Browser::new(&rig);
    alice.sign_in("alice").await?;
    assert!(
        alice.get("/").await?.body.contains("data-live"),
        "the page listens"
    );
    let cookie = format!("vessel_session={}", alice.cookies["vessel_session"]);
    let resp = alice
        .http
        .get(rig.url("/live"))
        .header("cookie", cookie)
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()?
        .starts_with("text/event-stream"));
    let mut body = resp;
    // Nothing changes, nothing is said (a keep-alive comment at most).
    let quiet = tokio::time::timeout(Duration::from_millis(2500), async {
        while let Some(chunk) = body.chunk().await? {
            if String::from_utf8_lossy(&chunk).contains("event: changed") {
                return Ok::<bool, anyhow::Error>(true);
            }
        }
        Ok(false)
    })
    .await;
    assert!(!matches!(quiet, Ok(Ok(true))), "changed without a change");
    let (status, made) = rig
        .create(&alice_token, json!({ "queue": "3090", "gpus": 1 }))
        .await?;
    assert_eq!(status, 202, "{made}");
    let told = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(chunk) = body.chunk().await? {
            if String::from_utf8_lossy(&chunk).contains("event: changed") {
                return Ok::<(), anyhow::Error>(());
            }
        }
        bail!("the stream ended")
    })
    .await;
    told.context("no `changed` within 20 s of a new vessel")??;
    Ok(())
}

/// The attack: a subject shaped like a path (`../hosts/gpu-1/drain?x=`)
/// put into an admin's limits form action, so the admin's own post (with
/// their CSRF token) lands on another route. And an admin's portal actions
/// must be audited as that admin, via the portal, from the browser's
/// address, not as `system`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_shaped_subject_cannot_redirect_an_admins_form_and_portal_actions_are_audited_as_the_person(
) -> Result<()> {
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 1, "3090")],
        Options {
            extra_config: "[portal]\ndev_sign_in = true\n".into(),
            ..Options::default()
        },
    )
    .await?;
    let evil = "../hosts/gpu-1/drain?x=";
    let mut eve = Browser::new(&rig);
    eve.sign_in(evil).await?;
    // Her first page makes her a user, so she is listed to admins.
    assert_eq!(eve.get("/").await?.status, 200);

    let mut admin = Browser::new(&rig);
    admin.sign_in("root-admin").await?;
    let csrf = admin.csrf().await?;
    let people = admin.get("/admin/users").await?;
    assert_eq!(people.status, 200, "{}", people.body);
    let action = people
        .body
        .split(r#"action=""#)
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|a| a.contains("hosts"))
        .context("eve's limits form")?
        .to_string();
    // As a browser resolves it: still under /admin/users/.
    let resolved = url::Url::parse("http://portal/admin/users")?.join(&action)?;
    assert!(
        resolved.path().starts_with("/admin/users/") && resolved.query().is_none(),
        "{action} resolves to {resolved}"
    );
    let posted = admin
        .post(
            &action,
            &[("csrf", &csrf), ("queue", "3090"), ("max_gpus", "1")],
        )
        .await?;
    assert_eq!(posted.status, 303, "{}", posted.body);

    let root = rig.token("root-admin", vessel_api::perm::ADMIN);
    let (_, fleet) = rig
        .call(reqwest::Method::GET, "/v1/fleet", &root, None)
        .await?;
    assert_eq!(fleet["hosts"][0]["state"], "active", "{fleet}");
    let (_, users) = rig
        .call(reqwest::Method::GET, "/v1/users", &root, None)
        .await?;
    let eves = users["users"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["id"] == evil))
        .context("eve in the user list")?;
    assert_eq!(eves["queues"][0]["max_gpus"], 1, "{users}");

    let (_, audit) = rig
        .call(
            reqwest::Method::GET,
            "/v1/audit?action=user.limits",
            &root,
            None,
        )
        .await?;
    let entry = &audit["entries"][0];
    assert_eq!(entry["actor"], "root-admin", "{audit}");
    let source = entry["source"].as_str().unwrap_or_default();
    assert!(
        source.contains("127.0.0.1") && source.ends_with("via portal"),
        "{audit}"
    );
    Ok(())
}

/// The attack: anything that reaches loopback (a reverse proxy on the same
/// host, an `ssh -L`, another local account) used the dev sign-in to become
/// any admin. It now takes the operator's key; every sign-in is audited
/// with its method and peer; a sign-in that is off is not routed at all;
/// and pages carry their guard headers (no framing, no caching, HSTS and
/// `Secure` cookies behind an https `public_url`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_sign_in_needs_the_operators_key_and_every_sign_in_is_audited() -> Result<()> {
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 1, "3090")],
        Options {
            extra_config: "[portal]\ndev_sign_in = true\npublic_url = \"https://vessel.test\"\n"
                .into(),
            ..Options::default()
        },
    )
    .await?;
    let mut mallory = Browser::new(&rig);
    let page = mallory.get("/sign-in").await?;
    let csrf = csrf_in(&page.body)?;
    for key in ["", "guess-guess-guess-guess"] {
        let tried = mallory
            .post(
                "/sign-in/dev",
                &[("csrf", &csrf), ("subject", "root-admin"), ("key", key)],
            )
            .await?;
        assert_eq!(tried.status, 403, "key {key:?}: {}", tried.body);
        assert!(!mallory.cookies.contains_key("vessel_session"));
    }
    let mut admin = Browser::new(&rig);
    admin.sign_in("root-admin").await?;
    let root = rig.token("root-admin", vessel_api::perm::ADMIN);
    let (_, audit) = rig
        .call(
            reqwest::Method::GET,
            "/v1/audit?action=portal.sign_in",
            &root,
            None,
        )
        .await?;
    let entries = audit["entries"].as_array().context("entries")?;
    let ok = entries
        .iter()
        .find(|e| e["outcome"] == "ok")
        .context("the sign-in's row")?;
    assert_eq!(ok["actor"], "root-admin", "{audit}");
    assert_eq!(ok["detail"]["method"], "dev", "{audit}");
    assert_eq!(ok["source"], "127.0.0.1 via portal", "{audit}");
    assert!(
        entries.iter().any(|e| e["outcome"] == "denied"),
        "the refused tries are audited: {audit}"
    );

    // Guard headers on a page with SSH material; an https public URL makes
    // the session cookie Secure and sends HSTS.
    let resp = admin
        .http
        .get(rig.url("/"))
        .header(
            "cookie",
            format!("vessel_session={}", admin.cookies["vessel_session"]),
        )
        .send()
        .await?;
    let h = resp.headers();
    assert_eq!(h["cache-control"], "no-store");
    let csp = h["content-security-policy"].to_str()?;
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(h.contains_key("strict-transport-security"));
    let signed = Browser::new(&rig).get("/sign-in").await?;
    assert_eq!(signed.status, 200);
    let again = reqwest::get(rig.url("/sign-in")).await?;
    let cookie = again.headers()["set-cookie"].to_str()?.to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");

    // Without `dev_sign_in` the route is not there at all.
    let plain = Rig::start_with(&[gpu_host("gpu-1", 1, "3090")], Options::default()).await?;
    let off = reqwest::Client::new()
        .post(plain.url("/sign-in/dev"))
        .form(&[("subject", "root-admin")])
        .send()
        .await?;
    assert_eq!(off.status(), 404);
    Ok(())
}

/// Issue 21 in the portal: Hibernate (confirmed: its processes end) and
/// Wake act on the researcher's own vessel, and the page says it sleeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_hibernates_and_wakes_a_vessel() -> Result<()> {
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 1, "3090")],
        Options {
            extra_config: "[portal]\ndev_sign_in = true\n".into(),
            ..Options::default()
        },
    )
    .await?;
    let token = rig.researcher("alice");
    rig.add_key(&token).await?;
    let vessel = rig.launch(&token, json!({ "queue": "3090" })).await?;
    let id = vessel["id"].as_str().context("id")?.to_string();
    let mut alice = Browser::new(&rig);
    alice.sign_in("alice").await?;
    let csrf = alice.csrf().await?;
    let page = alice.get("/").await?;
    assert!(
        page.body.contains(&format!("/vessels/{id}/hibernate")),
        "{}",
        page.body
    );

    // Unconfirmed: nothing happens.
    let path = format!("/vessels/{id}/hibernate");
    assert_eq!(alice.post(&path, &[("csrf", &csrf)]).await?.status, 422);
    assert_eq!(rig.show(&token, &id).await?["state"], "running");
    let slept = alice
        .post(&path, &[("csrf", &csrf), ("confirm", "on")])
        .await?;
    assert_eq!(slept.status, 303, "{}", slept.body);
    rig.wait_state(&token, &id, &["hibernated"], Duration::from_secs(30))
        .await?;
    let page = alice.get("/").await?;
    assert!(page.body.contains("Hibernated since"), "{}", page.body);

    let woke = alice
        .post(&format!("/vessels/{id}/wake"), &[("csrf", &csrf)])
        .await?;
    assert_eq!(woke.status, 303, "{}", woke.body);
    rig.wait_state(&token, &id, &["running"], Duration::from_secs(60))
        .await?;
    Ok(())
}
