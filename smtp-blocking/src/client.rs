//! The blocking client: moves bytes between a socket and a `ClientSession`.

use crate::stream::{at_least_1ms, Stream};
use crate::Error;
use smtp_proto::{
    Batch, BodyChunk, Capabilities, ClientSession, Config, Delivery, Envelope, Event, Io,
    Mechanism, Next, Options, Rest, Step, TlsPolicy,
};
use std::fmt;
#[cfg(feature = "rustls")]
use std::io::Write;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Level;

/// How much is read from the socket at once.
const READ_BUFFER: usize = 16 * 1024;
/// How much of the body is read from the caller and fed to the session at
/// once.
const BODY_CHUNK: usize = 256 * 1024;

/// How much longer than what is left of a wait the socket's timeout may be
/// before it is set again.
const TIMEOUT_SLACK: Duration = Duration::from_millis(50);

/// The longest wait a socket is given when the session's has no deadline.
const FOREVER: Duration = Duration::from_secs(86_400 * 365);

/// A message body as the sending loop feeds it to the session.
trait Body {
    /// Feeds the session its next chunk, or ends the body when there is none.
    fn feed(&mut self, session: &mut ClientSession, chunk: &mut BodyChunk) -> Result<(), Error>;

    /// The `len` lent bytes still to write ([`Io::WriteBody`]) when they are
    /// the body's own; `None` when they are in the [`BodyChunk`].
    fn lent(&self, _len: usize) -> Option<&[u8]> {
        None
    }
}

/// A body in memory, fed [`BODY_CHUNK`] bytes at a time; the long
/// stretches that go on the wire as they are are written from it.
struct SliceBody<T> {
    body: T,
    /// How many bytes the session took.
    taken: usize,
}

impl<T: AsRef<[u8]>> SliceBody<T> {
    fn new(body: T) -> Self {
        SliceBody { body, taken: 0 }
    }
}

impl<T: AsRef<[u8]>> Body for SliceBody<T> {
    fn feed(&mut self, session: &mut ClientSession, _: &mut BodyChunk) -> Result<(), Error> {
        let rest = self.body.as_ref().get(self.taken..).unwrap_or_default();
        let now = rest.get(..BODY_CHUNK).unwrap_or(rest);
        if now.is_empty() {
            let _verdict_kept_by_the_session = session.finish_body();
            return Ok(());
        }
        // A refusal fails the session, whose next step reports it.
        self.taken += match session.write_body_direct(now) {
            Ok(n) if n > 0 => n.min(now.len()),
            _ => rest.len(),
        };
        Ok(())
    }

    fn lent(&self, len: usize) -> Option<&[u8]> {
        let body = self.body.as_ref();
        body.get(self.taken.checked_sub(len)?..self.taken)
    }
}

/// Where the bytes of a write come from.
#[derive(Debug, Clone, Copy)]
enum Source<'b> {
    /// The session's pending output.
    Output,
    /// The last `len` bytes the session took from [`Client::chunk`].
    Chunk(usize),
    /// Lent bytes of a body in memory.
    Lent(&'b [u8]),
}

/// A body read [`BODY_CHUNK`] bytes at a time; the long stretches that go
/// on the wire as they are are written from the buffer they were read
/// into. A failing reader poisons the connection, so no truncated message
/// is ever ended.
struct ReadBody<R>(R);

impl<R: Read> Body for ReadBody<R> {
    fn feed(&mut self, session: &mut ClientSession, chunk: &mut BodyChunk) -> Result<(), Error> {
        if chunk.is_spent() {
            let space = chunk.space(BODY_CHUNK);
            let n = loop {
                match self.0.read(space) {
                    Ok(n) => break n,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(Error::BodyRead(err)),
                }
            };
            chunk.filled(n);
            if n == 0 {
                let _verdict_kept_by_the_session = session.finish_body();
                return Ok(());
            }
        }
        // The rest of the chunk waits for the next step.
        chunk.feed(session);
        Ok(())
    }
}

#[cfg(feature = "rustls")]
struct Tls {
    config: std::sync::Arc<rustls::ClientConfig>,
    /// The configured server name without IPv6 brackets: what rustls verifies.
    name: rustls::pki_types::ServerName<'static>,
    /// The same as text: what is reported to the session once verified.
    verified_name: String,
}

