//! The one async driving loop, generic over the runtime's I/O.
//!
//! A backend implements [`Transport`] (read, write, flush, a non-waiting
//! read, the TLS upgrade, a timeout combinator). What to do next, and by
//! when, is the core's ([`ClientSession::next`], [`Batch::next`]); this
//! performs it, once for every backend, and keeps the cancellation rule.

use crate::{tls, Error, Options};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use smtp_proto::{
    Batch, BodyChunk, ClientSession, Config, Delivery, Envelope, Event, Io, Next, Rest, Step,
    TranscriptLine,
};
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// The size of the chunks a message body is fed to the session in.
pub(crate) const BODY_CHUNK: usize = 64 * 1024;

/// The size of the buffer server bytes are read into.
const READ_BUFFER: usize = 8 * 1024;

/// The longest a wait is given when the session's has no deadline.
const FOREVER: Duration = Duration::from_secs(86_400 * 365);

/// The longest closing the connection after QUIT may take.
const QUIT_CLOSE: Duration = Duration::from_secs(10);

/// The tracing target of transcript lines.
pub(crate) const TRANSCRIPT_TARGET: &str = "smtp_tokio::transcript";

/// A runtime's I/O on one connection, plain or TLS.
///
/// `pub` in this private module: the sealed supertrait of
/// [`Backend`](crate::Backend), which nobody outside can name or implement.
pub trait Transport: Send + Sized {
    /// Reads what the server sent; `Ok(0)` at end of stream.
    fn read<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a;

    /// Writes some of `buf` (how much: the driver counts what went, partial
    /// writes included).
    fn write<'a>(
        &'a mut self,
        buf: &'a [u8],
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a;

    /// Flushes buffered bytes (the TLS layer's) to the socket.
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Send + '_;

    /// Reads what has already arrived on the plaintext socket, without
    /// waiting: `Ok(None)` when nothing is there, `Ok(Some(0))` at end of
    /// stream.
    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;

