//! The web portal in a real browser (Debian's chromium, driven over
//! WebDriver): sign in, a field error next to its field, a request that
//! waits in line and then runs without a reload, the SSH config copied
//! from the page and used to log in, Kill with its confirm box, the fleet
//! grid with utilisation from a real Prometheus; a researcher without the
//! admin pages and an admin with them. Screenshots of each page land in
//! the test's output folder, their paths printed.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use serde_json::json;

use crate::prometheus::{ensure_installed, Exporter, Prometheus};
use crate::rig::browser::{Browser, Locator};
use crate::rig::{eventually, gpu_host, Options, Rig};

const DEADLINE: Duration = Duration::from_secs(60);

fn shots(test: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("portal-screenshots")
        .join(test)
}

async fn browser(rig: &Rig, test: &str) -> Result<Browser> {
    let profile = rig.dir.join(format!("chromium-{test}"));
    Browser::start(&rig.url(""), &profile, shots(test)).await
}

/// Signs in with the dev sign-in form, as a person would type it, from the
/// link with the key the quick start prints.
async fn sign_in(b: &Browser, rig: &Rig, subject: &str) -> Result<()> {
    b.goto(&format!("/sign-in?key={}", rig.dev_key())).await?;
    b.type_into("#f-subject", subject).await?;
    b.click("form[action='/sign-in/dev'] button").await?;
    b.wait_for("the signed-in page", "form.signout", DEADLINE)
        .await
}

