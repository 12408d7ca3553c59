//! Who may use the suite's TCP endpoints: ZeroMQ CURVE (RFC 26, libzmq with libsodium)
//! keyed from the team key, and the loopback-only rule without one (README, "Threat model").
//!
//! With a team key, every TCP endpoint a process binds is a CURVE server whose secret is
//! derived from the team key, and a ZAP handler in the process admits only the client key
//! derived from the team key, naming the connection's user `team`. The router's client side
//! alone ([`Mechanism::CurveServerWithField`]) also admits the key derived from the field
//! key, as user `field`, and then lets it reach match phases and the emergency stop only;
//! every other TCP endpoint (the log forwarder's subscribers, the router's services) is
//! the team's alone. A TCP
//! endpoint a process connects to is reached as a CURVE client with the keys its own key
//! file derives. ipc endpoints stay plain: they are local and protected by file permissions.
//!
//! Without a team key, TCP endpoints bind to loopback only: a wildcard address
//! (`tcp://*:6000`, `tcp://0.0.0.0:6000`) is narrowed to `tcp://127.0.0.1:6000`, and any
//! other non-loopback address is refused.
//!
//! The keys are set once per process with [`configure`]; until then a process behaves as
//! one without a key.

use std::ffi::{c_char, c_int, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use super::{context, EndpointError};
use crate::key::{Key, KeyKind, Keys, Purpose};
use crate::logging::refusals::Refusals;

/// The ZAP domain of CURVE servers that admit the team key only.
const ZAP_DOMAIN: &str = "pitcrew";
/// The ZAP domain of CURVE servers that admit the field key too (the router's client side).
const ZAP_DOMAIN_WITH_FIELD: &str = "pitcrew-field";
/// The in-process address libzmq sends ZAP requests to (RFC 27).
const ZAP_ENDPOINT: &str = "inproc://zeromq.zap.01";

extern "C" {
    // libzmq: derives the public key of a Z85 secret key (crypto_scalarmult_base).
    fn zmq_curve_public(z85_public_key: *mut c_char, z85_secret_key: *const c_char) -> c_int;
}

/// A CURVE key pair, raw 32-byte keys.
#[derive(Clone, PartialEq, Eq)]
pub struct CurvePair {
    /// The public key (shareable).
    pub public: [u8; 32],
    /// The secret key.
    pub secret: [u8; 32],
}

impl std::fmt::Debug for CurvePair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CurvePair({})", z85(&self.public))
    }
}

/// Z85 text of a 32-byte key (what pyzmq and `zmq_curve_keypair` use).
pub fn z85(key: &[u8; 32]) -> String {
    zmq::z85_encode(key).unwrap_or_default()
}

impl CurvePair {
    /// The pair whose secret is `secret`.
    ///
    /// # Errors
    /// When libzmq is built without CURVE.
    pub fn from_secret(secret: [u8; 32]) -> Result<CurvePair, EndpointError> {
        let unsupported = || EndpointError::Socket {
            what: "derive a CURVE public key",
            reason: "this libzmq has no CURVE support (build it with libsodium)".into(),
        };
        let z85_secret = CString::new(z85(&secret)).map_err(|_| unsupported())?;
        let mut out = [0 as c_char; 41];
        // SAFETY: `out` has the 41 bytes (40 Z85 characters and a NUL) libzmq writes, and
        // `z85_secret` is a NUL-terminated 40-character Z85 key, as zmq_curve_public needs.
        let rc = unsafe { zmq_curve_public(out.as_mut_ptr(), z85_secret.as_ptr()) };
        if rc != 0 {
            return Err(unsupported());
        }
        let text: String = out
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8 as char)
            .collect();
        let public = zmq::z85_decode(&text)
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .ok_or_else(unsupported)?;
        Ok(CurvePair { public, secret })
    }

    /// The servers' pair, derived from the team key.
    ///
    /// # Errors
    /// As [`CurvePair::from_secret`].
    pub fn server(team: &Key) -> Result<CurvePair, EndpointError> {
        CurvePair::from_secret(team.derive(Purpose::CurveServer))
    }

    /// A client's pair, derived from its key (team or field).
    ///
    /// # Errors
    /// As [`CurvePair::from_secret`].
    pub fn client(key: &Key) -> Result<CurvePair, EndpointError> {
        CurvePair::from_secret(key.derive(Purpose::CurveClient))
    }
}

