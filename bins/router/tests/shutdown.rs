//! The router's `run` in-process: it serves, and returns promptly once its shutdown token
//! fires, leaving no ipc socket files behind.

use std::time::{Duration, Instant};

use clap::Parser;
use pitcrew::config::Config;
use pitcrew::rpc::Client;
use pitcrew_router::Options;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn run_serves_then_returns_within_the_deadline_when_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let front = format!("ipc://{}/rpc.sock", dir.path().display());
    let back = format!("ipc://{}/srv.sock", dir.path().display());
    let options = Options::try_parse_from([
        "pitcrew-router",
        "--namespace",
        "inproc-test",
        "--router-frontend",
        &front,
        "--router-backend",
        &back,
    ])
    .unwrap();
    let config = Config::resolve(&options.shared).unwrap();
    let shutdown = CancellationToken::new();
    let router = tokio::spawn(pitcrew_router::run(options, config, shutdown.clone()));

    let client = Client::connect(&front, "test", Duration::from_secs(2)).unwrap();
    let pong = client.call("router", "ping", vec![]).await.unwrap();
    assert_eq!(pong.as_str(), Some("pong"));

    shutdown.cancel();
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(1), router)
        .await
        .expect("run returns within 1 s of the token firing")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(
        !dir.path().join("rpc.sock").exists(),
        "ipc files removed on a clean stop"
    );
}
