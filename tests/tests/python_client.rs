//! The README's Python example (pyzmq + msgpack) calls services through the real router.

use std::path::Path;
use std::process::Command;

use pitcrew_e2e::{router_with_services, Namespace};

fn python_client(ns: &Namespace, args: &[&str]) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python_client.py");
    Command::new("python3")
        .arg(script)
        .arg("--endpoint")
        .arg(ns.frontend())
        .args(args)
        .output()
        .expect("python3 runs (scripts/setup installs pyzmq and msgpack)")
}

#[tokio::test]
async fn python_example_calls_a_service_and_the_router() {
    let ns = Namespace::new("python");
    let (_router, _services, _client) = router_with_services(&ns, &["py"], &[]).await;

    let out = python_client(&ns, &["py-service", "add", "2", "40"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");

    let out = python_client(&ns, &["router", "list_peers"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("py-service"));

    let out = python_client(&ns, &["py-service", "fail", "\"no battery\""]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "handler_failed: no battery"
    );

    let out = python_client(&ns, &["ghost-service", "ping"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("unreachable: "));
}
