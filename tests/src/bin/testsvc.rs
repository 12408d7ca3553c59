//! `pitcrew-testsvc`: a small service for end-to-end tests and benchmarks.
//!
//! Methods: `echo(value)`, `add(a, b)`, `sleep(seconds)`, `fail(text)` (returns the text as
//! a handler error), `panic()`, `whoami()` (its own name and pid), and `urgent_echo(value)`,
//! marked urgent (it runs even when every worker is busy).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pitcrew::codec::Value;
use pitcrew::options::{parse_duration, SharedOptions};
use pitcrew::rpc::{ErrorCode, RpcError, Service};

#[derive(Debug, Clone, Parser)]
#[command(name = "pitcrew-testsvc", about = "A service for tests and benchmarks")]
struct Options {
    #[command(flatten)]
    shared: SharedOptions,
    /// The app name; the service is reachable as `<app>-service`.
    #[arg(long, default_value = "test")]
    app: String,
    /// Requests that may wait for a worker before callers get `busy`.
    #[arg(long)]
    queue: Option<usize>,
    /// Bind this address and serve clients directly, without the router (benchmark baseline).
    #[arg(long)]
    direct: Option<String>,
    /// Handler deadline.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    handler_timeout: Duration,
}

fn main() -> ExitCode {
    let options: Options = pitcrew::options::parse();
    pitcrew::app::main(
        "testsvc",
        &options.shared.clone(),
        move |config, shutdown| async move {
            let mut service = Service::new(&options.app)
                .workers(config.service_workers)
                .handler_timeout(options.handler_timeout)
                .urgent("urgent_echo");
            if let Some(queue) = options.queue {
                service = service.queue(queue);
            }
            let name = service.name().to_owned();
            service
                .register("echo", &["value"], |(v,): (Value,)| async move { Ok(v) })
                .register(
                    "urgent_echo",
                    &["value"],
                    |(v,): (Value,)| async move { Ok(v) },
                )
                .register("add", &["a", "b"], |(a, b): (i64, i64)| async move {
                    a.checked_add(b)
                        .ok_or_else(|| RpcError::new(ErrorCode::HandlerFailed, "overflow"))
                })
                .register("sleep", &["seconds"], |(s,): (f64,)| async move {
                    tokio::time::sleep(Duration::from_secs_f64(s.clamp(0.0, 3600.0))).await;
                    Ok(s)
                })
                .register("fail", &["text"], |(text,): (String,)| async move {
                    Err::<Value, _>(RpcError::new(ErrorCode::HandlerFailed, text))
                })
                .register("panic", &[], |()| async move {
                    if std::process::id() > 0 {
                        panic!("asked to panic");
                    }
                    Ok(Value::Nil)
                })
                .register("whoami", &[], move |()| {
                    let name = name.clone();
                    async move {
                        Ok(Value::Map(vec![
                            ("name".into(), name.into()),
                            ("pid".into(), std::process::id().into()),
                        ]))
                    }
                });
            match &options.direct {
                Some(address) => service.serve_direct(address, shutdown).await,
                None => service.serve(&config.backend_connect(), shutdown).await,
            }
        },
    )
}
