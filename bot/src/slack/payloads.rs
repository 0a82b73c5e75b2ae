//! Decoding what Slack sends: slash-command forms, interaction payloads and
//! Events API bodies, into the few fields the bot uses. Pure functions, so
//! the fuzzer can reach them; nothing here trusts its input.

use serde_json::Value;

use super::SlashCommand;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a slash command payload")]
    NotACommand,
    #[error("no JSON `payload` field")]
    NoPayload,
    #[error("the payload names no user")]
    NoUser,
    #[error("block_actions without actions")]
    NoActions,
    #[error("the payload has no type")]
    NoType,
    #[error("not JSON")]
    NotJson,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Interaction {
    BlockAction {
        user: String,
        action: Value,
        response_url: Option<String>,
    },
    ViewSubmission {
        user: String,
        callback_id: String,
        values: Value,
    },
    Other,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    UrlVerification(Value),
    AppHomeOpened { user: String },
    Other,
}

fn form(body: &[u8]) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

pub fn command(body: &[u8]) -> Result<SlashCommand, DecodeError> {
    let f = form(body);
    let (Some(command), Some(user_id)) = (f.get("command"), f.get("user_id")) else {
        return Err(DecodeError::NotACommand);
    };
    Ok(SlashCommand {
        command: command.clone(),
        text: f.get("text").cloned().unwrap_or_default(),
        user_id: user_id.clone(),
        response_url: f.get("response_url").cloned(),
        trigger_id: f.get("trigger_id").cloned(),
    })
}

pub fn interaction(body: &[u8]) -> Result<Interaction, DecodeError> {
    let payload: Value = form(body)
        .get("payload")
        .and_then(|p| serde_json::from_str(p).ok())
        .ok_or(DecodeError::NoPayload)?;
    let user = payload["user"]["id"]
        .as_str()
        .map(str::to_string)
        .ok_or(DecodeError::NoUser)?;
    match payload["type"].as_str() {
        Some("block_actions") => Ok(Interaction::BlockAction {
            user,
            action: payload["actions"]
                .as_array()
                .and_then(|a| a.first())
                .cloned()
                .ok_or(DecodeError::NoActions)?,
            response_url: payload["response_url"].as_str().map(str::to_string),
        }),
        Some("view_submission") => Ok(Interaction::ViewSubmission {
            user,
            callback_id: payload["view"]["callback_id"].as_str().unwrap_or("").into(),
            values: payload["view"]["state"]["values"].clone(),
        }),
        Some(_) => Ok(Interaction::Other),
        None => Err(DecodeError::NoType),
    }
}

pub fn event(body: &[u8]) -> Result<EventBody, DecodeError> {
    let payload: Value = serde_json::from_slice(body).map_err(|_| DecodeError::NotJson)?;
    Ok(match payload["type"].as_str() {
        Some("url_verification") => EventBody::UrlVerification(payload["challenge"].clone()),
        Some("event_callback") if payload["event"]["type"] == "app_home_opened" => {
            match payload["event"]["user"].as_str() {
                Some(user) => EventBody::AppHomeOpened { user: user.into() },
                None => EventBody::Other,
            }
        }
        _ => EventBody::Other,
    })
}
