//! Calls to Slack's Web API (slack-morphism's client and its typed
//! requests): DMs, message updates, modals, App Home, user names, and
//! `response_url` replies.

use std::sync::Arc;

use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;

use crate::views::Message;

/// A Web API call that failed: which one; its source says why (Slack's
/// error code, the HTTP failure).
#[derive(Debug, thiserror::Error)]
#[error("Slack's {method} failed")]
pub struct SlackError {
    pub method: &'static str,
    source: SlackClientError,
}

/// Names the call a client error came from.
fn failed(method: &'static str) -> impl FnOnce(SlackClientError) -> SlackError {
    move |source| SlackError { method, source }
}

/// Where a posted message lives, to update it later.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MessageRef {
    pub channel: String,
    pub ts: String,
}

pub struct SlackWeb {
    client: Arc<SlackHyperClient>,
    token: SlackApiToken,
}

impl SlackWeb {
    pub fn new(api_url: &str, bot_token: &str) -> std::io::Result<Self> {
        // https for Slack, plain http for a local fake in tests.
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        // slack-morphism puts the `/` before the method itself.
        let connector = SlackClientHyperConnector::with_connector(https)
            .with_slack_api_url(api_url.trim_end_matches('/'));
        Ok(SlackWeb {
            client: Arc::new(SlackClient::new(connector)),
            token: SlackApiToken::new(SlackApiTokenValue(bot_token.to_string())),
        })
    }

    pub fn client(&self) -> Arc<SlackHyperClient> {
        self.client.clone()
    }

    /// Opens (or finds) the DM with a user and posts there.
    pub async fn post_dm(&self, user: &str, message: &Message) -> Result<MessageRef, SlackError> {
        let session = self.client.open_session(&self.token);
        let open = SlackApiConversationsOpenRequest::new()
            .with_users(vec![user.into()])
            .with_return_im(false);
        let channel = session
            .conversations_open(&open)
            .await
            .map_err(failed("conversations.open"))?
            .channel
            .id;
        self.post(&channel.0, message).await
    }

    pub async fn post(&self, channel: &str, message: &Message) -> Result<MessageRef, SlackError> {
        let session = self.client.open_session(&self.token);
        let req = SlackApiChatPostMessageRequest::new(channel.into(), message.to_slack());
        let resp = session
            .chat_post_message(&req)
            .await
            .map_err(failed("chat.postMessage"))?;
        Ok(MessageRef {
            channel: resp.channel.0,
            ts: resp.ts.0,
        })
    }

    pub async fn update(&self, at: &MessageRef, message: &Message) -> Result<(), SlackError> {
        let session = self.client.open_session(&self.token);
        let req = SlackApiChatUpdateRequest::new(
            at.channel.as_str().into(),
            message.to_slack(),
            at.ts.as_str().into(),
        );
        session
            .chat_update(&req)
            .await
            .map_err(failed("chat.update"))?;
        Ok(())
    }

    pub async fn open_modal(
        &self,
        trigger_id: &SlackTriggerId,
        view: SlackView,
    ) -> Result<(), SlackError> {
        let session = self.client.open_session(&self.token);
        let req = SlackApiViewsOpenRequest::new(trigger_id.clone(), view);
        session
            .views_open(&req)
            .await
            .map_err(failed("views.open"))?;
        Ok(())
    }

    pub async fn publish_home(&self, user: &str, view: SlackView) -> Result<(), SlackError> {
        let session = self.client.open_session(&self.token);
        let req = SlackApiViewsPublishRequest::new(user.into(), view);
        session
            .views_publish(&req)
            .await
            .map_err(failed("views.publish"))?;
        Ok(())
    }

    /// The user's Slack handle, to derive a unix name on first contact.
    pub async fn user_name(&self, user: &str) -> Result<Option<String>, SlackError> {
        let session = self.client.open_session(&self.token);
        let req = SlackApiUsersInfoRequest::new(user.into());
        Ok(session
            .users_info(&req)
            .await
            .map_err(failed("users.info"))?
            .user
            .name)
    }

    /// Replies through a command's or an interaction's `response_url`, as a
    /// new message. slack-morphism's webhook request has no `response_type`;
    /// Slack's default for `response_url` replies is `ephemeral`, which is
    /// what we want, so nothing is lost.
    pub async fn respond(
        &self,
        response_url: &SlackResponseUrl,
        message: &Message,
    ) -> Result<(), SlackError> {
        let req =
            SlackApiPostWebhookMessageRequest::new(message.to_slack()).with_replace_original(false);
        self.client
            .respond_to_event(response_url, &req)
            .await
            .map_err(failed("response_url"))?;
        Ok(())
    }
}
