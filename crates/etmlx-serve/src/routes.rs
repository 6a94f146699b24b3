//! The HTTP endpoints: request checking, prompt building, and turning a slot's events into OpenAI responses
//! (one JSON body, or SSE chunks ending `data: [DONE]`).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use etmlx_llm::{
    ChatTemplate, GenerateOptions, Message, RenderOptions, SamplerConfig, StopReason, Tokenizer,
};
use serde_json::json;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::openai::{
    fields, parse_body, ApiError, ChatCompletionRequest, CompletionRequest, MessageContent,
    PromptField, SamplingFields, Usage, MAX_STOP_STRINGS,
};
use crate::scheduler::{Event, Finished, Job, JobError, Scheduler, SubmitError};

/// What the handlers share.
pub struct AppState {
    pub scheduler: Scheduler,
    pub metrics: Arc<Metrics>,
    pub tokenizer: Tokenizer,
    pub template: Option<ChatTemplate>,
    pub model_name: String,
    pub max_ctx_len: usize,
    pub api_key: Option<String>,
    /// Total time a request may take, waiting for a slot included.
    pub request_timeout: Duration,
    pub created: u64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// ---------------------------------------------------------------------------------------------------------
// Middleware and small endpoints

/// Refuses `/v1/*` requests without the configured bearer key.
pub async fn require_api_key(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(key) = &state.api_key {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let message = match given {
            None => Some("missing API key: send `Authorization: Bearer <key>`"),
            Some(k) if !same_secret(k.as_bytes(), key.as_bytes()) => Some("incorrect API key"),
            Some(_) => None,
        };
        if let Some(message) = message {
            return ApiError::new(StatusCode::UNAUTHORIZED, "invalid_request_error", message)
                .code("invalid_api_key")
                .into_response();
        }
    }
    next.run(request).await
}

/// Compares without an early exit, so response time does not tell how much of a guessed key was right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Counts every response by route and status.
pub async fn count_requests(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    state.metrics.request(&endpoint, response.status().as_u16());
    response
}

pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

pub async fn models(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(json!({
        "object": "list",
        "data": [{"id": state.model_name, "object": "model", "created": state.created, "owned_by": "etmlx",
                  "max_model_len": state.max_ctx_len}],
    }))
}

/// A handler panicked (a bug): the client gets a 500 in OpenAI's shape, the server keeps serving.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "internal error while handling the request",
    )
    .into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "unknown endpoint (this server has /v1/chat/completions, /v1/completions, /v1/models, /health, /metrics)",
    )
    .code("not_found")
}

// ---------------------------------------------------------------------------------------------------------
// Completions

/// Which endpoint's response shapes to use.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Chat,
    Text,
}

pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = parse_body(&body_bytes(body)?)?;
    let sampling: SamplingFields = fields(&body)?;
    let request: ChatCompletionRequest = fields(&body)?;
    check_model(&state, &sampling)?;
    let prompt = chat_prompt(&state, &request)?;
    complete(state, Format::Chat, prompt, sampling).await
}

pub async fn completions(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = parse_body(&body_bytes(body)?)?;
    let sampling: SamplingFields = fields(&body)?;
    let request: CompletionRequest = fields(&body)?;
    check_model(&state, &sampling)?;
    let prompt = match request.prompt {
        PromptField::Text(text) => encode_raw(&state, &text)?,
        PromptField::Texts(texts) if texts.len() == 1 => encode_raw(&state, &texts[0])?,
        PromptField::Texts(_) => {
            return Err(
                ApiError::invalid("only one prompt per request is supported").param("prompt"),
            )
        }
        PromptField::Tokens(ids) => {
            let vocab = state.tokenizer.vocab_size();
            if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
                return Err(ApiError::invalid(format!(
                    "token id {bad} is outside the vocabulary of {vocab}"
                ))
                .param("prompt"));
            }
            ids
        }
    };
    complete(state, Format::Text, prompt, sampling).await
}

