//! Builds the whole orchestrator from a config; `main` and the tests share it.

use std::net::SocketAddr;
use std::sync::Arc;

use sqlx::PgPool;
use tokio::task::JoinHandle;

use crate::api::{self, auth::Verifier, AppState};
use crate::conductor::Conductor;
use crate::config::Config;
use crate::hosts::HostPool;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot reach the database or migrate it: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
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
    tasks: Vec<JoinHandle<()>>,
}

impl Application {
    pub async fn build(config: Config) -> Result<Application, StartupError> {
        let config = Arc::new(config);
        let connections = (config.conductor.workers as u32 * 2 + 10).min(60);
        let db = crate::store::connect(config.database_url.expose(), connections).await?;
        let hosts = Arc::new(HostPool::new(
            &config.hosts,
            config.conductor.ssh_timeout.duration(),
        ));
        crate::survey::survey(&db, &hosts).await;

        let mut tasks = Vec::new();
        {
            let db = db.clone();
            let hosts = hosts.clone();
            let every = config.conductor.probe_interval.duration();
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    crate::survey::survey(&db, &hosts).await;
                }
            }));
        }
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
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartupError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.listen,
            source,
        })?;
        let app = api::router(state);
        tasks.push(tokio::spawn(async move {
            let service = app.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(e) = axum::serve(listener, service).await {
                tracing::error!(error = %e, "the API server stopped");
            }
        }));
        tracing::info!(%addr, "orchestrator listening");
        Ok(Application { addr, db, tasks })
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
