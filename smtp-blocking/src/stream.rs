//! The socket: plain TCP, or TLS over it.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

pub(crate) enum Stream {
    Plain(TcpStream),
    #[cfg(feature = "rustls")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    /// Gone: taken for the TLS upgrade that failed, or never there.
    Closed,
}

impl Stream {
    pub(crate) fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Plain(tcp) => Some(tcp),
            #[cfg(feature = "rustls")]
            Stream::Tls(tls) => Some(&tls.sock),
            Stream::Closed => None,
        }
    }

    /// The TLS connection, once the handshake succeeded.
    #[cfg(feature = "rustls")]
    pub(crate) fn tls(&self) -> Option<&rustls::ClientConnection> {
        match self {
            Stream::Tls(tls) => Some(&tls.conn),
            _ => None,
        }
    }

    pub(crate) fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.tcp().map_or(Err(not_connected()), |tcp| {
            tcp.set_read_timeout(Some(at_least_1ms(timeout)))
        })
    }

    pub(crate) fn set_write_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.tcp().map_or(Err(not_connected()), |tcp| {
            tcp.set_write_timeout(Some(at_least_1ms(timeout)))
        })
    }

    /// Reads once, by `deadline`. Plaintext is one socket read (the caller
    /// set its timeout). TLS is driven one socket read at a time until a
    /// record yields plaintext, each read bounded by what is left until
    /// `deadline`: rustls' own `read` keeps reading for as long as bytes
    /// trickle in, so a peer dripping a record a byte at a time would hold it
    /// far past the stage's timeout. `Ok(0)` at end of stream.
    #[cfg_attr(not(feature = "rustls"), allow(unused_variables))]
    pub(crate) fn read_before(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            #[cfg(feature = "rustls")]
            Stream::Tls(tls) => loop {
                match tls.conn.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    Err(err) => return Err(err),
                }
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                if tls.conn.wants_write() {
                    // An alert or a key update rustls has to send first.
                    tls.sock.set_write_timeout(Some(at_least_1ms(remaining)))?;
                    tls.conn.write_tls(&mut tls.sock)?;
                    continue;
                }
                tls.sock.set_read_timeout(Some(at_least_1ms(remaining)))?;
                match tls.conn.read_tls(&mut tls.sock) {
                    Ok(_) => {
                        // At end of stream too: the reader then says whether
                        // close_notify came (Ok(0)) or not (UnexpectedEof).
                        tls.conn
                            .process_new_packets()
                            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
                    }
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(err),
                }
            },
            Stream::Closed => Err(not_connected()),
        }
    }

    /// Reads what has already arrived, plaintext or TLS (decrypted), without
    /// waiting: `Ok(None)` when nothing is there, `Ok(Some(0))` at end of
    /// stream (for TLS without close_notify: `UnexpectedEof`).
    pub(crate) fn read_now(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let tcp = self.tcp().ok_or_else(not_connected)?;
        tcp.set_nonblocking(true)?;
        let read = self.read_available(buf);
        let restored = self.tcp().map(|tcp| tcp.set_nonblocking(false));
        let read = match read {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(None),
            other => other.map(Some),
        };
        restored.transpose()?;
        read
    }

    /// One read on a non-blocking socket; for TLS, socket reads until a
    /// record yields plaintext or the socket has no more.
    fn read_available(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self {
                Stream::Plain(tcp) => match tcp.read(buf) {
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    other => return other,
                },
                #[cfg(feature = "rustls")]
                Stream::Tls(tls) => {
                    match tls.conn.reader().read(buf) {
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                        other => return other,
                    }
                    match tls.conn.read_tls(&mut tls.sock) {
                        Ok(_) => {
                            tls.conn
                                .process_new_packets()
                                .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
                        }
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                        Err(err) => return Err(err),
                    }
                }
                Stream::Closed => return Err(not_connected()),
            }
        }
    }

    /// Writes some of `buf` with at most one socket write: plaintext as is;
    /// TLS by handing what rustls takes to it and sending at most one
    /// socket write of its records (`StreamOwned` would loop inside rustls
    /// for as long as a slow reader takes a byte per timeout). The number of
    /// bytes of `buf` taken; never `Ok(0)` while `buf` or rustls' records
    /// wait to be written.
    pub(crate) fn write_once(&mut self, buf: &[u8]) -> io::Result<usize> {
        let taken = match self {
            Stream::Plain(tcp) => tcp.write(buf)?,
            #[cfg(feature = "rustls")]
            Stream::Tls(tls) => {
                let taken = tls.conn.writer().write(buf)?;
                if !tls.conn.wants_write() {
                    // Nothing to send: rustls took all of `buf` or none.
                    if taken == 0 && !buf.is_empty() {
                        return Err(io::ErrorKind::WriteZero.into());
                    }
                } else if tls.conn.write_tls(&mut tls.sock)? == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                return Ok(taken);
            }
            Stream::Closed => return Err(not_connected()),
        };
        if taken == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WriteZero.into());
        }
        Ok(taken)
    }

    /// Whether TLS records wait to be written.
    pub(crate) fn wants_write(&self) -> bool {
        #[cfg(feature = "rustls")]
        if let Stream::Tls(tls) = self {
            return tls.conn.wants_write();
        }
        false
    }

    /// Whether reads set the socket's timeouts themselves (TLS).
    pub(crate) fn sets_own_timeouts(&self) -> bool {
        #[cfg(feature = "rustls")]
        if let Stream::Tls(_) = self {
            return true;
        }
        false
    }

    /// Closes both directions without waiting; errors are of no interest.
    pub(crate) fn shutdown(&self) {
        if let Some(tcp) = self.tcp() {
            let _ = tcp.shutdown(Shutdown::Both);
        }
    }
}

/// std refuses a zero timeout; the shortest one it takes stands in for it.
pub(crate) fn at_least_1ms(timeout: Duration) -> Duration {
    timeout.max(Duration::from_millis(1))
}

fn not_connected() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the connection is closed")
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            #[cfg(feature = "rustls")]
            Stream::Tls(tls) => tls.read(buf),
            Stream::Closed => Err(not_connected()),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            #[cfg(feature = "rustls")]
            Stream::Tls(tls) => tls.write(buf),
            Stream::Closed => Err(not_connected()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            #[cfg(feature = "rustls")]
            Stream::Tls(tls) => tls.flush(),
            Stream::Closed => Err(not_connected()),
        }
    }
}
