//! The admin HTTP server: `/metrics` for Prometheus, `/healthz` and `/readyz` for probes.
//!
//! It runs on a thread of its own with a current-thread tokio runtime, so the
//! CPU-heavy pipeline threads never share its reactor and a busy pipeline
//! cannot delay a probe. Every body is either the metric exposition or a fixed
//! string; none carries input data.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::health::Health;
use crate::metrics::Metrics;

/// The path Prometheus scrapes.
pub const METRICS_PATH: &str = "/metrics";
/// The path of the liveness probe.
pub const LIVENESS_PATH: &str = "/healthz";
/// The path of the readiness probe.
pub const READINESS_PATH: &str = "/readyz";

/// The body of a successful liveness probe.
const ALIVE_BODY: &str = "ok";
/// The body of a successful readiness probe.
const READY_BODY: &str = "ready";
/// The body of any other path.
const NOT_FOUND_BODY: &str = "not found";

/// How long [`AdminServer::shutdown`] lets open requests finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How long dropping an [`AdminServer`] lets open requests finish.
const DROP_GRACE: Duration = Duration::from_millis(200);
const THREAD_NAME: &str = "delink-admin";

/// Serves `/metrics`, `/healthz` and `/readyz` until shut down or dropped.
#[derive(Debug)]
pub struct AdminServer {
    local_addr: SocketAddr,
    /// Tells the server thread to stop, and how long open requests may take.
    stop: Option<oneshot::Sender<Duration>>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl AdminServer {
    /// Binds `addr` (port 0 picks a free port) and starts serving on a
    /// dedicated thread. Returns once the server accepts connections.
    pub fn start(addr: SocketAddr, metrics: Arc<Metrics>, health: Arc<Health>) -> Result<Self> {
        let listener =
            std::net::TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Start {
            addr,
            action: "reading the bound address",
            source,
        })?;
        let start_error = |action: &'static str| {
            move |source: std::io::Error| Error::Start {
                addr: local_addr,
                action,
                source,
            }
        };
        listener
            .set_nonblocking(true)
            .map_err(start_error("making the socket non-blocking"))?;
        let router = router(AdminState { metrics, health });
        let (stop_tx, stop_rx) = oneshot::channel();
        let (started_tx, started_rx) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.to_owned())
            .spawn(move || serve_on_this_thread(listener, router, stop_rx, started_tx))
            .map_err(start_error("spawning its thread"))?;
        let mut server = AdminServer {
            local_addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        match started_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err((action, source))) => {
                let _ = server.stop(Duration::ZERO);
                return Err(start_error(action)(source));
            }
            // The thread ended without saying how it started: it panicked.
            Err(_) => {
                let _ = server.stop(Duration::ZERO);
                return Err(Error::Panicked { addr: local_addr });
            }
        }
        tracing::info!(address = %local_addr, "admin server listening");
        Ok(server)
    }

    /// Returns the address the server is bound to (the chosen port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, lets open requests finish for a short
    /// while, then closes what is left and joins the server thread.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop(SHUTDOWN_GRACE)
    }

    fn stop(&mut self, grace: Duration) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            // A server thread that already ended has dropped the receiver.
            let _ = stop.send(grace);
        }
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        match thread.join() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(Error::Serve {
                addr: self.local_addr,
                source,
            }),
            Err(_) => Err(Error::Panicked {
                addr: self.local_addr,
            }),
        }
    }
}

impl Drop for AdminServer {
    /// Stops the server as [`AdminServer::shutdown`] does, with a shorter grace.
    fn drop(&mut self) {
        if let Err(error) = self.stop(DROP_GRACE) {
            tracing::warn!(%error, "admin server stopped with an error");
        }
    }
}