/// A body rejection (too large, unreadable, too slow) as an OpenAI error with the rejection's status.
fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        let status = rejection.status();
        let text = rejection.body_text();
        // tower-http's body timeout surfaces as a body read error; say what happened.
        let timed_out = std::error::Error::source(&rejection)
            .is_some_and(|e| format!("{e:?}").contains("Timeout"))
            || text.contains("timed out");
        let (status, message) = if status == StatusCode::PAYLOAD_TOO_LARGE {
            (
                status,
                "the request body is larger than this server accepts (see --max-body-bytes)"
                    .to_string(),
            )
        } else if timed_out {
            (
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive within the idle timeout (see --idle-timeout)"
                    .to_string(),
            )
        } else {
            (status, format!("cannot read the request body: {text}"))
        };
        let mut err = ApiError::new(status, "invalid_request_error", message);
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            err = err.code("request_too_large");
        }
        err
    })
}

fn check_model(state: &AppState, sampling: &SamplingFields) -> Result<(), ApiError> {
    match &sampling.model {
        Some(name) if name != &state.model_name => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!(
                "the model `{name}` does not exist; this server serves `{}`",
                state.model_name
            ),
        )
        .param("model")
        .code("model_not_found")),
        _ => Ok(()),
    }
}

fn chat_prompt(state: &AppState, request: &ChatCompletionRequest) -> Result<Vec<u32>, ApiError> {
    if request.messages.is_empty() {
        return Err(
            ApiError::invalid("`messages` must hold at least one message").param("messages"),
        );
    }
    let mut messages = Vec::with_capacity(request.messages.len());
    for (i, m) in request.messages.iter().enumerate() {
        let content = match &m.content {
            None => String::new(),
            Some(MessageContent::Text(t)) => t.clone(),
            Some(MessageContent::Parts(parts)) => {
                let mut text = String::new();
                for part in parts {
                    match (part.kind.as_str(), &part.text) {
                        ("text", Some(t)) => text.push_str(t),
                        (kind, _) => {
                            return Err(ApiError::invalid(format!(
                                "content part of type `{kind}`: only text is supported"
                            ))
                            .param(format!("messages[{i}].content")))
                        }
                    }
                }
                text
            }
        };
        let role = match m.role.as_str() {
            "system" | "user" | "assistant" | "tool" => m.role.as_str(),
            // OpenAI's newer name for system instructions.
            "developer" => "system",
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown role `{other}` (system, developer, user, assistant, tool)"
                ))
                .param(format!("messages[{i}].role")))
            }
        };
        messages.push(Message::new(role, content));
    }
    let template = state.template.as_ref().ok_or_else(|| {
        ApiError::invalid(
            "the tokenizer has no chat template; use /v1/completions with a raw prompt",
        )
        .param("messages")
    })?;
    let text = template
        .render(
            &messages,
            &RenderOptions::for_tokenizer(&state.tokenizer, true),
        )
        .map_err(|e| {
            ApiError::invalid(format!("cannot apply the chat template: {e}")).param("messages")
        })?;
    state
        .tokenizer
        .encode_prompt(&text, true)
        .map_err(|e| ApiError::invalid(e.to_string()).param("messages"))
}

fn encode_raw(state: &AppState, text: &str) -> Result<Vec<u32>, ApiError> {
    state
        .tokenizer
        .encode_prompt(text, false)
        .map_err(|e| ApiError::invalid(e.to_string()).param("prompt"))
}

