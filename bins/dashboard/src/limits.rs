//! What one stranger, or all of them together, may hold of the dashboard, and how a
//! refusal is told.
//!
//! The dashboard listens on the event network, where anyone can connect. Without bounds a
//! few hundred connections that trickle their headers, or a few hundred pages, would hold
//! sockets, descriptors and memory for as long as the other side likes, and every wrong
//! token would be one log line. So:
//!
//! * a connection has [`crate::http::HEADER_READ_TIMEOUT`] to send its request headers;
//! * one client address holds at most `--max-connections-per-address` connections, and all
//!   of them together `--max-connections` (beyond them a connection is answered `429 Too
//!   Many Requests` or `503 Service Unavailable` and closed);
//! * at most `--max-pages` pages (WebSocket feeds) are open at once (beyond, `503`). As a
//!   page is also a connection, one address holds at most its share of them;
//! * each refusal is counted (`dashboard-service.stats`) and logged through a [`Refusals`]:
//!   the first few of each 10 s window, then one summary line per address ("N refused from
//!   ADDR in the last 10 s"), so a flood of refusals cannot flood the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::http::StatusCode;
use pitcrew::logging::refusals::Refusals;

/// The bounds, as the options set them.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Connections open at once, from every address together.
    pub connections: usize,
    /// Connections open at once from one client address.
    pub per_address: usize,
    /// Pages (WebSocket feeds) open at once.
    pub pages: usize,
}

/// Why a connection or a page was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its address holds its share of connections already.
    FromAddress,
    /// The dashboard holds all the connections it takes.
    Full,
    /// The dashboard serves all the pages it takes.
    Pages,
}

impl Refusal {
    /// The HTTP status it is answered with: 429 when the client itself asks too much, 503
    /// when the dashboard as a whole is full.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::FromAddress => StatusCode::TOO_MANY_REQUESTS,
            Refusal::Full | Refusal::Pages => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The answer's text (and the log line's reason), naming the bound.
    pub fn reason(self, bounds: &Bounds) -> String {
        match self {
            Refusal::FromAddress => format!(
                "too many connections from this address: the dashboard takes at most {} from one address (--max-connections-per-address)",
                bounds.per_address
            ),
            Refusal::Full => format!(
                "the dashboard is full: it takes at most {} connections (--max-connections)",
                bounds.connections
            ),
            Refusal::Pages => format!(
                "the dashboard is full: it serves at most {} pages at once (--max-pages)",
                bounds.pages
            ),
        }
    }
}

/// Counters of what was refused, for `dashboard-service.stats`.
#[derive(Debug, Default)]
pub struct Counts {
    /// Connections refused by `--max-connections-per-address` or `--max-connections`.
    pub refused_connections: AtomicU64,
    /// Pages refused by `--max-pages`.
    pub refused_pages: AtomicU64,
    /// Connections closed because their request headers did not arrive in time.
    pub header_timeouts: AtomicU64,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// The dashboard's bounds and what is open against them; shared by the accept loop, the
/// feed's handler and `dashboard-service.stats`.
#[derive(Debug)]
pub struct Limits {
    bounds: Bounds,
    open: Mutex<Open>,
    pages: AtomicUsize,
    /// What was refused.
    pub counts: Counts,
    /// Refused connections and pages, logged at a bounded rate.
    refusals: Mutex<Refusals>,
    /// Wrong or missing login tokens, logged at a bounded rate.
    logins: Mutex<Refusals>,
}

/// One open connection, counted against its address until dropped. It travels with the
/// socket (see [`crate::http`]), so a connection upgraded to a page stays counted for as
/// long as the page is open.
#[derive(Debug)]
pub struct ConnectionPermit {
    limits: Arc<Limits>,
    ip: IpAddr,
}

/// One open page, counted until dropped.
#[derive(Debug)]
pub struct PagePermit {
    limits: Arc<Limits>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Limits {
    /// Limits with `bounds`, nothing open.
    pub fn new(bounds: Bounds) -> Arc<Limits> {
        Arc::new(Limits {
            bounds,
            open: Mutex::new(Open::default()),
            pages: AtomicUsize::new(0),
            counts: Counts::default(),
            refusals: Mutex::new(Refusals::new("dashboard connections")),
            logins: Mutex::new(Refusals::new("dashboard logins")),
        })
    }

    /// The bounds.
    pub fn bounds(&self) -> &Bounds {
        &self.bounds
    }

    /// Takes a connection from `ip`, or says why not (not yet counted or logged: see
    /// [`Limits::refuse`]).
    ///
    /// # Errors
    /// [`Refusal::FromAddress`] or [`Refusal::Full`].
    pub fn connect(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, Refusal> {
        let mut open = lock(&self.open);
        let from_ip = open.by_address.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.bounds.per_address {
            return Err(Refusal::FromAddress);
        }
        if open.total >= self.bounds.connections {
            return Err(Refusal::Full);
        }
        open.total += 1;
        open.by_address.insert(ip, from_ip + 1);
        Ok(ConnectionPermit {
            limits: Arc::clone(self),
            ip,
        })
    }

    /// Takes a page, or refuses it when `--max-pages` are open.
    ///
    /// # Errors
    /// [`Refusal::Pages`].
    pub fn open_page(self: &Arc<Self>) -> Result<PagePermit, Refusal> {
        let taken = self
            .pages
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.bounds.pages).then_some(n + 1)
            });
        match taken {
            Ok(_) => Ok(PagePermit {
                limits: Arc::clone(self),
            }),
            Err(_) => Err(Refusal::Pages),
        }
    }