/// What failed while the server thread set itself up, and how.
type SetupFailure = (&'static str, std::io::Error);

/// Runs on the server thread: sets up its runtime, reports how that went to
/// `started`, then serves until told to stop. The runtime is built, used and
/// dropped on this thread only, so starting from inside another runtime is safe.
fn serve_on_this_thread(
    listener: std::net::TcpListener,
    router: Router,
    stop: oneshot::Receiver<Duration>,
    started: SyncSender<std::result::Result<(), SetupFailure>>,
) -> std::io::Result<()> {
    let (runtime, listener) = match set_up(listener) {
        Ok(ready) => ready,
        Err(failure) => {
            let _ = started.send(Err(failure));
            return Ok(());
        }
    };
    let _ = started.send(Ok(()));
    runtime.block_on(serve(listener, router, stop))
}

fn set_up(
    listener: std::net::TcpListener,
) -> std::result::Result<(tokio::runtime::Runtime, tokio::net::TcpListener), SetupFailure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|source| ("building its runtime", source))?;
    let listener = {
        let _context = runtime.enter();
        tokio::net::TcpListener::from_std(listener)
    }
    .map_err(|source| ("registering the socket", source))?;
    Ok((runtime, listener))
}

/// Serves until told to stop, then gives open requests `grace` to finish.
async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: oneshot::Receiver<Duration>,
) -> std::io::Result<()> {
    let (grace_tx, grace_rx) = oneshot::channel::<Duration>();
    let stop_signal = async move {
        // A sender dropped without a grace (never done on purpose) means stop now.
        let grace = stop.await.unwrap_or(Duration::ZERO);
        let _ = grace_tx.send(grace);
    };
    let serving = axum::serve(listener, router)
        .with_graceful_shutdown(stop_signal)
        .into_future();
    let grace_over = async move {
        match grace_rx.await {
            Ok(grace) => tokio::time::sleep(grace).await,
            // Only reached if the server ended by itself, which the select settles.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        result = serving => result,
        () = grace_over => {
            // Dropping the runtime after this returns closes the connections left.
            tracing::debug!("admin connections still open after the grace period are closed");
            Ok(())
        }
    }
}

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

fn router(state: AdminState) -> Router {
    Router::new()
        .route(METRICS_PATH, get(metrics))
        .route(LIVENESS_PATH, get(liveness))
        .route(READINESS_PATH, get(readiness))
        .fallback(not_found)
        .with_state(state)
}

/// Renders the metrics afresh for each scrape, with `delink_draining` read from health.
async fn metrics(State(state): State<AdminState>) -> Response {
    state.metrics.observe_health(&state.health);
    let body = state.metrics.render();
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body).into_response()
}

async fn liveness(State(state): State<AdminState>) -> Response {
    match state.health.liveness() {
        Ok(()) => (StatusCode::OK, ALIVE_BODY).into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
    }
}

