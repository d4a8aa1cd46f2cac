//! [`Client`], written once over a [`Backend`]: the tokio backend
//! (`tokio::Client`) and the futures-io backend
//! (`futures::Client`) are this type with their backend filled in.

use crate::driver::{self, Dialer, Driver, PollBody, Transport};
use crate::{Error, Options};
use smtp_proto::{Capabilities, ClientSession, Config, Delivery, Envelope, Mechanism, Rest};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;
use tracing::Instrument;

/// A runtime's I/O under a [`Client`]: `tokio::Tokio` (feature `tokio`) or
/// `futures::FuturesIo<S>` for a futures-io stream `S` (feature
/// `async-std`).
///
/// Sealed: its methods are private to this crate, and only its backends
/// implement it. Write code generic over `B: Backend` to serve
/// [`Client<B>`] on either runtime.
pub trait Backend: Transport {}

/// A [`Backend`] that resolves host names and dials TCP itself, so that
/// [`Client::connect`] and [`Client::connect_to`] exist: `tokio::Tokio` and
/// `futures::FuturesIo<async_std::net::TcpStream>`. Sealed.
pub trait Dial: Backend + Dialer {}

/// An SMTP connection, ready for messages once connected, over a runtime's
/// I/O `B`: `tokio::Client` on tokio (`Client<Tokio>`),
/// `futures::Client<S>` over a futures-io stream `S` (`Client<FuturesIo<S>>`,
/// by default async-std's `TcpStream`).
///
/// `Send` when the stream is (always on tokio), and so is every operation's
/// future. Dropping an operation's future part-way leaves the client
/// [poisoned](Error::Poisoned): it refuses further use and
/// [`Client::is_usable`] is false.
pub struct Client<B> {
    driver: Driver<B>,
}

impl<B> fmt::Debug for Client<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("driver", &self.driver)
            .finish()
    }
}

impl<B: Dial> Client<B> {
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
    ) -> Result<Client<B>, Error> {
        let span = tracing::debug_span!("smtp.connect", host, port, server = config.server_name());
        async move {
            let (mut session, connect_by) = driver::new_session(config, &options)?;
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            let resolved = B::timeout(driver::left(connect_by), B::resolve(host, port))
                .await
                .unwrap_or_else(|| Err(timed_out()));
            let addrs = resolved.map_err(|source| Error::Resolve {
                host: host.to_owned(),
                port,
                source,
            })?;
            let (transport, peer) = connect_any(host, port, &addrs, connect_by).await?;
            session.set_peer_addr(peer.ip());
            Client::start(transport, session, options).await
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
    ) -> Result<Client<B>, Error> {
        let span = tracing::debug_span!("smtp.connect", %addr, server = config.server_name());
        async move {
            let (mut session, connect_by) = driver::new_session(config, &options)?;
            let host = addr.ip().to_string();
            let (transport, peer) = connect_any(&host, addr.port(), &[addr], connect_by).await?;
            session.set_peer_addr(peer.ip());
            Client::start(transport, session, options).await
        }
        .instrument(span)
        .await
    }
}

impl<B: Backend> Client<B> {
    /// Runs the session up to ready over `transport`, a connection made
    /// after `session` was: greeting, EHLO, STARTTLS or implicit TLS, AUTH.
    pub(crate) async fn start(
        transport: B,
        session: ClientSession,
        options: Options,
    ) -> Result<Client<B>, Error> {
        let driver = Driver::start(transport, session, options).await?;
        Ok(Client { driver })
    }

    /// Checks an idle connection without waiting and without writing: what
    /// the server sent meanwhile is fed to the session, and a `421` (an idle
    /// timeout, a shutdown), any other reply or a close fails it and gives
    /// the connection up. A pool does this before reusing a connection; with
    /// CHUNKING a message's body goes out before any reply, so a connection
    /// the server already closed must be found out before, not by writing.
    pub async fn check_idle(&mut self) -> Result<(), Error> {
        self.driver.check_idle().await
    }

    /// Sends one message: the envelope (its SIZE and BODY parameters filled
    /// in from `body` by [`Envelope::for_body`]), then the body, dot-stuffed
    /// and with CRLF line endings.
    ///
    /// A refusal of the transaction (every recipient refused, the message
    /// rejected) is an [`Error::Smtp`] and leaves the client usable; the
    /// per-recipient results of a delivery are in the [`Delivery`].
    pub async fn send(&mut self, envelope: Envelope, body: &[u8]) -> Result<Delivery, Error> {
        let (envelope, read) = driver::slice_message((envelope, body));
        self.driver.send(envelope, read).await
    }

