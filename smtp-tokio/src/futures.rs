//! The futures-io backend: [`Client`] over any `futures-io` stream with
//! `futures-rustls`, timers from `async-io`. Runs under async-std and smol
//! (and any executor: async-io drives its own reactor when nobody else does).
//!
//! [`Client::connect`] dials with async-std's `TcpStream` (the only use of
//! async-std); [`Client::with_stream`] takes any connected stream, such as
//! `smol::net::TcpStream` or `async_io::Async<std::net::TcpStream>`.

use crate::driver::{self, Driver, Transport};
use crate::{Error, Options};
use async_std::net::{TcpStream, ToSocketAddrs};
use futures_io::{AsyncRead, AsyncWrite};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use futures_rustls::client::TlsStream;
use futures_rustls::TlsConnector;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use smtp_proto::{Capabilities, ClientSession, Config, Delivery, Envelope, Mechanism};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// An SMTP connection over a futures-io stream `S` (by default async-std's
/// `TcpStream`), ready for messages once connected.
///
/// `Send` when `S` is, and so is every operation's future. Dropping an
/// operation's future part-way leaves the client [poisoned](Error::Poisoned):
/// it refuses further use and [`Client::is_usable`] is false.
pub struct Client<S = TcpStream> {
    driver: Driver<FuturesTransport<S>>,
}

impl<S> fmt::Debug for Client<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("driver", &self.driver)
            .finish()
    }
}

impl Client<TcpStream> {
    /// Resolves `host`, connects to `port` (trying each address in turn
    /// within [`Options::connect_timeout`]) and runs the session up to ready:
    /// greeting, EHLO, STARTTLS or implicit TLS, AUTH.
    ///
    /// TLS is verified for, and the credential guard checks,
    /// [`Config::server_name`], not `host`.
    pub async fn connect(
        host: &str,
        port: u16,
        config: Config,
        options: Options,
    ) -> Result<Client<TcpStream>, Error> {
        let span = tracing::debug_span!("smtp.connect", host, port, server = config.server_name());
        async move {
            let (session, transcript) = driver::new_session(config, &options)?;
            let host = smtp_blocking::strip_brackets(host);
            let started = Instant::now();
            let resolved = match timeout_after(
                options.connect_timeout,
                (host, port).to_socket_addrs(),
            )
            .await
            {
                None => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timeout")),
                Some(result) => result.map(|addrs| addrs.collect::<Vec<_>>()),
            };
            let addrs = resolved.map_err(|source| Error::Resolve {
                host: host.to_owned(),
                port,
                source,
            })?;
            let tcp = connect_any(host, port, &addrs, options.connect_timeout, started).await?;
            Client::start_tcp(tcp, session, transcript, options).await
        }
        .instrument(span)
        .await
    }

    /// Connects to `addr` and runs the session up to ready. TLS is verified
    /// for, and the credential guard checks, [`Config::server_name`].
    pub async fn connect_to(
        addr: SocketAddr,
        config: Config,
        options: Options,
    ) -> Result<Client<TcpStream>, Error> {
        let span = tracing::debug_span!("smtp.connect", %addr, server = config.server_name());
        async move {
            let (session, transcript) = driver::new_session(config, &options)?;
            let host = addr.ip().to_string();
            let tcp = connect_any(
                &host,
                addr.port(),
                &[addr],
                options.connect_timeout,
                Instant::now(),
            )
            .await?;
            Client::start_tcp(tcp, session, transcript, options).await
        }
        .instrument(span)
        .await
    }