/// A blocking SMTP client connection, ready for transactions once
/// [`Client::connect`] returns.
///
/// Every protocol decision is made by [`smtp_proto::ClientSession`]; this
/// type moves bytes, performs the TLS handshake and applies the timeouts.
/// After an I/O error or a timeout the connection is unusable and every
/// later call returns [`Error::Poisoned`]; after a fatal SMTP error every
/// later call returns that error again.
pub struct Client {
    session: ClientSession,
    stream: Stream,
    #[cfg(feature = "rustls")]
    tls: Option<Tls>,
    buf: Vec<u8>,
    /// The buffer bodies read from readers are fed to the session from.
    chunk: BodyChunk,
    /// By when connecting (resolution and every address) must be done.
    connect_by: Option<Instant>,
    /// The read and write timeouts last set on the socket.
    socket_timeouts: (Option<Duration>, Option<Duration>),
    poisoned: bool,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("session", &self.session)
            .field("peer", &self.stream.tcp().and_then(|t| t.peer_addr().ok()))
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to `host:port` and drives the session until it is ready for
    /// a transaction: greeting, EHLO, STARTTLS and AUTH as `config` says.
    ///
    /// `host` is resolved with [`ToSocketAddrs`] (an IPv6 literal may be
    /// bracketed) and each address is tried in turn, all within
    /// [`Options::connect_timeout`](smtp_proto::Options::connect_timeout). TLS verifies `config`'s server name.
    /// The configuration is checked, and the TLS configuration built, before
    /// anything is resolved or connected.
    pub fn connect(
        host: &str,
        port: u16,
        config: Config,
        options: Options,
    ) -> Result<Client, Error> {
        let span = tracing::info_span!("smtp.connect", host, port);
        let _enter = span.enter();
        let mut client = Client::open_inner(host, port, config, options)?;
        client.establish_inner()?;
        Ok(client)
    }

    /// Connects to `address` and drives the session until it is ready, like
    /// [`Client::connect`]. TLS and the credential guard still use the
    /// configured server name, not the address.
    pub fn connect_to(
        address: SocketAddr,
        config: Config,
        options: Options,
    ) -> Result<Client, Error> {
        let span = tracing::info_span!("smtp.connect", %address);
        let _enter = span.enter();
        let mut client = Client::open_to_inner(address, config, options)?;
        client.establish_inner()?;
        Ok(client)
    }

    /// The first half of [`Client::connect`]: checks the configuration,
    /// resolves `host` and connects the socket, and stops there, with
    /// nothing read or written. [`Client::establish`] does the rest.
    ///
    /// For a caller that wants to see how far a set-up that fails got (a
    /// diagnostic tool): the client outlives a failed `establish`, and its
    /// [`session`](Self::session) still holds the greeting, the EHLO
    /// replies and the capabilities read so far.
    /// [`Options::time_limit`](smtp_proto::Options::time_limit) counts from
    /// this call.
    pub fn open(host: &str, port: u16, config: Config, options: Options) -> Result<Client, Error> {
        let span = tracing::info_span!("smtp.connect", host, port);
        let _enter = span.enter();
        Client::open_inner(host, port, config, options)
    }

    /// [`Client::open`] to `address` instead of a resolved name, as
    /// [`Client::connect_to`] does.
    pub fn open_to(address: SocketAddr, config: Config, options: Options) -> Result<Client, Error> {
        let span = tracing::info_span!("smtp.connect", %address);
        let _enter = span.enter();
        Client::open_to_inner(address, config, options)
    }

    /// The second half of [`Client::connect`], after [`Client::open`] or
    /// [`Client::open_to`]: drives the session until it is ready for a
    /// transaction (greeting, EHLO, STARTTLS, EHLO again, AUTH, as the
    /// configuration says). Nothing else is sent: no `MAIL`, no `NOOP`.
    ///
    /// On failure the client is kept, failed or poisoned like after any
    /// failure, for [`session`](Self::session) and the TLS accessors; then
    /// [`quit`](Self::quit) closes it. Once the session is ready this does
    /// nothing; after a failure it returns the failure again.
    pub fn establish(&mut self) -> Result<(), Error> {
        let span = tracing::info_span!(
            "smtp.establish",
            server_name = self.session.config().server_name()
        );
        let _enter = span.enter();
        self.establish_inner()
    }

