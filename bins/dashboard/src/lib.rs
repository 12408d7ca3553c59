//! `pitcrew-dashboard`: the driver station and dashboard, a web page served by the robot.
//!
//! * [`feed`]: one task keeps the current picture and fans changes out to browsers;
//! * [`sources`]: what it reads (update multicast, log forwarder, RPC polls, gamepads);
//! * [`sim`]: a simulated robot's field and pose, for the field view, while a page is open;
//! * [`server`]: the page and the WebSocket feed, per-client writer and reader;
//! * [`http`]: the accept loop, with the time to send request headers bounded;
//! * [`limits`]: connections per address and in all, pages, and refusals logged at a
//!   bounded rate;
//! * [`memory`]: the memory of closed pages given back to the system;
//! * [`station`]: a page's driver-station frames, one control datagram each;
//! * [`auth`]: the login token and who may command the robot;
//! * [`page`]: the page itself, built in.
//!
//! It reads what exists and adds nothing to the control path: its only output to the
//! robot is what a page asks for (driver-station datagrams to the gamepad receiver, and
//! RPC commands to the broker), each the result of one browser frame.

pub mod auth;
pub mod feed;
pub mod http;
pub mod limits;
pub mod memory;
pub mod page;
pub mod server;
pub mod sim;
pub mod sim_view;
pub mod sources;
pub mod station;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use pitcrew::app::Stages;
use pitcrew::config::Config;
use pitcrew::options::SharedOptions;
use pitcrew::rpc::{Client, RpcError, Service};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::auth::Access;
use crate::feed::Hub;
use crate::limits::{Bounds, Limits};
use crate::server::Ctx;

/// Command line of `pitcrew-dashboard`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "pitcrew-dashboard",
    version,
    about = "Dashboard and driver station: serves a web page with the robot's state, devices, gamepads, logs and health, and its E-STOP"
)]
pub struct Options {
    /// Options shared by every pitcrew binary.
    #[command(flatten)]
    pub shared: SharedOptions,

    /// Address the page is served on (HTTP and its WebSocket feed).
    #[arg(
        long,
        env = "PITCREW_DASHBOARD_ADDR",
        default_value = "0.0.0.0:8080",
        help_heading = "Dashboard"
    )]
    pub dashboard_addr: SocketAddr,

    /// IPv4 address of the interface to join the update group on (127.0.0.1 on a
    /// loopback-only machine).
    #[arg(
        long,
        env = "PITCREW_UPDATE_INTERFACE",
        default_value = "0.0.0.0",
        help_heading = "Dashboard"
    )]
    pub update_interface: Ipv4Addr,

    /// Login token of the page and its feed on a robot without a team key [default: the
    /// team key's login token (--key-file); without a key none: the page is open and takes
    /// commands from the robot itself (loopback) only].
    #[arg(long, env = "PITCREW_DASHBOARD_TOKEN", value_parser = auth::parse_token, hide_env_values = true, help_heading = "Dashboard")]
    pub dashboard_token: Option<String>,

    /// Connections open at once, from every address together; beyond, a connection is
    /// answered 503 and closed. The default keeps the dashboard well below the 1024 file
    /// descriptors a service gets by default (a page holds two: its connection and its
    /// control socket).
    #[arg(long, env = "PITCREW_DASHBOARD_MAX_CONNECTIONS", default_value_t = 256, value_parser = clap::value_parser!(u16).range(1..), help_heading = "Dashboard")]
    pub max_connections: u16,

    /// Connections open at once from one client address (a page is one, and a browser
    /// opens a few more while it loads); beyond, a connection is answered 429 and closed,
    /// so one machine cannot take the places of the others.
    #[arg(long, env = "PITCREW_DASHBOARD_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..), help_heading = "Dashboard")]
    pub max_connections_per_address: u16,

    /// Pages (WebSocket feeds) open at once; beyond, a page is answered 503.
    #[arg(long, env = "PITCREW_DASHBOARD_MAX_PAGES", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..), help_heading = "Dashboard")]
    pub max_pages: u16,
}

