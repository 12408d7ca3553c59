//! Receiving control datagrams in batches: one `recvmmsg(2)` takes up to [`BATCH`]
//! datagrams, so that a flood of junk at the control port (another team's laptop, a
//! misconfigured sender) costs one system call per batch instead of one per datagram and
//! the driver's datagrams are not dropped from a full socket queue.
//!
//! What a flood costs is mostly the kernel's and the wake-ups', not the checks': the
//! receiver wakes, takes what is queued and sleeps again. So the headers of a batch are
//! made once (not per call), a batch that did not fill the call is taken to have emptied
//! the queue (no second call to learn that it is empty), and the socket gets a receive
//! buffer that holds a burst of junk while the flood guard starts. Measured with
//! `control_bench flood`.

use std::io;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;

use pitcrew::control::MAX_DATAGRAM_BYTES;

/// Datagrams taken per system call.
pub const BATCH: usize = 64;
/// The receive buffer asked for (the kernel doubles it, to about 1 600 small datagrams:
/// it charges each about 1.3 KiB): room for the junk of the few milliseconds the flood
/// guard (`receive::flood`) takes to have the kernel drop it, and for bursts. Not more: the
/// driver's datagrams wait behind every datagram queued before them, and a long queue of
/// junk (8 MiB held 50 ms of it here) made them late past the control timeout. Without
/// CAP_NET_ADMIN the kernel caps it at `net.core.rmem_max` (208 KiB on a stock Debian or
/// Raspberry Pi OS, which still holds 300 datagrams).
pub const RECEIVE_BUFFER_BYTES: usize = 1 << 20;
/// Below this receive buffer the receiver warns at start.
const SMALL_RECEIVE_BUFFER: usize = 256 << 10;

/// Buffers and `recvmmsg` headers for one batch, made once. The headers point into the
/// other vectors' heap storage, which never moves (their lengths never change), so the
/// batch itself may move.
pub struct Batch {
    bufs: Vec<[u8; MAX_DATAGRAM_BYTES + 1]>,
    addrs: Vec<MaybeUninit<libc::sockaddr_storage>>,
    /// Only kept alive: the headers point at them.
    _iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    lens: [usize; BATCH],
    peers: [Option<SocketAddr>; BATCH],
    n: usize,
}

impl Default for Batch {
    fn default() -> Self {
        let mut bufs = vec![[0u8; MAX_DATAGRAM_BYTES + 1]; BATCH];
        let mut addrs = vec![MaybeUninit::<libc::sockaddr_storage>::zeroed(); BATCH];
        let mut iovecs: Vec<libc::iovec> = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        let headers = iovecs
            .iter_mut()
            .zip(addrs.iter_mut())
            .map(|(iov, addr)| {
                // SAFETY: an all-zero mmsghdr is a valid value (null pointers, zero lengths).
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_name = addr.as_mut_ptr().cast();
                h.msg_hdr.msg_iov = iov;
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        Batch {
            bufs,
            addrs,
            _iovecs: iovecs,
            headers,
            lens: [0; BATCH],
            peers: [None; BATCH],
            n: 0,
        }
    }
}

/// Asks for a receive buffer of [`RECEIVE_BUFFER_BYTES`] on `socket`: beyond
/// `net.core.rmem_max` when the process may (CAP_NET_ADMIN), else within it. Best effort:
/// a smaller one still works. Returns the size the kernel gave (it doubles the value asked
/// for, for its bookkeeping).
pub fn enlarge_receive_buffer(socket: &UdpSocket) -> usize {
    let size = libc::c_int::try_from(RECEIVE_BUFFER_BYTES).unwrap_or(libc::c_int::MAX);
    let set = |option| {
        // SAFETY: `size` is a valid c_int that outlives the call, and its size is passed.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    if set(libc::SO_RCVBUFFORCE) != 0 && set(libc::SO_RCVBUF) != 0 {
        tracing::warn!(error = %io::Error::last_os_error(), "cannot enlarge the control socket's receive buffer");
    }
    let mut got: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `got` and `len` are valid out-pointers for the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut got as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    let got = if rc == 0 {
        usize::try_from(got).unwrap_or(0)
    } else {
        0
    };
    if got < SMALL_RECEIVE_BUFFER {
        tracing::warn!(
            receive_buffer_bytes = got,
            "the control socket's receive buffer is small: a flood of junk can push the driver's datagrams out; raise net.core.rmem_max (sysctl -w net.core.rmem_max=1048576) or give the receiver CAP_NET_ADMIN"
        );
    } else {
        tracing::info!(receive_buffer_bytes = got, "control socket receive buffer");
    }
    got
}

impl Batch {
    /// Receives the datagrams waiting on the non-blocking `socket` (at most [`BATCH`]);
    /// `Ok(0)` when none is waiting. Fewer than [`BATCH`] means the queue was emptied.
    ///
    /// # Errors
    /// A receive error other than "nothing waiting".
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        for h in &mut self.headers {
            // The kernel writes the length of each address it stores.
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
        }
        // SAFETY: `headers` holds BATCH valid mmsghdrs, each pointing at its own iovec (into
        // a buffer of `iov_len` bytes) and address storage, all owned by `self` and alive
        // for the call.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
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
        self.n = usize::try_from(n).unwrap_or(0).min(BATCH);
        for i in 0..self.n {
            self.lens[i] = (self.headers[i].msg_len as usize).min(MAX_DATAGRAM_BYTES + 1);
            // SAFETY: the kernel filled `msg_namelen` bytes of address storage i.
            self.peers[i] = unsafe { to_socket_addr(self.addrs[i].assume_init_ref()) };
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