/// What a process uses on TCP.
#[derive(Debug, Default, PartialEq, Eq)]
struct Security {
    /// The servers' pair (from the team key): bind as a CURVE server, and as a client the
    /// server key to expect.
    server: Option<CurvePair>,
    /// This process's client pair.
    client: Option<CurvePair>,
    /// The client keys its CURVE servers admit, and as whom (with a team key only: its
    /// ZAP handler answers for them).
    admitted: Vec<([u8; 32], KeyKind)>,
}

static SECURITY: OnceLock<Security> = OnceLock::new();

/// Connections this process's ZAP handler refused (see [`refused_connections`]).
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// How many TCP connections this process refused for their key (or for no CURVE), since it
/// started: every refusal is counted, though only some are logged (a stranger retrying
/// cannot fill the log). Services report it in their stats.
pub fn refused_connections() -> u64 {
    REFUSED.load(Ordering::Relaxed)
}

/// Serialises [`configure`]: the keys are set and the ZAP handler started once per process
/// (libzmq allows one ZAP handler per context), however many objects of a library user
/// (the Python package's `Robot`, `Client`, logging) ask for them.
static CONFIGURING: Mutex<()> = Mutex::new(());

fn security() -> &'static Security {
    SECURITY.get_or_init(Security::default)
}

/// Sets this process's keys for its TCP endpoints, and with a team key starts the ZAP
/// handler that admits the team's and the field controller's clients. Call it before any
/// endpoint is made. A later call with the same keys changes nothing (so every object of a
/// library may call it); one with other keys is refused, as a process has one ZAP handler
/// and its endpoints one identity.
///
/// A process holding only a field key (a field controller) connects with it; the robot's
/// server key, which it cannot derive, comes from its key file (`pitcrew key new --field`
/// on the robot writes it there).
///
/// # Errors
/// When libzmq lacks CURVE, the ZAP handler cannot start, or this process already uses
/// other keys.
pub fn configure(keys: &Keys) -> Result<(), EndpointError> {
    let _once = CONFIGURING.lock().unwrap_or_else(PoisonError::into_inner);
    let wanted = security_of(keys)?;
    if let Some(current) = SECURITY.get() {
        return if *current == wanted {
            Ok(())
        } else {
            Err(EndpointError::Socket {
                what: "set this process's keys",
                reason: "it already uses other keys (or made a TCP endpoint before setting them); one process uses one key file".into(),
            })
        };
    }
    if !wanted.admitted.is_empty() {
        start_zap(wanted.admitted.clone())?;
    }
    let _ = SECURITY.set(wanted);
    Ok(())
}

/// The pairs `keys` give this process (see [`configure`]).
fn security_of(keys: &Keys) -> Result<Security, EndpointError> {
    let server_public = keys
        .field
        .as_ref()
        .and_then(Key::robot_server_key)
        .and_then(|z| zmq::z85_decode(z).ok())
        .and_then(|v| <[u8; 32]>::try_from(v).ok());
    let server = keys.team.as_ref().map(CurvePair::server).transpose()?;
    let client_key = keys.team.as_ref().or(keys.field.as_ref());
    let client = client_key.map(CurvePair::client).transpose()?;
    let server = match (server, server_public) {
        (Some(s), _) => Some(s),
        (None, Some(public)) => Some(CurvePair {
            public,
            secret: [0; 32],
        }),
        (None, None) => None,
    };
    let mut admitted = Vec::new();
    if keys.team.is_some() {
        for key in [keys.team.as_ref(), keys.field.as_ref()]
            .into_iter()
            .flatten()
        {
            admitted.push((CurvePair::client(key)?.public, key.kind()));
        }
    }
    Ok(Security {
        server,
        client,
        admitted,
    })
}

/// Whether this process binds TCP endpoints as CURVE servers.
pub fn has_server_key() -> bool {
    security()
        .server
        .as_ref()
        .is_some_and(|s| s.secret != [0; 32])
}