    fn open_inner(
        host: &str,
        port: u16,
        config: Config,
        options: Options,
    ) -> Result<Client, Error> {
        let mut client = Client::new(config, options)?;
        let lookup = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned();
        let resolve = move || -> io::Result<Vec<SocketAddr>> {
            Ok((lookup.as_str(), port).to_socket_addrs()?.collect())
        };
        let addrs =
            resolve_within(resolve, client.connect_wait()).map_err(|source| Error::Resolve {
                host: host.to_owned(),
                port,
                source,
            })?;
        let mut last = None;
        for address in addrs {
            match TcpStream::connect_timeout(&address, client.connect_wait()) {
                Ok(tcp) => {
                    client.attach(tcp);
                    return Ok(client);
                }
                Err(source) => {
                    tracing::debug!(%address, error = %source, "connection attempt failed");
                    last = Some(Error::Connect { address, source });
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Resolve {
            host: host.to_owned(),
            port,
            source: io::Error::new(io::ErrorKind::NotFound, "the name has no address"),
        }))
    }

    fn open_to_inner(
        address: SocketAddr,
        config: Config,
        options: Options,
    ) -> Result<Client, Error> {
        let mut client = Client::new(config, options)?;
        let tcp = TcpStream::connect_timeout(&address, client.connect_wait())
            .map_err(|source| Error::Connect { address, source })?;
        client.attach(tcp);
        Ok(client)
    }

    /// Sends one message, dot-stuffed and with CRLF line endings, and returns
    /// the per-recipient results. Declares the body's size and 8BITMIME
    /// ([`Envelope::for_body`]) unless the envelope already does.
    ///
    /// A transaction the server refused (every recipient, the message) is an
    /// [`Error::Smtp`] that leaves the client ready for the next one.
    pub fn send(&mut self, envelope: Envelope, body: &[u8]) -> Result<Delivery, Error> {
        let span = tracing::info_span!("smtp.send", size = body.len());
        let _enter = span.enter();
        self.send_one(envelope.for_body(body), SliceBody::new(body))
    }

    /// Sends one message read from `body`, in bounded memory: 256 KiB at a
    /// time is read, encoded and written before the next is read (long
    /// stretches that need no dot-stuffing or line-ending repair are
    /// written straight from that buffer, not copied). Declare
    /// the size or 8BITMIME on the envelope yourself if you know them.
    ///
    /// If `body` fails, the connection is shut down before the end-of-data
    /// marker, so no truncated message is delivered ([`Error::BodyRead`]).
    pub fn send_reader<R: Read>(&mut self, envelope: Envelope, body: R) -> Result<Delivery, Error> {
        let span = tracing::info_span!("smtp.send");
        let _enter = span.enter();
        self.send_one(envelope, ReadBody(body))
    }

    /// A batch of one: the same path as every other send.
    fn send_one(&mut self, envelope: Envelope, body: impl Body) -> Result<Delivery, Error> {
        let mut outcome = None;
        let once = std::iter::once((envelope, body));
        self.batch(once, Rest::Drop, &mut |result| {
            outcome.get_or_insert(result);
        });
        outcome.unwrap_or_else(|| Err(self.unexpected("send")))
    }

    /// Sends several messages over this connection and returns each one's
    /// result, in order. With PIPELINING the next message's commands ride
    /// behind the end of the previous message (RFC 2920 §3.1), so each
    /// message costs one round trip instead of two (and with CHUNKING
    /// nothing waits for `354` either). Each body is declared with
    /// [`Envelope::for_body`].
    ///
    /// One result per message, in order. A refused transaction is that
    /// message's `Err` and the next one goes on. When the connection fails,
    /// the message in flight gets the error ([`Error::DeliveryUnknown`] if
    /// its end of data had gone out: see [`Error::outcome`]), and every
    /// message after it [`Error::NotSent`].
    pub fn send_all<'a, I>(&mut self, messages: I) -> Vec<Result<Delivery, Error>>
    where
        I: IntoIterator<Item = (Envelope, &'a [u8])>,
    {
        let mut results = Vec::new();
        self.batch(
            messages
                .into_iter()
                .map(|(envelope, body)| (envelope.for_body(body), SliceBody::new(body))),
            Rest::NotSent,
            &mut |result| results.push(result),
        );
        results
    }

    /// [`send_all`](Self::send_all) with bodies streamed from readers in
    /// bounded memory, like [`send_reader`](Self::send_reader).
    pub fn send_all_readers<R, I>(&mut self, messages: I) -> Vec<Result<Delivery, Error>>
    where
        R: Read,
        I: IntoIterator<Item = (Envelope, R)>,
    {
        let mut results = Vec::new();
        let messages = messages
            .into_iter()
            .map(|(envelope, body)| (envelope, ReadBody(body)));
        self.batch(messages, Rest::NotSent, &mut |result| results.push(result));
        results
    }

    /// [`send_all_readers`](Self::send_all_readers) handing each message's
    /// result to `on_result` as soon as it is known, in order, so a batch of
    /// any length holds no results: what a bulk sender wants. When the
    /// connection fails, the messages the iterator has not yet yielded are
    /// left in it (not sent; it may be endless): the results stop after the
    /// one the failure ended.
    pub fn send_each<R, I>(
        &mut self,
        messages: I,
        mut on_result: impl FnMut(Result<Delivery, Error>),
    ) where
        R: Read,
        I: IntoIterator<Item = (Envelope, R)>,
    {
        let span = tracing::info_span!("smtp.send_all");
        let _enter = span.enter();
        self.batch(
            messages
                .into_iter()
                .map(|(envelope, body)| (envelope, ReadBody(body))),
            Rest::Drop,
            &mut on_result,
        );
    }

    /// [`send_each`](Self::send_each) with bodies in memory: each is
    /// written from the caller's buffer (a slice, a `Vec`, an `Arc<[u8]>`
    /// shared by every message...) where it needs no dot-stuffing or
    /// line-ending repair, and encoded by the session where it does. As with
    /// readers, the envelope is sent as given: declare the size, 8BITMIME
    /// and, for `BDAT`, the exact size yourself ([`Envelope::for_body`]
    /// finds them with a pass over the body).
    pub fn send_each_bytes<B, I>(
        &mut self,
        messages: I,
        mut on_result: impl FnMut(Result<Delivery, Error>),
    ) where
        B: AsRef<[u8]>,
        I: IntoIterator<Item = (Envelope, B)>,
    {
        let span = tracing::info_span!("smtp.send_all");
        let _enter = span.enter();
        self.batch(
            messages
                .into_iter()
                .map(|(envelope, body)| (envelope, SliceBody::new(body))),
            Rest::Drop,
            &mut on_result,
        );
    }

    /// The one sending loop: the core's [`Batch`] decides, this moves the
    /// bytes and reads the bodies.
    fn batch<B: Body>(
        &mut self,
        messages: impl IntoIterator<Item = (Envelope, B)>,
        rest: Rest,
        on_result: &mut dyn FnMut(Result<Delivery, Error>),
    ) {
        if let Err(err) = self.check_usable() {
            on_result(Err(err));
            return;
        }
        self.chunk.clear();
        let mut batch = Batch::new(messages.into_iter(), rest, on_result);
        loop {
            let failure = match batch.next(&mut self.session, Instant::now()) {
                Step::Done => break,
                Step::Io(Io::WriteBody { len, deadline }) => {
                    let source = match batch.body().and_then(|body| body.lent(len)) {
                        Some(bytes) => Source::Lent(bytes),
                        None => Source::Chunk(len),
                    };
                    let result = self.write(deadline, source);
                    self.settle();
                    result.err()
                }
                Step::Io(io) => self.perform(io).err(),
                Step::Body(body) => body.feed(&mut self.session, &mut self.chunk).err(),
            };
            if let Some(err) = failure {
                // The connection is given up (a body that cannot be read
                // must not be ended), and the batch says what became of
                // each message.
                self.poison();
                batch.fail(&mut self.session, err);
            }
        }
        // A timeout the session found when asked for its next step.
        self.settle();
    }

    /// Sends NOOP: checks that the server is still there.
    pub fn noop(&mut self) -> Result<(), Error> {
        let span = tracing::info_span!("smtp.noop");
        let _enter = span.enter();
        self.check_usable()?;
        self.session.noop().map_err(Error::Smtp)?;
        self.expect_ready()
    }

    /// Sends QUIT, waits for the reply, and closes the connection (with a
    /// TLS `close_notify` where TLS is on). After a failure, when the
    /// connection is already unusable or closed, this only closes it.
    pub fn quit(mut self) -> Result<(), Error> {
        let span = tracing::info_span!("smtp.quit");
        let _enter = span.enter();
        if self.poisoned || self.session.is_closed() {
            // What the session still has to say after a failure (a QUIT),
            // as best we can.
            let _ = self.drive();
            self.stream.shutdown();
            return Ok(());
        }
        self.session.quit().map_err(Error::Smtp)?;
        let event = self.drive();
        if matches!(event, Ok(Event::Closed)) {
            self.close_tls();
        }
        self.stream.shutdown();
        match event? {
            Event::Closed => Ok(()),
            _ => Err(self.unexpected("quit")),
        }
    }

    /// The session: capabilities, TLS state, the mechanism used, the configuration.
    pub fn session(&self) -> &ClientSession {
        &self.session
    }

    /// The server's capabilities from the latest EHLO (over TLS when TLS is on).
    pub fn capabilities(&self) -> &Capabilities {
        self.session.capabilities()
    }

    /// Whether the connection is TLS (implicit, or after STARTTLS).
    pub fn is_tls(&self) -> bool {
        self.session.is_tls()
    }

    /// The mechanism the session authenticated with, if it did.
    pub fn auth_mechanism(&self) -> Option<&Mechanism> {
        self.session.auth_mechanism()
    }

    /// The TLS protocol version negotiated (`TLSv1_2` or `TLSv1_3`), once
    /// a handshake has succeeded; `None` in plaintext.
    #[cfg(feature = "rustls")]
    pub fn tls_protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.stream.tls()?.protocol_version()
    }

    /// The cipher suite negotiated, once a handshake has succeeded (its
    /// `suite().as_str()` is the rustls name, e.g.
    /// `TLS13_AES_256_GCM_SHA384`); `None` in plaintext.
    #[cfg(feature = "rustls")]
    pub fn tls_cipher_suite(&self) -> Option<rustls::SupportedCipherSuite> {
        self.stream.tls()?.negotiated_cipher_suite()
    }

    /// The certificate chain the server presented and rustls verified,
    /// end-entity certificate first, once a handshake has succeeded;
    /// `None` in plaintext. A chain that failed verification never gets
    /// here (see [`tls::recording_client_config`](crate::tls::recording_client_config)).
    #[cfg(feature = "rustls")]
    pub fn tls_peer_certificates(&self) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        self.stream.tls()?.peer_certificates()
    }