async fn readiness(State(state): State<AdminState>) -> Response {
    match state.health.readiness() {
        Ok(()) => (StatusCode::OK, READY_BODY).into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
    }
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, NOT_FOUND_BODY).into_response()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, TcpStream};
    use std::time::Instant;

    use crate::metrics::touch_every_metric;

    /// A response as read off the wire.
    #[derive(Debug)]
    pub(crate) struct Reply {
        pub(crate) status: u16,
        pub(crate) content_type: Option<String>,
        pub(crate) body: String,
    }

    /// Sends one HTTP/1.1 request over a fresh connection and reads the reply.
    pub(crate) fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .expect("write");
        let mut raw = String::new();
        stream.read_to_string(&mut raw).expect("read");
        let (head, body) = raw.split_once("\r\n\r\n").expect("head and body");
        let mut lines = head.lines();
        let status_line = lines.next().expect("status line");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("status code");
        let mut content_type = None;
        let mut content_length = None;
        for line in lines {
            let (name, value) = line.split_once(':').expect("header");
            match name.to_ascii_lowercase().as_str() {
                "content-type" => content_type = Some(value.trim().to_owned()),
                "content-length" => content_length = value.trim().parse::<usize>().ok(),
                _ => {}
            }
        }
        assert_eq!(content_length, Some(body.len()), "{raw}");
        Reply {
            status,
            content_type,
            body: body.to_owned(),
        }
    }

    pub(crate) fn start(metrics: &Arc<Metrics>, health: &Arc<Health>) -> AdminServer {
        AdminServer::start(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            Arc::clone(metrics),
            Arc::clone(health),
        )
        .expect("admin server")
    }

    fn ready_health() -> Arc<Health> {
        let health = Arc::new(Health::new());
        health.set_key_store_open(true);
        health.set_source_ready(true);
        health
    }

    #[test]
    fn every_route_answers_with_its_status_and_body() {
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let server = start(&metrics, &ready_health());
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);

        let reply = request(addr, "GET", "/healthz");
        assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));
        let reply = request(addr, "GET", "/readyz");
        assert_eq!((reply.status, reply.body.as_str()), (200, "ready"));

        let reply = request(addr, "GET", "/metrics");
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.content_type.as_deref(),
            Some("text/plain; version=0.0.4")
        );
        assert!(
            reply
                .body
                .contains("# TYPE delink_input_records_total counter"),
            "{}",
            reply.body
        );

        // A query string does not change the path.
        assert_eq!(request(addr, "GET", "/readyz?verbose").status, 200);
        for path in ["/", "/metrics/", "/healthz/x", "/ready", "/favicon.ico"] {
            let reply = request(addr, "GET", path);
            assert_eq!(
                (reply.status, reply.body.as_str()),
                (404, "not found"),
                "{path}"
            );
        }
        // A known path with another method is refused, and changes nothing.
        let reply = request(addr, "POST", "/readyz");
        assert_eq!(reply.status, 405);
        server.shutdown().expect("shutdown");
    }

    #[test]
    fn readiness_is_served_as_it_changes() {
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let health = Arc::new(Health::new());
        let server = start(&metrics, &health);
        let addr = server.local_addr();
        let readyz = || {
            let reply = request(addr, "GET", "/readyz");
            (reply.status, reply.body)
        };

        health.set_source_ready(true);
        assert_eq!(readyz(), (503, "key store not open".to_owned()));
        health.set_key_store_open(true);
        assert_eq!(readyz(), (200, "ready".to_owned()));
        health.set_draining(true);
        assert_eq!(readyz(), (503, "draining".to_owned()));
        health.set_draining(false);
        assert_eq!(readyz(), (200, "ready".to_owned()));
        health.set_source_ready(false);
        assert_eq!(readyz(), (503, "source not ready".to_owned()));
        // Readiness never touches liveness.
        assert_eq!(request(addr, "GET", "/healthz").status, 200);
    }

    #[test]
    fn a_failure_turns_both_probes_unavailable_with_its_reason() {
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let health = ready_health();
        let server = start(&metrics, &health);
        let addr = server.local_addr();
        health.set_failed("key store failed");
        let reply = request(addr, "GET", "/healthz");
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (503, "key store failed")
        );
        let reply = request(addr, "GET", "/readyz");
        assert_eq!((reply.status, reply.body.as_str()), (503, "failed"));
        // Metrics stay available for the post-mortem.
        assert_eq!(request(addr, "GET", "/metrics").status, 200);
    }

    #[test]
    fn probe_bodies_are_fixed_strings_whatever_the_state() {
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let health = Arc::new(Health::new());
        let server = start(&metrics, &health);
        let addr = server.local_addr();
        let allowed = [
            ALIVE_BODY,
            READY_BODY,
            Health::FAILED,
            Health::SHUTTING_DOWN,
            Health::KEY_STORE_NOT_OPEN,
            Health::SOURCE_NOT_READY,
            Health::DRAINING,
            "sink failed",
        ];
        for state in 0..16_u8 {
            health.set_key_store_open(state & 1 != 0);
            health.set_source_ready(state & 2 != 0);
            health.set_draining(state & 4 != 0);
            if state == 15 {
                health.begin_shutdown();
                health.set_failed("sink failed");
            }
            for path in ["/healthz", "/readyz"] {
                let reply = request(addr, "GET", path);
                assert!(
                    allowed.contains(&reply.body.as_str()),
                    "{path}: {}",
                    reply.body
                );
                assert_eq!(
                    reply.status == 200,
                    reply.body == "ok" || reply.body == "ready"
                );
            }
        }
    }

    #[test]
    fn metrics_are_rendered_for_each_scrape() {
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let health = ready_health();
        let server = start(&metrics, &health);
        let addr = server.local_addr();
        let first = request(addr, "GET", "/metrics").body;
        assert!(first.contains("delink_input_records_total 0"), "{first}");
        assert!(first.contains("delink_draining 0"), "{first}");

        metrics.records_received.inc_by(41);
        touch_every_metric(&metrics);
        health.set_draining(true);
        let second = request(addr, "GET", "/metrics").body;
        assert!(second.contains("delink_input_records_total 42"), "{second}");
        assert!(second.contains("delink_draining 1"), "{second}");
        assert!(
            second.contains(
                "delink_kafka_consumer_lag_records{partition=\"0\",topic=\"telemetry\"} 12"
            ),
            "{second}"
        );
        metrics.forget_partition("telemetry", 0);
        let third = request(addr, "GET", "/metrics").body;
        assert!(
            !third.contains("delink_kafka_consumer_lag_records{"),
            "{third}"
        );
    }

    #[test]
    fn binding_a_used_address_names_it_and_the_setting() {
        let taken = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let addr = taken.local_addr().expect("addr");
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let error = AdminServer::start(addr, metrics, Arc::new(Health::new()))
            .expect_err("the address is taken");
        let message = error.to_string();
        assert!(message.contains(&addr.to_string()), "{message}");
        assert!(message.contains("another process"), "{message}");
        assert!(message.contains("admin.listen"), "{message}");
        assert!(matches!(error, Error::Bind { .. }));
    }

    #[test]
    fn shutdown_stops_listening() {
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let server = start(&metrics, &ready_health());
        let addr = server.local_addr();
        assert_eq!(request(addr, "GET", "/healthz").status, 200);
        server.shutdown().expect("shutdown");
        assert!(
            TcpStream::connect(addr).is_err(),
            "still listening on {addr}"
        );
    }

    #[test]
    fn a_stalled_client_neither_blocks_probes_nor_holds_up_shutdown() {
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let server = start(&metrics, &ready_health());
        let addr = server.local_addr();
        let mut stalled = TcpStream::connect(addr).expect("connect");
        stalled.write_all(b"GET /metr").expect("write");
        // Another connection is served while the first one waits for its headers.
        assert_eq!(request(addr, "GET", "/readyz").status, 200);

        let started = Instant::now();
        server.shutdown().expect("shutdown");
        let took = started.elapsed();
        assert!(took < SHUTDOWN_GRACE * 2, "shutdown took {took:?}");
        drop(stalled);
    }

    #[test]
    fn dropping_the_server_stops_it_without_blocking_long() {
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let server = start(&metrics, &ready_health());
        let addr = server.local_addr();
        let mut stalled = TcpStream::connect(addr).expect("connect");
        stalled
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .expect("write");
        let started = Instant::now();
        drop(server);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "drop took {took:?}");
        assert!(
            TcpStream::connect(addr).is_err(),
            "still listening on {addr}"
        );
    }

    #[test]
    fn the_server_runs_inside_another_runtime_too() {
        let outer = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let health = ready_health();
        let server = outer.block_on(async { start(&metrics, &health) });
        assert_eq!(request(server.local_addr(), "GET", "/healthz").status, 200);
        outer
            .block_on(async move { server.shutdown() })
            .expect("shutdown");
    }
}
