//! The TCP listener for virtual Smart Devices: each accepted connection is a host session
//! exactly like a serial port's (same byte stream).

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::session::{self, SessionContext};

/// Parses `tcp://HOST:PORT` (or a bare `HOST:PORT`) into a socket address.
///
/// # Errors
/// A one-line message naming the address.
pub fn parse_tcp_addr(s: &str) -> Result<SocketAddr, String> {
    let bare = s.strip_prefix("tcp://").unwrap_or(s);
    bare.parse()
        .map_err(|_| format!("{s:?} is not a tcp://HOST:PORT address with a numeric host"))
}

/// Binds `addr`.
///
/// # Errors
/// When the address cannot be bound.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for virtual devices on tcp://{addr}"))
}

/// Accepts connections until shutdown, running a tracked session for each.
pub async fn serve(listener: TcpListener, ctx: SessionContext, tracker: TaskTracker) {
    loop {
        let accepted = tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let port = format!("tcp://{peer}");
                tracing::debug!(%port, "virtual device connected");
                tracker.spawn(session::run(stream, port, ctx.clone()));
            }
            Err(e) => {
                // Out of descriptors or similar: wait a little rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcp_addresses() {
        assert_eq!(
            parse_tcp_addr("tcp://127.0.0.1:6004"),
            Ok("127.0.0.1:6004".parse().unwrap())
        );
        assert!(parse_tcp_addr("tcp://localhost").is_err());
    }
}
