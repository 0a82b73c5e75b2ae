//! Builds the whole orchestrator from a config; `main` and the tests share it.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::task::JoinHandle;

use crate::api::{self, auth::Verifier, AppState};
use crate::clock::{Clock, SystemClock};
use crate::conductor::Conductor;
use crate::config::Config;
use crate::hosts::HostPool;
use crate::reconciler::Reconciler;
use crate::shutdown::{self, Shutdown, Stopper};
use crate::undertaker::Undertaker;
use crate::work_hours::WorkHours;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot reach the database or migrate it: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Config(String),
    #[error("cannot set up token verification: {0}")]
    Auth(#[from] crate::api::auth::VerifierError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// How long a stop waits for the loops to finish what they are doing (a
/// probe, a sweep) before it returns anyway: inside Kubernetes' and
/// systemd's default grace periods.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// How long requests in flight (a long poll of the outbox, say) may run
/// once the server stops taking new ones.
const REQUEST_GRACE: Duration = Duration::from_secs(5);

/// A running orchestrator. Dropping it stops its loops too, without
/// waiting for them; [`Application::stop`] waits.
pub struct Application {
    pub addr: SocketAddr,
    pub db: PgPool,
    pub undertaker: Arc<Undertaker>,
    pub reconciler: Arc<Reconciler>,
    stopper: Stopper,
    tasks: Vec<JoinHandle<()>>,
}

impl Application {
    pub async fn build(config: Config) -> Result<Application, StartupError> {
        Application::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// With a clock of the caller's: tests move it to test work hours.
    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Application, StartupError> {
        let config = Arc::new(config);
        let connections = (config.conductor.workers as u32 * 2 + 10).min(60);
        let db = crate::store::connect(config.database_url.expose(), connections).await?;
        let hosts = Arc::new(HostPool::new(
            &config.hosts,
            config.conductor.ssh_timeout.duration(),
        ));
        crate::survey::survey(&db, &hosts).await;
        let reconciler = Arc::new(Reconciler::new(
            db.clone(),
            hosts.clone(),
            config.fleet.clone(),
            config.reconciler.retention.duration(),
        ));
        let work = WorkHours::parse(&config.work_hours)
            .map_err(|(key, message)| StartupError::Config(format!("{key}: {message}")))?;
        let undertaker = Arc::new(Undertaker::new(
            db.clone(),
            config.undertaker.clone(),
            work,
            clock.clone(),
            hosts.clone(),
        ));
        // At start: what the last run (or a crash) left behind.
        if let Err(e) = reconciler.run_once().await {
            tracing::warn!(error = %e, "the first reconciliation failed");
        }

        let (stopper, shutdown) = shutdown::channel();
        let mut tasks = vec![
            spawn_survey(&config, &db, &hosts, &reconciler, &shutdown),
            spawn_reconciler(&config, &reconciler, &shutdown),
            spawn_undertaker(&undertaker, &shutdown),
        ];
        let instance = format!(
            "{}-{}",
            config.fleet,
            &uuid::Uuid::new_v4().to_string()[..8]
        );
        let conductor = Conductor::new(db.clone(), hosts, config.clone(), clock.clone());
        tasks.extend(conductor.spawn(&instance, &shutdown));

        let state = AppState {
            db: db.clone(),
            verifier: Arc::new(Verifier::new(&config.auth)?),
            config: config.clone(),
            clock,
        };
        let (addr, server) = serve(&config, state, shutdown).await?;
        tasks.push(server);
        Ok(Application {
            addr,
            db,
            undertaker,
            reconciler,
            stopper,
            tasks,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs until SIGTERM or SIGINT (ctrl-c), then stops gracefully; a
    /// second signal stops at once.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let mut signals = StopSignals::new()?;
        signals.next().await;
        tracing::info!("stopping: finishing or handing back the work in progress");
        tokio::select! {
            _ = self.stop() => tracing::info!("stopped"),
            _ = signals.next() => tracing::warn!("asked again: stopping without waiting"),
        }
        Ok(())
    }

    /// Stops the server and every loop, and returns once they have
    /// finished: conductor workers hand back the jobs they hold, the API
    /// answers what is in flight. Gives up waiting after `STOP_GRACE`.
    pub async fn stop(self) {
        self.stopper.stop();
        let finished = futures::future::join_all(self.tasks);
        if tokio::time::timeout(STOP_GRACE, finished).await.is_err() {
            tracing::warn!(
                grace = ?STOP_GRACE,
                "some loops did not finish in time; leaving them"
            );
        }
    }
}

/// SIGTERM (what service managers send) and SIGINT (ctrl-c).
struct StopSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> std::io::Result<Self> {
        Ok(StopSignals {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Survey, then the watchdog's view of what changed. A survey in progress
/// finishes (probes have deadlines): the watchdog opens an incident and
/// marks its vessels in separate steps that must not be cut apart.
fn spawn_survey(
    config: &Config,
    db: &PgPool,
    hosts: &Arc<HostPool>,
    reconciler: &Arc<Reconciler>,
    shutdown: &Shutdown,
) -> JoinHandle<()> {
    let db = db.clone();
    let hosts = hosts.clone();
    let reconciler = reconciler.clone();
    let every = config.conductor.probe_interval.duration();
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        while shutdown.sleep(every).await {
            crate::survey::survey(&db, &hosts).await;
            if let Err(e) = crate::watchdog::after_survey(&db, &reconciler).await {
                tracing::warn!(error = %e, "watchdog");
            }
        }
    })
}

fn spawn_reconciler(
    config: &Config,
    reconciler: &Arc<Reconciler>,
    shutdown: &Shutdown,
) -> JoinHandle<()> {
    let reconciler = reconciler.clone();
    let every = config.reconciler.every.duration();
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        while shutdown.sleep(every).await {
            if let Err(e) = reconciler.run_once().await {
                tracing::warn!(error = %e, "reconciler");
            }
        }
    })
}

/// Interval ticks are UTC instants; work hours are computed in the sweep
/// itself, so DST never shifts them. A sweep in progress finishes: it
/// holds the sweep lock on a pooled connection.
fn spawn_undertaker(undertaker: &Arc<Undertaker>, shutdown: &Shutdown) -> JoinHandle<()> {
    let undertaker = undertaker.clone();
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(undertaker.every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait() => return,
            }
            if let Err(e) = undertaker.sweep().await {
                tracing::warn!(error = %e, "undertaker sweep failed");
            }
        }
    })
}

/// Binds the API's address and serves it until the stop; requests in
/// flight then get `REQUEST_GRACE` to finish.
async fn serve(
    config: &Config,
    state: AppState,
    shutdown: Shutdown,
) -> Result<(SocketAddr, JoinHandle<()>), StartupError> {
    let bind_error = |source| StartupError::Bind {
        addr: config.listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let app = api::router(state);
    let server = tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        let stopping = shutdown.clone();
        let serving = axum::serve(listener, service)
            .with_graceful_shutdown(async move { stopping.wait().await })
            .into_future();
        let overdue = async {
            shutdown.wait().await;
            tokio::time::sleep(REQUEST_GRACE).await;
        };
        tokio::select! {
            served = serving => if let Err(e) = served {
                tracing::error!(error = %e, "the API server stopped");
            },
            _ = overdue => tracing::warn!("requests still open after the grace period: closed"),
        }
    });
    tracing::info!(%addr, "orchestrator listening");
    Ok((addr, server))
}
