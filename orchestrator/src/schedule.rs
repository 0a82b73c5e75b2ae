//! Periodic jobs (the survey, the reconciler, the undertaker, the GPU
//! watchdog) on cron schedules in UTC, run by tokio-cron-scheduler, once
//! per tick across every replica.
//!
//! The crate has no locking across replicas, so each run is guarded here:
//! a Postgres advisory lock per job (try-lock: a run still going on
//! another replica makes this one skip) and a row per tick (the replica
//! that claims a tick runs it; one that fires a few hundred milliseconds
//! later finds it claimed). Schedules stay in UTC because the crate
//! freezes a timezone's offset when a job is made (CRATE-NOTES): work
//! hours are reckoned in the team's timezone by `work_hours`, not here.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::RwLock;
use tokio::task::JoinHandle;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use tracing::{debug, warn, Instrument};

use crate::cron::{Cron, CronError};
use crate::shutdown::Shutdown;
use crate::store::ticks;

/// A schedule that never fires in practice (the 29th of February): for
/// tests that drive a job by hand.
pub const NEVER: &str = "0 0 0 29 2 *";

/// What one job did on this replica: ran a tick, or skipped one another
/// replica had (or was still running).
#[derive(Debug, Default)]
pub struct JobCounts {
    pub ran: AtomicU64,
    pub skipped: AtomicU64,
}

type RunFn = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The periodic jobs of one replica.
pub struct Schedule {
    db: PgPool,
    instance: String,
    jobs: Vec<(String, Cron, String, RunFn)>,
    counts: BTreeMap<String, Arc<JobCounts>>,
}

/// Why the jobs could not be scheduled. The key is what failed; the
/// expression's fault is the source (print the chain: `error_chain`).
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("{key}")]
    Cron {
        key: String,
        #[source]
        source: CronError,
    },
    #[error("the job scheduler failed")]
    Scheduler(#[from] JobSchedulerError),
}

impl Schedule {
    pub fn new(db: PgPool, instance: &str) -> Schedule {
        Schedule {
            db,
            instance: instance.to_string(),
            jobs: Vec::new(),
            counts: BTreeMap::new(),
        }
    }

    /// Adds `job` on `schedule` (its config key names it in errors).
    pub fn add<F, Fut>(
        &mut self,
        job: &str,
        schedule: &crate::config::JobSchedule,
        run: F,
    ) -> Result<(), ScheduleError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let cron = Cron::parse(&schedule.cron).map_err(|source| ScheduleError::Cron {
            key: schedule.key.clone(),
            source,
        })?;
        let run: RunFn =
            Arc::new(move || -> Pin<Box<dyn Future<Output = ()> + Send>> { Box::pin(run()) });
        self.jobs
            .push((job.to_string(), cron, schedule.cron.clone(), run));
        self.counts.insert(job.to_string(), Arc::default());
        Ok(())
    }

    /// Each job's counts on this replica, by name.
    pub fn counts(&self) -> BTreeMap<String, Arc<JobCounts>> {
        self.counts.clone()
    }

    /// Starts the scheduler; the handle ends once a stop has been asked
    /// and the runs in progress have finished.
    pub async fn start(self, shutdown: &Shutdown) -> Result<JoinHandle<()>, ScheduleError> {
        let mut scheduler = JobScheduler::new().await?;
        // Runs hold it shared; the stop waits for it exclusively.
        let running = Arc::new(RwLock::new(()));
        for (name, cron, expr, run) in self.jobs {
            let guard = Guard {
                db: self.db.clone(),
                instance: self.instance.clone(),
                job: name.clone(),
                cron,
                counts: self.counts[&name].clone(),
            };
            let running = running.clone();
            let job = Job::new_async(expr.as_str(), move |_, _| {
                let guard = guard.clone();
                let run = run.clone();
                let running = running.clone();
                Box::pin(async move {
                    let Ok(_held) = running.try_read() else {
                        return; // stopping
                    };
                    let span = tracing::info_span!("job", job = %guard.job);
                    guard.run_once(run).instrument(span).await;
                })
            })?;
            scheduler.add(job).await?;
        }
        scheduler.start().await?;
        let shutdown = shutdown.clone();
        Ok(tokio::spawn(async move {
            shutdown.wait().await;
            if let Err(e) = scheduler.shutdown().await {
                warn!(error = %e, "stopping the job scheduler");
            }
            let _ = running.write().await;
        }))
    }
}

/// One job's once-per-tick guard.
#[derive(Clone)]
struct Guard {
    db: PgPool,
    instance: String,
    job: String,
    cron: Cron,
    counts: Arc<JobCounts>,
}

impl Guard {
    async fn run_once(&self, run: RunFn) {
        // The wall clock, not `Clock`: tokio-cron-scheduler fires by the
        // system time, and the tick is named by when it fired so that every
        // replica names the same one. A test clock moved by hours would name
        // a tick the scheduler never fired.
        let Some(tick) = self.cron.tick_at(Utc::now()) else {
            return;
        };
        match self.claim(tick).await {
            Ok(Some(mut conn)) => {
                self.counts.ran.fetch_add(1, Ordering::Relaxed);
                run().await;
                if let Err(e) = ticks::unlock(&mut conn, &self.job).await {
                    // The lock goes with the connection: drop it rather
                    // than hand a locked session back to the pool.
                    warn!(error = %e, "cannot release the job's lock");
                    let _ = conn.detach();
                }
            }
            Ok(None) => {
                self.counts.skipped.fetch_add(1, Ordering::Relaxed);
                debug!(%tick, "another replica runs this tick");
            }
            Err(e) => warn!(error = %e, "cannot take the job's lock: tick skipped"),
        }
    }

    /// The locked connection when this replica runs `tick`.
    async fn claim(
        &self,
        tick: DateTime<Utc>,
    ) -> Result<Option<sqlx::pool::PoolConnection<sqlx::Postgres>>, sqlx::Error> {
        let mut conn = self.db.acquire().await?;
        if !ticks::try_lock(&mut conn, &self.job).await? {
            return Ok(None);
        }
        match ticks::claim(&mut conn, &self.job, tick, &self.instance).await {
            Ok(true) => Ok(Some(conn)),
            claimed => {
                let unlocked = ticks::unlock(&mut conn, &self.job).await;
                claimed?;
                unlocked?;
                Ok(None)
            }
        }
    }
}
