//! The HTTP side: `/` serves the page (or, without the token, the login page), `/feed` is
//! the WebSocket. Each feed connection runs one writer (frames from the feed's ring, its
//! own replies) and one reader (driver-station frames, commands) until either ends.
//!
//! A client never holds anyone up: its frames come from the broadcast ring (lagging means
//! a snapshot and skipping ahead), and a send that does not finish within
//! [`SEND_DEADLINE`] (a browser that stopped reading, a dead network with a full socket
//! buffer) drops the client.
//!
//! A request without the login token is refused (`401`), counted, and logged at a bounded
//! rate ([`Limits::refuse_login`]); a page beyond `--max-pages` is refused with `503`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use pitcrew::codec::{from_json, to_json, Value};
use pitcrew::rpc::Client;
use serde_json::json;
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::auth::Access;
use crate::feed::Hub;
use crate::limits::{Limits, PagePermit};
use crate::page;
use crate::station::Link;

/// How long one frame may take to go out before the client is dropped: far above a
/// healthy browser's milliseconds, short enough that a dead one does not hold a socket.
pub const SEND_DEADLINE: Duration = Duration::from_secs(3);
/// Replies queued for one client (commands answered while its writer is busy).
pub const REPLY_QUEUE: usize = 16;
/// The largest frame a browser may send: a driver-station frame is about 300 bytes.
pub const MAX_INCOMING: usize = 16 * 1024;
/// Deadline of a command's RPC call.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// A page's WebSocket read buffer. tungstenite's default is 128 KiB per page (and as much
/// again for writes), which 500 pages made 63 MB more of the dashboard's memory. A page's
/// own frames are about 300 bytes, and a larger one (up to [`MAX_INCOMING`]) grows the
/// buffer while it lasts.
pub const PAGE_READ_BUFFER: usize = 4 * 1024;

/// What every handler shares.
pub struct Ctx {
    /// The feed.
    pub hub: Hub,
    /// Who may look and who may command.
    pub access: Access,
    /// RPC to the services.
    pub client: Client,
    /// Where control datagrams go (the gamepad receiver).
    pub control_to: SocketAddr,
    /// The team key the pages' datagrams are sealed with, if the robot has one.
    pub key: Option<pitcrew::key::Key>,
    /// Stops every connection.
    pub shutdown: CancellationToken,
    /// Each device type's params (name, type, access), for the page's tables and its
    /// write form.
    pub types: serde_json::Value,
    /// The bounds on connections and pages, and the refusals' counts and log.
    pub limits: Arc<Limits>,
    next_id: AtomicU64,
}

impl Ctx {
    /// The shared context.
    #[allow(clippy::too_many_arguments)] // each is one part of the dashboard, named here
    pub fn new(
        hub: Hub,
        access: Access,
        client: Client,
        control_to: SocketAddr,
        key: Option<pitcrew::key::Key>,
        shutdown: CancellationToken,
        types: serde_json::Value,
        limits: Arc<Limits>,
    ) -> Ctx {
        Ctx {
            hub,
            access,
            client,
            control_to,
            key,
            shutdown,
            types,
            limits,
            next_id: AtomicU64::new(1),
        }
    }
}

/// The routes.
pub fn router(ctx: Arc<Ctx>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/feed", get(feed))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .with_state(ctx)
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn index(
    State(ctx): State<Arc<Ctx>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<TokenQuery>,
) -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    if ctx.access.admits(q.token.as_deref()) {
        (headers, page::page()).into_response()
    } else {
        // No token is a browser opening the page: it gets the login form. A wrong one is
        // a refusal.
        if q.token.is_some() {
            ctx.limits
                .refuse_login(peer.ip(), "wrong login token on the page");
        }
        (StatusCode::UNAUTHORIZED, headers, page::LOGIN).into_response()
    }
}