impl Options {
    /// The bounds on connections and pages the options set.
    pub fn bounds(&self) -> Bounds {
        Bounds {
            connections: usize::from(self.max_connections),
            per_address: usize::from(self.max_connections_per_address),
            pages: usize::from(self.max_pages),
        }
    }
}

/// Where the page's datagrams go: the receiver's `--control-addr`, on this machine when it
/// binds every interface.
pub fn control_target(control_addr: SocketAddr) -> SocketAddr {
    let mut addr = control_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(Ipv4Addr::LOCALHOST.into());
    }
    addr
}

/// Each type of `catalog`: `{type: [{"name", "type", "access"}]}`.
pub fn catalog_summary(catalog: &pitcrew_catalog::Catalog) -> serde_json::Value {
    let types: serde_json::Map<String, serde_json::Value> = catalog
        .types()
        .map(|ty| {
            let params: Vec<serde_json::Value> = ty
                .params()
                .iter()
                .map(|p| json!({"name": p.name(), "type": p.ty().to_string(), "access": p.access().to_string()}))
                .collect();
            (ty.name().to_owned(), serde_json::Value::Array(params))
        })
        .collect();
    serde_json::Value::Object(types)
}

/// The URL to open, as logged at start.
pub fn url(addr: SocketAddr, access: &Access) -> String {
    let host = if addr.ip().is_unspecified() {
        SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()))
    } else {
        addr
    };
    match access.token() {
        Some(token) => format!("http://{host}/?token={token}"),
        None => format!("http://{host}/"),
    }
}

/// Serves the dashboard until `shutdown`.
///
/// # Errors
/// When the address cannot be bound, the update group cannot be joined, or a part fails.
pub async fn run(
    options: Options,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let key = config.keys.team.clone();
    let access = access(&options, &config);
    let listener = bind(options.dashboard_addr).await?;
    let local = listener.local_addr().context("the listener's address")?;
    let updates = pitcrew::updates::join(config.update_addr, options.update_interface)?;
    let control_to = control_target(config.control_addr);
    let client =
        pitcrew::rpc::Client::connect(&config.frontend_connect(), "dashboard", config.call_timeout)
            .context("cannot reach the router")?;

    let types = catalog_summary(&config.catalog);
    let (hub, events) = Hub::new();
    let limits = Limits::new(options.bounds());
    let link = url(local, &access);
    log_serving(&link, &config, &access);
    let mut stages = Stages::new(shutdown.clone());
    spawn_feed(&mut stages, &hub, events, updates, &config, &client);
    let service = service(&hub, &limits, link);
    let backend = config.backend_connect();
    stages.spawn("service", move |token| async move {
        service.serve(&backend, token).await
    });
    stages.spawn("http", move |token| async move {
        let ctx = Arc::new(Ctx::new(
            hub,
            access,
            client,
            control_to,
            key,
            token.clone(),
            types,
            Arc::clone(&limits),
        ));
        http::serve(listener, server::router(ctx), limits, token).await;
        Ok::<_, anyhow::Error>(())
    });
    stages.run_until_stopped().await.map_err(Into::into)
}

/// Who may use the page: the team key's derived login token; `--dashboard-token` only
/// stands in on a robot without a key (and without either, the page is open).
fn access(options: &Options, config: &Config) -> Access {
    Access::new(
        config
            .keys
            .team
            .as_ref()
            .map(pitcrew::key::Key::login_token)
            .or_else(|| options.dashboard_token.clone()),
    )
}

/// Binds the page's address; the error says what to do when it is taken.
///
/// # Errors
/// When `addr` cannot be bound.
async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot serve the dashboard on {addr} (in use? choose another with --dashboard-addr)"
        )
    })
}

