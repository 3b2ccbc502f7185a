//! The HTTP API: the router under `/api/v1` (plus `/metrics`, and the web dashboard under
//! `/web/`, see `crate::web`) and [`launch`].
//!
//! Handlers are thin: extract and validate, call the stores through `App::db` (blocking work
//! off the executor), map outcomes to wire types. Every error is an [`crate::error::ApiError`].

mod audit;
mod bulk;
mod changes;
pub(crate) mod content;
mod devices;
mod events;
pub(crate) mod extract;
#[cfg(test)]
mod fault_tests;
mod health;
mod json_errors;
mod layers;
mod negotiate;
mod pairing;
mod remotes;
mod saves;
mod serve;
pub(crate) mod stream_cap;
mod untracked;

use crate::app::App;
use crate::pair_limiter::{PairLimiter, PairLimits};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use savesync_core::wire::API_PREFIX;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct ServerState {
    pub app: App,
    /// Fires when the server is shutting down, so open streams and long-polls end promptly.
    pub shutdown: CancellationToken,
    /// Throttles failed `POST /pair` attempts.
    pub pair_limiter: Arc<PairLimiter>,
    /// Open event streams per device, capped.
    pub streams: Arc<stream_cap::DeviceStreams>,
    /// The web dashboard's login limiter and pairing displays (see `crate::web`).
    pub web: Arc<crate::web::WebState>,
}

/// The complete router.
pub fn router(state: ServerState) -> Router {
    let json_limit = usize::try_from(state.app.config().max_json_bytes).unwrap_or(usize::MAX);
    let api = Router::new()
        .route("/pair", post(pairing::pair).layer(DefaultBodyLimit::max(pairing::MAX_PAIR_BODY)))
        .route("/pairing-codes", post(pairing::issue_code))
        .route("/saves", get(saves::list))
        .route(
            "/saves/content",
            get(content::download).put(content::upload).delete(content::delete),
        )
        .route("/saves/bulk", post(bulk::bulk).layer(DefaultBodyLimit::max(bulk::MAX_BODY)))
        .route("/saves/history", get(saves::history))
        .route("/saves/restore", post(saves::restore))
        .route("/changes", get(changes::changes))
        .route("/events", get(events::events))
        .route("/negotiate", post(negotiate::negotiate))
        .route("/sessions/{id}/complete", post(negotiate::complete))
        .route("/devices", get(devices::list))
        .route("/devices/{id}/revoke", post(devices::revoke))
        .route("/untracked", get(untracked::list).put(untracked::add).delete(untracked::remove))
        .route("/audit", get(audit::list))
        .route("/health", get(health::health))
        .route("/remotes", get(remotes::list))
        .route("/remotes/{name}/sync", post(remotes::sync));
    Router::new()
        .nest(API_PREFIX, api)
        .route("/metrics", get(health::metrics))
        .merge(crate::web::router())
        // route_layer: these run after routing, so they see the matched route template.
        .route_layer(from_fn_with_state(state.clone(), layers::deadline))
        .route_layer(from_fn_with_state(state.clone(), layers::refuse_oversized_length))
        .route_layer(from_fn_with_state(state.clone(), layers::record_metrics))
        .fallback(health::not_found)
        .layer(DefaultBodyLimit::max(json_limit))
        .layer(axum::middleware::from_fn(json_errors::json_errors))
        // After the JSON-error layer, so it never gives RetroArch an error body.
        .merge(crate::dav::router())
        // Spans per request (method, URI, status, latency) at DEBUG; tokens travel in a
        // header and pairing codes in the body, neither of which this layer records.
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serve the API on `listener` until `shutdown` resolves; then stop accepting, end SSE
/// streams and long-polls promptly, and return.
pub async fn launch(
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let token = CancellationToken::new();
    let state = ServerState {
        app: app.clone(),
        shutdown: token.clone(),
        pair_limiter: Arc::new(PairLimiter::new(PairLimits::default())),
        streams: Arc::new(stream_cap::DeviceStreams::new(app.config().max_streams_per_device)),
        web: crate::web::WebState::new(&app.config().web),
    };
    let request_timeout = app.config().request_timeout;
    let max_connections = app.config().max_connections;
    crate::gc::sweep_leftover_staging(&app).await;
    let feed_bus = start_feed_bus(&app, &token)?;
    let remotes = tokio::spawn(crate::remotes::scheduler::run(app.clone(), token.clone()));
    let gc = tokio::spawn(crate::gc::run_periodically(app, token.clone()));
    let trigger = token.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down");
        trigger.cancel();
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving savesync API");
    }
    serve::serve_connections(listener, router(state), request_timeout, max_connections, signal)
        .await;
    token.cancel();
    let _ = gc.await;
    let _ = remotes.await;
    for task in feed_bus {
        let _ = task.await;
    }
    Ok(())
}

/// With the metadata in Postgres, run the feed bus (`crate::feed_bus`) so commits on other
/// replicas wake this one's watchers.
fn start_feed_bus(
    app: &App,
    token: &CancellationToken,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    use crate::meta::database_url::{Backend, backend};
    match backend(app.config().database_url.as_deref()).map_err(anyhow::Error::msg)? {
        Backend::Postgres(url) => crate::feed_bus::start(app, url, token)
            .map_err(|_| anyhow::anyhow!("feed bus: database_url does not parse")),
        Backend::Sqlite => Ok(Vec::new()),
    }
}
