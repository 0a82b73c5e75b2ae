//! The line's worker, one per replica: runs a placement pass for a queue
//! when the database says something there changed (`LISTEN vessel_line`),
//! and at the line's next deadline (a request to expire, a hold coming
//! due), which no row change announces.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tracing::{info_span, warn, Instrument};

use crate::clock::Clock;
use crate::config::Config;
use crate::shutdown::Shutdown;
use crate::store::line;

/// The longest the worker sleeps without a notification: a pass over
/// every line then catches anything a dropped connection missed.
const SAFETY_PASS: Duration = Duration::from_secs(300);

pub struct LineWorker {
    db: PgPool,
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
}

impl LineWorker {
    pub fn new(db: PgPool, config: Arc<Config>, clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(LineWorker { db, config, clock })
    }

    pub fn spawn(self: &Arc<Self>, shutdown: &Shutdown) -> JoinHandle<()> {
        let me = self.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move { me.run(stop).await }.instrument(info_span!("line")))
    }

    async fn run(self: Arc<Self>, shutdown: Shutdown) {
        loop {
            match line::listener(&self.db).await {
                Ok(mut listener) => {
                    // Whatever changed while nobody listened.
                    let mut due: BTreeSet<String> = self.config.queues.keys().cloned().collect();
                    loop {
                        self.passes(&due).await;
                        due.clear();
                        let sleep = self.until_next_deadline().await;
                        tokio::select! {
                            got = listener.recv() => match got {
                                Ok(n) => { due.insert(n.payload().to_string()); }
                                Err(e) => { warn!(error = %e, "the line's listener failed"); break }
                            },
                            _ = tokio::time::sleep(sleep) => {
                                due.extend(self.config.queues.keys().cloned());
                            }
                            _ = shutdown.wait() => return,
                        }
                        // A burst (ten vessels buried at once) is one pass
                        // per queue, not ten.
                        while let Some(n) = listener.next_buffered() {
                            due.insert(n.payload().to_string());
                        }
                    }
                }
                Err(e) => warn!(error = %e, "cannot listen for the line"),
            }
            if !shutdown.sleep(Duration::from_secs(1)).await {
                return;
            }
        }
    }

    async fn passes(&self, queues: &BTreeSet<String>) {
        for queue in queues {
            if let Err(e) = self.pass(queue).await {
                warn!(queue, error = %e, "a placement pass failed");
            }
        }
    }

    pub async fn pass(&self, queue: &str) -> Result<super::PassOutcome, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        let outcome = super::pass(&mut tx, &self.config, queue, self.clock.now(), None).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Until the earliest expiry or hold coming due, at least a second (a
    /// hold that cannot be taken yet must not spin) and at most
    /// `SAFETY_PASS`.
    async fn until_next_deadline(&self) -> Duration {
        let lines = match line::lines(&self.db).await {
            Ok(lines) => lines,
            Err(e) => {
                warn!(error = %e, "cannot read the lines");
                return Duration::from_secs(5);
            }
        };
        let now = self.clock.now();
        let mut next: Option<DateTime<Utc>> = None;
        for l in &lines {
            let hold_due = l.oldest_unheld.and_then(|t| {
                let after = self.config.queue(&l.queue)?.hold_after.duration();
                Some(t + chrono::Duration::from_std(after).ok()?)
            });
            for t in [Some(l.next_deadline), hold_due.filter(|t| *t > now)]
                .into_iter()
                .flatten()
            {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        next.and_then(|t| (t - now).to_std().ok())
            .unwrap_or(Duration::from_secs(1))
            .clamp(Duration::from_secs(1), SAFETY_PASS)
    }
}
