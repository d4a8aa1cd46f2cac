//! The tokio backend: [`Client`] over `tokio::net::TcpStream` and
//! `tokio-rustls` (the [`Tokio`] backend of the generic [`crate::Client`]).
//!
//! Needs a tokio runtime with the I/O and time drivers enabled
//! (`#[tokio::main]`, or a `Builder` with `enable_all()`). Every future is
//! `Send`, so operations can run in `tokio::spawn`.

use crate::client::{self, Backend, Dial};
use crate::driver::{gone, poll_once, Dialer, PollBody, Transport, Wrap};

use ::tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use ::tokio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// An SMTP connection on tokio, ready for messages once connected:
/// [`crate::Client`] over the [`Tokio`] backend.
///
/// `Send`, and every operation's future is `Send`. Dropping an operation's
/// future part-way leaves the client [poisoned](crate::Error::Poisoned): it refuses
/// further use and [`Client::is_usable`] is false.
pub type Client = client::Client<Tokio>;

/// The tokio backend of [`Client`]: tokio's `TcpStream`, and `tokio-rustls`
/// over it once TLS is on. Made by [`Client::connect`] and
/// [`Client::connect_to`].
#[derive(Debug)]
pub struct Tokio {
    stream: Stream,
}

type Stream = crate::driver::Stream<TcpStream, TlsStream<TcpStream>>;

impl Backend for Tokio {}
impl Dial for Tokio {}

impl Client {
    client::reader_methods!(AsyncRead, TokioBody, TokioReaders);
}

/// A tokio reader as the driver polls it.
pub(crate) struct TokioBody<R>(R);

/// Wraps the readers of a batch as [`TokioBody`].
pub(crate) enum TokioReaders {}

impl Wrap for TokioReaders {
    type Body<R> = TokioBody<R>;

    fn wrap<R>(body: R) -> TokioBody<R> {
        TokioBody(body)
    }
}

impl<R: AsyncRead + Unpin> PollBody for TokioBody<R> {
    fn poll_body(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut buf = ReadBuf::new(buf);
        match Pin::new(&mut self.0).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.filled().len())),
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The stream the I/O goes through: plaintext or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl Tokio {
    fn io(&mut self) -> io::Result<&mut dyn Io> {
        match &mut self.stream {
            Stream::Plain(tcp) => Ok(tcp),
            Stream::Tls(tls) => Ok(&mut **tls),
            Stream::Gone => Err(gone()),
        }
    }
}

impl Dialer for Tokio {
    async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok(::tokio::net::lookup_host((host, port)).await?.collect())
    }

    async fn dial(address: SocketAddr) -> io::Result<Tokio> {
        let tcp = TcpStream::connect(address).await?;
        client::nodelay(tcp.set_nodelay(true));
        Ok(Tokio {
            stream: Stream::Plain(tcp),
        })
    }
}

impl Transport for Tokio {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.io()?.read(buf).await
    }

    async fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.io()?.write(buf).await
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.io()?.flush().await
    }

    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let Some(tcp) = self.stream.plain() else {
            return Ok(None);
        };
        // Ask the kernel directly: tokio's readiness flag may not yet know
        // about bytes that arrived since the last read.
        let socket = socket2::SockRef::from(&*tcp);
        let mut socket: &socket2::Socket = &socket;
        loop {
            match io::Read::read(&mut socket, buf) {
                Ok(n) => return Ok(Some(n)),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
        }
    }

    fn read_ready(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let tls = match &mut self.stream {
            Stream::Plain(_) => return self.read_now(buf),
            Stream::Tls(tls) => tls,
            Stream::Gone => return Err(gone()),
        };
        // rustls reads the socket and decrypts inside one poll; tokio's
        // reactor has seen the socket's readiness while the connection idled.
        poll_once(|cx| {
            let mut read = ReadBuf::new(buf);
            Pin::new(&mut **tls)
                .poll_read(cx, &mut read)
                .map_ok(|()| read.filled().len())
        })
    }

    async fn upgrade(
        &mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<()> {
        let tcp = self.stream.take_plain()?;
        let tls = TlsConnector::from(config).connect(name, tcp).await?;
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    fn close(&mut self) {
        self.stream = Stream::Gone;
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self.io() {
            Ok(io) => io.shutdown().await,
            Err(_) => Ok(()),
        }
    }

    async fn catch_up() {
        // A yielded task runs again only after the driver has polled the
        // sockets' readiness without waiting.
        ::tokio::task::yield_now().await;
    }

    async fn timeout<F>(duration: Duration, future: F) -> Option<F::Output>
    where
        F: Future + Send,
        F::Output: Send,
    {
        ::tokio::time::timeout(duration, future).await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The STARTTLS check must see bytes that reached the kernel after tokio
    /// last polled the socket (its readiness flag may be stale after a short read).
    #[test]
    fn read_now_sees_bytes_tokio_was_not_told_about() {
        let runtime = ::tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let tcp = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (mut peer, _) = listener.accept().unwrap();
            let mut transport = Tokio {
                stream: Stream::Plain(tcp),
            };
            let mut buf = [0; 64];
            assert_eq!(transport.read_now(&mut buf).unwrap(), None);
            peer.write_all(b"220 go ahead\r\n").unwrap();
            assert_eq!(transport.read(&mut buf).await.unwrap(), 14);
            // No await from here on: tokio's driver does not run.
            peer.write_all(b"250 injected\r\n").unwrap();
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(transport.read_now(&mut buf).unwrap(), Some(14));
            assert_eq!(&buf[..14], b"250 injected\r\n");
            drop(peer);
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(transport.read_now(&mut buf).unwrap(), Some(0));
        });
    }
}
