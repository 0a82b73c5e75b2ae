//! Builds the whole orchestrator from a config; `main` and the tests share it.

use std::net::SocketAddr;
use std::sync::Arc;

use sqlx::PgPool;
use tokio::task::JoinHandle;

use crate::api::{self, auth::Verifier, AppState};
use crate::clock::{Clock, SystemClock};
use crate::conductor::Conductor;
use crate::config::Config;
use crate::hosts::HostPool;
use crate::reconciler::Reconciler;
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
    #[error("cannot load the token key: {0}")]
    Key(#[from] jsonwebtoken::errors::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub struct Application {
    pub addr: SocketAddr,
    pub db: PgPool,
    pub undertaker: Arc<Undertaker>,
    pub reconciler: Arc<Reconciler>,
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

        let mut tasks = vec![
            spawn_survey(&config, &db, &hosts, &reconciler),
            spawn_reconciler(&config, &reconciler),
            spawn_undertaker(&undertaker),
        ];
        let instance = format!(
            "{}-{}",
            config.fleet,
            &uuid::Uuid::new_v4().to_string()[..8]
        );
        tasks.extend(Conductor::new(db.clone(), hosts, config.clone()).spawn(&instance));

        let state = AppState {
            db: db.clone(),
            verifier: Arc::new(Verifier::new(&config.auth)?),
            config: config.clone(),
            clock,
        };
        let (addr, server) = serve(&config, state).await?;
        tasks.push(server);
        Ok(Application {
            addr,
            db,
            undertaker,
            reconciler,
            tasks,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs until ctrl-c or SIGTERM.
    pub async fn run_until_stopped(self) {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("stopping");
    }
}

impl Drop for Application {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Survey, then the watchdog's view of what changed.
fn spawn_survey(
    config: &Config,
    db: &PgPool,
    hosts: &Arc<HostPool>,
    reconciler: &Arc<Reconciler>,
) -> JoinHandle<()> {
    let db = db.clone();
    let hosts = hosts.clone();
    let reconciler = reconciler.clone();
    let every = config.conductor.probe_interval.duration();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            crate::survey::survey(&db, &hosts).await;
            if let Err(e) = crate::watchdog::after_survey(&db, &reconciler).await {
                tracing::warn!(error = %e, "watchdog");
            }
        }
    })
}

fn spawn_reconciler(config: &Config, reconciler: &Arc<Reconciler>) -> JoinHandle<()> {
    let reconciler = reconciler.clone();
    let every = config.reconciler.every.duration();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = reconciler.run_once().await {
                tracing::warn!(error = %e, "reconciler");
            }
        }
    })
}

/// Interval ticks are UTC instants; work hours are computed in the sweep
/// itself, so DST never shifts them.
fn spawn_undertaker(undertaker: &Arc<Undertaker>) -> JoinHandle<()> {
    let undertaker = undertaker.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(undertaker.every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = undertaker.sweep().await {
                tracing::warn!(error = %e, "undertaker sweep failed");
            }
        }
    })
}

/// Binds the API's address and serves it.
async fn serve(
    config: &Config,
    state: AppState,
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
        if let Err(e) = axum::serve(listener, service).await {
            tracing::error!(error = %e, "the API server stopped");
        }
    });
    tracing::info!(%addr, "orchestrator listening");
    Ok((addr, server))
}