/// Checks lengths and sampling settings against the model and builds the generation options.
fn generate_options(
    ctx: usize,
    prompt_len: usize,
    s: &SamplingFields,
) -> Result<GenerateOptions, ApiError> {
    if prompt_len == 0 {
        return Err(ApiError::invalid("the prompt is empty").param("prompt"));
    }
    if prompt_len >= ctx {
        return Err(ApiError::invalid(format!(
            "the prompt is {prompt_len} tokens; this model's context holds {ctx} (prompt + at least one new token)"
        ))
        .param("messages")
        .code("context_length_exceeded"));
    }
    s.check_supported()?;
    let (limit, param) = match (s.max_completion_tokens, s.max_tokens) {
        (Some(n), _) => (Some(n), "max_completion_tokens"),
        (None, n) => (n, "max_tokens"),
    };
    let room = ctx - prompt_len;
    let max_new_tokens = match limit {
        Some(0) => return Err(ApiError::invalid(format!("`{param}` must be at least 1")).param(param)),
        Some(n) if n > room as u64 => {
            return Err(ApiError::invalid(format!(
                "`{param}` = {n} does not fit: the prompt is {prompt_len} tokens and the context holds {ctx}, \
                 so at most {room} new tokens"
            ))
            .param(param)
            .code("context_length_exceeded"))
        }
        Some(n) => n as usize,
        None => room,
    };
    if s.n.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid("only `n` = 1 is supported").param("n"));
    }
    let stop_strings = s.stop.clone().map(|s| s.into_vec()).unwrap_or_default();
    if stop_strings.len() > MAX_STOP_STRINGS {
        return Err(
            ApiError::invalid(format!("at most {MAX_STOP_STRINGS} stop strings")).param("stop"),
        );
    }
    if stop_strings.iter().any(String::is_empty) {
        return Err(ApiError::invalid("stop strings must not be empty").param("stop"));
    }
    // OpenAI's defaults: temperature 1, top_p 1.
    let temperature = s.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::invalid("`temperature` must be between 0 and 2").param("temperature"));
    }
    let top_p = s.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::invalid("`top_p` must be in (0, 1]").param("top_p"));
    }
    let penalty = |v: Option<f32>, name: &'static str| match v.unwrap_or(0.0) {
        p if (-2.0..=2.0).contains(&p) => Ok(p),
        _ => Err(ApiError::invalid(format!("`{name}` must be between -2 and 2")).param(name)),
    };
    let sampler = SamplerConfig {
        temperature,
        top_p,
        presence_penalty: penalty(s.presence_penalty, "presence_penalty")?,
        frequency_penalty: penalty(s.frequency_penalty, "frequency_penalty")?,
        // Without a seed, every request draws differently (as OpenAI's API).
        seed: s.seed.map_or_else(
            || {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64)
            },
            |seed| seed as u64,
        ),
        ..SamplerConfig::default()
    };
    sampler
        .validate()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok(GenerateOptions {
        max_new_tokens,
        sampler,
        stop_strings,
        ignore_eos: false,
    })
}

fn finish_reason(reason: StopReason) -> &'static str {
    match reason {
        StopReason::Length | StopReason::ContextFull => "length",
        StopReason::Eos | StopReason::StopString | StopReason::Cancelled => "stop",
    }
}

fn job_error(e: JobError) -> ApiError {
    match e {
        JobError::Generation(message) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
        }
        JobError::Timeout => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "the request took longer than the server's request timeout",
        ),
        JobError::ShuttingDown | JobError::Abandoned => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "the server is shutting down",
        )
        .retry_after(5),
        JobError::Internal => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal error while generating (the slot was reset)",
        ),
    }
}

/// Response-shape details shared by the body and the chunks.
struct Reply {
    format: Format,
    id: String,
    created: u64,
    model: String,
}

impl Reply {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.format, chunk) {
            (Format::Chat, false) => "chat.completion",
            (Format::Chat, true) => "chat.completion.chunk",
            (Format::Text, _) => "text_completion",
        }
    }

    fn choice(&self, text: Option<&str>, finish: Option<&str>, chunk: bool) -> serde_json::Value {
        match (self.format, chunk) {
            (Format::Chat, false) => json!({"index": 0, "logprobs": null, "finish_reason": finish,
                "message": {"role": "assistant", "content": text.unwrap_or("")}}),
            (Format::Chat, true) => {
                let delta = match text {
                    Some(t) => json!({"content": t}),
                    None => json!({}),
                };
                json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
            }
            (Format::Text, _) => {
                json!({"index": 0, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish})
            }
        }
    }

    fn body(
        &self,
        choices: Vec<serde_json::Value>,
        usage: Option<&Usage>,
        chunk: bool,
    ) -> serde_json::Value {
        let mut body = json!({"id": self.id, "object": self.object(chunk), "created": self.created,
                              "model": self.model, "system_fingerprint": null, "choices": choices});
        if !chunk || usage.is_some() {
            body["usage"] = json!(usage);
        }
        body
    }

    fn sse(&self, choices: Vec<serde_json::Value>, usage: Option<&Usage>) -> SseEvent {
        SseEvent::default().data(self.body(choices, usage, true).to_string())
    }
}

