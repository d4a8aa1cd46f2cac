//! The blocking client: moves bytes between a socket and a `ClientSession`.

use crate::batch::{Action, Batch, Rest};
use crate::stream::{at_least_1ms, Stream};
use crate::{strip_brackets, Deadlines, Error, Options, Transcript};
use smtp_proto::{
    Capabilities, ClientSession, Config, Delivery, Envelope, Event, Mechanism, Stage, Timeouts,
    TlsPolicy,
};
use std::fmt;
#[cfg(feature = "rustls")]
use std::io::Write;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};
use tracing::Level;

/// How much is read from the socket at once.
const READ_BUFFER: usize = 16 * 1024;
/// How much of the body is read from the caller and written at once.
const BODY_CHUNK: usize = 64 * 1024;

/// How much longer than what is left of a reply's time the socket's read
/// timeout may be before it is set again.
const TIMEOUT_SLACK: Duration = Duration::from_millis(50);

/// A message body as the sending loop writes it.
trait Body {
    fn write(&mut self, client: &mut Client) -> Result<(), Error>;
}

/// A body in memory, written straight from the slice.
struct SliceBody<'a>(&'a [u8]);

impl Body for SliceBody<'_> {
    fn write(&mut self, client: &mut Client) -> Result<(), Error> {
        for chunk in self.0.chunks(BODY_CHUNK) {
            client.write_body(chunk)?;
        }
        Ok(())
    }
}

/// A body read 64 KiB at a time. A failing reader poisons the connection,
/// so no truncated message is ever ended.
struct ReadBody<R>(R);