async fn feed(
    State(ctx): State<Arc<Ctx>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<TokenQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if !ctx.access.admits(q.token.as_deref()) {
        ctx.limits
            .refuse_login(peer.ip(), "no valid login token on the feed");
        return (
            StatusCode::UNAUTHORIZED,
            "the dashboard needs its login token",
        )
            .into_response();
    }
    let page = match ctx.limits.open_page() {
        Ok(page) => page,
        Err(refusal) => {
            ctx.limits.refuse(peer.ip(), refusal);
            return (refusal.status(), refusal.reason(ctx.limits.bounds())).into_response();
        }
    };
    upgrade
        .max_message_size(MAX_INCOMING)
        .read_buffer_size(PAGE_READ_BUFFER)
        // Each frame goes out as it is sent (the writer flushes every one anyway), so
        // nothing is buffered beyond the frame in flight.
        .write_buffer_size(0)
        .on_upgrade(move |socket| client(socket, ctx, peer, page))
}

/// One browser, from upgrade to close; `page` is its place among `--max-pages`.
async fn client(socket: WebSocket, ctx: Arc<Ctx>, peer: SocketAddr, page: PagePermit) {
    let _page = page;
    run_client(socket, &ctx, peer).await;
    // What the page held is freed now: give it back to the system.
    crate::memory::page_closed();
}

/// The first frame a page gets: who it is, what it may do, and the device types.
/// Serialised from borrowed fields, straight to text: a `json!` value of it would hold a
/// deep copy of the types (about 60 KB of map nodes, the most a page held: heaptrack showed
/// 12 of the 17 MB that 200 pages took) for as long as the page is open.
#[derive(serde::Serialize)]
struct Hello<'a> {
    t: &'static str,
    client: u64,
    source: &'a str,
    commands: bool,
    locked: bool,
    types: &'a serde_json::Value,
}

async fn run_client(socket: WebSocket, ctx: &Ctx, peer: SocketAddr) {
    let id = ctx.next_id.fetch_add(1, Ordering::Relaxed);
    let commands = ctx.access.commands_from(peer);
    let sealer = match ctx.key.as_ref().map(pitcrew::control::auth::Sealer::new) {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            tracing::error!(%peer, error = %e, "cannot start a sealed link for a page");
            return;
        }
        None => None,
    };
    let link = Link::new(format!("dashboard-{}-{id}", std::process::id()), sealer);
    let hello = Hello {
        t: "hello",
        client: id,
        source: link.source(),
        commands,
        locked: ctx.access.locked(),
        types: &ctx.types,
    };
    let hello = match serde_json::to_string(&hello) {
        Ok(text) => text,
        Err(e) => {
            tracing::error!(%peer, error = %e, "cannot write a page's first frame");
            return;
        }
    };
    let stats = Arc::clone(&ctx.hub.stats);
    stats.clients.fetch_add(1, Ordering::Relaxed);
    tracing::info!(%peer, client = id, commands, source = link.source(), "page connected");
    let (sink, stream) = socket.split();
    let (reply_tx, reply_rx) = mpsc::channel(REPLY_QUEUE);
    let frames = ctx.hub.subscribe();
    let why = tokio::select! {
        () = ctx.shutdown.cancelled() => "shutting down",
        why = writer(ctx, sink, frames, reply_rx, hello) => why,
        why = reader(ctx, stream, link, commands, reply_tx, peer) => why,
    };
    stats.clients.fetch_sub(1, Ordering::Relaxed);
    tracing::info!(%peer, client = id, why, "page disconnected");
}

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;
type Stream = futures_util::stream::SplitStream<WebSocket>;

async fn send(sink: &mut Sink, text: impl Into<Utf8Bytes>) -> Result<(), &'static str> {
    match tokio::time::timeout(SEND_DEADLINE, sink.send(Message::Text(text.into()))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err("the connection closed"),
        Err(_) => Err("too slow: a frame did not go out in time"),
    }
}