    /// Reads what has already arrived on the connection, plaintext or TLS
    /// (decrypted), without waiting: `Ok(None)` when nothing is there,
    /// `Ok(Some(0))` at end of stream.
    fn read_ready(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;

    /// Performs the TLS handshake over the plaintext socket.
    fn upgrade(
        &mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> impl Future<Output = io::Result<()>> + Send + '_;

    /// Closes the write side (sending TLS close_notify first).
    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> + Send + '_;

    /// Drops the connection at once, with nothing more written: after a
    /// failure. (Closing a stream is not enough: async-io's `close` only
    /// flushes.)
    fn close(&mut self);

    /// Lets the runtime see what arrived on its sockets meanwhile, before a
    /// read that does not wait: tokio's reactor learns of readiness only
    /// when its driver runs, which a task that yields to it makes sure of.
    fn catch_up() -> impl Future<Output = ()> + Send;

    /// Runs `future` for at most `duration`; `None` when the time ran out.
    fn timeout<F>(duration: Duration, future: F) -> impl Future<Output = Option<F::Output>> + Send
    where
        F: Future + Send,
        F::Output: Send;
}

/// A backend that resolves names and dials TCP itself: the sealed
/// supertrait of [`Dial`](crate::Dial).
pub trait Dialer: Transport {
    /// Resolves `host` (no brackets) for `port`.
    fn resolve(
        host: &str,
        port: u16,
    ) -> impl Future<Output = io::Result<Vec<SocketAddr>>> + Send + '_;

    /// Connects to `address` (with `TCP_NODELAY` set when it can be): the
    /// plaintext transport.
    fn dial(address: SocketAddr) -> impl Future<Output = io::Result<Self>> + Send;
}

/// A connection's stream: the plaintext one, then TLS over it.
#[derive(Debug)]
pub(crate) enum Stream<S, T> {
    Plain(S),
    Tls(Box<T>),
    /// No stream: the TLS handshake took the plaintext one and did not
    /// finish, or the connection was dropped after a failure.
    Gone,
}

impl<S, T> Stream<S, T> {
    /// The plaintext stream, while TLS is not on.
    pub(crate) fn plain(&mut self) -> Option<&mut S> {
        match self {
            Stream::Plain(stream) => Some(stream),
            Stream::Tls(_) | Stream::Gone => None,
        }
    }

    /// Takes the plaintext stream for the TLS handshake, leaving
    /// [`Stream::Gone`] until the TLS stream is put in.
    pub(crate) fn take_plain(&mut self) -> io::Result<S> {
        match std::mem::replace(self, Stream::Gone) {
            Stream::Plain(stream) => Ok(stream),
            Stream::Tls(_) | Stream::Gone => Err(io::Error::other("TLS is already active")),
        }
    }
}

/// Polls a read once with a waker that does nothing: what has already
/// arrived, without waiting (`Ok(None)` when the read would wait).
pub(crate) fn poll_once(
    mut poll: impl FnMut(&mut Context<'_>) -> Poll<io::Result<usize>>,
) -> io::Result<Option<usize>> {
    let waker = Waker::from(Arc::new(NoopWaker));
    let mut cx = Context::from_waker(&waker);
    match poll(&mut cx) {
        Poll::Ready(Ok(n)) => Ok(Some(n)),
        Poll::Ready(Err(err)) if err.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Poll::Ready(Err(err)) => Err(err),
        Poll::Pending => Ok(None),
    }
}

/// A waker for polling once without waiting.
struct NoopWaker;

impl Wake for NoopWaker {
    fn wake(self: Arc<Self>) {}
}

/// The error of I/O on a [`Stream::Gone`].
pub(crate) fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the TLS handshake did not complete",
    )
}

/// A session keeping to `options`, with every transcript line also logged
/// when [`TRANSCRIPT_TARGET`] is enabled at DEBUG; and by when connecting,
/// which starts now, must be done.
pub(crate) fn new_session(
    config: Config,
    options: &Options,
) -> Result<(ClientSession, Option<Instant>), Error> {
    let mut session = ClientSession::with_options(config, options)?;
    if tracing::enabled!(target: TRANSCRIPT_TARGET, tracing::Level::DEBUG) {
        session.add_transcript_hook(Arc::new(log_transcript_line));
    }
    let connect_by = session.start_connect(Instant::now());
    Ok((session, connect_by))
}

/// What is left until `deadline` (a year without one).
pub(crate) fn left(deadline: Option<Instant>) -> Duration {
    deadline.map_or(FOREVER, |deadline| {
        deadline.saturating_duration_since(Instant::now())
    })
}

/// Logs one transcript line under [`TRANSCRIPT_TARGET`].
fn log_transcript_line(line: &TranscriptLine) {
    tracing::debug!(target: TRANSCRIPT_TARGET, "{line}");
}

/// One connection driven by one session.
pub(crate) struct Driver<T> {
    transport: T,
    session: ClientSession,
    tls: Option<Arc<ClientConfig>>,
    buf: Box<[u8]>,
    /// The buffer bodies are polled into.
    chunk: BodyChunk,
    /// Set while an operation runs; still set afterwards when it was
    /// cancelled or broke the connection.
    poisoned: bool,
    /// The session produced an event out of order: a bug, after which the
    /// connection is given up.
    out_of_step: bool,
}

impl<T: Transport> Driver<T> {
    /// Runs the session over `transport` up to [`Event::Ready`]: greeting,
    /// EHLO, STARTTLS or implicit TLS, AUTH, within the time limit the
    /// session counts from [`new_session`].
    pub(crate) async fn start(
        transport: T,
        session: ClientSession,
        options: Options,
    ) -> Result<Driver<T>, Error> {
        let mut driver = Driver {
            transport,
            session,
            tls: options.tls,
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            chunk: BodyChunk::default(),
            poisoned: true,
            out_of_step: false,
        };
        driver.expect_ready().await?;
        driver.poisoned = false;
        Ok(driver)
    }