impl<R: Read> Body for ReadBody<R> {
    fn write(&mut self, client: &mut Client) -> Result<(), Error> {
        let mut chunk = vec![0; BODY_CHUNK];
        loop {
            let n = match self.0.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    client.poison();
                    return Err(Error::BodyRead(err));
                }
            };
            client.write_body(&chunk[..n])?;
        }
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
    connect_timeout: Duration,
    timeouts: Timeouts,
    #[cfg(feature = "rustls")]
    tls: Option<Tls>,
    transcript: Transcript,
    buf: Vec<u8>,
    /// The stage's timeout for each reply; the time limit.
    deadlines: Deadlines,
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
    /// bracketed) and each address is tried in turn, each within
    /// [`Options::connect_timeout`]. TLS verifies `config`'s server name.
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
    /// replies and the capabilities read so far. [`Options::time_limit`]
    /// counts from this call.
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
        let lookup = strip_brackets(host).to_owned();
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
        self.send_one(envelope.for_body(body), SliceBody(body))
    }

    /// Sends one message read from `body`, in bounded memory: 64 KiB at a
    /// time is read, encoded and written before the next is read. Declare
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
                .map(|(envelope, body)| (envelope.for_body(body), SliceBody(body))),
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

    /// The one sending loop: [`Batch`] decides, this moves the bytes.
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
        let mut batch = Batch::new(messages.into_iter(), on_result);
        let mut reported = None;
        let failure = (|| loop {
            // Each message has the whole time limit from the previous one's
            // result (or from the start of the batch).
            if reported != Some(batch.reported()) {
                reported = Some(batch.reported());
                self.deadlines.start(Instant::now());
            }
            match batch
                .next(&mut self.session)
                .map_err(|err| self.session_failure(err))?
            {
                Action::Event => {
                    let event = self.drive()?;
                    batch
                        .event(event)
                        .map_err(|_| self.unexpected("send_all"))?;
                }
                Action::Body(mut body) => {
                    body.write(self)?;
                    // Not flushed here: the end of this message goes out
                    // with the next message's commands.
                    self.session
                        .finish_body()
                        .map_err(|err| self.session_failure(err))?;
                }
                Action::Done => return Ok(()),
            }
        })();
        self.deadlines.stop();
        if let Err(err) = failure {
            batch.fail(&mut self.session, err, rest);
        }
    }

    /// Sends NOOP: checks that the server is still there.
    pub fn noop(&mut self) -> Result<(), Error> {
        let span = tracing::info_span!("smtp.noop");
        let _enter = span.enter();
        self.check_usable()?;
        self.session
            .noop()
            .map_err(|err| self.session_failure(err))?;
        self.expect_ready()
    }

    /// Sends QUIT, waits for the reply, and closes the connection (with a
    /// TLS `close_notify` where TLS is on). After a failure, when the
    /// connection is already unusable or closed, this only closes it.
    pub fn quit(mut self) -> Result<(), Error> {
        let span = tracing::info_span!("smtp.quit");
        let _enter = span.enter();
        if self.poisoned || self.session.is_closed() {
            self.best_effort_flush();
            self.stream.shutdown();
            return Ok(());
        }
        self.session
            .quit()
            .map_err(|err| self.session_failure(err))?;
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
        self.drain_transcript();
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
    fn new(config: Config, options: Options) -> Result<Client, Error> {
        let transcript = Transcript::new(
            options.transcript,
            tracing::enabled!(Level::DEBUG),
            log_transcript_line,
        );
        let config = transcript.config(config);
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
            return Err(Error::tls_config(
                "TLS was asked for (policy other than Disabled) but smtp-blocking was built without the `rustls` feature",
            ));
        }
        let session = ClientSession::new(config)?;
        let mut deadlines = Deadlines::new(options.time_limit);
        // The time limit counts from here for the session's set-up.
        deadlines.start(Instant::now());
        Ok(Client {
            session,
            stream: Stream::Closed,
            timeouts: options.timeouts,
            #[cfg(feature = "rustls")]
            tls,
            transcript,
            buf: vec![0; READ_BUFFER],
            deadlines,
            socket_timeouts: (None, None),
            poisoned: false,
            connect_timeout: options.connect_timeout,
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
        self.deadlines.stop();
        tracing::debug!(tls = self.is_tls(), auth = ?self.auth_mechanism(), "ready");
        Ok(())
    }

    // ---- operations --------------------------------------------------------

    /// Encodes one chunk of the body, and writes once a chunk's worth is
    /// pending: a small message and its end go out in one write.
    fn write_body(&mut self, chunk: &[u8]) -> Result<(), Error> {
        self.session
            .write_body(chunk)
            .map_err(|err| self.session_failure(err))?;
        if self.session.pending_output().len() >= BODY_CHUNK {
            self.flush()?;
        }
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

    // ---- the driving loop ------------------------------------------------

    /// Moves bytes until the session has an event for the caller (never
    /// [`Event::StartTls`]: performed here): flush what it has to say, act
    /// on its event, or read what it waits for.
    fn drive(&mut self) -> Result<Event, Error> {
        self.check_usable()?;
        loop {
            self.flush()?;
            match self.session.poll_event() {
                Some(Event::StartTls) => {
                    self.upgrade()?;
                    continue;
                }
                Some(event) => return Ok(event),
                None => {}
            }
            if !self.session.wants_input() {
                return Err(match self.session.error() {
                    Some(err) => Error::Smtp(err.clone()),
                    None => self.unexpected("the session"),
                });
            }
            self.receive()?;
        }
    }

    /// Writes everything the session has to say. Each socket write gets the
    /// stage's timeout, within what is left of the time limit.
    fn flush(&mut self) -> Result<(), Error> {
        self.drain_transcript();
        let pending = self.session.pending_output().len();
        if pending == 0 {
            return Ok(());
        }
        let stage = self.session.stage().unwrap_or(Stage::Quit);
        let (deadlines, timeouts) = (self.deadlines, &self.timeouts);
        let (written, result) = write_within(
            &mut self.stream,
            &mut self.socket_timeouts.1,
            self.session.pending_output(),
            || deadlines.write(stage, timeouts).ok(),
        );
        // Partial writes too: whether a message's end of data went out
        // decides whether its delivery is unknown.
        self.session.advance_output(written);
        match result {
            Ok(()) => {
                // A new command went out: its reply gets a whole timeout.
                self.deadlines.reset();
                Ok(())
            }
            Err(err) => Err(self.io_failure(err, stage)),
        }
    }

    /// How long connecting (resolution, each TCP attempt) may take.
    fn connect_wait(&self) -> Duration {
        at_least_1ms(self.deadlines.within(self.connect_timeout))
    }

    /// Sets the socket's read timeout to what is left of the reply's time.
    /// One already set that is at most [`TIMEOUT_SLACK`] longer is kept:
    /// setting it again before every read costs a system call per read.
    fn set_read_timeout(&mut self, remaining: Duration) -> io::Result<()> {
        if !close_enough(self.socket_timeouts.0, remaining) {
            self.stream.set_read_timeout(remaining)?;
            self.socket_timeouts.0 = Some(remaining);
        }
        Ok(())
    }

    /// Reads once, within what is left of the stage's timeout, and feeds the
    /// session. End of stream is reported to the session, which decides.
    fn receive(&mut self) -> Result<(), Error> {
        let stage = self.session.stage().unwrap_or(Stage::Noop);
        let remaining = match self.deadlines.read(stage, &self.timeouts) {
            Ok(remaining) => remaining,
            Err(err) => return Err(self.timed_out(err)),
        };
        if let Err(err) = self.set_read_timeout(remaining) {
            return Err(self.io_failure(err, stage));
        }
        // Capped so that no configured timeout can overflow the clock.
        let deadline = Instant::now() + remaining.min(Duration::from_secs(86_400 * 365));
        let read = self.stream.read_before(&mut self.buf, deadline);
        if self.stream.sets_own_timeouts() {
            // The TLS read set the socket's timeout to what was left.
            self.socket_timeouts = (None, None);
        }
        let fed = match read {
            Ok(0) => self.session.handle_eof(),
            Ok(n) => self.session.handle_input(&self.buf[..n]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(()),
            // A TLS peer that closes without close_notify: SMTP frames its
            // own data, so the session can tell whether anything was cut.
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => self.session.handle_eof(),
            Err(err) => return Err(self.io_failure(err, stage)),
        };
        fed.map_err(|err| self.session_failure(err))
    }

    // ---- TLS ---------------------------------------------------------------

    #[cfg(not(feature = "rustls"))]
    fn upgrade(&mut self) -> Result<(), Error> {
        self.poison();
        Err(Error::tls_config(
            "smtp-blocking was built without the `rustls` feature",
        ))
    }

    /// Implicit TLS or STARTTLS: show the session any plaintext that came
    /// after the `220`, then the handshake for the configured server name.
    #[cfg(feature = "rustls")]
    fn upgrade(&mut self) -> Result<(), Error> {
        let span = tracing::info_span!(
            "smtp.tls",
            server_name = self.session.config().server_name()
        );
        let _enter = span.enter();
        // Everything read so far was fed to the session already; now what
        // is waiting in the socket.
        self.refuse_early_plaintext()?;
        let Some(tls) = &self.tls else {
            self.poison();
            return Err(Error::tls_config("no TLS configuration"));
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
        let timeout = self
            .deadlines
            .write(Stage::TlsHandshake, &self.timeouts)
            .unwrap_or(Duration::ZERO);
        match handshake(&mut connection, &mut tcp, timeout) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => {
                // The session says ConnectionClosed during the handshake.
                self.poisoned = true;
                let err = self.session.handle_eof().err().unwrap_or(
                    smtp_proto::Error::ConnectionClosed {
                        stage: Stage::TlsHandshake,
                    },
                );
                return Err(Error::Smtp(err));
            }
            Err(err) => {
                self.stream = Stream::Plain(tcp);
                return Err(self.io_failure(err, Stage::TlsHandshake));
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
        self.deadlines.reset();
        // rustls verified the certificate for exactly this name.
        self.session
            .tls_established(&verified_name)
            .map_err(|err| self.session_failure(err))
    }

    /// Reads what is already waiting in the socket without blocking, and
    /// feeds it to the session, which refuses it (StartTlsInjection). Bytes
    /// received in plaintext are never discarded, nor handed to rustls.
    #[cfg(feature = "rustls")]
    fn refuse_early_plaintext(&mut self) -> Result<(), Error> {
        if !matches!(self.stream, Stream::Plain(_)) {
            return Err(self.unexpected("the TLS upgrade"));
        }
        match self.feed_now() {
            Ok(None | Some(Ok(()))) => Ok(()),
            Ok(Some(Err(err))) => Err(self.session_failure(err)),
            Err(err) => Err(self.io_failure(err, Stage::TlsHandshake)),
        }
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

    /// A session error: flush what the session still has to say (it may have
    /// queued QUIT), best effort, then hand the error on.
    fn session_failure(&mut self, err: smtp_proto::Error) -> Error {
        self.best_effort_flush();
        Error::Smtp(err)
    }

    fn best_effort_flush(&mut self) {
        self.drain_transcript();
        let pending = self.session.pending_output().len();
        if pending == 0 || self.poisoned {
            return;
        }
        // Once, with QUIT's timeout in all: nothing waits on this.
        let until = Instant::now().checked_add(self.timeouts.get(Stage::Quit));
        let (written, result) = write_within(
            &mut self.stream,
            &mut self.socket_timeouts.1,
            self.session.pending_output(),
            || match until {
                Some(until) => Some(until.saturating_duration_since(Instant::now()))
                    .filter(|left| !left.is_zero()),
                None => Some(Duration::MAX),
            },
        );
        self.session.advance_output(written);
        if let Err(err) = result {
            tracing::debug!(error = %err, "could not flush after a session error");
        }
    }

    /// An I/O error: the connection is unusable from now on.
    fn io_failure(&mut self, err: io::Error, stage: Stage) -> Error {
        if matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            let err = self.deadlines.expired(stage);
            return self.timed_out(err);
        }
        self.poison();
        Error::from_io(err)
    }

    /// `err`, a timeout or the time limit, poisons the client.
    fn timed_out(&mut self, err: Error) -> Error {
        tracing::debug!(error = %err, "timed out");
        self.poison();
        err
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

    fn drain_transcript(&mut self) {
        self.transcript.drain(&mut self.session);
    }
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

/// Writes all of `bytes` one socket write at a time, each within what
/// `wait` says is left (`None`: time is up, `TimedOut`), so that neither a
/// peer that reads slowly nor rustls' own write loop carries a write past its
/// deadline. `set` is the write timeout last set on the socket. How many
/// bytes went (to the socket, or into rustls), and how it ended.
fn write_within(
    stream: &mut Stream,
    set: &mut Option<Duration>,
    bytes: &[u8],
    mut wait: impl FnMut() -> Option<Duration>,
) -> (usize, io::Result<()>) {
    let mut written = 0;
    while written < bytes.len() || stream.wants_write() {
        let Some(wait) = wait() else {
            return (written, Err(io::ErrorKind::TimedOut.into()));
        };
        let wait = at_least_1ms(wait);
        if !close_enough(*set, wait) {
            if let Err(err) = stream.set_write_timeout(wait) {
                return (written, Err(err));
            }
            *set = Some(wait);
        }
        match stream.write_once(bytes.get(written..).unwrap_or_default()) {
            Ok(n) => written += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return (written, Err(err)),
        }
    }
    (written, Ok(()))
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

/// The TLS handshake over `tcp`, within `timeout` in all. rustls errors come
/// back wrapped in `InvalidData`; end of stream as `UnexpectedEof`.
#[cfg(feature = "rustls")]
fn handshake(
    connection: &mut rustls::ClientConnection,
    tcp: &mut TcpStream,
    timeout: Duration,
) -> io::Result<()> {
    let deadline = Instant::now().checked_add(timeout);
    while connection.is_handshaking() || connection.wants_write() {
        let remaining = match deadline {
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            None => timeout,
        };
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
    fn brackets_are_stripped_for_resolution_and_tls() {
        assert_eq!(strip_brackets("[::1]"), "::1");
        assert_eq!(strip_brackets("::1"), "::1");
        assert_eq!(strip_brackets("mail.test"), "mail.test");
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
