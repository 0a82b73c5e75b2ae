//! Replicas: two orchestrator processes on one database, one of them
//! SIGKILLed at random points (and started again) while twenty vessels are
//! created. Every vessel ends `running` or `failed`; each running one has
//! one container its owner logs in to; no container, reservation or claim
//! outlives its vessel; no vessel is placed, started or failed twice; the
//! job queue ends empty; and the reconciler, on a two-second schedule in
//! both, runs each tick once across them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::process::{Child, Command};
use uuid::Uuid;

use crate::rig::{binary, cpu_host, docker, eventually, gpu_host, Options, Rig};

/// Vessels created; the fleet below has room for exactly these.
const VESSELS: usize = 20;
/// Kills at most; the killer also stops once every vessel has settled.
const MAX_KILLS: usize = 8;
/// The replicas' lease: short, so a killed replica's jobs move on quickly.
const LEASE: &str = "2s";

/// Two `vessel-orchestrator` processes sharing the rig's database. Each
/// start logs (JSON) to a file of its own, kept when the test fails.
struct Replicas {
    config: PathBuf,
    logs: PathBuf,
    procs: [Option<Child>; 2],
    starts: usize,
}

impl Replicas {
    fn spawn(&mut self, slot: usize) -> anyhow::Result<()> {
        self.starts += 1;
        let log = std::fs::File::create(
            self.logs
                .join(format!("replica{slot}-start{}.log", self.starts)),
        )?;
        let child = Command::new(binary("vessel-orchestrator")?)
            .args(["--config", &self.config.display().to_string()])
            .env(
                "RUST_LOG",
                "warn,vessel_orchestrator::reconciler=info,vessel_orchestrator::conductor=info,\
                 vessel_orchestrator::schedule=debug",
            )
            .env("VESSEL_LOG_FORMAT", "json")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()?;
        self.procs[slot] = Some(child);
        Ok(())
    }

    /// Fails when a replica exited on its own (a bad config, a crash).
    fn check_alive(&mut self) -> anyhow::Result<()> {
        for (slot, child) in self.procs.iter_mut().enumerate() {
            if let Some(status) = child.as_mut().map(Child::try_wait).transpose()?.flatten() {
                bail!("replica {slot} exited by itself ({status}): see its log");
            }
        }
        Ok(())
    }

