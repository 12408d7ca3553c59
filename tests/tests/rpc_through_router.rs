//! RPC through the real router between separate processes: results, every error code, and
//! limits, as a client sees them.

use std::time::{Duration, Instant};

use pitcrew::codec::Value;
use pitcrew::rpc::ErrorCode;
use pitcrew_e2e::{router_with_services, Namespace};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clients_make_100_concurrent_calls_to_three_services() {
    let ns = Namespace::new("concurrent");
    let (_router, _services, _) = router_with_services(&ns, &["a", "b", "c"], &[]).await;
    let clients: Vec<_> = (0..3).map(|_| ns.client()).collect();
    let mut calls = Vec::new();
    for i in 0..100i64 {
        let client = clients[(i % 3) as usize].clone();
        let service = ["a-service", "b-service", "c-service"][(i / 3 % 3) as usize];
        calls.push(tokio::spawn(async move {
            let sum = client
                .call(service, "add", vec![i.into(), 1000.into()])
                .await;
            let who = client.call(service, "whoami", vec![]).await;
            (i, service, sum, who)
        }));
    }
    for call in calls {
        let (i, service, sum, who) = call.await.unwrap();
        assert_eq!(sum.unwrap(), Value::from(i + 1000), "call {i}");
        let who = who.unwrap();
        let name = who
            .as_map()
            .unwrap()
            .iter()
            .find(|(k, _)| k.as_str() == Some("name"))
            .unwrap();
        assert_eq!(name.1.as_str(), Some(service));
    }
}

#[tokio::test]
async fn unknown_destination_is_answered_unreachable_at_once() {
    let ns = Namespace::new("unreach");
    let (_router, _services, client) = router_with_services(&ns, &[], &[]).await;
    let started = Instant::now();
    let err = client
        .call("nobody-service", "ping", vec![])
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err.code, ErrorCode::Unreachable);
    assert!(err.message.contains("nobody-service"), "{err}");
    assert!(
        elapsed < Duration::from_secs(1),
        "took {elapsed:?}: an unreachable service is answered at once, not after the 5 s timeout"
    );
}

#[tokio::test]
async fn service_errors_arrive_with_their_codes_and_texts() {
    let ns = Namespace::new("errors");
    let (_router, _services, client) =
        router_with_services(&ns, &["e"], &["--handler-timeout", "300ms"]).await;

    let err = client
        .call("e-service", "nosuch", vec![])
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NoSuchMethod);
    assert!(err.message.contains("nosuch"));

    let err = client
        .call("e-service", "add", vec![1.into()])
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidParams);
    assert_eq!(err.message, "expected 2 parameters (a, b), got 1");

    let err = client
        .call("e-service", "add", vec![1.into(), "two".into()])
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidParams);
    assert!(
        err.message
            .starts_with("parameter 2 (b) must be an integer"),
        "{err}"
    );

    let err = client
        .call("e-service", "fail", vec!["motor 3 is on fire".into()])
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::HandlerFailed);
    assert_eq!(err.message, "motor 3 is on fire");

    let err = client
        .call("e-service", "sleep", vec![2.0.into()])
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Timeout);
    assert!(err.message.contains("took longer than 0.300 s"), "{err}");

    let err = client.call("e-service", "panic", vec![]).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::HandlerFailed);
    // ...and the service goes on.
    assert_eq!(
        client
            .call("e-service", "add", vec![2.into(), 2.into()])
            .await
            .unwrap(),
        Value::from(4)
    );
}

#[tokio::test]
async fn client_side_timeout_and_late_response_are_harmless() {
    let ns = Namespace::new("late");
    let (_router, _services, client) = router_with_services(&ns, &["s"], &[]).await;
    let err = client
        .call_with_timeout(
            "s-service",
            "sleep",
            vec![0.3.into()],
            Duration::from_millis(50),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Timeout);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(client.late_responses(), 1);
    assert_eq!(
        client
            .call("s-service", "echo", vec![7.into()])
            .await
            .unwrap(),
        Value::from(7)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_urgent_method_runs_while_every_worker_and_the_queue_are_taken() {
    let ns = Namespace::new("urgent");
    let (_router, _services, client) =
        router_with_services(&ns, &["u"], &["--service-workers", "1", "--queue", "1"]).await;
    // Two callers fill the only worker and the only queue slot for 2 s.
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            let c = ns.client();
            tokio::spawn(async move { c.call("u-service", "sleep", vec![2.0.into()]).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let plain = client.call("u-service", "echo", vec![1.into()]).await;
    assert_eq!(plain.map_err(|e| e.code), Err(ErrorCode::Busy));
    // The urgent method is answered long before the sleepers end.
    let urgent = client
        .call_with_timeout(
            "u-service",
            "urgent_echo",
            vec![2.into()],
            Duration::from_secs(1),
        )
        .await
        .expect("an urgent call is answered while every worker is busy");
    assert_eq!(urgent, Value::from(2));
    for s in sleepers {
        assert!(s.await.unwrap().is_ok());
    }
}

#[tokio::test]
async fn beyond_workers_and_queue_callers_get_busy() {
    let ns = Namespace::new("busy");
    let (_router, _services, client) =
        router_with_services(&ns, &["w"], &["--service-workers", "2", "--queue", "2"]).await;
    // Five callers with two calls each, so the per-caller share (half the capacity) never
    // binds and exactly the capacity is admitted.
    let callers: Vec<_> = (0..5).map(|_| ns.client()).collect();
    let calls: Vec<_> = (0..10)
        .map(|i| {
            let client = callers[i % 5].clone();
            tokio::spawn(async move { client.call("w-service", "sleep", vec![0.5.into()]).await })
        })
        .collect();
    let mut ok = 0;
    let mut busy = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) if e.code == ErrorCode::Busy => busy += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(
        (ok, busy),
        (4, 6),
        "2 workers + 2 queued succeed, the rest are busy"
    );
    // One caller alone may hold only half the capacity.
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.call("w-service", "sleep", vec![0.3.into()]).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for call in calls {
        outcomes.push(call.await.unwrap().map_err(|e| e.code));
    }
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count(),
        2,
        "{outcomes:?}"
    );
    // Once the burst is over the service takes calls again.
    assert_eq!(
        client
            .call("w-service", "echo", vec![1.into()])
            .await
            .unwrap(),
        Value::from(1)
    );
}

#[tokio::test]
async fn router_lists_its_peers_and_counts() {
    let ns = Namespace::new("peers");
    let (_router, _services, client) = router_with_services(&ns, &["p"], &[]).await;
    let peers = client.call("router", "list_peers", vec![]).await.unwrap();
    let peers = peers.as_array().unwrap();
    let ident = |p: &Value| -> (String, String) {
        let m = p.as_map().unwrap();
        let get = |k: &str| {
            m.iter()
                .find(|(kk, _)| kk.as_str() == Some(k))
                .unwrap()
                .1
                .as_str()
                .unwrap()
                .to_owned()
        };
        (get("identity"), get("side"))
    };
    let listed: Vec<_> = peers.iter().map(ident).collect();
    assert!(
        listed.contains(&("p-service".into(), "service".into())),
        "{listed:?}"
    );
    assert!(
        listed.contains(&(client.identity().into(), "client".into())),
        "{listed:?}"
    );
    let stats = client.call("router", "stats", vec![]).await.unwrap();
    let routed = stats
        .as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_str() == Some("routed"))
        .unwrap()
        .1
        .as_u64()
        .unwrap();
    assert!(routed >= 2, "{stats}");
}