    /// Sends several messages over this connection and returns each one's
    /// result, in order. With PIPELINING the next message's commands ride
    /// behind the end of the previous message (RFC 2920 §3.1), so each
    /// message costs one round trip instead of two (and with CHUNKING
    /// nothing waits for `354` either). Each body is declared with
    /// [`Envelope::for_body`].
    ///
    /// A refused transaction is that message's `Err` and the next one goes
    /// on. An error that ends the connection is the last element: messages
    /// in flight then, and those after, were not confirmed. Dropping the
    /// future part-way poisons the client, like any operation's.
    ///
    /// ```no_run
    /// # async fn example<B: smtp_tokio::Backend>(
    /// #     client: &mut smtp_tokio::Client<B>,
    /// # ) -> Result<(), smtp_tokio::Error> {
    /// use smtp_tokio::{Address, Envelope};
    ///
    /// let envelope = Envelope::new(
    ///     Some(Address::new("me@example.com")?),
    ///     [Address::new("you@example.org")?],
    /// )?;
    /// let bodies: [&[u8]; 2] = [b"Subject: one\r\n\r\n1\r\n", b"Subject: two\r\n\r\n2\r\n"];
    /// let results = client
    ///     .send_all(bodies.iter().map(|body| (envelope.clone(), *body)))
    ///     .await;
    /// for (i, result) in results.iter().enumerate() {
    ///     match result {
    ///         Ok(delivery) => println!("message {i}: {}", delivery.reply()),
    ///         Err(err) => eprintln!("message {i}: {err}"),
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_all<'a, I>(&mut self, messages: I) -> Vec<Result<Delivery, Error>>
    where
        I: IntoIterator<Item = (Envelope, &'a [u8])>,
    {
        let messages = messages.into_iter().map(driver::slice_message);
        let mut results = Vec::new();
        self.driver
            .batch(messages, Rest::NotSent, |result| results.push(result))
            .instrument(tracing::debug_span!("smtp.send_all"))
            .await;
        results
    }

    /// Sends one message whose body `read` polls into a buffer: the backends'
    /// `send_reader`, with their reader trait adapted.
    pub(crate) async fn send_polled<R>(
        &mut self,
        envelope: Envelope,
        read: R,
    ) -> Result<Delivery, Error>
    where
        R: PollBody,
    {
        self.driver.send(envelope, read).await
    }

    /// [`send_all`](Self::send_all) with bodies that `read` functions poll
    /// into a buffer, results to `on_result`: the backends' `send_each`.
    pub(crate) async fn send_each_polled<I, R>(
        &mut self,
        messages: I,
        rest: Rest,
        on_result: impl FnMut(Result<Delivery, Error>),
    ) where
        I: IntoIterator<Item = (Envelope, R)>,
        R: PollBody,
    {
        self.driver
            .batch(messages, rest, on_result)
            .instrument(tracing::debug_span!("smtp.send_all"))
            .await;
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

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connect timeout")
}

/// Tries each address in turn until one connects, all by `deadline`;
/// returns the connection and the address it reached.
async fn connect_any<B: Dial>(
    host: &str,
    port: u16,
    addrs: &[SocketAddr],
    deadline: Option<Instant>,
) -> Result<(B, SocketAddr), Error> {
    let mut last = None;
    for &address in addrs {
        let result = B::timeout(driver::left(deadline), B::dial(address))
            .await
            .unwrap_or_else(|| Err(timed_out()));
        match result {
            Ok(transport) => return Ok((transport, address)),
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

/// Sets `TCP_NODELAY` on a new connection, as best it can.
pub(crate) fn nodelay(result: io::Result<()>) {
    if let Err(err) = result {
        tracing::debug!(error = %err, "cannot set TCP_NODELAY");
    }
}

/// The methods that read bodies from readers: the same on every backend but
/// for its reader trait `$read`, `$body`, its wrapper that the driver
/// polls, and `$wrap`, the marker that wraps readers in batches.
macro_rules! reader_methods {
    ($read:path, $body:ident, $wrap:ty) => {
        /// Sends one message whose body is read from `body`, 64 KiB at a
        /// time (memory stays bounded whatever the size). Declare the size
        /// with [`Envelope::size`](smtp_proto::Envelope::size) if the server
        /// should check it up front.
        ///
        /// If reading `body` fails the message is not ended: the error is
        /// [`Error::BodyRead`](crate::Error::BodyRead) and the client is
        /// unusable (the server discards the partial message when the
        /// connection closes).
        pub async fn send_reader<R>(
            &mut self,
            envelope: ::smtp_proto::Envelope,
            body: R,
        ) -> Result<::smtp_proto::Delivery, $crate::Error>
        where
            R: $read + Unpin,
        {
            self.send_polled(envelope, $body(body)).await
        }

        /// [`send_all`](crate::Client::send_all) with bodies read from readers
        /// in bounded memory, like [`send_reader`](Self::send_reader).
        pub async fn send_all_readers<R, I>(
            &mut self,
            messages: I,
        ) -> Vec<Result<::smtp_proto::Delivery, $crate::Error>>
        where
            R: $read + Unpin,
            I: IntoIterator<Item = (::smtp_proto::Envelope, R)>,
        {
            let messages = $crate::driver::Wrapped::<_, $wrap>::new(messages.into_iter());
            let mut results = Vec::new();
            let rest = ::smtp_proto::Rest::NotSent;
            self.send_each_polled(messages, rest, |result| results.push(result))
                .await;
            results
        }

        /// [`send_all_readers`](Self::send_all_readers) handing each
        /// message's result to `on_result` as soon as it is known, in order,
        /// so a batch of any length holds no results: what a bulk sender
        /// wants. When the connection fails, the messages the iterator has
        /// not yet yielded are left in it (not sent; it may be endless): the
        /// results stop after the one the failure ended. The future is `Send` when `on_result`, the readers and the
        /// iterator are.
        pub async fn send_each<R, I>(
            &mut self,
            messages: I,
            on_result: impl FnMut(Result<::smtp_proto::Delivery, $crate::Error>),
        ) where
            R: $read + Unpin,
            I: IntoIterator<Item = (::smtp_proto::Envelope, R)>,
        {
            let messages = $crate::driver::Wrapped::<_, $wrap>::new(messages.into_iter());
            let rest = ::smtp_proto::Rest::Drop;
            self.send_each_polled(messages, rest, on_result).await;
        }
    };
}
pub(crate) use reader_methods;
