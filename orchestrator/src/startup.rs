//! Builds the whole orchestrator from a config; `main` and the tests share it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::task::JoinHandle;

use crate::api::{self, auth::Verifier, AppState};
use crate::clock::{Clock, SystemClock};
use crate::conductor::Conductor;
use crate::config::Config;
use crate::error_chain::chain;
use crate::gpu_watchdog::GpuWatchdog;
use crate::hosts::HostPool;
use crate::line::LineWorker;
use crate::ops;
use crate::prom::Prometheus;
use crate::reconciler::Reconciler;
use crate::schedule::{JobCounts, Schedule};
use crate::shutdown::{self, Shutdown, Stopper};
use crate::undertaker::Undertaker;
use crate::work_hours::WorkHours;

/// Why the orchestrator did not start. Each variant says what failed;
/// its source says why (`main` prints the whole chain).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot reach the database or migrate it")]
    Database(#[from] sqlx::Error),
    #[error("cannot migrate the database")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A `[work_hours]` key that does not make work hours.
    #[error("{key}: {message}")]
    WorkHours { key: String, message: String },
    #[error("undertaker.prometheus_url")]
    Prometheus(#[source] crate::prom::PromError),
    #[error("cannot schedule the periodic jobs")]
    Schedule(#[from] crate::schedule::ScheduleError),
    #[error("cannot set up token verification")]
    Auth(#[from] crate::api::auth::VerifierError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    TlsConfig(#[from] crate::config::ConfigError),
    #[error("tls: the certificate and key do not make a server identity")]
    Tls(#[from] rustls::Error),
}

/// How long a stop waits for the loops to finish what they are doing (a
/// probe, a sweep) before it returns anyway: inside Kubernetes' and
/// systemd's default grace periods.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// How long requests in flight (a long poll of the outbox, say) may run
/// once the server stops taking new ones.
const REQUEST_GRACE: Duration = Duration::from_secs(5);

/// How long a client may take to send a request's headers (and, with TLS,
/// to finish the handshake): a client that opens connections and trickles
/// bytes would otherwise hold a task and a socket each, for ever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A running orchestrator. Dropping it stops its loops too, without
/// waiting for them; [`Application::stop`] waits.
pub struct Application {
    pub addr: SocketAddr,
    /// Whether the API is served over TLS (`https://`).
    pub tls: bool,
    pub db: PgPool,
    pub undertaker: Arc<Undertaker>,
    pub reconciler: Arc<Reconciler>,
    /// Present when Prometheus is configured.
    pub gpu_watchdog: Option<Arc<GpuWatchdog>>,
    /// What each periodic job did on this replica: ticks run and skipped.
    pub jobs: BTreeMap<String, Arc<JobCounts>>,
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
            .map_err(|(key, message)| StartupError::WorkHours { key, message })?;
        let undertaker = Arc::new(
            Undertaker::new(
                db.clone(),
                config.undertaker.clone(),
                work,
                clock.clone(),
                hosts.clone(),
            )
            .with_queues(&config),
        );
        // At start: what the last run (or a crash) left behind.
        if let Err(e) = reconciler.run_once().await {
            tracing::warn!(error = %e, "the first reconciliation failed");
        }

        let (stopper, shutdown) = shutdown::channel();
        let instance = format!(
            "{}-{}",
            config.fleet,
            &uuid::Uuid::new_v4().to_string()[..8]
        );
        let gpu_watchdog = gpu_watchdog(&config, &db, &hosts, &reconciler, &clock)?;
        let schedule = periodic_jobs(
            &config,
            &db,
            &instance,
            &hosts,
            &reconciler,
            &undertaker,
            gpu_watchdog.as_ref(),
        )?;
        let jobs = schedule.counts();
        let mut tasks = vec![schedule.start(&shutdown).await?];
        let conductor = Conductor::new(db.clone(), hosts, config.clone(), clock.clone());
        tasks.extend(conductor.spawn(&instance, &shutdown));
        tasks.push(LineWorker::new(db.clone(), config.clone(), clock.clone()).spawn(&shutdown));

        let state = AppState {
            ctx: ops::Ctx {
                db: db.clone(),
                config: config.clone(),
                clock,
            },
            verifier: Arc::new(Verifier::new(&config.auth)?),
        };
        let (addr, server) = serve(&config, state, shutdown).await?;
        tasks.push(server);
        Ok(Application {
            addr,
            tls: config.tls.is_some(),
            db,
            undertaker,
            reconciler,
            gpu_watchdog,
            jobs,
            stopper,
            tasks,
        })
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
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

/// The GPU watchdog, when Prometheus is configured: it reads the same
/// DCGM series the undertaker does.
fn gpu_watchdog(
    config: &Config,
    db: &PgPool,
    hosts: &Arc<HostPool>,
    reconciler: &Arc<Reconciler>,
    clock: &Arc<dyn Clock>,
) -> Result<Option<Arc<GpuWatchdog>>, StartupError> {
    let Some(url) = config.undertaker.prometheus_url.as_deref() else {
        return Ok(None);
    };
    let prometheus = Prometheus::new(url)
        .map_err(StartupError::Prometheus)?
        .with_clock(clock.clone());
    Ok(Some(Arc::new(GpuWatchdog::new(
        db.clone(),
        hosts.clone(),
        reconciler.clone(),
        prometheus,
        config.watchdog.clone(),
    ))))
}

/// The periodic jobs on their UTC schedules, each once per tick across
/// replicas (see `schedule`). A run in progress finishes at a stop: a
/// survey's watchdog opens an incident and marks its vessels in separate
/// steps that must not be cut apart, and a sweep holds its lock.
fn periodic_jobs(
    config: &Config,
    db: &PgPool,
    instance: &str,
    hosts: &Arc<HostPool>,
    reconciler: &Arc<Reconciler>,
    undertaker: &Arc<Undertaker>,
    gpu_watchdog: Option<&Arc<GpuWatchdog>>,
) -> Result<Schedule, StartupError> {
    let mut schedule = Schedule::new(db.clone(), instance);
    let (d, h, r) = (db.clone(), hosts.clone(), reconciler.clone());
    schedule.add("survey", &config.conductor.probe_schedule()?, move || {
        let (db, hosts, reconciler) = (d.clone(), h.clone(), r.clone());
        async move {
            crate::survey::survey(&db, &hosts).await;
            if let Err(e) = crate::watchdog::after_survey(&db, &reconciler).await {
                tracing::warn!(error = %e, "watchdog");
            }
        }
    })?;
    let r = reconciler.clone();
    schedule.add("reconciler", &config.reconciler.schedule()?, move || {
        let reconciler = r.clone();
        async move {
            if let Err(e) = reconciler.run_once().await {
                tracing::warn!(error = %e, "reconciler");
            }
        }
    })?;
    let u = undertaker.clone();
    schedule.add("undertaker", &config.undertaker.schedule()?, move || {
        let undertaker = u.clone();
        async move {
            if let Err(e) = undertaker.sweep().await {
                tracing::warn!(error = %e, "undertaker sweep failed");
            }
        }
    })?;
    if let Some(w) = gpu_watchdog {
        let w = w.clone();
        schedule.add(
            "gpu_watchdog",
            &config.watchdog.job_schedule()?,
            move || {
                let watchdog = w.clone();
                async move {
                    if let Err(e) = watchdog.tick().await {
                        tracing::warn!(
                            error = %chain(&e),
                            "GPU watchdog tick failed"
                        );
                    }
                }
            },
        )?;
    }
    Ok(schedule)
}

/// Everything served on the API's address: the API behind its bearer-token
/// middleware, the portal beside it (it signs in by session cookie), and
/// the layers both share: a body limit, a concurrency limit, the request's
/// span.
pub fn app(state: AppState) -> axum::Router {
    api::router(state.clone())
        .merge(crate::portal::router(&state))
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(api::MAX_BODY))
        .layer(axum::middleware::from_fn(read_body_in_time))
        .layer(tower::limit::ConcurrencyLimitLayer::new(512))
        .layer(axum::middleware::from_fn(crate::telemetry::request_span))
}

/// How long a client has to send a request's body, once its headers are in.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads every request's body (at most `MAX_BODY`) within
/// `BODY_READ_TIMEOUT`, before any handler: a client that sends its body a
/// byte at a time is answered 408 and its connection freed, on every route.
async fn read_body_in_time(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = req.into_parts();
    // One byte over the limit, so the body limit's own 413 still answers.
    let read = axum::body::to_bytes(body, api::MAX_BODY + 1);
    match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Ok(Ok(bytes)) => {
            let req = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
            next.run(req).await
        }
        Ok(Err(_)) => crate::ops::OpError::TooLarge(format!(
            "the body is larger than {} KiB",
            api::MAX_BODY / 1024
        ))
        .into_response(),
        Err(_) => (
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "the request's body did not arrive in time",
        )
            .into_response(),
    }
}

/// Binds the API's address and serves it until the stop; requests in
/// flight then get `REQUEST_GRACE` to finish.
///
/// Our own accept loop rather than `axum::serve`: it is what lets one path
/// serve plain TCP or rustls, and set hyper's header read timeout (which
/// `axum::serve` does not expose). HTTP/1.1 only: our clients (the bot,
/// curl, Prometheus) speak it.
async fn serve(
    config: &Config,
    state: AppState,
    shutdown: Shutdown,
) -> Result<(SocketAddr, JoinHandle<()>), StartupError> {
    let acceptor = config.tls.as_ref().map(tls_acceptor).transpose()?;
    let tls = acceptor.is_some();
    let bind_error = |source| StartupError::Bind {
        addr: config.listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let app = app(state);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let gate = crate::gate::Gate::for_this_process();
    tracing::info!(
        connections = gate.total(),
        per_peer = crate::gate::PER_PEER,
        "connection limits"
    );
    let server = tokio::spawn(async move {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, say: wait rather than spin.
                        tracing::warn!(error = %e, "accepting a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = shutdown.wait() => break,
            };
            // Over the limits: closed at once, before a byte is read.
            let Some(permit) = gate.admit(peer.ip()) else {
                tracing::debug!(%peer, "connection refused: over the connection limits");
                drop(tcp);
                continue;
            };
            let served = serve_connection(
                tcp,
                peer,
                app.clone(),
                http.clone(),
                acceptor.clone(),
                graceful.watcher(),
            );
            tokio::spawn(async move {
                let _permit = permit;
                served.await
            });
        }
        // No new connections; idle ones close, busy ones finish their
        // request, within the grace.
        drop(listener);
        tokio::select! {
            _ = graceful.shutdown() => {}
            _ = tokio::time::sleep(REQUEST_GRACE) => {
                tracing::warn!("requests still open after the grace period: closed");
            }
        }
    });
    if !tls && !config.listen.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "serving plain HTTP on a non-loopback address (allow_plaintext): TLS must end in front of this"
        );
    }
    tracing::info!(%addr, tls, "orchestrator listening");
    Ok((addr, server))
}

/// One accepted connection, over TLS when configured, until it closes or
/// the graceful stop ends it.
async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    app: axum::Router,
    http: hyper::server::conn::http1::Builder,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let _ = tcp.set_nodelay(true);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
        // The audit log's "from where".
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        let mut app = app.clone();
        tower::Service::call(&mut app, req)
    });
    let served = match acceptor {
        Some(acceptor) => {
            let handshake = tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(tcp)).await;
            let stream = match handshake {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let io = hyper_util::rt::TokioIo::new(stream);
            watcher.watch(http.serve_connection(io, service)).await
        }
        None => {
            let io = hyper_util::rt::TokioIo::new(tcp);
            watcher.watch(http.serve_connection(io, service)).await
        }
    };
    if let Err(e) = served {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// rustls with the ring provider named here, not the process default:
/// nothing then depends on which provider some other crate installed, and
/// aws-lc-rs never enters the build (CRATE-NOTES: the provider trap).
fn tls_acceptor(tls: &crate::config::TlsConfig) -> Result<tokio_rustls::TlsAcceptor, StartupError> {
    let (chain, key) = tls.parts()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
}
