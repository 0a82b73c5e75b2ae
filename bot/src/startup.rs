//! Builds the running bot from its config; `main` and the tests share it.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::task::JoinHandle;

use crate::actions::Bot;
use crate::config::{BotConfig, SlackMode};
use crate::slack::http::{router, HttpState};
use crate::slack::signature::Verifier;
use crate::slack::web::SlackWeb;
use crate::slack::{socket, SlackApp, SlackInbox};

pub struct RunningBot {
    /// The HTTP address (HTTP mode).
    pub addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for RunningBot {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
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
    let web = Arc::new(
        SlackWeb::new(&slack.api_url, slack.bot_token.expose()).context("slack web client")?,
    );
    let bot = Arc::new(Bot::new(config)?);
    let app = Arc::new(
        SlackApp::new(bot.clone(), web.clone(), slack.admin_channel.clone())
            .for_team(slack.team_id.clone()),
    );
    let inbox = Arc::new(SlackInbox {
        web,
        admin_channel: slack.admin_channel.clone(),
    });
    let mut tasks = vec![tokio::spawn(crate::events::deliver_forever(
        bot.clone(),
        inbox,
        None,
    ))];
    let addr = match slack.mode {
        SlackMode::Http => {
            let listener = tokio::net::TcpListener::bind(slack.listen)
                .await
                .with_context(|| format!("slack.listen {}", slack.listen))?;
            let addr = listener.local_addr()?;
            let state = Arc::new(HttpState {
                app,
                verifier: Verifier::new(slack.signing_secret.expose()),
            });
            tasks.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router(state)).await {
                    tracing::error!(error = %e, "the Slack HTTP server stopped");
                }
            }));
            tracing::info!(%addr, "listening for Slack");
            Some(addr)
        }
        SlackMode::Socket => {
            let token = slack
                .app_token
                .clone()
                .context("slack.app_token is needed for Socket Mode")?;
            tasks.push(tokio::spawn(async move {
                if let Err(e) = socket::serve(app, token.expose()).await {
                    tracing::error!(error = %e, "Socket Mode stopped");
                }
            }));
            None
        }
    };
    Ok(RunningBot { addr, tasks })
}
