//! A local fake of the Slack Web API: only the endpoints the bot uses,
//! answering in Slack's documented shapes, recording every call, and
//! handing out its own `response_url`s.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::eventually;

#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    names: HashMap<String, String>,
    next_ts: u64,
    next_response: u64,
}

pub struct FakeSlack {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn read_body(headers: &HeaderMap, query: Option<String>, body: &Bytes) -> Value {
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if is_json {
        return serde_json::from_slice(body).unwrap_or(Value::Null);
    }
    let mut map = serde_json::Map::new();
    let query = query.unwrap_or_default();
    let pairs = url::form_urlencoded::parse(body)
        .into_owned()
        .chain(url::form_urlencoded::parse(query.as_bytes()).into_owned());
    for (k, v) in pairs {
        // Slack's form encoding carries JSON in some fields (blocks, view).
        let value = serde_json::from_str(&v).unwrap_or(Value::String(v));
        map.insert(k, value);
    }
    Value::Object(map)
}

async fn api(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(method): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Json<Value> {
    let body = read_body(&headers, query, &body);
    let mut s = inner.lock().unwrap();
    s.calls.push(Call {
        method: method.clone(),
        body: body.clone(),
    });
    s.next_ts += 1;
    let ts = format!("1700000000.{:06}", s.next_ts);
    Json(match method.as_str() {
        "conversations.open" => {
            let user = body["users"]
                .as_array()
                .and_then(|u| u.first())
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| body["users"].as_str().map(str::to_string))
                .unwrap_or_default();
            json!({ "ok": true, "channel": { "id": format!("D{user}") } })
        }
        "chat.postMessage" => json!({
            "ok": true, "channel": body["channel"], "ts": ts,
            "message": { "type": "message", "ts": ts, "text": body["text"],
                         "blocks": body["blocks"], "user": "UVESSELBOT", "bot_id": "BVESSEL" },
        }),
        "chat.update" => json!({
            "ok": true, "channel": body["channel"], "ts": body["ts"], "text": body["text"],
            "message": { "text": body["text"], "blocks": body["blocks"] },
        }),
        "views.open" | "views.publish" => {
            let mut view = body["view"].clone();
            view["id"] = json!(format!("V{ts}"));
            view["team_id"] = json!("T0LAB");
            view["hash"] = json!(ts);
            view["state"] = json!({ "values": {} });
            json!({ "ok": true, "view": view })
        }
        "users.info" => {
            let user = body["user"].as_str().unwrap_or("").to_string();
            let name = s
                .names
                .get(&user)
                .cloned()
                .unwrap_or_else(|| user.to_ascii_lowercase());
            json!({ "ok": true, "user": { "id": user, "team_id": "T0LAB", "name": name } })
        }
        _ => json!({ "ok": false, "error": "unknown_method" }),
    })
}

async fn response_url(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    body: Bytes,
) -> &'static str {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    inner.lock().unwrap().calls.push(Call {
        method: format!("response_url/{id}"),
        body,
    });
    "ok"
}

impl FakeSlack {
    pub async fn start() -> anyhow::Result<FakeSlack> {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/api/{method}", post(api).get(api))
            .route("/response/{id}", post(response_url))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeSlack { addr, inner, task })
    }

    pub fn api_url(&self) -> String {
        format!("http://{}/api/", self.addr)
    }

    /// A fresh `response_url` for one request.
    pub fn response_url(&self) -> String {
        let mut s = self.inner.lock().unwrap();
        s.next_response += 1;
        format!("http://{}/response/{}", self.addr, s.next_response)
    }

    pub fn set_name(&self, user: &str, name: &str) {
        self.inner
            .lock()
            .unwrap()
            .names
            .insert(user.into(), name.into());
    }

    pub fn calls(&self, method: &str) -> Vec<Call> {
        self.inner
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| c.method == method || c.method.starts_with(&format!("{method}/")))
            .cloned()
            .collect()
    }

    /// Waits for a call of `method` whose body satisfies `matches`.
    pub async fn wait_for(
        &self,
        method: &str,
        deadline: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Call> {
        eventually(&format!("a {method} call"), deadline, || {
            let found = self.calls(method).into_iter().find(|c| matches(&c.body));
            async move { Ok(found) }
        })
        .await
    }
}

/// All the text of a message's blocks, for matching.
pub fn text_of(body: &Value) -> String {
    let mut out = body["text"].as_str().unwrap_or("").to_string();
    if let Some(blocks) = body["blocks"].as_array() {
        for b in blocks {
            out.push('\n');
            out.push_str(&b.to_string());
        }
    }
    out
}
