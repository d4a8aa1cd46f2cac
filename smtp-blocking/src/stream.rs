//! The socket: plain TCP, or TLS over it.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

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