    /// Counts and logs (at a bounded rate) a connection or page refused from `ip`.
    pub fn refuse(&self, ip: IpAddr, refusal: Refusal) {
        let counter = match refusal {
            Refusal::FromAddress | Refusal::Full => &self.counts.refused_connections,
            Refusal::Pages => &self.counts.refused_pages,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let reason = refusal.reason(&self.bounds);
        lock(&self.refusals).refuse(&ip.to_string(), &reason);
    }

    /// Counts and logs (at a bounded rate) a request from `ip` without the login token.
    pub fn refuse_login(&self, ip: IpAddr, reason: &str) {
        lock(&self.logins).refuse(&ip.to_string(), reason);
    }

    /// Requests refused for a wrong or missing token since the start.
    pub fn refused_logins(&self) -> u64 {
        lock(&self.logins).total()
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        lock(&self.open).total
    }

    /// Pages open now.
    pub fn pages(&self) -> usize {
        self.pages.load(Ordering::Acquire)
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = lock(&self.limits.open);
        open.total = open.total.saturating_sub(1);
        // The entry goes with the address's last connection: the table holds only the
        // addresses connected now, whatever number of addresses came and went.
        if let Some(n) = open.by_address.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_address.remove(&self.ip);
            }
        }
    }
}

impl Drop for PagePermit {
    fn drop(&mut self) {
        self.limits.pages.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(connections: usize, per_address: usize, pages: usize) -> Arc<Limits> {
        Limits::new(Bounds {
            connections,
            per_address,
            pages,
        })
    }

    #[test]
    fn one_address_holds_its_share_and_others_still_get_in() {
        let limits = limits(10, 2, 4);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = limits.connect(a).unwrap();
        let _second = limits.connect(a).unwrap();
        assert_eq!(limits.connect(a).unwrap_err(), Refusal::FromAddress);
        assert_eq!(Refusal::FromAddress.status(), StatusCode::TOO_MANY_REQUESTS);
        let _other = limits.connect(b).unwrap();
        assert_eq!(limits.connections(), 3);
        // A closed connection gives its address its place back.
        drop(first);
        let _again = limits.connect(a).unwrap();
        assert_eq!(limits.connections(), 3);
    }

    #[test]
    fn the_total_is_bounded_and_closed_addresses_leave_no_entry() {
        let limits = limits(3, 2, 4);
        let held: Vec<_> = (1..=3)
            .map(|i| limits.connect(IpAddr::from([192, 0, 2, i])).unwrap())
            .collect();
        let refused = limits.connect("192.0.2.9".parse().unwrap()).unwrap_err();
        assert_eq!(refused, Refusal::Full);
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        drop(held);
        assert_eq!(limits.connections(), 0);
        assert!(lock(&limits.open).by_address.is_empty());
    }

    #[test]
    fn pages_are_bounded_and_counted_while_open() {
        let limits = limits(10, 10, 2);
        let a = limits.open_page().unwrap();
        let _b = limits.open_page().unwrap();
        assert_eq!(limits.open_page().unwrap_err(), Refusal::Pages);
        assert_eq!(limits.pages(), 2);
        drop(a);
        assert_eq!(limits.pages(), 1);
        assert!(limits.open_page().is_ok());
    }

    #[test]
    fn refusals_are_counted_by_kind() {
        let limits = limits(1, 1, 1);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..1000 {
            limits.refuse(ip, Refusal::FromAddress);
            limits.refuse_login(ip, "wrong token");
        }
        limits.refuse(ip, Refusal::Pages);
        assert_eq!(
            limits.counts.refused_connections.load(Ordering::Relaxed),
            1000
        );
        assert_eq!(limits.counts.refused_pages.load(Ordering::Relaxed), 1);
        assert_eq!(limits.refused_logins(), 1000);
    }
}