    /// SIGKILL: no hand-back, no graceful anything.
    async fn kill(&mut self, slot: usize) -> anyhow::Result<()> {
        if let Some(mut child) = self.procs[slot].take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    /// Lines of every log that contain `needle`.
    fn log_lines(&self, needle: &str) -> anyhow::Result<Vec<String>> {
        let mut lines = Vec::new();
        for entry in std::fs::read_dir(&self.logs)? {
            let text = std::fs::read_to_string(entry?.path())?;
            lines.extend(
                text.lines()
                    .filter(|l| l.contains(needle))
                    .map(str::to_string),
            );
        }
        Ok(lines)
    }
}

/// `text` with `from` replaced by `to`; fails when `from` is not there, so
/// a change in the rig's config cannot silently void the test's settings.
fn replace_in(text: &str, from: &str, to: &str) -> anyhow::Result<String> {
    ensure!(text.contains(from), "the rig's config has no `{from}`");
    Ok(text.replacen(from, to, 1))
}

/// Who held which job, as seen by polling the jobs table.
#[derive(Default)]
struct Holders {
    /// Every claim seen per vessel (worker name and claim token).
    per_vessel: HashMap<Uuid, BTreeSet<String>>,
    /// The most orchestrator instances seen holding jobs at one moment.
    most_instances_at_once: usize,
}

/// The instance (one process's start) of a holder `FLEET-xxxxxxxx/N#token`.
fn instance(holder: &str) -> &str {
    holder.split('/').next().unwrap_or(holder)
}

async fn watch_holders(db: sqlx::PgPool, stop: Arc<AtomicBool>, seen: Arc<Mutex<Holders>>) {
    while !stop.load(Ordering::Relaxed) {
        let rows: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT vessel_id, leased_by FROM jobs
             WHERE leased_by IS NOT NULL AND lease_until > now()",
        )
        .fetch_all(&db)
        .await
        .unwrap_or_default();
        {
            let mut seen = seen.lock().unwrap();
            let at_once: BTreeSet<&str> = rows.iter().map(|(_, h)| instance(h)).collect();
            seen.most_instances_at_once = seen.most_instances_at_once.max(at_once.len());
            for (vessel, holder) in rows {
                seen.per_vessel.entry(vessel).or_default().insert(holder);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn count(rig: &Rig, sql: &'static str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(&rig.db).await?)
}

/// Vessels not yet `running` or `failed` (or anything else final).
async fn unsettled(rig: &Rig) -> anyhow::Result<i64> {
    count(
        rig,
        "SELECT count(*) FROM vessels WHERE state IN ('requested', 'pending', 'provisioning')",
    )
    .await
}

/// One kill: when, which replica, and what was in flight.
#[derive(Debug)]
#[allow(dead_code)] // read through Debug, in the test's output
struct Kill {
    at_ms: u128,
    replica: usize,
    provisioning: i64,
    jobs_leased: i64,
    down_ms: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_one_killed_at_random_finish_twenty_creates() -> anyhow::Result<()> {
    let seed: u64 = match std::env::var("VESSEL_TEST_SEED") {
        Ok(s) => s.parse().context("VESSEL_TEST_SEED")?,
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as u64,
    };
    println!("replicas: seed {seed} (VESSEL_TEST_SEED={seed} replays the kill schedule)");
    let mut rng = StdRng::seed_from_u64(seed);

    // Room for exactly twenty: every test host has the machine's two
    // cores, and a vessel takes one. Two GPU hosts (2 GPUs each) and eight
    // CPU hosts. The in-test orchestrator serves the API only (no
    // workers, no periodic jobs); the two processes do the work.
    let mut decls = vec![gpu_host("gpu-1", 2, "3090"), gpu_host("gpu-2", 2, "3090")];
    decls.extend((1..=8).map(|i| cpu_host(&format!("cpu-{i}"))));
    let rig = Rig::start_with(
        &decls,
        Options {
            workers: 0,
            // Twenty sshds starting on two loaded cores, some twice.
            ready_timeout: "90s",
            ..Options::default()
        },
    )
    .await?;
    let never = vessel_orchestrator::schedule::NEVER;
    let mut text = replace_in(&rig.config_text, "workers = 0", "workers = 2")?;
    text = replace_in(&text, "lease = \"5s\"", &format!("lease = \"{LEASE}\""))?;
    // The reconciler on every other second in both replicas: once per tick
    // across them, and racing the conductor's provisioning throughout.
    text = replace_in(
        &text,
        &format!("[reconciler]\nschedule = \"{never}\""),
        "[reconciler]\nschedule = \"*/2 * * * * *\"",
    )?;
    let config = rig.dir.join("replica.toml");
    std::fs::write(&config, text)?;
    // Outside the rig's directory, which goes when the rig drops: kept
    // when the test fails.
    let logs = std::env::temp_dir().join(format!("vessel-replicas-{}", rig.id));
    std::fs::create_dir_all(&logs)?;
    let mut replicas = Replicas {
        config,
        logs: logs.clone(),
        procs: [None, None],
        starts: 0,
    };
    replicas.spawn(0)?;
    replicas.spawn(1)?;

    let outcome = run(&rig, &mut replicas, &mut rng).await;
    replicas.kill(0).await?;
    replicas.kill(1).await?;
    match outcome {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&logs);
            Ok(())
        }
        Err(e) => Err(e.context(format!(
            "seed {seed}; the replicas' logs are in {}",
            logs.display()
        ))),
    }
}

async fn run(rig: &Rig, replicas: &mut Replicas, rng: &mut StdRng) -> anyhow::Result<()> {
    // Four researchers, five vessels each: one GPU vessel and four CPU ones.
    let people = ["alice", "bob", "carol", "dave"];
    let mut tokens = BTreeMap::new();
    for who in people {
        let token = rig.researcher(who);
        rig.add_key(&token).await?;
        tokens.insert(who, token);
    }
    let asks: Vec<(&str, &str)> = (0..VESSELS)
        .map(|i| {
            let who = people[i % people.len()];
            (who, if i < 4 { "3090" } else { "cpu" })
        })
        .collect();

    let holders = Arc::new(Mutex::new(Holders::default()));
    let stop_watch = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch_holders(
        rig.db.clone(),
        stop_watch.clone(),
        holders.clone(),
    ));

    let started = Instant::now();
    let since = chrono::Utc::now().timestamp() - 1;
    let created = futures::future::join_all(
        asks.iter()
            .map(|(who, queue)| rig.create(&tokens[who], json!({ "queue": queue }))),
    )
    .await;
    let mut owners: BTreeMap<Uuid, &str> = BTreeMap::new();
    for ((who, _), result) in asks.iter().zip(created) {
        let (status, v) = result?;
        ensure!(status == 202, "create: {status} {v}");
        owners.insert(v["id"].as_str().context("id")?.parse()?, who);
    }
    println!(
        "replicas: {} creates accepted in {:?}",
        owners.len(),
        started.elapsed()
    );

    // The killer: at random moments, SIGKILL a random replica, leave it
    // down a random while, start it again. The other keeps working, and
    // takes the dead one's jobs over when their leases expire.
    let deadline = Duration::from_secs(300);
    let mut kills = Vec::new();
    while kills.len() < MAX_KILLS && unsettled(rig).await? > 0 {
        ensure!(started.elapsed() < deadline, "the vessels did not settle");
        tokio::time::sleep(Duration::from_millis(rng.gen_range(500..3500))).await;
        let slot = rng.gen_range(0..2);
        replicas.check_alive()?;
        let provisioning = count(
            rig,
            "SELECT count(*) FROM vessels WHERE state = 'provisioning'",
        )
        .await?;
        let jobs_leased = count(
            rig,
            "SELECT count(*) FROM jobs WHERE leased_by IS NOT NULL AND lease_until > now()",
        )
        .await?;
        let at_ms = started.elapsed().as_millis();
        replicas.kill(slot).await?;
        let down_ms = rng.gen_range(0..2500);
        tokio::time::sleep(Duration::from_millis(down_ms)).await;
        replicas.spawn(slot)?;
        kills.push(Kill {
            at_ms,
            replica: slot,
            provisioning,
            jobs_leased,
            down_ms,
        });
    }
    for kill in &kills {
        println!("replicas: {kill:?}");
    }
    ensure!(
        kills
            .iter()
            .any(|k| k.provisioning > 0 && k.jobs_leased > 0),
        "no kill came while jobs were in flight: nothing was tested ({kills:?})"
    );

    eventually(
        "every vessel to be running or failed",
        deadline.saturating_sub(started.elapsed()),
        || async { Ok((unsettled(rig).await? == 0).then_some(())) },
    )
    .await?;
    let settled_after = started.elapsed();
    // A job whose finish died with its replica is picked up again when
    // its lease expires, finds the vessel settled, and goes.
    eventually(
        "the job queue to empty",
        Duration::from_secs(30),
        || async { Ok((count(rig, "SELECT count(*) FROM jobs").await? == 0).then_some(())) },
    )
    .await?;
    replicas.check_alive()?;
    stop_watch.store(true, Ordering::Relaxed);
    watcher.await?;

    check_vessels(rig, &owners, &tokens).await?;
    check_nothing_twice(rig, &owners).await?;

    // The conductor itself leaves nothing for the reconciler to clean:
    // every orphan removal would mean a container it leaked.
    let orphans = replicas.log_lines("removed an orphan container")?;
    ensure!(
        orphans.is_empty(),
        "orphans the conductor left: {orphans:?}"
    );
    let lost_leases = replicas
        .log_lines("lease is lost")?
        .len()
        .max(replicas.log_lines("lease was lost")?.len());

    // The reconciler's ticks, once each across the replicas: a tick's row
    // names the one start that ran it (its primary key is the tick), and
    // the other replica, firing on the same tick, logged that it skipped it.
    let ticks: Vec<(String, String)> = sqlx::query_as(
        "SELECT instance, to_char(tick AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC'
         FROM job_ticks WHERE job = 'reconciler'",
    )
    .fetch_all(&rig.db)
    .await?;
    let ran: BTreeSet<&str> = ticks.iter().map(|(_, t)| t.as_str()).collect();
    let runners: BTreeSet<&str> = ticks.iter().map(|(i, _)| i.as_str()).collect();
    let skips: Vec<String> = replicas
        .log_lines("another replica runs this tick")?
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|l| l["fields"]["tick"].as_str().map(str::to_string))
        .collect();
    // A skip whose tick nobody ran is a run of the tick before still
    // holding the job's lock; one whose tick ran elsewhere is the point.
    let skipped_ran_elsewhere = skips.iter().filter(|t| ran.contains(t.as_str())).count();
    ensure!(
        skipped_ran_elsewhere > 0,
        "no reconciler tick was fired by both replicas and run by one \
         (ran: {ran:?}; skipped: {skips:?})"
    );

    // Steps are redone after a takeover (each is idempotent: the earlier
    // attempt's container is removed first); outcomes are not (above).
    let creates = docker(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &chrono::Utc::now().timestamp().to_string(),
        "--filter",
        "type=container",
        "--filter",
        "event=create",
        "--filter",
        &format!("label=vessel.fleet={}", rig.id),
        "--format",
        "{{.Actor.Attributes.name}}",
    ])?;
    let creates: Vec<&str> = creates.lines().filter(|l| !l.is_empty()).collect();
    let redone = creates.len() - creates.iter().collect::<BTreeSet<_>>().len();

