//! The tokio backend: [`Client`] over `tokio::net::TcpStream` and
//! `tokio-rustls`.
//!
//! Needs a tokio runtime with the I/O and time drivers enabled
//! (`#[tokio::main]`, or a `Builder` with `enable_all()`). Every future is
//! `Send`, so operations can run in `tokio::spawn`.

use crate::driver::{self, Driver, Transport};
use crate::{Error, Options};
use ::tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use ::tokio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use smtp_proto::{Capabilities, ClientSession, Config, Delivery, Envelope, Mechanism};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tracing::Instrument;

/// An SMTP connection on tokio, ready for messages once connected.
///
/// `Send`, and every operation's future is `Send`. Dropping an operation's
/// future part-way leaves the client [poisoned](Error::Poisoned): it refuses
/// further use and [`Client::is_usable`] is false.
#[derive(Debug)]
pub struct Client {
    driver: Driver<TokioTransport>,
}

impl Client {
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
    ) -> Result<Client, Error> {
        let span = tracing::debug_span!("smtp.connect", host, port, server = config.server_name());
        async move {
            let (session, transcript) = driver::new_session(config, &options)?;
            let host = smtp_blocking::strip_brackets(host);
            let started = Instant::now();
            let resolved = match tokio_timeout(
                options.connect_timeout,
                ::tokio::net::lookup_host((host, port)),
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
            Client::start(tcp, session, transcript, options).await
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
    ) -> Result<Client, Error> {
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
            Client::start(tcp, session, transcript, options).await
        }
        .instrument(span)
        .await
    }

    async fn start(
        tcp: TcpStream,
        session: ClientSession,
        transcript: smtp_blocking::Transcript,
        options: Options,
    ) -> Result<Client, Error> {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        let transport = TokioTransport {
            stream: Stream::Plain(tcp),
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
        let read = move |cx: &mut std::task::Context<'_>, buf: &mut [u8]| {
            let mut buf = ReadBuf::new(buf);
            match Pin::new(&mut body).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.filled().len())),
                Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
                Poll::Pending => Poll::Pending,
            }
        };
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

async fn tokio_timeout<F: Future>(duration: Duration, future: F) -> Option<F::Output> {
    ::tokio::time::timeout(duration, future).await.ok()
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
        let result = match tokio_timeout(remaining, TcpStream::connect(address)).await {
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

#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// The handshake took the socket and did not finish.
    Gone,
}

#[derive(Debug)]
struct TokioTransport {
    stream: Stream,
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the TLS handshake did not complete",
    )
}

impl Transport for TokioTransport {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.stream {
            Stream::Plain(tcp) => tcp.read(buf).await,
            Stream::Tls(tls) => tls.read(buf).await,
            Stream::Gone => Err(gone()),
        }
    }

    async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.stream {
            Stream::Plain(tcp) => tcp.write_all(buf).await,
            Stream::Tls(tls) => tls.write_all(buf).await,
            Stream::Gone => Err(gone()),
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match &mut self.stream {
            Stream::Plain(tcp) => tcp.flush().await,
            Stream::Tls(tls) => tls.flush().await,
            Stream::Gone => Err(gone()),
        }
    }

    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let Stream::Plain(tcp) = &self.stream else {
            return Ok(None);
        };
        // Ask the kernel directly: tokio's readiness flag may not yet know
        // about bytes that arrived since the last read.
        let socket = socket2::SockRef::from(tcp);
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

    async fn upgrade(
        &mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<()> {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(io::Error::other("TLS is already active"));
        };
        let tls = TlsConnector::from(config).connect(name, tcp).await?;
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match &mut self.stream {
            Stream::Plain(tcp) => tcp.shutdown().await,
            Stream::Tls(tls) => tls.shutdown().await,
            Stream::Gone => Ok(()),
        }
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
            let mut transport = TokioTransport {
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