async fn complete(
    state: Arc<AppState>,
    format: Format,
    prompt: Vec<u32>,
    sampling: SamplingFields,
) -> Result<Response, ApiError> {
    let options = generate_options(state.max_ctx_len, prompt.len(), &sampling)?;
    let deadline = Instant::now() + state.request_timeout;
    let (events, mut rx) = mpsc::unbounded_channel();
    let job = Job {
        prompt,
        options,
        events,
        deadline,
    };
    state.scheduler.submit(job).map_err(|e| match e {
        SubmitError::QueueFull => {
            state.metrics.rejected_busy.fetch_add(1, Ordering::Relaxed);
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "server_busy",
                "every slot is busy and the queue is full; retry later",
            )
            .code("queue_full")
            .retry_after(1)
        }
        SubmitError::ShuttingDown => job_error(JobError::ShuttingDown),
    })?;
    let reply = Reply {
        format,
        id: format!(
            "{}-{}",
            if format == Format::Chat {
                "chatcmpl"
            } else {
                "cmpl"
            },
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        ),
        created: unix_now(),
        model: state.model_name.clone(),
    };
    // Wait for a slot (or a failure) before answering, so queue timeouts and shutdown still get a status code.
    let tokio_deadline = tokio::time::Instant::from_std(deadline);
    match tokio::time::timeout_at(tokio_deadline, rx.recv()).await {
        Ok(Some(Event::Started { .. })) => {}
        Ok(Some(Event::Failed(e))) => return Err(job_error(e)),
        Ok(Some(other)) => {
            tracing::error!("a slot sent {other:?} before starting");
            return Err(job_error(JobError::Internal));
        }
        Ok(None) => return Err(job_error(JobError::ShuttingDown)),
        Err(_) => return Err(job_error(JobError::Timeout)),
    }
    if sampling.stream {
        let include_usage = sampling
            .stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage);
        return Ok(stream_response(reply, rx, tokio_deadline, include_usage));
    }
    loop {
        match tokio::time::timeout_at(tokio_deadline, rx.recv()).await {
            Ok(Some(Event::Text(_) | Event::Started { .. })) => {}
            Ok(Some(Event::Finished(f))) => {
                let usage = usage_of(&f);
                let choice = reply.choice(Some(&f.text), Some(finish_reason(f.stop_reason)), false);
                return Ok(Json(reply.body(vec![choice], Some(&usage), false)).into_response());
            }
            Ok(Some(Event::Failed(e))) => return Err(job_error(e)),
            Ok(None) => return Err(job_error(JobError::ShuttingDown)),
            Err(_) => return Err(job_error(JobError::Timeout)),
        }
    }
}

fn usage_of(f: &Finished) -> Usage {
    Usage::new(f.prompt_tokens, f.completion_tokens, f.cached_tokens)
}

