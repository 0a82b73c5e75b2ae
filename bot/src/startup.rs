//! Builds the running bot from its config; `main` and the tests share it.
//! Every task it starts holds one [`Shutdown`] and ends when it fires:
//! [`RunningBot::run_until_stopped`] fires it on SIGTERM or SIGINT, and
//! dropping the [`RunningBot`] fires it too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;

use crate::actions::Bot;
use crate::config::{BotConfig, SlackConfig, SlackMode};
use crate::shutdown::{self, InFlight, Shutdown, Stopper};
use crate::slack::http::{router, HttpState};
use crate::slack::signature::Verifier;
use crate::slack::web::SlackWeb;
use crate::slack::{socket, SlackApp, SlackInbox};

/// How long a stop waits for the loops and the work in flight (a button's
/// kill, the waiting DMs' last edits) before it returns anyway: inside
/// Docker's default 10 s and the unit's `TimeoutStopSec`.
const STOP_GRACE: Duration = Duration::from_secs(8);

/// The bot, serving. Dropping it stops its tasks without waiting for
/// them; [`RunningBot::stop`] waits.
pub struct RunningBot {
    /// The HTTP address (HTTP mode).
    pub addr: Option<SocketAddr>,
    stopper: Stopper,
    tasks: Vec<JoinHandle<()>>,
    in_flight: InFlight,
}

/// rustls needs one process-wide crypto provider; several crates bring one.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub async fn start(config: BotConfig) -> anyhow::Result<RunningBot> {
    install_crypto();
    let slack = config
        .slack
        .clone()
        .context("slack: the [slack] section is needed to serve Slack")?;
    if slack.serves_any_workspace() {
        tracing::warn!(
            "slack.team_id is unset: requests signed for any workspace this app is \
             installed in are served; set it to your workspace's id (T…)"
        );
    }
    let web = Arc::new(
        SlackWeb::new(&slack.api_url, slack.bot_token.expose()).context("slack web client")?,
    );
    let bot = Arc::new(Bot::new(config)?);
    let app = Arc::new(
        SlackApp::new(bot.clone(), web.clone(), slack.admin_channel.clone())
            .for_team(slack.team_id.clone()),
    );
    let in_flight = app.in_flight.clone();
    let inbox = Arc::new(SlackInbox {
        web,
        admin_channel: slack.admin_channel.clone(),
    });
    let (stopper, shutdown) = shutdown::channel();
    let mut tasks = vec![tokio::spawn(crate::events::deliver_until_stopped(
        bot,
        inbox,
        None,
        shutdown.clone(),
    ))];
    let (addr, server) = serve_slack(&slack, app, shutdown).await?;
    tasks.push(server);
    Ok(RunningBot {
        addr,
        stopper,
        tasks,
        in_flight,
    })
}

/// Slack's side, on the transport the config names: the HTTP server (its
/// address) or the Socket Mode connection.
async fn serve_slack(
    slack: &SlackConfig,
    app: Arc<SlackApp>,
    shutdown: Shutdown,
) -> anyhow::Result<(Option<SocketAddr>, JoinHandle<()>)> {
    match slack.mode {
        SlackMode::Http => {
            let listener = tokio::net::TcpListener::bind(slack.listen)
                .await
                .with_context(|| format!("slack.listen {}", slack.listen))?;
            let addr = listener.local_addr()?;
            let state = Arc::new(HttpState {
                app,
                verifier: Verifier::new(slack.signing_secret.expose()),
            });
            let server = tokio::spawn(async move {
                // Stops taking requests at the signal; answers those in hand.
                let served = axum::serve(listener, router(state))
                    .with_graceful_shutdown(async move { shutdown.wait().await })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %crate::chain(&e), "the Slack HTTP server stopped");
                }
            });
            tracing::info!(%addr, "listening for Slack");
            Ok((Some(addr), server))
        }
        SlackMode::Socket => {
            let token = slack
                .app_token
                .clone()
                .context("slack.app_token is needed for Socket Mode")?;
            let server = tokio::spawn(async move {
                if let Err(e) = socket::serve(app, token.expose(), shutdown).await {
                    tracing::error!(error = %crate::chain(e.as_ref()), "Socket Mode stopped");
                }
            });
            Ok((None, server))
        }
    }
}

impl RunningBot {
    /// Runs until SIGTERM (what service managers send) or SIGINT (ctrl-c),
    /// then stops gracefully; a second signal stops at once.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let mut signals = StopSignals::new()?;
        signals.next().await;
        tracing::info!("stopping: finishing what is in hand, sending the last DM edits");
        tokio::select! {
            () = self.stop() => tracing::info!("stopped"),
            () = signals.next() => tracing::warn!("asked again: stopping without waiting"),
        }
        Ok(())
    }

    /// Stops every task and returns once they have finished: the outbox
    /// poller sends the waiting DMs' deferred edits, the HTTP server
    /// answers what is in flight, a pressed button's action completes.
    /// Gives up waiting after `STOP_GRACE`.
    pub async fn stop(self) {
        self.stopper.stop();
        let in_flight = self.in_flight;
        let finished = async move {
            futures::future::join_all(self.tasks).await;
            in_flight.idle().await;
        };
        if tokio::time::timeout(STOP_GRACE, finished).await.is_err() {
            tracing::warn!(grace = ?STOP_GRACE, "some work did not finish in time; leaving it");
        }
    }
}

/// SIGTERM and SIGINT (ctrl-c).
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
