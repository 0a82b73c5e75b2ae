//! Calls to Slack's Web API (slack-morphism's client): DMs, message
//! updates, modals, App Home, user names, and `response_url` replies.

use std::sync::Arc;

use serde_json::{json, Value};
use slack_morphism::prelude::*;

use crate::views::Message;

#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    #[error("slack: {0}")]
    Api(String),
    #[error("slack request: {0}")]
    Shape(#[from] serde_json::Error),
}

impl From<slack_morphism::errors::SlackClientError> for SlackError {
    fn from(e: slack_morphism::errors::SlackClientError) -> Self {
        SlackError::Api(e.to_string())
    }
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
    http: reqwest::Client,
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
            http: reqwest::Client::new(),
        })
    }

    pub fn client(&self) -> Arc<SlackHyperClient> {
        self.client.clone()
    }

    fn content(message: &Message) -> Value {
        json!({ "text": message.text, "blocks": message.to_blocks() })
    }

    /// Opens (or finds) the DM with a user and posts there.
    pub async fn post_dm(&self, user: &str, message: &Message) -> Result<MessageRef, SlackError> {
        let session = self.client.open_session(&self.token);
        let open: SlackApiConversationsOpenRequest =
            serde_json::from_value(json!({ "users": [user], "return_im": false }))?;
        let channel = session.conversations_open(&open).await?.channel.id;
        self.post(&channel.0, message).await
    }

    pub async fn post(&self, channel: &str, message: &Message) -> Result<MessageRef, SlackError> {
        let session = self.client.open_session(&self.token);
        let mut body = Self::content(message);
        body["channel"] = json!(channel);
        let req: SlackApiChatPostMessageRequest = serde_json::from_value(body)?;
        let resp = session.chat_post_message(&req).await?;
        Ok(MessageRef {
            channel: resp.channel.0,
            ts: resp.ts.0,
        })
    }

    pub async fn update(&self, at: &MessageRef, message: &Message) -> Result<(), SlackError> {
        let session = self.client.open_session(&self.token);
        let mut body = Self::content(message);
        body["channel"] = json!(at.channel);
        body["ts"] = json!(at.ts);
        let req: SlackApiChatUpdateRequest = serde_json::from_value(body)?;
        session.chat_update(&req).await?;
        Ok(())
    }

    pub async fn open_modal(&self, trigger_id: &str, view: Value) -> Result<(), SlackError> {
        let session = self.client.open_session(&self.token);
        let req: SlackApiViewsOpenRequest =
            serde_json::from_value(json!({ "trigger_id": trigger_id, "view": view }))?;
        session.views_open(&req).await?;
        Ok(())
    }

    pub async fn publish_home(&self, user: &str, view: Value) -> Result<(), SlackError> {
        let session = self.client.open_session(&self.token);
        let req: SlackApiViewsPublishRequest =
            serde_json::from_value(json!({ "user_id": user, "view": view }))?;
        session.views_publish(&req).await?;
        Ok(())
    }

    /// The user's Slack handle, to derive a unix name on first contact.
    pub async fn user_name(&self, user: &str) -> Result<Option<String>, SlackError> {
        let session = self.client.open_session(&self.token);
        let req: SlackApiUsersInfoRequest = serde_json::from_value(json!({ "user": user }))?;
        Ok(session.users_info(&req).await?.user.name)
    }

    /// Replies through an interaction's `response_url` (ephemeral).
    pub async fn respond(&self, response_url: &str, message: &Message) -> Result<(), SlackError> {
        let mut body = Self::content(message);
        body["response_type"] = json!("ephemeral");
        body["replace_original"] = json!(false);
        let resp = self
            .http
            .post(response_url)
            .json(&body)
            .send()
            .await
            .map_err(|e| SlackError::Api(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(SlackError::Api(format!(
                "response_url answered {}",
                resp.status()
            )));
        }
        Ok(())
    }
}