/// The SSE stream: a first chunk (the assistant role, for chat), one chunk per piece of text, a last chunk with
/// the finish reason, the usage chunk when asked for, and `[DONE]`. Dropping the stream (the client went away)
/// drops the receiver, which stops the slot at its next token.
fn stream_response(
    reply: Reply,
    rx: mpsc::UnboundedReceiver<Event>,
    deadline: tokio::time::Instant,
    include_usage: bool,
) -> Response {
    let mut first = Vec::new();
    if reply.format == Format::Chat {
        first.push(reply.sse(
            vec![
                json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null,
                        "finish_reason": null}),
            ],
            None,
        ));
    }
    struct S {
        reply: Reply,
        rx: mpsc::UnboundedReceiver<Event>,
        pending: std::collections::VecDeque<SseEvent>,
        done: bool,
    }
    let start = S {
        reply,
        rx,
        pending: first.into(),
        done: false,
    };
    let stream = futures_util::stream::unfold(start, move |mut s| async move {
        loop {
            if let Some(event) = s.pending.pop_front() {
                return Some((Ok::<_, Infallible>(event), s));
            }
            if s.done {
                return None;
            }
            let end = |s: &mut S, e: Option<ApiError>| {
                if let Some(e) = e {
                    s.pending
                        .push_back(SseEvent::default().data(e.body().to_string()));
                }
                s.pending.push_back(SseEvent::default().data("[DONE]"));
                s.done = true;
            };
            match tokio::time::timeout_at(deadline, s.rx.recv()).await {
                Ok(Some(Event::Text(text))) => {
                    let chunk = s
                        .reply
                        .sse(vec![s.reply.choice(Some(&text), None, true)], None);
                    s.pending.push_back(chunk);
                }
                Ok(Some(Event::Started { .. })) => {}
                Ok(Some(Event::Finished(f))) => {
                    let last = s
                        .reply
                        .choice(None, Some(finish_reason(f.stop_reason)), true);
                    let chunk = s.reply.sse(vec![last], None);
                    s.pending.push_back(chunk);
                    if include_usage {
                        let usage = s.reply.sse(Vec::new(), Some(&usage_of(&f)));
                        s.pending.push_back(usage);
                    }
                    end(&mut s, None);
                }
                Ok(Some(Event::Failed(e))) => end(&mut s, Some(job_error(e))),
                Ok(None) => end(&mut s, Some(job_error(JobError::ShuttingDown))),
                Err(_) => end(&mut s, Some(job_error(JobError::Timeout))),
            }
        }
    });
    Sse::new(stream).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampling(body: serde_json::Value) -> SamplingFields {
        fields(&body).expect("fields")
    }

    #[test]
    fn lengths_are_checked_against_the_context() {
        // 64 positions: a 60-token prompt leaves room for 4 new tokens.
        let ok = generate_options(64, 60, &sampling(json!({"max_tokens": 4}))).expect("fits");
        assert_eq!(ok.max_new_tokens, 4);
        let e = generate_options(64, 60, &sampling(json!({"max_tokens": 5}))).unwrap_err();
        assert_eq!(
            (e.status, e.param.as_deref(), e.code),
            (
                StatusCode::BAD_REQUEST,
                Some("max_tokens"),
                Some("context_length_exceeded")
            )
        );
        let e = generate_options(
            64,
            60,
            &sampling(json!({"max_completion_tokens": 9, "max_tokens": 1})),
        )
        .unwrap_err();
        assert_eq!(
            e.param.as_deref(),
            Some("max_completion_tokens"),
            "the newer field wins"
        );
        let e = generate_options(64, 64, &sampling(json!({}))).unwrap_err();
        assert_eq!(e.code, Some("context_length_exceeded"));
        // Without a limit, generation may fill the context.
        assert_eq!(
            generate_options(64, 10, &sampling(json!({})))
                .expect("ok")
                .max_new_tokens,
            54
        );
        let e = generate_options(64, 10, &sampling(json!({"max_tokens": 0}))).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
    }

    #[test]
    fn sampling_fields_map_to_the_sampler_with_openai_defaults() {
        let o = generate_options(
            64,
            4,
            &sampling(json!({"stop": "END", "seed": 7, "top_p": 0.5})),
        )
        .expect("ok");
        assert_eq!(o.stop_strings, vec!["END".to_string()]);
        assert_eq!(
            (o.sampler.temperature, o.sampler.top_p, o.sampler.seed),
            (1.0, 0.5, 7)
        );
        let o = generate_options(
            64,
            4,
            &sampling(
                json!({"temperature": 0, "stop": ["a", "b"], "logprobs": false, "tools": [],
                             "response_format": {"type": "text"}}),
            ),
        )
        .expect("ok");
        assert!(o.sampler.is_greedy());
        assert_eq!(o.stop_strings.len(), 2);
        for (body, param) in [
            (json!({"n": 2}), "n"),
            (json!({"temperature": 2.5}), "temperature"),
            (json!({"top_p": 0}), "top_p"),
            (json!({"stop": ["a", "b", "c", "d", "e"]}), "stop"),
            (json!({"stop": [""]}), "stop"),
            (json!({"presence_penalty": 3}), "presence_penalty"),
            (json!({"logprobs": true}), "logprobs"),
            (json!({"tools": [{"type": "function"}]}), "tools"),
            (
                json!({"response_format": {"type": "json_object"}}),
                "response_format",
            ),
        ] {
            let e = generate_options(64, 4, &sampling(body.clone())).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{body}");
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn wrong_types_and_missing_fields_name_the_field() {
        let e = fields::<SamplingFields>(&json!({"max_tokens": "many"})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        let e = fields::<ChatCompletionRequest>(&json!({"model": "m"})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages"));
        let e =
            fields::<ChatCompletionRequest>(&json!({"messages": [{"content": "hi"}]})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
        let e =
            fields::<ChatCompletionRequest>(&json!({"messages": [{"role": "user", "content": 5}]}))
                .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].content"));
        assert_eq!(
            parse_body(b"{oops").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert!(parse_body(b"[1]").unwrap_err().message.contains("object"));
    }

    #[test]
    fn errors_have_the_openai_shape() {
        let e = ApiError::invalid("bad").param("x").code("c");
        assert_eq!(
            e.body(),
            json!({"error": {"message": "bad", "type": "invalid_request_error", "param": "x", "code": "c"}})
        );
        let r = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "server_busy", "full")
            .retry_after(1)
            .into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
}
