//! File-descriptor passing over Unix sockets (`SCM_RIGHTS`).
//!
//! QEMU takes file descriptors for `add-fd` and `getfd` from the ancillary data of the
//! monitor socket, and hands them to the next command that asks for one. The fds must
//! therefore travel in the same `sendmsg(2)` as (the start of) the command that uses
//! them: [`send_with_fds`] does exactly that. [`recv_with_fds`] is the receiving side,
//! used by tests and fake servers.
//!
//! Everything here goes through `rustix`'s safe wrappers; this crate has no `unsafe`.

use core::mem::MaybeUninit;
use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// Most file descriptors one message may carry.
///
/// QEMU's socket chardev accepts at most 16 per message (`TCP_MAX_FDS`) and silently
/// closes any beyond that, so a larger batch is refused here instead.
pub const MAX_FDS_PER_MESSAGE: usize = 16;

/// Bytes of control buffer needed for [`MAX_FDS_PER_MESSAGE`] descriptors.
const CONTROL_SPACE: usize = rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE));

/// Sends all of `bytes` on the Unix socket `socket`, attaching `fds` to the first chunk.
///
/// The descriptors go out with the first `sendmsg(2)`; if the kernel takes only part of
/// `bytes`, the rest follows with plain sends (without descriptors), so the receiver sees
/// the descriptors arrive together with the first byte of the message. An empty `fds`
/// degrades to a plain `write_all`. `SIGPIPE` is suppressed: a closed peer gives an
/// [`io::ErrorKind::BrokenPipe`] error.
///
/// # Errors
/// [`io::ErrorKind::InvalidInput`] if `fds` has more than [`MAX_FDS_PER_MESSAGE`]
/// entries or if `bytes` is empty while `fds` is not (descriptors need at least one byte
/// to ride on); otherwise any error of `sendmsg(2)`.
pub fn send_with_fds(socket: impl AsFd, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let socket = socket.as_fd();
    if bytes.is_empty() && fds.is_empty() {
        return Ok(());
    }
    let mut sent = send_once_with_fds(socket, bytes, fds)?;
    while sent < bytes.len() {
        let rest = bytes.get(sent..).unwrap_or_default();
        sent += send_once_with_fds(socket, rest, &[])?;
    }
    Ok(())
}

/// One `sendmsg(2)` of (a prefix of) `bytes` with `fds` attached; returns the bytes the
/// kernel took. On a non-blocking socket that has no room it fails with
/// [`io::ErrorKind::WouldBlock`] and nothing (descriptors included) is sent.
pub(crate) fn send_once_with_fds(
    socket: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    if fds.len() > MAX_FDS_PER_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "cannot pass {} file descriptors in one message (at most {MAX_FDS_PER_MESSAGE})",
                fds.len()
            ),
        ));
    }
    if bytes.is_empty() && !fds.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "file descriptors need at least one byte of message to travel with",
        ));
    }
    let mut space = [MaybeUninit::<u8>::uninit(); CONTROL_SPACE];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other(
            "control buffer too small for the descriptors",
        ));
    }
    loop {
        match sendmsg(
            socket,
            &[IoSlice::new(bytes)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Ok(0) if !bytes.is_empty() => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "socket accepted no bytes",
                ))
            }
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INTR) => {}
            Err(errno) => return Err(errno.into()),
        }
    }
}