/// The ZAP handler: answers libzmq's authentication requests for this process's CURVE
/// servers, admitting exactly the `admitted` client keys.
fn start_zap(admitted: Vec<([u8; 32], KeyKind)>) -> Result<(), EndpointError> {
    let socket = context()
        .socket(zmq::REP)
        .map_err(EndpointError::zmq("create the ZAP socket"))?;
    socket
        .bind(ZAP_ENDPOINT)
        .map_err(EndpointError::zmq("bind the ZAP handler"))?;
    std::thread::Builder::new()
        .name("zap".into())
        .spawn(move || {
            let mut refusals = Refusals::new("CURVE connections");
            loop {
            let request = match socket.recv_multipart(0) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "the ZAP handler stopped: TCP clients can no longer connect");
                    return;
                }
            };
            let reply = zap_reply(&request, &admitted);
            if reply[2] != b"200" {
                REFUSED.fetch_add(1, Ordering::Relaxed);
                let peer = request.get(3).map(|a| String::from_utf8_lossy(a).into_owned());
                refusals.refuse(
                    peer.as_deref().unwrap_or("an unknown address"),
                    &String::from_utf8_lossy(&reply[3]),
                );
            }
            tracing::debug!(status = %String::from_utf8_lossy(&reply[2]), user = %String::from_utf8_lossy(&reply[4]), "ZAP request answered");
            if let Err(e) = socket.send_multipart(reply, 0) {
                tracing::error!(error = %e, "the ZAP handler stopped: TCP clients can no longer connect");
                return;
            }
            }
        })
        .map_err(|e| EndpointError::Io("start the ZAP thread", e))?;
    Ok(())
}

/// RFC 27: `[version, request id, domain, address, identity, mechanism, credentials...]`
/// answered by `[version, request id, status code, status text, user id, metadata]`.
fn zap_reply(request: &[Vec<u8>], admitted: &[([u8; 32], KeyKind)]) -> Vec<Vec<u8>> {
    let id = request.get(1).cloned().unwrap_or_default();
    let answer = |code: &str, text: &str, user: &str| {
        vec![
            b"1.0".to_vec(),
            id.clone(),
            code.as_bytes().to_vec(),
            text.as_bytes().to_vec(),
            user.as_bytes().to_vec(),
            Vec::new(),
        ]
    };
    let mechanism = request.get(5).map(Vec::as_slice);
    let client_key = request
        .get(6)
        .and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok());
    let field_welcome = request.get(2).map(Vec::as_slice) == Some(ZAP_DOMAIN_WITH_FIELD.as_bytes());
    let welcome = |kind: &KeyKind| *kind == KeyKind::Team || field_welcome;
    match (mechanism, client_key) {
        (Some(b"CURVE"), Some(key)) => {
            match admitted.iter().find(|(k, kind)| *k == key && welcome(kind)) {
                Some((_, kind)) => answer("200", "OK", kind.name()),
                None if admitted.iter().any(|(k, _)| *k == key) => {
                    answer("400", "the field key does not reach this endpoint", "")
                }
                None => answer("400", "its key is not this robot's team or field key", ""),
            }
        }
        _ => answer("400", "CURVE required", ""),
    }
}

/// Which mechanism a socket uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// No security: ipc, inproc, and loopback TCP without a team key.
    Plain,
    /// A CURVE server (TCP with a team key) admitting the team key only.
    CurveServer,
    /// A CURVE server admitting the team and the field key: the router's client side,
    /// which limits what the field key reaches there.
    CurveServerWithField,
}

/// Splits the addresses one socket would bind into those a plain socket binds and those a
/// CURVE server binds (see the module doc); without a key, narrows wildcards to loopback.
///
/// # Errors
/// A non-loopback TCP address without a team key.
pub fn partition_binds(
    addresses: &[String],
) -> Result<[(Mechanism, Vec<String>); 2], EndpointError> {
    let mut plain = Vec::new();
    let mut curve = Vec::new();
    for address in addresses {
        let Some(rest) = address.strip_prefix("tcp://") else {
            plain.push(address.clone());
            continue;
        };
        if has_server_key() {
            curve.push(address.clone());
            continue;
        }
        let (host, port) = rest.rsplit_once(':').unwrap_or((rest, ""));
        match host {
            "*" | "0.0.0.0" => {
                let narrowed = format!("tcp://127.0.0.1:{port}");
                tracing::warn!(address = %address, bound = %narrowed, "no team key (--key-file): binding TCP to loopback only, so other machines cannot reach it");
                plain.push(narrowed);
            }
            "127.0.0.1" | "localhost" | "[::1]" => plain.push(address.clone()),
            h if h.starts_with("127.") => plain.push(address.clone()),
            _ => {
                return Err(EndpointError::Address {
                    what: "bind",
                    address: address.clone(),
                    reason: "a TCP endpoint other machines can reach needs the team key (--key-file); without one bind 127.0.0.1".into(),
                })
            }
        }
    }
    Ok([(Mechanism::Plain, plain), (Mechanism::CurveServer, curve)])
}