    /// Checks an idle connection without waiting and without writing: what
    /// the server sent meanwhile is fed to the session, and a `421` (an idle
    /// timeout, a shutdown), any other reply or a close fails it and gives
    /// the connection up. Call it before reusing a connection that idled:
    /// with CHUNKING a message's body goes out before any reply, so a
    /// connection the server already closed must be found out before, not
    /// by writing to it.
    pub fn check_idle(&mut self) -> Result<(), Error> {
        self.check_usable()?;
        let result = loop {
            match self.feed_now() {
                // Nothing more has come; a reply behind the last one awaited
                // may still wait in the session.
                Ok(None) => break self.session.check_idle().map_err(Error::Smtp),
                Ok(Some(Ok(()))) => {}
                Ok(Some(Err(err))) => break Err(Error::Smtp(err)),
                Err(err) => break Err(Error::from_io(err)),
            }
        };
        if result.is_err() {
            self.poison();
        }
        result
    }

    /// Whether an I/O error or timeout left the connection unusable.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Whether the connection can take another message: not poisoned, and
    /// the session neither failed (a refused NOOP, say) nor closed.
    pub fn is_usable(&self) -> bool {
        !self.poisoned && !self.session.is_closed()
    }

    // ---- setting up ------------------------------------------------------

    /// Checks the configuration and builds the TLS configuration; no I/O.
    /// Connecting starts now: the set-up's time limit counts from here.
    fn new(config: Config, options: Options) -> Result<Client, Error> {
        let uses_tls = config.tls_policy() != TlsPolicy::Disabled;
        #[cfg(feature = "rustls")]
        let tls = if uses_tls {
            let config_tls = match options.tls.clone() {
                Some(tls) => tls,
                None => crate::tls::default_config()?,
            };
            let (verified_name, name) = crate::tls::server_name(config.server_name())?;
            Some(Tls {
                config: config_tls,
                name,
                verified_name,
            })
        } else {
            None
        };
        #[cfg(not(feature = "rustls"))]
        if uses_tls {
            return Err(Error::Smtp(smtp_proto::Error::TlsConfig {
                reason: "TLS was asked for (policy other than Disabled) but smtp-blocking was built without the `rustls` feature".to_owned(),
            }));
        }
        let mut session = ClientSession::with_options(config, &options)?;
        if tracing::enabled!(Level::DEBUG) {
            session.add_transcript_hook(Arc::new(log_transcript_line));
        }
        let connect_by = session.start_connect(Instant::now());
        Ok(Client {
            session,
            stream: Stream::Closed,
            #[cfg(feature = "rustls")]
            tls,
            buf: vec![0; READ_BUFFER],
            chunk: BodyChunk::default(),
            connect_by,
            socket_timeouts: (None, None),
            poisoned: false,
        })
    }