    let holders = holders.lock().unwrap();
    let taken_over: Vec<Uuid> = holders
        .per_vessel
        .iter()
        .filter(|(_, claims)| {
            claims
                .iter()
                .map(|c| instance(c))
                .collect::<BTreeSet<_>>()
                .len()
                > 1
        })
        .map(|(v, _)| *v)
        .collect();
    println!(
        "replicas: {} kills, {} starts; settled after {settled_after:?}; \
         jobs held by {} instances at once at most; {} vessels' jobs moved between \
         instances; {} containers created for {VESSELS} vessels ({redone} redone by a \
         later attempt); reconciler ticks {} run by {} starts, {skipped_ran_elsewhere} skipped \
         by the other replica; live workers that lost a \
         lease: {lost_leases}",
        kills.len(),
        replicas.starts,
        holders.most_instances_at_once,
        taken_over.len(),
        creates.len(),
        ran.len(),
        runners.len(),
    );
    ensure!(
        holders.most_instances_at_once >= 2,
        "the two replicas never held jobs at the same time"
    );
    ensure!(
        !taken_over.is_empty(),
        "no job moved from a killed replica to another: nothing was tested"
    );
    Ok(())
}

/// Every vessel running or failed; each running one has exactly one
/// container, running, that its owner logs in to over SSH; no other
/// container; reservations and claims exactly those of running vessels.
async fn check_vessels(
    rig: &Rig,
    owners: &BTreeMap<Uuid, &str>,
    tokens: &BTreeMap<&str, String>,
) -> anyhow::Result<()> {
    let mut running = BTreeSet::new();
    let mut failed = Vec::new();
    let mut views: BTreeMap<Uuid, Value> = BTreeMap::new();
    for (id, who) in owners {
        let v = rig.show(&tokens[who], &id.to_string()).await?;
        match v["state"].as_str() {
            Some("running") => {
                running.insert(*id);
            }
            Some("failed") => failed.push(format!("{id}: {}", v["reason"])),
            other => bail!("vessel {id} is {other:?}: {v}"),
        }
        views.insert(*id, v);
    }
    println!(
        "replicas: {} running, {} failed {failed:?}",
        running.len(),
        failed.len()
    );

    // Containers by their vessel label, dead ones too.
    let listed = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=vessel.fleet={}", rig.id),
        "--format",
        "{{.Label \"vessel.id\"}} {{.State}}",
    ])?;
    let mut containers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in listed.lines().filter(|l| !l.is_empty()) {
        let (id, state) = line.split_once(' ').unwrap_or((line, ""));
        containers
            .entry(id.to_string())
            .or_default()
            .push(state.to_string());
    }
    let expected: BTreeMap<String, Vec<String>> = running
        .iter()
        .map(|id| (id.to_string(), vec!["running".to_string()]))
        .collect();
    ensure!(
        containers == expected,
        "containers (vessel id → states) are not those of the running vessels: {containers:?}"
    );

    for id in &running {
        let v = &views[id];
        let who = rig.ssh(&v["ssh"], "id -un")?;
        ensure!(who == v["owner"], "vessel {id} logs in as {who}: {v}");
    }

    let reserved: BTreeSet<Uuid> = sqlx::query_scalar("SELECT vessel_id FROM reservations")
        .fetch_all(&rig.db)
        .await?
        .into_iter()
        .collect();
    ensure!(reserved == running, "reservations: {reserved:?}");
    // One core each (every ask is one CPU), one GPU each for the 3090 ones.
    let cores: Vec<(Uuid, i64)> =
        sqlx::query_as("SELECT vessel_id, count(*) FROM core_claims GROUP BY vessel_id")
            .fetch_all(&rig.db)
            .await?;
    ensure!(
        cores.len() == running.len() && cores.iter().all(|(v, n)| running.contains(v) && *n == 1),
        "core claims: {cores:?}"
    );
    let gpus: Vec<(Uuid, i64)> =
        sqlx::query_as("SELECT vessel_id, count(*) FROM gpu_claims GROUP BY vessel_id")
            .fetch_all(&rig.db)
            .await?;
    let gpu_running: BTreeSet<Uuid> = running
        .iter()
        .filter(|id| views[*id]["queue"] == "3090")
        .copied()
        .collect();
    ensure!(
        gpus.len() == gpu_running.len()
            && gpus.iter().all(|(v, n)| gpu_running.contains(v) && *n == 1),
        "GPU claims: {gpus:?}"
    );
    Ok(())
}