/// Makes `socket` a CURVE server of this process (before it binds), admitting the field
/// key too when `mechanism` says so; a `Plain` mechanism leaves it alone.
pub(crate) fn make_server(socket: &zmq::Socket, mechanism: Mechanism) -> Result<(), EndpointError> {
    let domain = match mechanism {
        Mechanism::Plain => return Ok(()),
        Mechanism::CurveServer => ZAP_DOMAIN,
        Mechanism::CurveServerWithField => ZAP_DOMAIN_WITH_FIELD,
    };
    let Some(server) = security().server.as_ref() else {
        return Err(EndpointError::Socket {
            what: "make a CURVE server",
            reason: "no team key is configured".into(),
        });
    };
    socket
        .set_zap_domain(domain)
        .map_err(EndpointError::zmq("set ZMQ_ZAP_DOMAIN"))?;
    socket
        .set_curve_server(true)
        .map_err(EndpointError::zmq("set ZMQ_CURVE_SERVER"))?;
    socket
        .set_curve_secretkey(&server.secret)
        .map_err(EndpointError::zmq("set ZMQ_CURVE_SECRETKEY"))
}

/// Prepares `socket` to connect to `address`: a CURVE client for TCP when this process
/// holds a key, plain otherwise.
pub(crate) fn prepare_connect(socket: &zmq::Socket, address: &str) -> Result<(), EndpointError> {
    if !address.starts_with("tcp://") {
        return Ok(());
    }
    let s = security();
    let (Some(server), Some(client)) = (s.server.as_ref(), s.client.as_ref()) else {
        return Ok(());
    };
    socket
        .set_curve_serverkey(&server.public)
        .map_err(EndpointError::zmq("set ZMQ_CURVE_SERVERKEY"))?;
    socket
        .set_curve_publickey(&client.public)
        .map_err(EndpointError::zmq("set ZMQ_CURVE_PUBLICKEY"))?;
    socket
        .set_curve_secretkey(&client.secret)
        .map_err(EndpointError::zmq("set ZMQ_CURVE_SECRETKEY"))
}

/// The user a message's connection was admitted as (`team`, `field`), from the ZAP
/// handler's answer; `None` on plain connections.
pub(crate) fn user_of(msg: &mut zmq::Message) -> Option<KeyKind> {
    match msg.gets("User-Id")? {
        "team" => Some(KeyKind::Team),
        "field" => Some(KeyKind::Field),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libzmq_has_curve_and_derived_pairs_are_stable() {
        assert!(zmq::has("curve").unwrap_or(false), "libzmq without CURVE");
        let team = Key::from_bytes(KeyKind::Team, [9; 32]);
        let a = CurvePair::server(&team).unwrap();
        assert_eq!(a, CurvePair::server(&team).unwrap());
        assert_ne!(a.public, CurvePair::client(&team).unwrap().public);
        assert_eq!(z85(&a.public).len(), 40);
    }

    #[test]
    fn zap_admits_the_team_and_field_keys_only() {
        let team = [1u8; 32];
        let admitted = [(team, KeyKind::Team)];
        let req = |mech: &[u8], key: &[u8]| req_in(ZAP_DOMAIN, mech, key);
        let ok = zap_reply(&req(b"CURVE", &team), &admitted);
        assert_eq!(
            (ok[1].as_slice(), ok[2].as_slice(), ok[4].as_slice()),
            (&b"7"[..], &b"200"[..], &b"team"[..])
        );
        assert_eq!(zap_reply(&req(b"CURVE", &[2; 32]), &admitted)[2], b"400");
        assert_eq!(zap_reply(&req(b"NULL", b""), &admitted)[2], b"400");
    }

    #[test]
    fn zap_admits_the_field_key_only_where_the_socket_says_so() {
        let (team, field) = ([1u8; 32], [3u8; 32]);
        let admitted = [(team, KeyKind::Team), (field, KeyKind::Field)];
        let reply = |domain, key: &[u8; 32]| zap_reply(&req_in(domain, b"CURVE", key), &admitted);
        assert_eq!(
            reply(ZAP_DOMAIN, &field)[2],
            b"400",
            "the logs, the router's services"
        );
        assert_eq!(reply(ZAP_DOMAIN_WITH_FIELD, &field)[4], b"field");
        assert_eq!(reply(ZAP_DOMAIN_WITH_FIELD, &team)[4], b"team");
        assert_eq!(reply(ZAP_DOMAIN, &team)[4], b"team");
    }

    fn req_in(domain: &str, mech: &[u8], key: &[u8]) -> Vec<Vec<u8>> {
        vec![
            b"1.0".to_vec(),
            b"7".to_vec(),
            domain.as_bytes().to_vec(),
            b"10.0.0.9".to_vec(),
            Vec::new(),
            mech.to_vec(),
            key.to_vec(),
        ]
    }
}