/// Receives bytes from the Unix socket `socket` into `buf`, collecting any file
/// descriptors that arrive with them into `fds`.
///
/// Returns the number of bytes read (0 at end of stream). Descriptors are received with
/// `MSG_CMSG_CLOEXEC`. If the sender attached more than [`MAX_FDS_PER_MESSAGE`]
/// descriptors the kernel truncates the control data; that is reported as an
/// [`io::ErrorKind::InvalidData`] error (the descriptors that did arrive are kept in
/// `fds` and closed when dropped).
///
/// # Errors
/// Any error of `recvmsg(2)` (interrupted calls are retried), or the truncation above.
pub fn recv_with_fds(
    socket: impl AsFd,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    let socket = socket.as_fd();
    let mut space = [MaybeUninit::<u8>::uninit(); CONTROL_SPACE];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = loop {
        let mut iov = [IoSliceMut::new(buf)];
        match recvmsg(socket, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Ok(received) => break received,
            Err(rustix::io::Errno::INTR) => {}
            Err(errno) => return Err(errno.into()),
        }
    };
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received_fds) = message {
            fds.extend(received_fds);
        }
    }
    if received.flags.contains(rustix::net::ReturnFlags::CTRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "file descriptors were dropped: control data truncated",
        ));
    }
    Ok(received.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn pipe_fd_travels_with_the_bytes_and_stays_usable() {
        let (sender, receiver) = UnixStream::pair().unwrap();
        let (pipe_read, pipe_write) = rustix::pipe::pipe().unwrap();

        send_with_fds(&sender, b"add-fd", &[pipe_write.as_fd()]).unwrap();
        drop(pipe_write);

        let mut buf = [0u8; 64];
        let mut fds = Vec::new();
        let n = recv_with_fds(&receiver, &mut buf, &mut fds).unwrap();
        assert_eq!(&buf[..n], b"add-fd");
        assert_eq!(fds.len(), 1);

        let mut received_write_end = File::from(fds.pop().unwrap());
        received_write_end
            .write_all(b"through the passed fd")
            .unwrap();
        drop(received_write_end);

        let mut out = String::new();
        File::from(pipe_read).read_to_string(&mut out).unwrap();
        assert_eq!(out, "through the passed fd");
    }

    #[test]
    fn several_fds_arrive_in_order() {
        let (sender, receiver) = UnixStream::pair().unwrap();
        let pipes: Vec<(OwnedFd, OwnedFd)> =
            (0..3).map(|_| rustix::pipe::pipe().unwrap()).collect();
        let write_ends: Vec<BorrowedFd<'_>> = pipes.iter().map(|(_, w)| w.as_fd()).collect();
        send_with_fds(&sender, b"x", &write_ends).unwrap();

        let mut buf = [0u8; 8];
        let mut fds = Vec::new();
        assert_eq!(recv_with_fds(&receiver, &mut buf, &mut fds).unwrap(), 1);
        assert_eq!(fds.len(), 3);
        for (index, fd) in fds.into_iter().enumerate() {
            File::from(fd).write_all(&[b'0' + index as u8]).unwrap();
        }
        for (index, (read_end, write_end)) in pipes.into_iter().enumerate() {
            drop(write_end);
            let mut out = Vec::new();
            File::from(read_end).read_to_end(&mut out).unwrap();
            assert_eq!(out, [b'0' + index as u8]);
        }
    }

    #[test]
    fn plain_bytes_without_fds_are_a_normal_send() {
        let (sender, mut receiver) = UnixStream::pair().unwrap();
        send_with_fds(&sender, b"hello", &[]).unwrap();
        let mut buf = [0u8; 5];
        receiver.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
    }

    #[test]
    fn too_many_fds_are_refused_before_sending() {
        let (sender, _receiver) = UnixStream::pair().unwrap();
        let (_r, w) = rustix::pipe::pipe().unwrap();
        let fds = vec![w.as_fd(); MAX_FDS_PER_MESSAGE + 1];
        let err = send_with_fds(&sender, b"x", &fds).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("17"), "{err}");
    }

    #[test]
    fn fds_without_bytes_are_refused() {
        let (sender, _receiver) = UnixStream::pair().unwrap();
        let (_r, w) = rustix::pipe::pipe().unwrap();
        let err = send_with_fds(&sender, b"", &[w.as_fd()]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn closed_peer_is_broken_pipe_not_sigpipe() {
        let (sender, receiver) = UnixStream::pair().unwrap();
        drop(receiver);
        let err = send_with_fds(&sender, b"x", &[]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