/// Nothing done twice, read from the outbox (every state change writes its
/// event in the same transaction) and the audit log: each vessel was placed
/// once (`vessel.provisioning`, `vessel.place`), and started once (`vessel.running`) or failed
/// once (`vessel.failed`), never both.
async fn check_nothing_twice(rig: &Rig, owners: &BTreeMap<Uuid, &str>) -> anyhow::Result<()> {
    let rows: Vec<(Uuid, String, i64)> = sqlx::query_as(
        "SELECT vessel_id, kind, count(*) FROM events
         WHERE vessel_id IS NOT NULL AND kind LIKE 'vessel.%' GROUP BY vessel_id, kind",
    )
    .fetch_all(&rig.db)
    .await?;
    let mut per_vessel: BTreeMap<Uuid, BTreeMap<String, i64>> = BTreeMap::new();
    for (vessel, kind, n) in rows {
        per_vessel.entry(vessel).or_default().insert(kind, n);
    }
    let placed: Vec<(String, i64)> = sqlx::query_as(
        "SELECT target, count(*) FROM audit_log WHERE action = 'vessel.place' GROUP BY target",
    )
    .fetch_all(&rig.db)
    .await?;
    let placed: BTreeMap<String, i64> = placed.into_iter().collect();
    for id in owners.keys() {
        ensure!(
            placed.get(&id.to_string()) == Some(&1),
            "vessel {id} placed {:?} times (audit)",
            placed.get(&id.to_string())
        );
        let kinds = per_vessel.get(id).cloned().unwrap_or_default();
        let n = |k: &str| kinds.get(k).copied().unwrap_or(0);
        ensure!(
            n("vessel.provisioning") == 1 && n("vessel.running") + n("vessel.failed") == 1,
            "vessel {id}'s events: {kinds:?}"
        );
    }
    Ok(())
}
