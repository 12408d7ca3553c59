//! Listening to the device update multicast (spec/wire.md, "Device updates"): the socket
//! every reader of the stream joins with — `pitcrew watch`, the dashboard.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

/// A non-blocking socket joined to `group` on `interface`, on a shared port (`SO_REUSEPORT`)
/// so that several readers listen side by side. Must be called inside a tokio runtime.
///
/// # Errors
/// Socket errors, each message naming the group, port or interface.
pub fn join(group: SocketAddrV4, interface: Ipv4Addr) -> std::io::Result<UdpSocket> {
    let named = |what: String| {
        move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{what}: {e}"))
    };
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(named("cannot create a UDP socket".into()))?;
    socket
        .set_reuse_address(true)
        .map_err(named("SO_REUSEADDR".into()))?;
    socket
        .set_reuse_port(true)
        .map_err(named("SO_REUSEPORT".into()))?;
    socket
        .bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, group.port())).into())
        .map_err(named(format!("cannot bind UDP port {}", group.port())))?;
    socket
        .join_multicast_v4(group.ip(), &interface)
        .map_err(named(format!(
            "cannot join {} on interface {interface}",
            group.ip()
        )))?;
    socket
        .set_nonblocking(true)
        .map_err(named("non-blocking".into()))?;
    UdpSocket::from_std(socket.into())
}
