//! `etmlx serve`: an OpenAI-compatible HTTP server for LLM exports.
//!
//! - One loaded model serves `slots` sessions ([`etmlx_llm::LlmModel::sibling`]): the weights are loaded once,
//!   each slot has its own KV cache and position, and each runs on its own thread ([`scheduler`]).
//! - Requests wait in a bounded queue for a free slot (429 with `Retry-After` beyond it); a prompt extending a
//!   slot's previous conversation reuses its cached prefix (`usage.prompt_tokens_details.cached_tokens`).
//! - `POST /v1/chat/completions`, `POST /v1/completions` (streamed as SSE or not), `GET /v1/models`,
//!   `GET /health`, `GET /metrics` (Prometheus text) ([`routes`]); errors are OpenAI's error JSON ([`openai`]).
//! - SIGINT / SIGTERM: stop accepting, cancel running generations at their next token, exit.

pub mod metrics;
pub mod openai;
pub mod routes;
pub mod scheduler;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use etmlx_llm::{ChatTemplate, Generator, LlmModel, ModelOptions, Tokenizer};
use etmlx_runtime::BackendOptions;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::metrics::Metrics;
use crate::routes::AppState;
use crate::scheduler::Scheduler;

/// How long shutdown waits for running generations to stop and connections to close.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Llm(Box<etmlx_llm::LlmError>),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
    #[error("server I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl From<etmlx_llm::LlmError> for ServeError {
    fn from(e: etmlx_llm::LlmError) -> Self {
        ServeError::Llm(Box::new(e))
    }
}

/// Everything `etmlx serve` takes.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub model: PathBuf,
    pub tokenizer: PathBuf,
    pub ptd: Option<PathBuf>,
    pub backend: BackendOptions,
    pub kv_dtype: Option<mlx::Dtype>,
    pub host: String,
    pub port: u16,
    pub slots: usize,
    /// Requests that may wait for a slot.
    pub max_queue: usize,
    pub api_key: Option<String>,
    /// The name clients pass as `model`; default: the file name without `.pte`.
    pub model_name: Option<String>,
    pub max_body_bytes: usize,
    /// Total time per request (waiting for a slot included); generation stops when it runs out.
    pub request_timeout: Duration,
    /// Longest pause while receiving a request body.
    pub idle_timeout: Duration,
}

impl ServeConfig {
    pub fn new(model: impl Into<PathBuf>, tokenizer: impl Into<PathBuf>) -> Self {
        ServeConfig {
            model: model.into(),
            tokenizer: tokenizer.into(),
            ptd: None,
            backend: BackendOptions::default(),
            kv_dtype: None,
            host: "127.0.0.1".into(),
            port: 8080,
            slots: 1,
            max_queue: 64,
            api_key: None,
            model_name: None,
            max_body_bytes: 4 << 20,
            request_timeout: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Loads the model into `config.slots` sessions, listens, calls `on_ready` with the bound address, and serves
/// until SIGINT or SIGTERM.
pub fn serve(config: ServeConfig, on_ready: impl FnOnce(SocketAddr)) -> Result<(), ServeError> {
    if config.slots == 0 {
        return Err(ServeError::Config("--slots must be at least 1".into()));
    }
    let state = Arc::new(load(&config)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let addr = format!("{}:{}", config.host, config.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: addr.clone(),
                source,
            })?;
        let stop_signal = shutdown_signal()?;
        on_ready(listener.local_addr()?);
        let app = router(state.clone(), &config);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await
        });
        stop_signal.await;
        tracing::info!("shutting down");
        // Cancel generations first, so open streams end and graceful shutdown can finish.
        let scheduler_state = state.clone();
        let _ =
            tokio::task::spawn_blocking(move || scheduler_state.scheduler.shutdown(SHUTDOWN_GRACE))
                .await;
        let _ = stop_tx.send(());
        if tokio::time::timeout(SHUTDOWN_GRACE, server).await.is_err() {
            tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; exiting anyway");
        }
        Ok::<(), ServeError>(())
    })?;
    // Slot threads still inside a prefill chunk are not waited for.
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}

/// Loads the tokenizer and `config.slots` sessions of the model (one copy of the weights).
fn load(config: &ServeConfig) -> Result<AppState, ServeError> {
    let tokenizer = Tokenizer::from_path(&config.tokenizer)?;
    let template = ChatTemplate::from_tokenizer(&tokenizer).ok();
    let options = ModelOptions {
        ptd: config.ptd.clone(),
        backend: config.backend.clone(),
        kv_dtype: config.kv_dtype,
        all_position_logits: false,
    };
    let first = LlmModel::open(&config.model, options)?;
    let max_ctx_len = first.metadata().max_ctx_len;
    let mut models = Vec::with_capacity(config.slots);
    for _ in 1..config.slots {
        models.push(first.sibling()?);
    }
    models.insert(0, first);
    let mut generators = Vec::with_capacity(config.slots);
    for model in models {
        generators.push(Generator::new(
            model,
            Some(Tokenizer::from_path(&config.tokenizer)?),
        )?);
    }
    let metrics = Arc::new(Metrics::new(config.slots));
    let model_name = config.model_name.clone().unwrap_or_else(|| {
        config
            .model
            .file_stem()
            .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned())
    });
    Ok(AppState {
        scheduler: Scheduler::start(generators, config.max_queue, metrics.clone()),
        metrics,
        tokenizer,
        template,
        model_name,
        max_ctx_len,
        api_key: config.api_key.clone(),
        request_timeout: config.request_timeout,
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    })
}

fn router(state: Arc<AppState>, config: &ServeConfig) -> Router {
    let v1 = Router::new()
        .route("/v1/chat/completions", post(routes::chat_completions))
        .route("/v1/completions", post(routes::completions))
        .route("/v1/models", get(routes::models))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            routes::require_api_key,
        ));
    Router::new()
        .merge(v1)
        .route("/health", get(routes::health))
        .route("/metrics", get(routes::metrics))
        .fallback(routes::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            routes::count_requests,
        ))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(RequestBodyTimeoutLayer::new(config.idle_timeout))
        .layer(CatchPanicLayer::custom(routes::panic_response))
        .with_state(state)
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called (not when first polled), so
/// a signal that arrives right after the server says it is ready is not lost to the default action.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
