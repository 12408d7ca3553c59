//! Receiving control datagrams in batches: one `recvmmsg(2)` takes up to [`BATCH`]
//! datagrams, so that a flood of junk at the control port (another team's laptop, a
//! misconfigured sender) costs one system call per batch instead of one per datagram and
//! the driver's datagrams are not dropped from a full socket queue. Measured in
//! tests/auth.rs: a flood of about 90 000 datagrams per second.

use std::io;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;

use pitcrew::control::MAX_DATAGRAM_BYTES;

/// Datagrams taken per system call.
pub const BATCH: usize = 32;
/// The receive buffer asked for: room for a burst of about 100 ms of a heavy flood. The
/// kernel caps it at `net.core.rmem_max`.
pub const RECEIVE_BUFFER_BYTES: usize = 4 << 20;

/// Buffers for one batch.
pub struct Batch {
    bufs: Vec<[u8; MAX_DATAGRAM_BYTES + 1]>,
    lens: [usize; BATCH],
    peers: [Option<SocketAddr>; BATCH],
    n: usize,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            bufs: vec![[0u8; MAX_DATAGRAM_BYTES + 1]; BATCH],
            lens: [0; BATCH],
            peers: [None; BATCH],
            n: 0,
        }
    }
}

/// Asks for a large receive buffer on `socket` (best effort: a smaller one still works).
pub fn enlarge_receive_buffer(socket: &UdpSocket) {
    let size = libc::c_int::try_from(RECEIVE_BUFFER_BYTES).unwrap_or(libc::c_int::MAX);
    // SAFETY: `size` is a valid c_int that outlives the call, and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::warn!(error = %io::Error::last_os_error(), "cannot enlarge the control socket's receive buffer");
    }
}

impl Batch {
    /// Receives the datagrams waiting on the non-blocking `socket` (at most [`BATCH`]);
    /// `Ok(0)` when none is waiting.
    ///
    /// # Errors
    /// A receive error other than "nothing waiting".
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let mut addrs: [MaybeUninit<libc::sockaddr_storage>; BATCH] =
            [MaybeUninit::zeroed(); BATCH];
        let mut iovecs: [libc::iovec; BATCH] = std::array::from_fn(|i| libc::iovec {
            iov_base: self.bufs[i].as_mut_ptr().cast(),
            iov_len: self.bufs[i].len(),
        });
        // SAFETY: an all-zero mmsghdr is a valid value (null pointers, zero lengths).
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, h) in headers.iter_mut().enumerate() {
            h.msg_hdr.msg_name = addrs[i].as_mut_ptr().cast();
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            h.msg_hdr.msg_iov = &mut iovecs[i];
            h.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `headers` holds BATCH valid mmsghdrs, each pointing at its own iovec (into
        // a buffer of `iov_len` bytes) and address storage, all alive for the call.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            self.n = 0;
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(0)
            } else {
                Err(e)
            };
        }
        self.n = n as usize;
        for i in 0..self.n {
            self.lens[i] = (headers[i].msg_len as usize).min(MAX_DATAGRAM_BYTES + 1);
            // SAFETY: the kernel filled `msg_namelen` bytes of address storage i.
            self.peers[i] = unsafe { to_socket_addr(addrs[i].assume_init_ref()) };
        }
        Ok(self.n)
    }

    /// The datagrams of the last [`Batch::recv`], with their senders.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        (0..self.n).filter_map(|i| Some((&self.bufs[i][..self.lens[i]], self.peers[i]?)))
    }
}

/// The socket address in `storage` (IPv4 or IPv6).
///
/// # Safety
/// `storage` must hold an address the kernel wrote (its family field is valid).
unsafe fn to_socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says it is a sockaddr_in, which fits in the storage.
            let a =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                u32::from_be(a.sin_addr.s_addr).into(),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says it is a sockaddr_in6, which fits in the storage.
            let a = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Some(SocketAddr::V6(SocketAddrV6::new(
                a.sin6_addr.s6_addr.into(),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}
