//! The futures-io backend: [`Client`] over any `futures-io` stream with
//! `futures-rustls`, timers from `async-io` (the [`FuturesIo`] backend of the
//! generic [`crate::Client`]). Runs under async-std and smol
//! (and any executor: async-io drives its own reactor when nobody else does).
//!
//! [`Client::connect`] dials with async-std's `TcpStream` (the only use of
//! async-std); [`Client::with_stream`] takes any connected stream, such as
//! `smol::net::TcpStream` or `async_io::Async<std::net::TcpStream>`.

use crate::client::{self, Backend, Dial};
use crate::driver::{self, gone, poll_once, Dialer, PollBody, Transport, Wrap};
use crate::{Error, Options};
use async_std::net::{TcpStream, ToSocketAddrs};
use futures_io::{AsyncRead, AsyncWrite};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use futures_rustls::client::TlsStream;
use futures_rustls::TlsConnector;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use smtp_proto::Config;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tracing::Instrument;

/// An SMTP connection over a futures-io stream `S` (by default async-std's
/// `TcpStream`), ready for messages once connected: [`crate::Client`] over
/// the [`FuturesIo`] backend.
///
/// `Send` when `S` is, and so is every operation's future. Dropping an
/// operation's future part-way leaves the client [poisoned](Error::Poisoned):
/// it refuses further use and [`Client::is_usable`] is false.
pub type Client<S = TcpStream> = client::Client<FuturesIo<S>>;

/// The futures-io backend of [`Client`]: the stream `S`, and
/// `futures-rustls` over it once TLS is on. Made by [`Client::connect`],
/// [`Client::connect_to`] (with `S` async-std's `TcpStream`) and
/// [`Client::with_stream`].
pub struct FuturesIo<S> {
    stream: Stream<S>,
}

type Stream<S> = driver::Stream<S, TlsStream<S>>;

impl<S> fmt::Debug for FuturesIo<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FuturesIo").finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Backend for FuturesIo<S> {}
impl Dial for FuturesIo<TcpStream> {}

impl<S> Client<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Runs the session up to ready over a stream the caller connected (set
    /// `TCP_NODELAY` on it for best latency). For example
    /// `smol::net::TcpStream` or `async_io::Async<std::net::TcpStream>`.
    ///
    /// The whole connection is run with the stream as it is: with
    /// [`TlsPolicy::Implicit`](smtp_proto::TlsPolicy::Implicit) or STARTTLS
    /// this client performs the TLS handshake over it.
    ///
    /// The client cannot know where such a stream leads, so the credential
    /// guard's loopback exemption does not apply: credentials need TLS (or
    /// [`Config::allow_insecure_auth`](smtp_proto::Config::allow_insecure_auth)).
    /// Use [`Client::with_stream_to`] to say which peer the stream reached.
    pub async fn with_stream(
        stream: S,
        config: Config,
        options: Options,
    ) -> Result<Client<S>, Error> {
        Client::with_stream_from(stream, None, config, options).await
    }

    /// [`Client::with_stream`] for a stream connected to `peer` (its
    /// `peer_addr()`): a loopback server name then counts as loopback for the
    /// credential guard when `peer` is a loopback address too.
    pub async fn with_stream_to(
        stream: S,
        peer: SocketAddr,
        config: Config,
        options: Options,
    ) -> Result<Client<S>, Error> {
        Client::with_stream_from(stream, Some(peer), config, options).await
    }

    async fn with_stream_from(
        stream: S,
        peer: Option<SocketAddr>,
        config: Config,
        options: Options,
    ) -> Result<Client<S>, Error> {
        let span = tracing::debug_span!("smtp.connect", server = config.server_name());
        async move {
            let (mut session, _) = driver::new_session(config, &options)?;
            if let Some(peer) = peer {
                session.set_peer_addr(peer.ip());
            }
            let transport = FuturesIo {
                stream: Stream::Plain(stream),
            };
            Client::start(transport, session, options).await
        }
        .instrument(span)
        .await
    }

    client::reader_methods!(AsyncRead, FuturesBody, FuturesReaders);
}