    /// Takes the connected socket; nothing is read or written yet.
    fn attach(&mut self, tcp: TcpStream) {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "TCP_NODELAY could not be set");
        }
        // The credential guard's loopback exemption needs the peer the
        // socket really reached, not only the configured name.
        match tcp.peer_addr() {
            Ok(peer) => self.session.set_peer_addr(peer.ip()),
            Err(err) => tracing::debug!(error = %err, "the peer address is unknown"),
        }
        self.stream = Stream::Plain(tcp);
    }

    /// Drives the session to `Ready`, unless it is there already.
    fn establish_inner(&mut self) -> Result<(), Error> {
        if self.session.is_ready() && !self.poisoned {
            return Ok(());
        }
        self.expect_ready()?;
        tracing::debug!(tls = self.is_tls(), auth = ?self.auth_mechanism(), "ready");
        Ok(())
    }

    fn expect_ready(&mut self) -> Result<(), Error> {
        match self.drive()? {
            Event::Ready => Ok(()),
            _ => Err(self.unexpected("the session")),
        }
    }

    fn check_usable(&self) -> Result<(), Error> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        Ok(())
    }

    /// How long connecting (resolution, each TCP attempt) may still take.
    fn connect_wait(&self) -> Duration {
        at_least_1ms(left(self.connect_by, Instant::now()))
    }

    // ---- the driving loop ------------------------------------------------

    /// Performs the session's I/O until it hands out an event: the one loop
    /// of every operation but a batch's (whose steps [`Batch`] hands out).
    fn drive(&mut self) -> Result<Event, Error> {
        self.check_usable()?;
        loop {
            match self.session.next(Instant::now()) {
                Ok(Next::Io(io)) => self.perform(io)?,
                Ok(Next::Event(event)) => return Ok(event),
                Ok(_) => return Err(self.unexpected("the session")),
                Err(err) => {
                    self.settle();
                    return Err(Error::Smtp(err));
                }
            }
        }
    }

    /// One piece of I/O the session asked for. Its errors are the
    /// connection's (the client is poisoned); the session's verdicts on
    /// what was read, and timeouts, come with its next step.
    fn perform(&mut self, io: Io) -> Result<(), Error> {
        let result = match io {
            Io::Write { deadline, .. } => self.write(deadline, Source::Output),
            Io::WriteBody { len, deadline } => self.write(deadline, Source::Chunk(len)),
            Io::Read { deadline, .. } => self.read(deadline),
            Io::Handshake { deadline } => self.upgrade(deadline),
            Io::Close { deadline } => {
                if let Err(err) = self.write(deadline, Source::Output) {
                    tracing::debug!(error = %err, "could not flush after a session error");
                    self.session.abort();
                }
                Ok(())
            }
            _ => Err(self.unexpected("the session")),
        };
        self.settle();
        result
    }

    /// After a timeout the server may be mid-command: the connection is
    /// given up.
    fn settle(&mut self) {
        if !self.poisoned
            && self
                .session
                .error()
                .is_some_and(smtp_proto::Error::is_timeout)
        {
            tracing::debug!(error = ?self.session.error(), "timed out");
            self.poison();
        }
    }

    /// Writes what the session has pending with one socket write (and,
    /// over TLS, sends the records rustls still holds once the session has
    /// nothing more), within `deadline`: its output, or body bytes it lent.
    fn write(&mut self, deadline: Option<Instant>, mut source: Source<'_>) -> Result<(), Error> {
        loop {
            let wait = at_least_1ms(left(deadline, Instant::now()));
            if !close_enough(self.socket_timeouts.1, wait) {
                if let Err(err) = self.stream.set_write_timeout(wait) {
                    return Err(self.io_failure(err));
                }
                self.socket_timeouts.1 = Some(wait);
            }
            let bytes = match source {
                Source::Output => self.session.pending_output(),
                Source::Lent(bytes) => bytes,
                Source::Chunk(len) => match self.chunk.lent(len) {
                    Some(bytes) => bytes,
                    None => return Err(self.unexpected("the session")),
                },
            };
            let len = bytes.len();
            match self.stream.write_once(bytes) {
                // Partial writes too: whether a message's end of data went
                // out decides whether its delivery is unknown.
                Ok(n) if !matches!(source, Source::Output) => {
                    self.session.advance_body(n);
                    if n < len {
                        return Ok(());
                    }
                    // Written whole: what follows is the TLS records only.
                    source = Source::Output;
                }
                Ok(n) => self.session.advance_output(n),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) if timed_out(&err) => {
                    self.session.handle_timeout(Instant::now());
                    return Ok(());
                }
                Err(err) => return Err(self.io_failure(err)),
            }
            // Over TLS, the records rustls still holds go out before the
            // session's next step, which may be a read (or nothing, after a
            // last QUIT).
            if !self.session.pending_output().is_empty() || !self.stream.wants_write() {
                return Ok(());
            }
        }
    }

    /// Reads once, by `deadline`, and feeds the session. End of stream is
    /// reported to the session, which decides.
    fn read(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        let now = Instant::now();
        let wait = at_least_1ms(left(deadline, now));
        if !close_enough(self.socket_timeouts.0, wait) {
            if let Err(err) = self.stream.set_read_timeout(wait) {
                return Err(self.io_failure(err));
            }
            self.socket_timeouts.0 = Some(wait);
        }
        let read = self.stream.read_before(&mut self.buf, now + wait);
        if self.stream.sets_own_timeouts() {
            // The TLS read set the socket's timeout to what was left.
            self.socket_timeouts = (None, None);
        }
        // The session keeps its verdict on what was read; its next step
        // reports it.
        let _verdict = match read {
            Ok(0) => self.session.handle_eof(),
            Ok(n) => self
                .session
                .handle_input(self.buf.get(..n).unwrap_or_default()),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(()),
            // A TLS peer that closes without close_notify: SMTP frames its
            // own data, so the session can tell whether anything was cut.
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => self.session.handle_eof(),
            Err(err) if timed_out(&err) => {
                self.session.handle_timeout(Instant::now());
                Ok(())
            }
            Err(err) => return Err(self.io_failure(err)),
        };
        Ok(())
    }

    // ---- TLS ---------------------------------------------------------------

    #[cfg(not(feature = "rustls"))]
    fn upgrade(&mut self, _deadline: Option<Instant>) -> Result<(), Error> {
        self.poison();
        Err(Error::Smtp(smtp_proto::Error::TlsConfig {
            reason: "smtp-blocking was built without the `rustls` feature".to_owned(),
        }))
    }

    /// [`Io::Handshake`]: show the session any plaintext that came after
    /// the `220`, then the handshake for the configured server name.
    #[cfg(feature = "rustls")]
    fn upgrade(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        let span = tracing::info_span!(
            "smtp.tls",
            server_name = self.session.config().server_name()
        );
        let _enter = span.enter();
        // Everything read so far was fed to the session already; now what
        // is waiting in the socket.
        if !matches!(self.stream, Stream::Plain(_)) {
            return Err(self.unexpected("the TLS upgrade"));
        }
        match self.feed_now() {
            Ok(None | Some(Ok(()))) => {}
            // Refused: the session's next step says so.
            Ok(Some(Err(_))) => return Ok(()),
            Err(err) => return Err(self.io_failure(err)),
        }
        let Some(tls) = &self.tls else {
            self.poison();
            return Err(Error::Smtp(smtp_proto::Error::TlsConfig {
                reason: "no TLS configuration".to_owned(),
            }));
        };
        let connection = rustls::ClientConnection::new(tls.config.clone(), tls.name.clone());
        let verified_name = tls.verified_name.clone();
        let mut connection = match connection {
            Ok(connection) => connection,
            Err(err) => {
                self.poison();
                return Err(Error::Tls(err));
            }
        };
        let Stream::Plain(mut tcp) = std::mem::replace(&mut self.stream, Stream::Closed) else {
            return Err(self.unexpected("the TLS upgrade"));
        };
        match handshake(&mut connection, &mut tcp, deadline) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => {
                // The session says ConnectionClosed during the handshake.
                self.poisoned = true;
                let _verdict = self.session.handle_eof();
                return Ok(());
            }
            Err(err) => {
                self.stream = Stream::Plain(tcp);
                if timed_out(&err) {
                    self.session.handle_timeout(Instant::now());
                    return Ok(());
                }
                return Err(self.io_failure(err));
            }
        }
        tracing::debug!(
            version = ?connection.protocol_version(),
            cipher = ?connection.negotiated_cipher_suite().map(|s| s.suite()),
            "TLS established"
        );
        self.stream = Stream::Tls(Box::new(rustls::StreamOwned::new(connection, tcp)));
        // The handshake set the socket's timeouts itself.
        self.socket_timeouts = (None, None);
        // rustls verified the certificate for exactly this name; the
        // session's verdict comes with its next step.
        let _verdict = self.session.tls_established(&verified_name);
        Ok(())
    }

    /// Reads what has already arrived, without waiting, and feeds it to the
    /// session (end of stream included); what the session made of it, or
    /// `None` when nothing had arrived.
    fn feed_now(&mut self) -> io::Result<Option<Result<(), smtp_proto::Error>>> {
        let fed = match self.stream.read_now(&mut self.buf) {
            Ok(None) => return Ok(None),
            Ok(Some(0)) => self.session.handle_eof(),
            Ok(Some(n)) => self
                .session
                .handle_input(self.buf.get(..n).unwrap_or_default()),
            // TLS without close_notify: SMTP frames its own replies.
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => self.session.handle_eof(),
            Err(err) => return Err(err),
        };
        Ok(Some(fed))
    }

    /// Sends close_notify after QUIT was answered; best effort.
    fn close_tls(&mut self) {
        #[cfg(feature = "rustls")]
        if let Stream::Tls(tls) = &mut self.stream {
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    }

    // ---- failures ------------------------------------------------------------

    /// An I/O error: the connection is unusable from now on.
    fn io_failure(&mut self, err: io::Error) -> Error {
        self.poison();
        Error::from_io(err)
    }

    fn poison(&mut self) {
        self.poisoned = true;
        // The session must not believe the dialogue can go on either.
        self.session.abort();
        self.stream.shutdown();
    }

    /// An event no operation expects here: a bug; the connection is given up.
    fn unexpected(&mut self, call: &'static str) -> Error {
        self.poison();
        Error::Smtp(smtp_proto::Error::InvalidState {
            call,
            reason: "the session produced an event this operation does not expect",
        })
    }
}