/// Logs the URL to open at start, with how the page is protected: a warning when it is
/// not, since anyone on the network can then see it.
fn log_serving(link: &str, config: &Config, access: &Access) {
    if let Some(key) = &config.keys.team {
        tracing::info!(url = %link, fingerprint = %key.fingerprint(), "dashboard serving; open the url (it carries the login token derived from the team key); pages drive with sealed datagrams");
    } else if access.locked() {
        tracing::info!(url = %link, "dashboard serving; open the url (it carries the login token)");
    } else {
        tracing::warn!(
            url = %link,
            "dashboard serving without a login token: anyone on the network can see the page; commands are taken from this machine (loopback) only"
        );
    }
}

/// Starts the feed and then each source it reads (the update multicast on `updates`, the
/// log forwarder, the RPC polls through `client`, the gamepads, a simulation). Started before the
/// service and the page server, so that they stop after them (stages stop in reverse
/// order): the pages never outlive the feed they show.
fn spawn_feed(
    stages: &mut Stages,
    hub: &Hub,
    events: tokio::sync::mpsc::Receiver<feed::Event>,
    updates: tokio::net::UdpSocket,
    config: &Config,
    client: &Client,
) {
    {
        let hub = hub.clone();
        stages.spawn("feed", move |token| async move {
            feed::run(hub, events, token).await;
            Ok::<_, anyhow::Error>(())
        });
    }
    {
        let hub = hub.clone();
        stages.spawn("updates", move |token| {
            sources::updates(hub, updates, token)
        });
    }
    {
        let (hub, config) = (hub.clone(), config.clone());
        stages.spawn("logs", move |token| sources::logs(hub, config, token));
    }
    {
        let (hub, client) = (hub.clone(), client.clone());
        stages.spawn("polls", move |token| sources::polls(hub, client, token));
    }
    {
        let (hub, ns) = (hub.clone(), config.namespace.clone());
        stages.spawn("gamepads", move |token| sources::gamepads(hub, ns, token));
    }
    {
        let (hub, client) = (hub.clone(), client.clone());
        stages.spawn("sim", move |token| sim::watch(hub, client, token));
    }
}

/// `dashboard-service`: `ping` (the supervisor's probe) and `stats` (the feed's counters,
/// what is open against the limits, what was refused, and the URL).
fn service(hub: &Hub, limits: &Arc<Limits>, url: String) -> Service {
    let mut s = Service::new("dashboard");
    let stats = Arc::clone(&hub.stats);
    let limits = Arc::clone(limits);
    s.register("stats", &[], move |()| {
        let (stats, limits, url) = (Arc::clone(&stats), Arc::clone(&limits), url.clone());
        async move {
            let n = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            let bounds = limits.bounds();
            Ok::<_, RpcError>(pitcrew::codec::from_json(&json!({
                "url": url,
                "clients": n(&stats.clients),
                "frames": n(&stats.frames),
                "events_dropped": n(&stats.events_dropped),
                "client_skips": n(&stats.client_skips),
                "clients_dropped": n(&stats.clients_dropped),
                "datagrams": n(&stats.datagrams),
                "logs_skipped": n(&stats.logs_skipped),
                "connections": limits.connections(),
                "pages": limits.pages(),
                "refused_logins": limits.refused_logins(),
                "refused_connections": n(&limits.counts.refused_connections),
                "refused_pages": n(&limits.counts.refused_pages),
                "header_timeouts": n(&limits.counts.header_timeouts),
                "max_connections": bounds.connections,
                "max_connections_per_address": bounds.per_address,
                "max_pages": bounds.pages,
            })))
        }
    });
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_target_of_an_unspecified_address_is_this_machine() {
        assert_eq!(
            control_target("0.0.0.0:6002".parse().unwrap()).to_string(),
            "127.0.0.1:6002"
        );
        assert_eq!(
            control_target("10.0.0.2:7002".parse().unwrap()).to_string(),
            "10.0.0.2:7002"
        );
    }

    #[test]
    fn the_url_carries_the_token_when_there_is_one() {
        let addr: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(url(addr, &Access::new(None)), "http://127.0.0.1:8080/");
        assert_eq!(
            url(addr, &Access::new(Some("t".repeat(16)))),
            format!("http://127.0.0.1:8080/?token={}", "t".repeat(16))
        );
    }
}