    async fn start_tcp(
        tcp: TcpStream,
        session: ClientSession,
        transcript: smtp_blocking::Transcript,
        options: Options,
    ) -> Result<Client<TcpStream>, Error> {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        Client::start(tcp, session, transcript, options).await
    }
}

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
    pub async fn with_stream(
        stream: S,
        config: Config,
        options: Options,
    ) -> Result<Client<S>, Error> {
        let span = tracing::debug_span!("smtp.connect", server = config.server_name());
        async move {
            let (session, transcript) = driver::new_session(config, &options)?;
            Client::start(stream, session, transcript, options).await
        }
        .instrument(span)
        .await
    }

    async fn start(
        stream: S,
        session: ClientSession,
        transcript: smtp_blocking::Transcript,
        options: Options,
    ) -> Result<Client<S>, Error> {
        let transport = FuturesTransport {
            stream: Stream::Plain(stream),
        };
        let driver = Driver::start(transport, session, transcript, options).await?;
        Ok(Client { driver })
    }

    /// Sends one message: the envelope (its SIZE and BODY parameters filled
    /// in from `body` by [`Envelope::for_body`]), then the body, dot-stuffed
    /// and with CRLF line endings.
    ///
    /// A refusal of the transaction (every recipient refused, the message
    /// rejected) is an [`Error::Smtp`] and leaves the client usable; the
    /// per-recipient results of a delivery are in the [`Delivery`].
    pub async fn send(&mut self, envelope: Envelope, body: &[u8]) -> Result<Delivery, Error> {
        let envelope = envelope.for_body(body);
        self.driver.send(envelope, driver::slice_reader(body)).await
    }

    /// Sends one message whose body is read from `body`, 64 KiB at a time
    /// (memory stays bounded whatever the size). Declare the size with
    /// [`Envelope::size`] if the server should check it up front.
    ///
    /// If reading `body` fails the message is not ended: the error is
    /// [`Error::BodyRead`] and the client is unusable (the server discards the
    /// partial message when the connection closes).
    pub async fn send_reader<R>(
        &mut self,
        envelope: Envelope,
        mut body: R,
    ) -> Result<Delivery, Error>
    where
        R: AsyncRead + Unpin,
    {
        let read =
            move |cx: &mut Context<'_>, buf: &mut [u8]| Pin::new(&mut body).poll_read(cx, buf);
        self.driver.send(envelope, read).await
    }

    /// Sends NOOP and waits for the positive reply: a health check for idle
    /// connections.
    pub async fn noop(&mut self) -> Result<(), Error> {
        self.driver.noop().await
    }

    /// Sends QUIT, waits for the reply (or the server closing) and closes the
    /// connection. On a client whose session already failed it only closes.
    pub async fn quit(self) -> Result<(), Error> {
        self.driver.quit().await
    }

    /// The protocol session: capabilities, TLS state, the authenticated
    /// mechanism, the error that failed it.
    pub fn session(&self) -> &ClientSession {
        self.driver.session()
    }

    /// Whether the client can take another operation: not poisoned by a
    /// cancelled or broken operation, and the session ready.
    pub fn is_usable(&self) -> bool {
        self.driver.is_usable()
    }

    /// Whether a cancelled operation, an I/O error or a timeout left the
    /// connection unusable (operations return [`Error::Poisoned`]).
    pub fn is_poisoned(&self) -> bool {
        self.driver.is_poisoned()
    }

    /// The server's capabilities from the latest EHLO (over TLS when TLS is on).
    pub fn capabilities(&self) -> &Capabilities {
        self.driver.session().capabilities()
    }

    /// Whether the connection is TLS (implicit, or after STARTTLS).
    pub fn is_tls(&self) -> bool {
        self.driver.session().is_tls()
    }

    /// The mechanism the session authenticated with, if it did.
    pub fn auth_mechanism(&self) -> Option<&Mechanism> {
        self.driver.session().auth_mechanism()
    }
}

/// Tries each address in turn until one connects, all within `timeout`
/// counted from `started`.
async fn connect_any(
    host: &str,
    port: u16,
    addrs: &[SocketAddr],
    timeout: Duration,
    started: Instant,
) -> Result<TcpStream, Error> {
    let mut last = None;
    for &address in addrs {
        let remaining = timeout.saturating_sub(started.elapsed());
        let result = match timeout_after(remaining, TcpStream::connect(address)).await {
            Some(result) => result,
            None => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timeout")),
        };
        match result {
            Ok(tcp) => return Ok(tcp),
            Err(source) => {
                tracing::debug!(%address, error = %source, "connect failed");
                let timed_out = source.kind() == io::ErrorKind::TimedOut;
                last = Some(Error::Connect { address, source });
                if timed_out {
                    break;
                }
            }
        }
    }
    Err(last.unwrap_or_else(|| Error::Resolve {
        host: host.to_owned(),
        port,
        source: io::Error::new(io::ErrorKind::NotFound, "no address"),
    }))
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

enum Stream<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
    /// The handshake took the stream and did not finish.
    Gone,
}

struct FuturesTransport<S> {
    stream: Stream<S>,
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the TLS handshake did not complete",
    )
}

/// A waker for polling once without waiting.
struct NoopWaker;

impl Wake for NoopWaker {
    fn wake(self: Arc<Self>) {}
}

impl<S> Transport for FuturesTransport<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.stream {
            Stream::Plain(stream) => stream.read(buf).await,
            Stream::Tls(tls) => tls.read(buf).await,
            Stream::Gone => Err(gone()),
        }
    }

    async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.stream {
            Stream::Plain(stream) => stream.write_all(buf).await,
            Stream::Tls(tls) => tls.write_all(buf).await,
            Stream::Gone => Err(gone()),
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match &mut self.stream {
            Stream::Plain(stream) => stream.flush().await,
            Stream::Tls(tls) => tls.flush().await,
            Stream::Gone => Err(gone()),
        }
    }

    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let Stream::Plain(stream) = &mut self.stream else {
            return Ok(None);
        };
        // One poll with a waker that does nothing. async-io's streams (and so
        // async-std's and smol's) try the read system call before waiting.
        let waker = Waker::from(Arc::new(NoopWaker));
        let mut cx = Context::from_waker(&waker);
        match Pin::new(stream).poll_read(&mut cx, buf) {
            Poll::Ready(Ok(n)) => Ok(Some(n)),
            Poll::Ready(Err(err)) if err.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Poll::Ready(Err(err)) => Err(err),
            Poll::Pending => Ok(None),
        }
    }

    async fn upgrade(
        &mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<()> {
        let Stream::Plain(stream) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(io::Error::other("TLS is already active"));
        };
        let tls = TlsConnector::from(config).connect(name, stream).await?;
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match &mut self.stream {
            Stream::Plain(stream) => stream.close().await,
            Stream::Tls(tls) => tls.close().await,
            Stream::Gone => Ok(()),
        }
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
            let mut transport = FuturesTransport {
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
