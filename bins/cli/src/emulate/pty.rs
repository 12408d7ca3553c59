//! A pseudo-terminal for an emulated device: the master side is the device's wire, the slave
//! side (a real tty the broker opens like a USB serial port) is linked as `DIR/ttyEMU<n>`.
//! The link is removed when the [`Pty`] is dropped.

use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// An open pseudo-terminal pair and its link.
#[derive(Debug)]
pub struct Pty {
    /// The device side.
    pub master: File,
    /// Kept open so the line stays up (and raw) while the broker reconnects.
    _slave: OwnedFd,
    link: PathBuf,
}

impl Pty {
    /// Opens a raw pseudo-terminal and links its slave as `dir/ttyEMU<index>`.
    ///
    /// # Errors
    /// OS errors of openpty, termios, or the link.
    pub fn open(dir: &Path, index: usize) -> std::io::Result<Pty> {
        let (mut master, mut slave) = (-1, -1);
        // SAFETY: openpty writes two descriptors into the given ints; the name, termios and
        // winsize pointers may be null.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just returned by openpty and are owned by nobody else.
        let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        raw(&slave)?;
        let target = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&slave)
        ))?;
        let link = dir.join(format!("ttyEMU{index}"));
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link)?;
        Ok(Pty {
            master,
            _slave: slave,
            link,
        })
    }

    /// The link path the broker discovers.
    pub fn link(&self) -> &Path {
        &self.link
    }
}

/// Puts the line in raw mode so nothing is echoed or translated before the broker opens it.
fn raw(fd: &OwnedFd) -> std::io::Result<()> {
    let fd = std::os::fd::AsRawFd::as_raw_fd(fd);
    // SAFETY: termios is plain data; tcgetattr fills it, cfmakeraw edits it in place and
    // tcsetattr reads it; `fd` is an open tty descriptor.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut t) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::cfmakeraw(&mut t);
        if libc::tcsetattr(fd, libc::TCSANOW, &t) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.link);
    }
}

/// The master side as an async byte stream (non-blocking descriptor driven by the reactor).
#[derive(Debug)]
pub struct PtyStream {
    fd: tokio::io::unix::AsyncFd<File>,
}

impl PtyStream {
    /// Registers a clone of `pty`'s master with the runtime.
    ///
    /// # Errors
    /// OS errors of dup, fcntl or registration.
    pub fn new(pty: &Pty) -> std::io::Result<PtyStream> {
        let file = pty.master.try_clone()?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        // SAFETY: fcntl on a descriptor we own; only the O_NONBLOCK flag is added.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        // SAFETY: `file` owns its descriptor, which stays open and unchanged until the
        // `AsyncFd` (which takes ownership of `file`) is dropped.
        let fd = unsafe { tokio::io::unix::AsyncFd::register(file) }
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(PtyStream { fd })
    }
}

impl tokio::io::AsyncRead for PtyStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::io::Read;
        loop {
            let mut guard = std::task::ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|inner| inner.get_ref().read(unfilled)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return std::task::Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return std::task::Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl tokio::io::AsyncWrite for PtyStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::io::Write;
        loop {
            let mut guard = std::task::ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|inner| inner.get_ref().write(data)) {
                Ok(result) => return std::task::Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
