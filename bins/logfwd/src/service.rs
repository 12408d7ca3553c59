//! `logfwd-service`: `recent_logs(limit, min_level, app)` and `stats`.

use std::sync::{Arc, Mutex};

use pitcrew::codec::Value;
use pitcrew::logging::record::{level_name, parse_level};
use pitcrew::options::LogLevel;
use pitcrew::rpc::{ErrorCode, RpcError, Service};

use crate::forward::{lock, State};

/// How many records `recent_logs` returns when the caller gives no limit.
pub const DEFAULT_LIMIT: u64 = 100;

/// The service, ready to serve.
pub fn build(state: Arc<Mutex<State>>, workers: usize) -> Service {
    let mut service = Service::new("logfwd").workers(workers);
    let for_recent = state.clone();
    service.register(
        "recent_logs",
        &["limit", "min_level", "app"],
        move |(limit, min_level, app): (Option<u64>, Option<String>, Option<String>)| {
            let state = for_recent.clone();
            async move {
                let min_level = match min_level.as_deref() {
                    None => LogLevel::Trace,
                    Some(name) => parse_level(name).ok_or_else(|| {
                        RpcError::new(
                            ErrorCode::InvalidParams,
                            format!(
                                "min_level {name:?} is not one of {}",
                                all_levels().join(", ")
                            ),
                        )
                    })?,
                };
                let limit = usize::try_from(limit.unwrap_or(DEFAULT_LIMIT)).unwrap_or(usize::MAX);
                let records = lock(&state)
                    .history
                    .recent(limit, min_level, app.as_deref());
                Ok(Value::Array(records))
            }
        },
    );
    service.register("stats", &[], move |()| {
        let state = state.clone();
        async move {
            let state = lock(&state);
            let mut entries = state.stats.entries();
            entries.push(("history".into(), state.history.len().into()));
            entries.push(("history_capacity".into(), state.history.capacity().into()));
            Ok::<_, RpcError>(Value::Map(entries))
        }
    });
    service
}

fn all_levels() -> Vec<&'static str> {
    [
        LogLevel::Trace,
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
    ]
    .into_iter()
    .map(level_name)
    .collect()
}