/// The `data-state` of the one vessel card on My vessels, if there is one.
async fn card_state(b: &Browser) -> Result<Option<String>> {
    match b
        .client
        .find(Locator::Css("section.card[data-state]"))
        .await
    {
        Ok(card) => Ok(card.attr("data-state").await?),
        Err(_) => Ok(None),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_researcher_waits_runs_copies_logs_in_and_kills_in_a_real_browser() -> Result<()> {
    ensure_installed()?;
    let exporter = Exporter::start().await?;
    let prometheus = Prometheus::start(&exporter).await?;
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 2, "3090")],
        Options {
            extra_config: format!(
                "[portal]\ndev_sign_in = true\n[undertaker]\nprometheus_url = \"{}\"\n",
                prometheus.url
            ),
            ..Options::default()
        },
    )
    .await?;
    // Both GPUs report: one idle, one busy; Prometheus has them before the
    // fleet page first asks.
    let alice_token = rig.researcher("alice");
    rig.add_key(&alice_token).await?;
    let fleet = rig.fleet(&alice_token).await?;
    let uuids: Vec<String> = fleet["hosts"][0]["gpus"]
        .as_array()
        .context("gpus")?
        .iter()
        .filter_map(|g| g["uuid"].as_str().map(str::to_string))
        .collect();
    ensure!(uuids.len() == 2, "two GPUs: {fleet}");
    exporter.set("gpu-1", &uuids[0], 0.0);
    exporter.set("gpu-1", &uuids[1], 80.0);
    prometheus.wait_for("5m", &uuids[..1], 0.0).await?;
    prometheus.wait_for("5m", &uuids[1..], 80.0).await?;

    // Bob holds both GPUs: alice's request will wait in line.
    let bob = rig.researcher("bob");
    rig.add_key(&bob).await?;
    let theirs = rig
        .launch(&bob, json!({ "queue": "3090", "gpus": 2, "name": "bobs" }))
        .await?;
    let their_known_hosts = theirs["ssh"]["known_hosts"]
        .as_str()
        .context("bob's known_hosts")?
        .to_string();

    let b = browser(&rig, "researcher").await?;
    // Without a session every page sends the browser to sign in.
    b.goto("/fleet").await?;
    ensure!(b.path().await? == "/sign-in", "sent to sign in");
    b.screenshot("sign-in").await?;
    sign_in(&b, &rig, "alice").await?;
    ensure!(b.path().await? == "/", "home after sign-in");
    ensure!(
        b.client.find(Locator::LinkText("Admin")).await.is_err(),
        "a researcher has no Admin link"
    );

    // A field error appears next to its own field, in the grammar's words
    // (a number field takes no letters in a browser: memory does).
    b.goto("/new").await?;
    b.type_into("#f-mem", "lots").await?;
    b.click("form[action='/new'] button[type=submit]").await?;
    b.wait_for("the memory field's error", "#e-mem", DEADLINE)
        .await?;
    let next_to = b
        .client
        .execute(
            "return document.getElementById('f-mem').nextElementSibling.id",
            vec![],
        )
        .await?;
    ensure!(
        next_to == json!("e-mem"),
        "the error follows its field: {next_to}"
    );
    let said = b.text("#e-mem").await?;
    ensure!(said.contains("lots"), "the grammar's words: {said}");
    b.screenshot("new-vessel-field-error").await?;

    // The form again, right this time: the request waits behind bob.
    b.client.find(Locator::Id("f-mem")).await?.clear().await?;
    b.type_into("#f-gpu", "1").await?;
    b.type_into("#f-name", "browser-one").await?;
    b.click("form[action='/new'] button[type=submit]").await?;
    b.wait_for(
        "the waiting card",
        "section.card[data-state=pending]",
        DEADLINE,
    )
    .await?;
    let place = b.text(".place").await?;
    ensure!(place.contains("1 of 1"), "its place in line: {place}");
    // A mark on this very document: a reload would lose it.
    b.client
        .execute("window.__stayed = 'here'; return 1", vec![])
        .await?;
    b.screenshot("my-vessels-waiting").await?;

    // Bob's vessel goes; alice's is placed and the open page follows.
    let bob_id = theirs["id"].as_str().context("bob's id")?;
    rig.kill(&bob, bob_id).await?;
    let page = &b;
    let running = eventually("the card to say running", DEADLINE, move || async move {
        Ok((card_state(page).await?.as_deref() == Some("running")).then_some(()))
    })
    .await;
    if let Err(e) = running {
        let (_, api) = rig
            .call(reqwest::Method::GET, "/v1/vessels", &alice_token, None)
            .await?;
        let shown = b.text("main").await.unwrap_or_default();
        b.screenshot("my-vessels-not-running").await?;
        bail!("{e}\nthe API says: {api}\nthe page shows: {shown}");
    }
    let stayed = b
        .client
        .execute("return window.__stayed || null", vec![])
        .await?;
    ensure!(stayed == json!("here"), "the page changed without a reload");
    let source = b.client.source().await?;
    ensure!(
        !source.contains(&their_known_hosts),
        "alice's page shows none of bob's secrets"
    );
    b.screenshot("my-vessels-running").await?;

    // Copy buttons put exactly the shown text on the clipboard.
    b.grant("clipboard-read").await?;
    b.grant("clipboard-write").await?;
    let mut copied = Vec::new();
    for prefix in ["ssh-", "kh-"] {
        let button = b
            .client
            .find(Locator::Css(&format!("button[data-copy^='{prefix}']")))
            .await?;
        let target = button.attr("data-copy").await?.context("data-copy")?;
        button.click().await?;
        let pressed = &button;
        eventually("the button to say Copied", DEADLINE, move || async move {
            Ok((pressed.text().await? == "Copied").then_some(()))
        })
        .await?;
        let on_clipboard = b.clipboard().await?;
        let shown = b.text(&format!("#{target}")).await?;
        ensure!(on_clipboard.trim() == shown.trim(), "copied what is shown");
        copied.push(on_clipboard);
    }
    ensure!(
        copied[0].contains("Host browser-one"),
        "an SSH config: {}",
        copied[0]
    );
    // Log in with what was copied, host key pinned.
    let access = json!({
        "host_alias": "browser-one",
        "config": copied[0],
        "known_hosts": copied[1].trim(),
    });
    let who = rig.ssh(&access, "id -un")?;
    ensure!(who.trim() == "alice", "logged in as {who}");

    // The fleet grid: alice's GPU, its owner, its utilisation.
    let (_, mine) = rig
        .call(reqwest::Method::GET, "/v1/vessels", &alice_token, None)
        .await?;
    let held = mine["vessels"][0]["gpu_uuids"][0]
        .as_str()
        .context("alice's GPU")?
        .to_string();
    let id = mine["vessels"][0]["id"].as_str().context("id")?.to_string();
    b.goto("/fleet").await?;
    let cell = format!("[data-gpu='{held}']");
    let (class, word) = if held == uuids[0] {
        ("g-idle", "idle")
    } else {
        ("g-used", "80%")
    };
    // The first look asks Prometheus; the open page is told when it answers.
    let shown = &cell;
    eventually(
        "the GPU's utilisation on the grid",
        DEADLINE,
        move || async move {
            let c = page.client.find(Locator::Css(shown)).await?;
            let has = c.attr("class").await?.unwrap_or_default().contains(class)
                && c.text().await?.contains(word);
            Ok(has.then_some(()))
        },
    )
    .await?;
    ensure!(b.text(&cell).await?.contains("alice"), "its owner");
    let spark = b
        .client
        .find(Locator::Css("#h-gpu-1 svg.spark"))
        .await?
        .attr("aria-label")
        .await?
        .unwrap_or_default();
    ensure!(spark.contains("now 40%"), "the host's line: {spark}");
    b.screenshot("fleet-in-use").await?;

    // Kill asks for the box; with it, the vessel goes and its GPU is free.
    b.goto("/").await?;
    let kill = format!("form[action='/vessels/{id}/kill']");
    b.click(&format!("{kill} input[name=confirm]")).await?;
    b.click(&format!("{kill} button")).await?;
    rig.wait_state(&alice_token, &id, &["buried"], DEADLINE)
        .await?;
    eventually("the card to go", DEADLINE, move || async move {
        Ok(card_state(page).await?.is_none().then_some(()))
    })
    .await?;
    b.screenshot("my-vessels-after-kill").await?;
    b.goto("/fleet").await?;
    let class = b
        .client
        .find(Locator::Css(&cell))
        .await?
        .attr("class")
        .await?
        .unwrap_or_default();
    ensure!(class.contains("g-free"), "the GPU is free again: {class}");
    b.screenshot("fleet").await?;
    b.close().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_pages_are_an_admins_and_forms_need_their_token_in_a_real_browser() -> Result<()> {
    let rig = Rig::start_with(
        &[gpu_host("gpu-1", 2, "3090")],
        Options {
            workers: 0,
            extra_config: "[portal]\ndev_sign_in = true\n".into(),
            ..Options::default()
        },
    )
    .await?;
    let alice_token = rig.researcher("alice");
    rig.add_key(&alice_token).await?;

    // A researcher: no admin page, in the API's words.
    let b = browser(&rig, "admin").await?;
    sign_in(&b, &rig, "alice").await?;
    b.goto("/admin").await?;
    let refused = b.text("p.error").await?;
    ensure!(refused.contains("needs one of"), "{refused}");
    b.screenshot("admin-refused-to-a-researcher").await?;
    b.click("form.signout button").await?;
    b.wait_for("the sign-in page", "#f-subject", DEADLINE)
        .await?;

    // An admin: hosts and line, people and limits, the audit log.
    sign_in(&b, &rig, "root-admin").await?;
    b.click("nav a[href='/admin']").await?;
    b.wait_for(
        "the hosts table",
        "form[action='/admin/hosts/gpu-1/drain']",
        DEADLINE,
    )
    .await?;
    b.screenshot("admin-hosts-and-line").await?;
    // A form whose CSRF token is gone is refused, and changes nothing.
    b.client
        .execute(
            "document.querySelector(\"form[action='/admin/hosts/gpu-1/drain'] input[name=csrf]\").remove(); return 1",
            vec![],
        )
        .await?;
    b.click("form[action='/admin/hosts/gpu-1/drain'] button")
        .await?;
    b.wait_for("the refusal", "p.error", DEADLINE).await?;
    let said = b.text("p.error").await?;
    ensure!(said.contains("CSRF"), "{said}");
    ensure!(
        rig.fleet(&alice_token).await?["hosts"][0]["state"] == "active",
        "still active"
    );

    b.goto("/admin/users").await?;
    let form = "form[action='/admin/users/alice/limits']";
    b.wait_for("alice's limits form", form, DEADLINE).await?;
    b.type_into(&format!("{form} input[name=max_gpus]"), "1")
        .await?;
    b.click(&format!("{form} button")).await?;
    let page = &b;
    eventually(
        "alice's override on the page",
        DEADLINE,
        move || async move {
            let row = page.text("#u-alice").await.unwrap_or_default();
            Ok((row.contains("1 GPUs") && row.contains("(override)")).then_some(()))
        },
    )
    .await?;
    b.screenshot("admin-people-and-limits").await?;

    b.goto("/admin/audit?action=user").await?;
    let log = b.text("main").await?;
    ensure!(
        log.contains("user.limits") && log.contains("root-admin"),
        "the limit change in the log: {log}"
    );
    if log.contains("vessel.") {
        bail!("the action filter let other actions through: {log}");
    }
    b.screenshot("admin-audit-log").await?;
    b.close().await
}