/// What is left until `deadline` at `now` (a year without one).
fn left(deadline: Option<Instant>, now: Instant) -> Duration {
    deadline.map_or(FOREVER, |deadline| deadline.saturating_duration_since(now))
}

/// Whether a socket error means its timeout ran out.
fn timed_out(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Runs `resolve` (the system resolver, which has no timeout of its own) on
/// a thread of its own and waits for it at most `timeout`: a resolver that
/// hangs fails the connection within the connect timeout instead of holding
/// it forever. The thread, if it still waits, ends when the resolver does.
fn resolve_within<F>(resolve: F, timeout: Duration) -> io::Result<Vec<SocketAddr>>
where
    F: FnOnce() -> io::Result<Vec<SocketAddr>> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("smtp-resolve".to_owned())
        .spawn(move || {
            // The receiver may have given up already: nothing to tell then.
            let _ = tx.send(resolve());
        })?;
    rx.recv_timeout(at_least_1ms(timeout)).unwrap_or_else(|_| {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("name resolution took longer than {timeout:?}"),
        ))
    })
}

/// Whether a socket timeout already `set` can stand for `wait`: at most
/// [`TIMEOUT_SLACK`] longer. Setting it again before every read or write
/// costs a system call each.
fn close_enough(set: Option<Duration>, wait: Duration) -> bool {
    set.is_some_and(|set| set >= wait && set - wait <= TIMEOUT_SLACK)
}

