//! A local server that speaks OpenAI's chat-completions protocol
//! (`POST /v1/chat/completions`, `GET /v1/models`) as the local model
//! servers do (llama.cpp's server, vLLM, Ollama's `/v1`): bearer keys,
//! request validation and error bodies in OpenAI's shape. What it answers
//! is scripted by the test, since no model can be installed here: each
//! reply is chosen by a phrase the user's message contains.

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// A running server; clones share it.
#[derive(Clone)]
pub struct ChatServer {
    state: Arc<Mutex<ChatState>>,
    base: String,
}

struct ChatState {
    model: String,
    api_key: Option<String>,
    /// (phrase in the user's message, reply), first match wins.
    replies: Vec<(String, String)>,
    /// Every request body, valid or not.
    requests: Vec<Value>,
    served: u64,
}

impl ChatServer {
    /// A server for `model` on a free loopback port; with `api_key`, a
    /// request without `Authorization: Bearer <api_key>` is refused (401).
    pub async fn start(model: &str, api_key: Option<&str>) -> ChatServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the chat server");
        let addr = listener.local_addr().expect("chat server address");
        let state = Arc::new(Mutex::new(ChatState {
            model: model.to_owned(),
            api_key: api_key.map(str::to_owned),
            replies: Vec::new(),
            requests: Vec::new(),
            served: 0,
        }));
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .route("/v1/models", get(models))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ChatServer {
            state,
            base: format!("http://{addr}/v1"),
        }
    }

    /// The API base (`http://127.0.0.1:PORT/v1`), what clients configure.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Answer `reply` to a conversation whose last user message contains
    /// `phrase` (case-insensitive); unmatched ones get "I cannot help with that."
    pub fn reply(&self, phrase: &str, reply: &str) {
        self.lock()
            .replies
            .push((phrase.to_lowercase(), reply.to_owned()));
    }

    /// The request bodies received, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ChatState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

type Shared = Arc<Mutex<ChatState>>;

/// OpenAI's error body.
fn error(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "type": kind, "param": param, "code": code}})),
    )
        .into_response()
}

fn wrong_key() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "Incorrect API key provided.",
        "invalid_request_error",
        None,
        Some("invalid_api_key"),
    )
}

fn authorized(state: &ChatState, headers: &HeaderMap) -> bool {
    match &state.api_key {
        None => true,
        Some(key) => {
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                == Some(key.as_str())
        }
    }
}

async fn models(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let state = state.lock().unwrap_or_else(PoisonError::into_inner);
    if !authorized(&state, &headers) {
        return wrong_key();
    }
    Json(json!({"object": "list", "data": [{"id": state.model, "object": "model", "created": 0, "owned_by": "local"}]}))
        .into_response()
}

async fn completions(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    state
        .requests
        .push(parsed.as_ref().cloned().unwrap_or(Value::Null));
    if !authorized(&state, &headers) {
        return wrong_key();
    }
    let Ok(request) = parsed else {
        return error(
            StatusCode::BAD_REQUEST,
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
            None,
            None,
        );
    };
    let Some(model) = request.get("model").and_then(Value::as_str) else {
        return error(
            StatusCode::BAD_REQUEST,
            "you must provide a model parameter",
            "invalid_request_error",
            Some("model"),
            None,
        );
    };
    if model != state.model {
        return error(
            StatusCode::NOT_FOUND,
            &format!("The model `{model}` does not exist."),
            "invalid_request_error",
            Some("model"),
            Some("model_not_found"),
        );
    }
    if request.get("stream").and_then(Value::as_bool) == Some(true) {
        return error(
            StatusCode::BAD_REQUEST,
            "streaming is not served here",
            "invalid_request_error",
            Some("stream"),
            None,
        );
    }
    let Some(messages) = request
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "'messages' must be a non-empty array",
            "invalid_request_error",
            Some("messages"),
            None,
        );
    };
    let mut last_user = None;
    let mut prompt_chars = 0;
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str);
        let content = m.get("content").and_then(Value::as_str);
        match (role, content) {
            (Some("system" | "user" | "assistant" | "developer"), Some(content)) => {
                prompt_chars += content.len();
                if role == Some("user") {
                    last_user = Some(content.to_lowercase());
                }
            }
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("Invalid value for 'messages[{i}]': a role (system, user, assistant) and a string content are required."),
                    "invalid_request_error",
                    Some(&format!("messages[{i}]")),
                    None,
                )
            }
        }
    }
    let Some(last_user) = last_user else {
        return error(
            StatusCode::BAD_REQUEST,
            "no user message",
            "invalid_request_error",
            Some("messages"),
            None,
        );
    };
    let reply = state
        .replies
        .iter()
        .find(|(phrase, _)| last_user.contains(phrase.as_str()))
        .map_or_else(|| "I cannot help with that.".to_owned(), |(_, r)| r.clone());
    state.served += 1;
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Tokens as roughly four characters each, as servers report usage.
    let (prompt_tokens, completion_tokens) = (prompt_chars / 4 + 1, reply.len() / 4 + 1);
    Json(json!({
        "id": format!("chatcmpl-{}", state.served),
        "object": "chat.completion",
        "created": created,
        "model": state.model,
        "system_fingerprint": null,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": reply},
            "logprobs": null,
            "finish_reason": "stop",
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }))
    .into_response()
}
