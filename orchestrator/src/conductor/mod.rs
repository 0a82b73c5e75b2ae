//! The conductor: workers on the Postgres job queue that bring each vessel's
//! container in line with its state (provision `provisioning`, tear down
//! `stopping`). Every step is idempotent, so a retry after a crash or a lost
//! lease is safe.

pub mod error;
pub mod init;
pub mod isolation;
pub mod provision;
pub mod ready;
mod sleep;
pub mod spec;

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{info, warn, Instrument};
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::Config;
use crate::domain::VesselState;
use crate::error_chain::chain;
use crate::hosts::HostPool;
use crate::shutdown::Shutdown;
use crate::store::vessels::VesselRow;
use crate::store::{jobs, vessels};
use error::ProvisionError;

/// How often an idle worker looks at the queue without a notification: the
/// floor for picking up retries whose backoff has passed.
const POLL: Duration = Duration::from_millis(500);

pub struct Conductor {
    pub(crate) db: PgPool,
    pub(crate) hosts: Arc<HostPool>,
    pub(crate) config: Arc<Config>,
    /// Hosts whose vessel network is known to exist.
    pub(crate) networks_ready: Mutex<HashSet<String>>,
    pub(crate) tailnet: Option<Arc<crate::tailnet::Tailnet>>,
    wake: Notify,
}

/// The job's lease now belongs to another claim (or the job is gone).
#[derive(Debug, PartialEq, Eq)]
pub struct LeaseLost;

/// Renews a lease every `every` until a renewal says it is lost. A renewal
/// that fails (a database blip) is retried sooner rather than taken as a
/// loss: the lease is still ours until another worker claims it, and the
/// next renewal that reaches the database says which.
pub async fn hold_lease<F, Fut>(every: Duration, mut renew: F) -> LeaseLost
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, sqlx::Error>>,
{
    let mut wait = every;
    loop {
        tokio::time::sleep(wait).await;
        match renew().await {
            Ok(true) => wait = every,
            Ok(false) => return LeaseLost,
            Err(e) => {
                warn!(error = %e, "cannot renew the job's lease; trying again");
                wait = (every / 4).max(Duration::from_millis(1));
            }
        }
    }
}

/// How a job ended for now.
enum Outcome {
    Done,
    RetryAfter(Duration, String),
}

impl Conductor {
    pub fn new(
        db: PgPool,
        hosts: Arc<HostPool>,
        config: Arc<Config>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        let tailnet = config
            .tailnet
            .clone()
            .map(|t| Arc::new(crate::tailnet::Tailnet::new(t, clock)));
        Arc::new(Conductor {
            db,
            hosts,
            config,
            networks_ready: Mutex::new(HashSet::new()),
            tailnet,
            wake: Notify::new(),
        })
    }