/// Logs one transcript line (target: this module).
fn log_transcript_line(line: &smtp_proto::TranscriptLine) {
    tracing::debug!(line = %line);
}

/// The TLS handshake over `tcp`, by `deadline`. rustls errors come
/// back wrapped in `InvalidData`; end of stream as `UnexpectedEof`.
#[cfg(feature = "rustls")]
fn handshake(
    connection: &mut rustls::ClientConnection,
    tcp: &mut TcpStream,
    deadline: Option<Instant>,
) -> io::Result<()> {
    while connection.is_handshaking() || connection.wants_write() {
        let remaining = left(deadline, Instant::now());
        if remaining.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        tcp.set_read_timeout(Some(at_least_1ms(remaining)))?;
        tcp.set_write_timeout(Some(at_least_1ms(remaining)))?;
        if connection.wants_write() {
            match connection.write_tls(tcp) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                other => {
                    other?;
                }
            }
            continue;
        }
        match connection.read_tls(tcp) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {
                if let Err(err) = connection.process_new_packets() {
                    // Tell the server why (the alert rustls queued), best effort.
                    let _ = connection.write_tls(tcp);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, err));
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

#[cfg(all(test, feature = "rustls", any(feature = "ring", feature = "aws-lc-rs")))]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Plaintext already waiting in the socket when the handshake is due is
    /// read without blocking and shown to the session, which refuses it.
    #[test]
    fn plaintext_waiting_before_the_handshake_is_fed_to_the_session() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server
            .write_all(b"220 plaintext where TLS was due\r\n")
            .unwrap();
        // Wait until the bytes are there, without consuming them.
        tcp.peek(&mut [0; 1]).unwrap();

        let config = Config::new("mail.test").tls(TlsPolicy::Implicit);
        let mut client = Client::new(config, Options::new()).unwrap();
        client.stream = Stream::Plain(tcp);
        let err = client.expect_ready().unwrap_err();
        assert!(
            matches!(err, Error::Smtp(smtp_proto::Error::StartTlsInjection)),
            "{err:?}"
        );
        // Nothing was handed to rustls: the socket is still plain, and the
        // session stays failed.
        assert!(matches!(client.stream, Stream::Plain(_)));
        assert!(matches!(
            client.noop(),
            Err(Error::Smtp(smtp_proto::Error::StartTlsInjection))
        ));
    }

    #[test]
    fn brackets_are_stripped_for_tls() {
        let config = Config::new("[::1]").tls(TlsPolicy::Implicit);
        let client = Client::new(config, Options::new()).unwrap();
        assert!(matches!(
            client.tls.as_ref().map(|t| &t.name),
            Some(rustls::pki_types::ServerName::IpAddress(_))
        ));
    }
}

#[cfg(test)]
mod resolve_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_hanging_resolver_is_bounded_by_the_timeout() {
        let started = Instant::now();
        let hang = || {
            std::thread::sleep(Duration::from_secs(3));
            Ok(Vec::new())
        };
        let err = resolve_within(hang, Duration::from_millis(100)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(
            err.to_string().contains("name resolution took longer"),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_resolver_that_answers_in_time_is_heard() {
        let addr: SocketAddr = "127.0.0.1:25".parse().unwrap();
        let got = resolve_within(move || Ok(vec![addr]), Duration::from_secs(5)).unwrap();
        assert_eq!(got, [addr]);
        let err = resolve_within(
            || Err(io::Error::new(io::ErrorKind::NotFound, "no such host")),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