/// A futures-io reader as the driver polls it.
pub(crate) struct FuturesBody<R>(R);

/// Wraps the readers of a batch as [`FuturesBody`].
pub(crate) enum FuturesReaders {}

impl Wrap for FuturesReaders {
    type Body<R> = FuturesBody<R>;

    fn wrap<R>(body: R) -> FuturesBody<R> {
        FuturesBody(body)
    }
}

impl<R: AsyncRead + Unpin> PollBody for FuturesBody<R> {
    fn poll_body(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

/// Runs `future` for at most `duration` on an async-io timer.
fn timeout_after<F>(duration: Duration, future: F) -> impl Future<Output = Option<F::Output>> + Send
where
    F: Future + Send,
    F::Output: Send,
{
    futures_lite::future::or(async move { Some(future.await) }, async move {
        async_io::Timer::after(duration).await;
        None
    })
}

/// The stream the I/O goes through: plaintext or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl<S> FuturesIo<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    fn io(&mut self) -> io::Result<&mut dyn Io> {
        match &mut self.stream {
            Stream::Plain(stream) => Ok(stream),
            Stream::Tls(tls) => Ok(&mut **tls),
            Stream::Gone => Err(gone()),
        }
    }
}

impl Dialer for FuturesIo<TcpStream> {
    async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok((host, port).to_socket_addrs().await?.collect())
    }

    async fn dial(address: SocketAddr) -> io::Result<FuturesIo<TcpStream>> {
        let tcp = TcpStream::connect(address).await?;
        client::nodelay(tcp.set_nodelay(true));
        Ok(FuturesIo {
            stream: Stream::Plain(tcp),
        })
    }
}

impl<S> Transport for FuturesIo<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
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
        let Some(stream) = self.stream.plain() else {
            return Ok(None);
        };
        // One poll with a waker that does nothing. async-io's streams (and so
        // async-std's and smol's) try the read system call before waiting.
        poll_once(|cx| Pin::new(&mut *stream).poll_read(cx, buf))
    }

    fn read_ready(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let io = self.io()?;
        poll_once(|cx| Pin::new(&mut *io).poll_read(cx, buf))
    }

    async fn upgrade(
        &mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<()> {
        let stream = self.stream.take_plain()?;
        let tls = TlsConnector::from(config).connect(name, stream).await?;
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    fn close(&mut self) {
        self.stream = Stream::Gone;
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self.io() {
            Ok(io) => io.close().await,
            Err(_) => Ok(()),
        }
    }

    fn catch_up() -> impl Future<Output = ()> + Send {
        // async-io tries the read itself before it consults readiness.
        std::future::ready(())
    }

    fn timeout<F>(duration: Duration, future: F) -> impl Future<Output = Option<F::Output>> + Send
    where
        F: Future + Send,
        F::Output: Send,
    {
        timeout_after(duration, future)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The STARTTLS check sees bytes that arrived after the last read, on
    /// async-std's stream and on smol's.
    #[test]
    fn read_now_sees_waiting_bytes() {
        async fn check<S: AsyncRead + AsyncWrite + Unpin + Send>(
            stream: S,
            mut peer: std::net::TcpStream,
        ) {
            let mut transport = FuturesIo {
                stream: Stream::Plain(stream),
            };
            let mut buf = [0; 64];
            assert_eq!(transport.read_now(&mut buf).unwrap(), None);
            peer.write_all(b"220 go ahead\r\n").unwrap();
            assert_eq!(transport.read(&mut buf).await.unwrap(), 14);
            peer.write_all(b"250 injected\r\n").unwrap();
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(transport.read_now(&mut buf).unwrap(), Some(14));
            drop(peer);
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(transport.read_now(&mut buf).unwrap(), Some(0));
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        async_std::task::block_on(async {
            let stream = TcpStream::connect(addr).await.unwrap();
            let (peer, _) = listener.accept().unwrap();
            check(stream, peer).await;
        });
        smol::block_on(async {
            let stream = smol::net::TcpStream::connect(addr).await.unwrap();
            let (peer, _) = listener.accept().unwrap();
            check(stream, peer).await;
        });
    }
}