    /// Starts the workers and the listener that wakes them. Each ends when
    /// `shutdown` fires: a worker mid-job hands its job back first.
    pub fn spawn(self: &Arc<Self>, instance: &str, shutdown: &Shutdown) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        let me = self.clone();
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move { me.listen(stop).await }));
        for n in 0..self.config.conductor.workers {
            let me = self.clone();
            let name = format!("{instance}/{n}");
            let stop = shutdown.clone();
            tasks.push(tokio::spawn(async move { me.work(name, stop).await }));
        }
        tasks
    }

    async fn listen(self: Arc<Self>, shutdown: Shutdown) {
        loop {
            match jobs::listener(&self.db).await {
                Ok(mut listener) => {
                    // Anything queued while we were not listening.
                    self.wake.notify_waiters();
                    loop {
                        tokio::select! {
                            received = listener.recv() => if received.is_err() { break },
                            _ = shutdown.wait() => return,
                        }
                        self.wake.notify_waiters();
                    }
                }
                Err(e) => warn!(error = %e, "cannot listen for jobs"),
            }
            if !shutdown.sleep(Duration::from_secs(1)).await {
                return;
            }
        }
    }

    async fn work(self: Arc<Self>, worker: String, shutdown: Shutdown) {
        while !shutdown.is_stopping() {
            // Registered before looking at the queue, so a notification that
            // arrives while we look is not lost.
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // A claim is never abandoned half-way: a lease taken and dropped
            // would hold the job until it expires.
            while !shutdown.is_stopping() {
                match jobs::claim(&self.db, &worker, self.lease()).await {
                    Ok(Some(job)) => self.run(job, &shutdown).await,
                    Ok(None) => break,
                    Err(e) => {
                        warn!(error = %e, "cannot claim a job");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.wait() => {}
            }
        }
    }

    fn lease(&self) -> Duration {
        self.config.conductor.lease.duration()
    }

    /// Runs one job under its lease, in a span that names the vessel. A
    /// stop mid-job abandons the step in progress (every step is
    /// idempotent: the next attempt removes what this one left) and hands
    /// the job back at once, so another worker or the next start takes it
    /// and nothing is left without an owner.
    async fn run(&self, job: jobs::Job, shutdown: &Shutdown) {
        let span = tracing::info_span!("job", vessel = %job.vessel_id, attempt = job.attempts);
        async {
            let outcome = tokio::select! {
                outcome = self.reconcile(job.vessel_id, job.attempts) => outcome,
                LeaseLost = self.keep_lease(&job) => {
                    // Another worker holds the job now: it does the work and
                    // records the outcome; this one stops at once.
                    warn!("the job's lease is lost to another worker: stopping work on it");
                    return;
                }
                _ = shutdown.wait() => {
                    match jobs::release(&self.db, &job).await {
                        Ok(true) => info!("stopping: the job is handed back"),
                        Ok(false) => info!("stopping: another worker holds the job already"),
                        Err(e) => warn!(error = %e, "stopping: cannot hand the job back; its lease will expire"),
                    }
                    return;
                }
            };
            self.record(&job, outcome).await;
        }
        .instrument(span)
        .await
    }

    /// Renews the job's lease while the job runs; returns only once the
    /// lease is lost to another claim.
    async fn keep_lease(&self, job: &jobs::Job) -> LeaseLost {
        let lease = self.lease();
        hold_lease(lease / 3, || jobs::renew(&self.db, job, lease)).await
    }

    async fn record(&self, job: &jobs::Job, outcome: Result<Outcome, sqlx::Error>) {
        let result = match outcome {
            Ok(Outcome::Done) => jobs::finish(&self.db, job).await,
            Ok(Outcome::RetryAfter(delay, why)) => {
                info!(?delay, reason = %why, "will retry");
                jobs::retry_later(&self.db, job, delay, &why).await
            }
            Err(e) => {
                let delay = self.backoff(job.attempts);
                warn!(error = %e, ?delay, "database error; will retry");
                jobs::retry_later(&self.db, job, delay, &e.to_string()).await
            }
        };
        match result {
            Ok(true) => {}
            // The lease expired and another worker claimed the job: its
            // outcome is the one that counts.
            Ok(false) => warn!("the job's lease was lost: its outcome is not recorded"),
            Err(e) => warn!(error = %e, "cannot record the job's outcome; its lease will expire"),
        }
    }

    fn backoff(&self, attempts: i32) -> Duration {
        let base = self.config.conductor.backoff.duration();
        let factor = 2u32.saturating_pow((attempts - 1).clamp(0, 16) as u32);
        (base * factor).min(Duration::from_secs(300))
    }

    /// Acts on the vessel until its state needs nothing more from us. The
    /// state is re-read after each step: a kill may arrive mid-provision.
    async fn reconcile(&self, id: Uuid, attempts: i32) -> Result<Outcome, sqlx::Error> {
        loop {
            let loaded = async { vessels::get(&mut *self.db.acquire().await?, id).await }
                .instrument(tracing::info_span!("load_vessel"))
                .await?;
            let Some(vessel) = loaded else {
                return Ok(Outcome::Done);
            };
            let step = match vessel.state() {
                // A wake: its container is its disk, started again, never remade blank.
                VesselState::Provisioning if vessel.disk_host.is_some() => {
                    self.wake_up(&vessel, attempts).await?
                }
                VesselState::Provisioning => self.bring_up(&vessel, attempts).await?,
                VesselState::Hibernating => Some(self.put_to_sleep(&vessel, attempts).await?),
                VesselState::Stopping => Some(self.tear_down(&vessel, attempts).await?),
                _ => Some(Outcome::Done),
            };
            if let Some(outcome) = step {
                return Ok(outcome);
            }
        }
    }

    /// Provisions; None when the vessel left `provisioning` meanwhile.
    async fn bring_up(
        &self,
        vessel: &VesselRow,
        attempts: i32,
    ) -> Result<Option<Outcome>, sqlx::Error> {
        let started = std::time::Instant::now();
        let provisioned = self
            .provision(vessel)
            .instrument(tracing::info_span!("provision"))
            .await;
        match provisioned {
            Ok(()) => {
                let moved = async {
                    let mut tx = self.db.begin().await?;
                    let moved = vessels::transition(
                        &mut tx,
                        vessel.id,
                        &[VesselState::Provisioning],
                        VesselState::Running,
                        None,
                    )
                    .await?;
                    tx.commit().await?;
                    Ok::<_, sqlx::Error>(moved)
                }
                .instrument(tracing::info_span!("mark_running"))
                .await?;
                if moved.is_none() {
                    return Ok(None);
                }
                info!(elapsed_ms = started.elapsed().as_millis() as u64, "running");
                crate::metrics::provisioned(started.elapsed());
                Ok(Some(Outcome::Done))
            }
            Err(ProvisionError::Transient(why))
                if attempts < self.config.conductor.max_attempts =>
            {
                self.remove_container(vessel).await.ok();
                Ok(Some(Outcome::RetryAfter(self.backoff(attempts), why)))
            }
            Err(e) => self.fail(vessel, &e.to_string()).await,
        }
    }

    /// Gives up on a provision: the container goes, then the devices.
    /// None when the vessel was killed meanwhile.
    async fn fail(&self, vessel: &VesselRow, why: &str) -> Result<Option<Outcome>, sqlx::Error> {
        warn!(reason = %why, "provisioning failed");
        if let Err(cleanup) = self.remove_container(vessel).await {
            // The host is out of reach; the reconciler removes the
            // container when it is back.
            warn!(error = %chain(&cleanup), "cannot remove the failed container");
        }
        let mut tx = self.db.begin().await?;
        vessels::free_reservation(&mut tx, vessel.id).await?;
        let moved = vessels::transition(
            &mut tx,
            vessel.id,
            &[VesselState::Provisioning],
            VesselState::Failed,
            Some(why),
        )
        .await?;
        if moved.is_some() {
            tx.commit().await?;
            return Ok(Some(Outcome::Done));
        }
        // Killed meanwhile: keep the reservation for the teardown path,
        // which frees it after removal.
        tx.rollback().await?;
        Ok(None)
    }

    /// Removes the container, then frees the devices and buries the row.
    async fn tear_down(&self, vessel: &VesselRow, attempts: i32) -> Result<Outcome, sqlx::Error> {
        if let Err(e) = self.remove_container(vessel).await {
            // Resources stay reserved until the container is confirmed
            // gone, so nothing is handed out twice.
            return Ok(Outcome::RetryAfter(
                self.backoff(attempts),
                format!("cannot remove the container yet: {}", chain(&e)),
            ));
        }
        let mut tx = self.db.begin().await?;
        vessels::free_reservation(&mut tx, vessel.id).await?;
        vessels::transition(
            &mut tx,
            vessel.id,
            &[VesselState::Stopping],
            VesselState::Buried,
            None,
        )
        .await?;
        tx.commit().await?;
        info!("buried");
        Ok(Outcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn one_failed_renewal_does_not_drop_the_lease() {
        // A database blip, two renewals, then another worker has the job.
        let calls = AtomicUsize::new(0);
        let lost = hold_lease(Duration::from_millis(4), || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => Err(sqlx::Error::PoolTimedOut),
                    1 | 2 => Ok(true),
                    _ => Ok(false),
                }
            }
        })
        .await;
        assert_eq!(lost, LeaseLost);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            4,
            "renewal stopped before the lease was lost"
        );
    }
}