async fn writer(
    ctx: &Ctx,
    mut sink: Sink,
    mut frames: broadcast::Receiver<Arc<str>>,
    mut replies: mpsc::Receiver<String>,
    hello: String,
) -> &'static str {
    let result: Result<(), &'static str> = async {
        send(&mut sink, hello).await?;
        send(&mut sink, ctx.hub.snapshot()).await?;
        loop {
            tokio::select! {
                frame = frames.recv() => match frame {
                    Ok(f) => send(&mut sink, f.as_ref()).await?,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        ctx.hub.stats.client_skips.fetch_add(1, Ordering::Relaxed);
                        send(&mut sink, ctx.hub.snapshot()).await?;
                    }
                    Err(broadcast::error::RecvError::Closed) => return Err("the feed stopped"),
                },
                reply = replies.recv() => match reply {
                    Some(r) => send(&mut sink, r).await?,
                    None => return Err("the reader ended"),
                },
            }
        }
    }
    .await;
    let why = result.err().unwrap_or("done");
    if why.starts_with("too slow") {
        ctx.hub
            .stats
            .clients_dropped
            .fetch_add(1, Ordering::Relaxed);
    }
    why
}

async fn reader(
    ctx: &Ctx,
    mut stream: Stream,
    mut link: Link,
    commands: bool,
    replies: mpsc::Sender<String>,
    peer: SocketAddr,
) -> &'static str {
    let mut refused_once = false;
    // A socket per page: the receiver answers each station where its datagrams come from,
    // and a sealed link needs those answers (their challenges).
    let control = match UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0)).await {
        Ok(s) if s.connect(ctx.control_to).await.is_ok() => s,
        _ => return "cannot open a control socket",
    };
    let mut answer = vec![0u8; pitcrew::control::MAX_DATAGRAM_BYTES];
    loop {
        let message = tokio::select! {
            m = stream.next() => m,
            n = control.recv(&mut answer) => {
                if let Ok(n) = n {
                    link.on_answer(answer.get(..n).unwrap_or_default());
                }
                continue;
            }
        };
        let Some(message) = message else { break };
        let text = match message {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        let Ok(frame) = serde_json::from_str::<serde_json::Value>(text.as_str()) else {
            continue;
        };
        if !commands {
            if !refused_once {
                refused_once = true;
                let _ = replies.try_send(
                    json!({"t": "reply", "id": frame["id"], "ok": false,
                           "error": "commands are taken from the robot itself only until a team key is configured"})
                    .to_string(),
                );
            }
            continue;
        }
        match frame["t"].as_str() {
            Some("ds") => match link.on_frame(&frame, Instant::now()) {
                Ok(Some(datagram)) => {
                    if control.send(&datagram).await.is_ok() {
                        ctx.hub.stats.datagrams.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(%peer, error = %e, "bad driver-station frame"),
            },
            Some("cmd") => {
                let replies = replies.clone();
                let client = ctx.client.clone();
                tokio::spawn(async move {
                    let reply = command(&client, &frame, peer).await;
                    let _ = replies.try_send(reply.to_string());
                });
            }
            _ => {}
        }
    }
    "the page closed"
}

/// Runs one command of the page (an allow-list: the robot's state changes and a param
/// write) and answers `{"t": "reply", "id", "ok", "result"|"error"}`.
async fn command(
    client: &Client,
    frame: &serde_json::Value,
    peer: SocketAddr,
) -> serde_json::Value {
    let id = frame["id"].clone();
    let args = frame["args"].as_array().cloned().unwrap_or_default();
    let method = frame["method"].as_str().unwrap_or("");
    let (service, params): (&str, Vec<Value>) = match method {
        "estop" | "stop_match" => ("robot-service", vec![]),
        "disable" => (
            "robot-service",
            vec![Value::from("disabled from the dashboard")],
        ),
        "start_match" => ("robot-service", args.iter().map(from_json).collect()),
        "write" => ("device-service", args.iter().map(from_json).collect()),
        _ => {
            return json!({"t": "reply", "id": id, "ok": false,
                          "error": format!("no such command {method:?}")})
        }
    };
    tracing::info!(%peer, method, "command from the dashboard");
    match client
        .call_with_timeout(service, method, params, COMMAND_TIMEOUT)
        .await
    {
        Ok(result) => {
            json!({"t": "reply", "id": id, "ok": true, "method": method, "result": to_json(&result)})
        }
        Err(e) => {
            json!({"t": "reply", "id": id, "ok": false, "method": method, "error": e.message})
        }
    }
}
