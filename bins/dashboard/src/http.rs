//! The accept loop: hyper's HTTP/1 server under the dashboard's [`Limits`].
//!
//! `axum::serve` takes every connection and gives hyper no timer, so a connection that
//! trickles its request headers a byte at a time (or sends nothing) is held for ever. This
//! loop serves the same router with hyper's own connection builder, which bounds the time
//! to receive the request headers ([`HEADER_READ_TIMEOUT`]), and takes each connection
//! only within the connection bounds; a refused one is answered with its status and
//! closed. The connection's permit travels with its socket (`Held`), so a connection
//! upgraded to a WebSocket page stays counted against its address until the page closes.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::limits::{ConnectionPermit, Limits, Refusal};

/// How long a connection has to send its request headers, from the moment it is taken (or
/// from the end of its previous request, on a kept-alive connection). A browser sends its
/// headers in one packet right after connecting, in milliseconds; 10 s covers a congested
/// event network's retransmissions many times over, and bounds how long a connection that
/// trickles bytes (or sends none) holds one of its address's places.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head taken: the page's requests are a few hundred bytes (the
/// token is at most 256); hyper answers `431` beyond it.
pub const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// How long a refused connection is given to take its answer (and how long its request
/// is read and dropped, so that closing does not reset the answer away): one round trip is
/// enough, the rest is patience for a loaded network.
pub const REFUSAL_LINGER: Duration = Duration::from_secs(1);
/// Refused connections answered at once (each for at most [`REFUSAL_LINGER`]); beyond, a
/// refused connection is closed without an answer, so a flood of them holds no more than
/// this many sockets.
pub const REFUSALS_ANSWERED: usize = 32;
/// How long the loop waits after `accept` failed (out of descriptors: `EMFILE`): long
/// enough for connections to end and free some, short enough that a browser's retry
/// barely notices; without it the loop would spin on the same error.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// How long requests in flight may take to finish once the dashboard stops: well within
/// the 2.5 s a stage gets (`pitcrew::app::STAGE_STOP_DEADLINE`).
pub const STOP_GRACE: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` within `limits` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Arc<Limits>,
    shutdown: CancellationToken,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(MAX_REQUEST_HEAD);
    let tasks = TaskTracker::new();
    let answering = Arc::new(Semaphore::new(REFUSALS_ANSWERED));
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, pause_ms = ACCEPT_PAUSE.as_millis(), "cannot take a connection");
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        match limits.connect(peer.ip()) {
            Ok(permit) => {
                let conn = connection(
                    http.clone(),
                    Held {
                        io: stream,
                        _permit: permit,
                    },
                    peer,
                    app.clone(),
                    Arc::clone(&limits),
                    shutdown.clone(),
                );
                tasks.spawn(conn);
            }
            Err(refusal) => {
                limits.refuse(peer.ip(), refusal);
                if let Ok(slot) = Arc::clone(&answering).try_acquire_owned() {
                    let text = refusal.reason(limits.bounds());
                    tasks.spawn(async move {
                        answer(stream, refusal, &text).await;
                        drop(slot);
                    });
                }
            }
        }
    }
    tasks.close();
    // Each connection winds down on `shutdown` within STOP_GRACE; pages end with it too.
    let _ = tokio::time::timeout(STOP_GRACE, tasks.wait()).await;
}

/// One taken connection, from its first byte to its end (or to its upgrade: the page then
/// owns the socket and its permit).
async fn connection(
    http: http1::Builder,
    io: Held,
    peer: SocketAddr,
    app: Router,
    limits: Arc<Limits>,
    shutdown: CancellationToken,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        async move { tower_service::Service::call(&mut app, request).await }
    });
    let mut conn = std::pin::pin!(http
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades());
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(STOP_GRACE, conn.as_mut()).await.unwrap_or(Ok(()))
        }
    };
    match result {
        Ok(()) => {}
        Err(e) if e.is_timeout() => {
            limits
                .counts
                .header_timeouts
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "connection closed: its request headers did not arrive in time");
        }
        Err(e) => tracing::debug!(%peer, error = %e, "connection ended with an error"),
    }
}

/// Answers a refused connection with `refusal`'s status and `text`, then reads what it
/// sent until it closes or [`REFUSAL_LINGER`] passes: closing a socket with unread input
/// resets it, and a reset can take the answer with it before the client reads it.
async fn answer(mut stream: TcpStream, refusal: Refusal, text: &str) {
    let status = refusal.status();
    let response = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nretry-after: 10\r\nconnection: close\r\n\r\n{text}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        text.len() + 1,
    );
    let linger = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    };
    let _ = tokio::time::timeout(REFUSAL_LINGER, linger).await;
}

/// A taken connection's socket with its permit: the permit is given back when the socket
/// closes, whether hyper or an upgraded page holds it last.
struct Held {
    io: TcpStream,
    _permit: ConnectionPermit,
}

impl AsyncRead for Held {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Held {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