    pub(crate) fn session(&self) -> &ClientSession {
        &self.session
    }

    pub(crate) fn is_usable(&self) -> bool {
        !self.poisoned && self.session.is_ready()
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Feeds the session what the server sent while the connection was idle,
    /// without waiting and without writing anything: a `421`, any other
    /// reply or a close fails the session (the core's rule for unsolicited
    /// input), and the connection is given up. A pool calls this before it
    /// reuses a connection, so a server that timed the connection out never
    /// gets a command, or a `BDAT` body, written to it.
    pub(crate) async fn check_idle(&mut self) -> Result<(), Error> {
        if !self.is_usable() {
            return Err(Error::Poisoned);
        }
        T::catch_up().await;
        let result = loop {
            let fed = match self.transport.read_ready(&mut self.buf[..]) {
                Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => self.session.handle_eof(),
                Err(err) => break Err(Error::Io(err)),
                // Nothing more has come; a reply behind the last one awaited
                // may still wait in the session.
                Ok(None) => break self.session.check_idle().map_err(Error::Smtp),
                Ok(Some(0)) => self.session.handle_eof(),
                Ok(Some(n)) => match self.buf.get(..n) {
                    Some(bytes) => self.session.handle_input(bytes),
                    None => break Err(Error::Io(io::ErrorKind::InvalidData.into())),
                },
            };
            if let Err(err) = fed {
                break Err(Error::Smtp(err));
            }
        };
        if result.is_err() {
            self.poisoned = true;
            self.give_up();
        }
        result
    }

    /// Sends one message whose body `read` produces: a batch of one.
    pub(crate) async fn send<R>(&mut self, envelope: Envelope, read: R) -> Result<Delivery, Error>
    where
        R: PollBody,
    {
        let span = tracing::debug_span!("smtp.send", recipients = envelope.recipients().len());
        let mut outcome = None;
        let once = std::iter::once((envelope, read));
        self.batch(once, Rest::Drop, |result| {
            outcome.get_or_insert(result);
        })
        .instrument(span)
        .await;
        outcome.unwrap_or_else(|| {
            Err(Error::Smtp(smtp_proto::Error::InvalidState {
                call: "smtp-tokio driver",
                reason: "a batch of one ended without a result",
            }))
        })
    }

    /// The one sending loop: the core's [`Batch`] decides, this moves the
    /// bytes and polls the bodies, 64 KiB at a time.
    pub(crate) async fn batch<I, R, F>(&mut self, messages: I, rest: Rest, mut on_result: F)
    where
        I: IntoIterator<Item = (Envelope, R)>,
        R: PollBody,
        F: FnMut(Result<Delivery, Error>),
    {
        if let Err(err) = self.begin() {
            on_result(Err(err));
            return;
        }
        self.chunk.clear();
        let mut batch = Batch::new(messages.into_iter(), rest, on_result);
        let mut broke = false;
        loop {
            let failure = match batch.next(&mut self.session, Instant::now()) {
                Step::Done => break,
                Step::Io(Io::WriteBody { len, deadline }) => {
                    self.write(deadline, Some(len)).await.err()
                }
                Step::Io(io) => self.perform(io).await.err(),
                Step::Body(read) => feed_body(read, &mut self.chunk, &mut self.session)
                    .await
                    .err(),
            };
            if let Some(err) = failure {
                broke |= err.breaks_connection();
                batch.fail(&mut self.session, err);
            }
        }
        let broke = broke.then_some(Error::Poisoned);
        if self.end(broke.as_ref()) {
            self.give_up();
        }
    }

    /// Sends NOOP and waits for the reply: a health check.
    pub(crate) async fn noop(&mut self) -> Result<(), Error> {
        self.begin()?;
        let result = async {
            self.session.noop()?;
            self.expect_ready().await
        }
        .instrument(tracing::debug_span!("smtp.noop"))
        .await;
        if self.end(result.as_ref().err()) {
            self.give_up();
        }
        result
    }

    /// Sends QUIT, waits for the reply or the server closing, and closes.
    pub(crate) async fn quit(mut self) -> Result<(), Error> {
        self.begin()?;
        async {
            if self.session.is_closed() {
                // What the session still has to say after a failure (a
                // QUIT), as best we can.
                let _ = self.next_event().await;
            } else {
                self.session.quit()?;
                match self.next_event().await? {
                    Event::Closed => {}
                    other => return Err(self.unexpected(other)),
                }
            }
            // Best effort: the dialogue is over either way.
            let _ = T::timeout(QUIT_CLOSE, self.transport.shutdown()).await;
            Ok(())
        }
        .instrument(tracing::debug_span!("smtp.quit"))
        .await
    }

    // ---- operations ---------------------------------------------------------

    fn begin(&mut self) -> Result<(), Error> {
        if self.poisoned {
            // An operation cancelled part-way could not close the
            // connection itself.
            self.give_up();
            return Err(Error::Poisoned);
        }
        self.poisoned = true;
        Ok(())
    }

    /// Ends an operation; whether it left the client poisoned (a timeout
    /// in the session too: the server may be mid-command).
    fn end(&mut self, err: Option<&Error>) -> bool {
        self.poisoned = self.out_of_step
            || err.is_some_and(Error::breaks_connection)
            || self
                .session
                .error()
                .is_some_and(smtp_proto::Error::is_timeout);
        self.poisoned
    }

    /// After an operation that poisoned the client: the session stops (it
    /// must not believe the dialogue can go on) and the connection is closed
    /// now, so the server drops a half-sent message at once rather than when
    /// the client is dropped.
    fn give_up(&mut self) {
        self.session.abort();
        self.transport.close();
    }

    /// An event no operation expects here: a bug; the connection is given up.
    fn unexpected(&mut self, event: Event) -> Error {
        tracing::debug!(?event, "unexpected session event");
        self.out_of_step = true;
        Error::Smtp(smtp_proto::Error::InvalidState {
            call: "smtp-tokio driver",
            reason: "the session produced an event out of order",
        })
    }

    async fn expect_ready(&mut self) -> Result<(), Error> {
        match self.next_event().await? {
            Event::Ready => Ok(()),
            other => Err(self.unexpected(other)),
        }
    }

    // ---- the loop -------------------------------------------------------------

    /// Performs the session's I/O until it hands out an event.
    async fn next_event(&mut self) -> Result<Event, Error> {
        loop {
            match self.session.next(Instant::now())? {
                Next::Io(io) => self.perform(io).await?,
                Next::Event(event) => return Ok(event),
                _ => {
                    self.out_of_step = true;
                    return Err(Error::Smtp(smtp_proto::Error::InvalidState {
                        call: "smtp-tokio driver",
                        reason: "the session asked for a body outside a send",
                    }));
                }
            }
        }
    }

    /// One piece of I/O the session asked for. Its errors are the
    /// connection's; the session's verdicts on what was read, and timeouts,
    /// come with its next step.
    async fn perform(&mut self, io: Io) -> Result<(), Error> {
        match io {
            Io::Write { deadline, .. } => self.write(deadline, None).await,
            Io::Read { deadline, .. } => self.read(deadline).await,
            Io::Handshake { deadline } => self.start_tls(deadline).await,
            Io::Close { deadline } => {
                if let Err(err) = self.write(deadline, None).await {
                    tracing::debug!(error = %err, "could not flush after a session error");
                    self.session.abort();
                }
                Ok(())
            }
            _ => {
                self.out_of_step = true;
                Err(Error::Smtp(smtp_proto::Error::InvalidState {
                    call: "smtp-tokio driver",
                    reason: "the session asked for I/O this driver does not know",
                }))
            }
        }
    }

    /// Writes some of what the session has pending, or, with `lent`, of
    /// the `len` body bytes it lent ([`Io::WriteBody`]: the last `len` it
    /// took from the chunk) straight from the chunk, by `deadline`; then
    /// flushes the TLS layer once the session has nothing more.
    async fn write(&mut self, deadline: Option<Instant>, lent: Option<usize>) -> Result<(), Error> {
        let lent = match lent.map(|len| self.chunk.lent(len)) {
            None => None,
            Some(Some(bytes)) => Some(bytes),
            Some(None) => {
                self.out_of_step = true;
                return Err(Error::Smtp(smtp_proto::Error::InvalidState {
                    call: "smtp-tokio driver",
                    reason: "the session lent body bytes the driver does not hold",
                }));
            }
        };
        let (transport, session) = (&mut self.transport, &mut self.session);
        let write = async {
            let bytes = lent.unwrap_or_else(|| session.pending_output());
            let len = bytes.len();
            let n = match bytes {
                [] => 0,
                bytes => match transport.write(bytes).await? {
                    0 => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                    n => n.min(len),
                },
            };
            // Partial writes too: whether a message's end of data went out
            // decides whether its delivery is unknown.
            if lent.is_some() {
                session.advance_body(n);
            } else {
                session.advance_output(n);
            }
            if n == len && session.pending_output().is_empty() {
                transport.flush().await?;
            }
            Ok(())
        };
        match T::timeout(left(deadline), write).await {
            None => {
                self.session.handle_timeout(Instant::now());
                Ok(())
            }
            Some(result) => result.map_err(Error::from_io),
        }
    }

    /// Reads once, by `deadline`, and feeds the session.
    async fn read(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        let read = self.transport.read(&mut self.buf[..]);
        let n = match T::timeout(left(deadline), read).await {
            None => {
                self.session.handle_timeout(Instant::now());
                return Ok(());
            }
            // A TLS peer that closes without close_notify: SMTP frames its
            // own replies, so this is the connection closing.
            Some(Err(err)) if err.kind() == io::ErrorKind::UnexpectedEof => 0,
            Some(Err(err)) => return Err(Error::from_io(err)),
            Some(Ok(n)) => n,
        };
        // The session keeps its verdict; its next step reports it.
        let _verdict = match self.buf.get(..n) {
            Some(_) if n == 0 => self.session.handle_eof(),
            Some(bytes) => self.session.handle_input(bytes),
            None => return Err(Error::Io(io::ErrorKind::InvalidData.into())),
        };
        Ok(())
    }

    /// [`Io::Handshake`]: refuse plaintext that followed the `220`, then
    /// the handshake for the configured server name, by `deadline`.
    async fn start_tls(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        // Everything read so far went to the session, so no byte is buffered
        // here. Whatever already waits on the socket is plaintext that
        // followed the 220 (or preceded implicit TLS): the session must see it
        // (it fails with StartTlsInjection); the TLS layer must never.
        let fed = match self.transport.read_now(&mut self.buf[..]) {
            Err(err) => return Err(Error::Io(err)),
            Ok(None) => Ok(()),
            Ok(Some(0)) => self.session.handle_eof(),
            Ok(Some(n)) => match self.buf.get(..n) {
                Some(bytes) => self.session.handle_input(bytes),
                None => return Err(Error::Io(io::ErrorKind::InvalidData.into())),
            },
        };
        if fed.is_err() {
            // Refused: the session's next step says so.
            return Ok(());
        }
        let (name, server_name) = tls::server_name(self.session.config().server_name())?;
        let config = match &self.tls {
            Some(config) => Arc::clone(config),
            None => tls::default_config()?,
        };
        let handshake = self.transport.upgrade(config, server_name);
        match T::timeout(left(deadline), handshake)
            .instrument(tracing::debug_span!("smtp.tls", server = %name))
            .await
        {
            None => {
                self.session.handle_timeout(Instant::now());
                return Ok(());
            }
            Some(Err(err)) => return Err(Error::from_io(err)),
            Some(Ok(())) => {}
        }
        tracing::debug!(server = %name, "TLS established");
        // rustls verified the certificate for exactly this name; the
        // session's verdict comes with its next step.
        let _verdict = self.session.tls_established(&name);
        Ok(())
    }
}

/// Feeds the session the rest of the chunk, or, once it took all of it,
/// polls the next chunk of `read`; ends the body when there is none. A
/// refusal fails the session, whose next step reports it.
async fn feed_body<R: PollBody>(
    read: &mut R,
    chunk: &mut BodyChunk,
    session: &mut ClientSession,
) -> Result<(), Error> {
    if chunk.is_spent() {
        let space = chunk.space(BODY_CHUNK);
        let n = poll_fn(|cx| read.poll_body(cx, space))
            .await
            .map_err(Error::BodyRead)?;
        if n > BODY_CHUNK {
            return Err(Error::BodyRead(io::Error::new(
                io::ErrorKind::InvalidData,
                "body reader returned more bytes than the buffer holds",
            )));
        }
        chunk.filled(n);
        if n == 0 {
            let _verdict = session.finish_body();
            return Ok(());
        }
    }
    chunk.feed(session);
    Ok(())
}

/// A message body as the driver reads it: polled into a buffer. Named types
/// rather than closures, so that a batch's future is `Send` whatever
/// lifetimes the bodies carry (closures and function items in an iterator
/// adapter defeat the compiler's proof).
pub(crate) trait PollBody {
    /// Reads into `buf`; 0 at the end.
    fn poll_body(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
}

/// An in-memory body.
pub(crate) struct SliceBody<'a>(&'a [u8]);

impl PollBody for SliceBody<'_> {
    fn poll_body(&mut self, _cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let n = self.0.len().min(buf.len());
        let (head, rest) = self.0.split_at(n);
        if let Some(dst) = buf.get_mut(..n) {
            dst.copy_from_slice(head);
        }
        self.0 = rest;
        Poll::Ready(Ok(n))
    }
}

/// A message with an in-memory body: the envelope declared with
/// [`Envelope::for_body`], and the body.
pub(crate) fn slice_message((envelope, body): (Envelope, &[u8])) -> (Envelope, SliceBody<'_>) {
    (envelope.for_body(body), SliceBody(body))
}

/// How a backend wraps its readers for the driver. A marker type free of
/// lifetimes, and no bound tying a reader to its wrapper: what the
/// compiler needs to prove a batch of borrowing readers `Send`.
pub(crate) trait Wrap {
    /// The wrapper of a reader `R`.
    type Body<R>;
    /// Wraps `body`.
    fn wrap<R>(body: R) -> Self::Body<R>;
}

/// Messages whose bodies are wrapped by `M` on the way to the driver: an
/// iterator of its own rather than `map` with a closure (see [`PollBody`]).
pub(crate) struct Wrapped<I, M> {
    messages: I,
    wrap: std::marker::PhantomData<M>,
}

impl<I, M> Wrapped<I, M> {
    pub(crate) fn new(messages: I) -> Self {
        Wrapped {
            messages,
            wrap: std::marker::PhantomData,
        }
    }
}

impl<I, R, M> Iterator for Wrapped<I, M>
where
    I: Iterator<Item = (Envelope, R)>,
    M: Wrap,
{
    type Item = (Envelope, M::Body<R>);

    fn next(&mut self) -> Option<Self::Item> {
        let (envelope, body) = self.messages.next()?;
        Some((envelope, M::wrap(body)))
    }
}

impl<T> std::fmt::Debug for Driver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("session", &self.session)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}
