//! A connection pool for blocking code: a [`Pool`] handle that any number
//! of threads share (`Clone + Send + Sync`) to send messages over at most
//! [`PoolOptions::max_size`] connections, without one TLS handshake and
//! AUTH per message. The same rules as `smtp_tokio::pool::Pool`, on
//! threads; it implements [`Mailer`], so application code written against
//! the trait takes a [`RecordingMailer`](smtp_proto::RecordingMailer) in
//! its unit tests.
//!
//! ```no_run
//! use smtp_blocking::pool::{Connector, Pool, PoolOptions};
//! use smtp_blocking::{Address, Config, Credentials, Envelope, Options};
//! use std::time::Duration;
//!
//! let config = Config::new("smtp.example.com"); // STARTTLS required
//! let connector = Connector::new("smtp.example.com", 587, config, Options::new())
//!     .credentials(Credentials::password("me@example.com", "app-password"));
//! let pool = Pool::new(
//!     connector,
//!     PoolOptions::new()
//!         .max_size(4)
//!         .idle_timeout(Duration::from_secs(60))
//!         .health_check_after(Duration::from_secs(10)),
//! );
//!
//! // A cheap handle: one clone per worker thread.
//! let workers: Vec<_> = (0..8)
//!     .map(|n| {
//!         let pool = pool.clone();
//!         std::thread::spawn(move || -> Result<(), smtp_blocking::Error> {
//!             let envelope = Envelope::new(
//!                 Some(Address::new("me@example.com")?),
//!                 [Address::new(format!("user{n}@example.org"))?],
//!             )?;
//!             pool.send(envelope, b"Subject: hello\r\n\r\nHi.\r\n")?;
//!             Ok(())
//!         })
//!     })
//!     .collect();
//! for worker in workers {
//!     worker.join().expect("no panic")?;
//! }
//! pool.close();
//! # Ok::<(), smtp_blocking::Error>(())
//! ```
//!
//! # Rules
//!
//! **Size.** A send first takes one of `max_size` slots, waiting on a
//! condition variable while all are taken. With its slot it takes the most
//! recently returned idle connection (LIFO, so surplus connections age out),
//! or opens a new one when none is idle; so the pool never holds more than
//! `max_size` connections (ones being closed in the background aside).
//! [`PoolOptions::wait_timeout`] bounds the wait ([`Error::PoolTimeout`]).
//!
//! **Short locks.** One mutex guards the idle list and the slot count; it
//! is held to push or pop a connection and to count, never during I/O:
//! connecting, the idle check, the NOOP, the send and QUIT all run with the
//! lock released, on the sending thread (QUIT of expired connections on a
//! short-lived thread of its own).
//!
//! **Expiry.** An idle connection idle for [`PoolOptions::idle_timeout`] or
//! longer, or older than [`PoolOptions::max_lifetime`], is closed (QUIT,
//! best effort) instead of reused. Expired connections are swept whenever a
//! connection is taken, and by [`Pool::prune`]; there is no background
//! thread.
//!
//! **Idle check.** Before any reuse, what the server sent while the
//! connection idled is read without waiting and without writing
//! ([`Client::check_idle`]): a `421` on its idle timeout, or a close, and
//! the connection is discarded, with nothing written to it.
//!
//! **Health check.** A connection idle for [`PoolOptions::health_check_after`]
//! or longer gets a NOOP (within the connection's NOOP timeout,
//! [`Timeouts`](smtp_proto::Timeouts) in its [`Options`]) before it is used.
//! A failed check discards that connection and the send moves on to the next
//! idle one, or a new one; the message was not touched, so this is not a
//! retry.
//!
//! **Return.** After the operation the connection goes back to the idle list
//! only if [`Client::is_usable`] and the error, if any, did not end the
//! session: a refusal leaves it usable; `421`, the server closing the
//! connection, an I/O error or a poisoned client discard it. A send that
//! panics (a body reader's panic) discards its connection and frees its
//! slot; the lock is never held while a send runs, so it is not poisoned.
//!
//! **Retry.** A send is retried at most once, on a *new* connection, when
//! all of these hold: the connection was *reused* from the idle list; the
//! failure is a broken connection (`421`
//! ([`ServiceClosing`](smtp_proto::Error::ServiceClosing)), the server
//! closing it, [`Error::Io`] or [`Error::Poisoned`]; not a timeout, not a
//! TLS error, not a refusal); and the body was never read, so not a byte of
//! it was written and its [`Outcome`](smtp_proto::Outcome) allows a resend
//! ([`Outcome::may_resend`](smtp_proto::Outcome::may_resend)). A failure once
//! the body has started is returned as is: the pool never resends a message
//! the server may have accepted.
//!
//! **Batches.** [`Pool::send_all`] sends several messages over one pooled
//! connection, holding one slot throughout; the retry rule applies to the
//! batch as a whole. When the connection fails, the message in flight gets
//! the error and every later message [`Error::NotSent`].
//!
//! **Credentials.** The [`Connector`]'s [`CredentialProvider`] is called on
//! the sending thread before each *new* connection is opened (never for a
//! reused one), so short-lived OAuth2 tokens are fresh; its failure is
//! [`Error::Credentials`], with no connection opened.
//!
//! **Closing.** [`Pool::close`] refuses new sends, wakes waiting ones (with
//! [`smtp_proto::Error::InvalidState`]) and QUITs the idle connections;
//! connections in use are QUIT when their send finishes. Dropping the last
//! handle closes idle connections without QUIT.
//!
//! **Tracing.** Events at `DEBUG` under the target `smtp_blocking::pool`:
//! `opened`, `reused`, `closed while idle`, `health check failed`,
//! `discarded`, `expired`, `retrying`.

use crate::{Client, Error, Options};
use smtp_proto::{retry, Config, Credentials, Delivery, Envelope, Mailer};
use std::cell::Cell;
use std::fmt;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// A boxed error from a [`CredentialProvider`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Supplies the credentials for each new connection of a [`Pool`], on the
/// sending thread, just before connecting (`None`: connect without AUTH).
/// Any `Fn() -> Result<Option<Credentials>, BoxError> + Send + Sync` is one.
///
/// The pool cannot interrupt a provider that hangs: give its HTTP call a
/// timeout of its own.
pub trait CredentialProvider: Send + Sync {
    /// The credentials for the next connection.
    fn credentials(&self) -> Result<Option<Credentials>, BoxError>;
}

impl<F> CredentialProvider for F
where
    F: Fn() -> Result<Option<Credentials>, BoxError> + Send + Sync,
{
    fn credentials(&self) -> Result<Option<Credentials>, BoxError> {
        self()
    }
}

/// The same credentials for every connection.
#[derive(Clone, Debug)]
pub struct StaticCredentials(pub Credentials);

impl CredentialProvider for StaticCredentials {
    fn credentials(&self) -> Result<Option<Credentials>, BoxError> {
        Ok(Some(self.0.clone()))
    }
}

#[derive(Clone, Debug)]
enum Target {
    Host(String, u16),
    Addr(SocketAddr),
}

/// How a [`Pool`] opens a connection: where to, the session's [`Config`],
/// the [`Options`], and where credentials come from.
#[derive(Clone)]
pub struct Connector {
    target: Target,
    config: Config,
    options: Options,
    credentials: Option<Arc<dyn CredentialProvider>>,
}

impl Connector {
    /// Connects like [`Client::connect`]: resolves `host` and connects to
    /// `port`. TLS is verified for [`Config::server_name`].
    pub fn new(host: impl Into<String>, port: u16, config: Config, options: Options) -> Connector {
        Connector {
            target: Target::Host(host.into(), port),
            config,
            options,
            credentials: None,
        }
    }

    /// Connects like [`Client::connect_to`], to `addr`. TLS is verified for
    /// [`Config::server_name`].
    pub fn to_addr(addr: SocketAddr, config: Config, options: Options) -> Connector {
        Connector {
            target: Target::Addr(addr),
            config,
            options,
            credentials: None,
        }
    }

    /// Authenticates every connection with the same `credentials`.
    pub fn credentials(self, credentials: Credentials) -> Connector {
        self.credential_provider(StaticCredentials(credentials))
    }

    /// Asks `provider` for credentials before each new connection. When it
    /// gives `Some`, they replace any in the [`Config`]; `None` keeps the
    /// config's.
    pub fn credential_provider(mut self, provider: impl CredentialProvider + 'static) -> Connector {
        self.credentials = Some(Arc::new(provider));
        self
    }

    /// Opens one connection: asks the provider for credentials, connects and
    /// runs the session up to ready (TLS, AUTH).
    pub fn connect(&self) -> Result<Client, Error> {
        let mut config = self.config.clone();
        if let Some(provider) = &self.credentials {
            if let Some(credentials) = provider.credentials().map_err(Error::Credentials)? {
                config = config.credentials(credentials);
            }
        }
        let options = self.options.clone();
        match &self.target {
            Target::Host(host, port) => Client::connect(host, *port, config, options),
            Target::Addr(addr) => Client::connect_to(*addr, config, options),
        }
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("target", &self.target)
            .field("server_name", &self.config.server_name())
            .field("options", &self.options)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "provider"),
            )
            .finish_non_exhaustive()
    }
}

/// The pool's limits and timers (the tokio pool's, but for the health
/// check's timeout, which is the connection's NOOP timeout here).
///
/// ```
/// use smtp_blocking::pool::PoolOptions;
/// use std::time::Duration;
///
/// let options = PoolOptions::new()
///     .max_size(8)
///     .idle_timeout(Duration::from_secs(30))
///     .health_check_after(Duration::from_secs(5));
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PoolOptions {
    /// The most connections open at once (idle and in use); at least 1.
    /// Default 4. Stay within the server's limit on concurrent connections.
    pub max_size: usize,
    /// An idle connection idle this long or longer is closed instead of
    /// reused. Default 60 seconds; keep it below the server's own idle
    /// timeout.
    pub idle_timeout: Duration,
    /// A connection idle this long or longer gets a NOOP before it is reused.
    /// Default 10 seconds; `Duration::ZERO` checks every reuse.
    pub health_check_after: Duration,
    /// A connection this old is closed instead of reused, however busy.
    /// Default `None` (no limit).
    pub max_lifetime: Option<Duration>,
    /// How long a send may wait for a free slot while `max_size` sends are
    /// in progress before it fails with [`Error::PoolTimeout`] (nothing
    /// sent). Default `None`: as long as it takes. (A blocking call cannot
    /// be cancelled from outside, as an async send can with a timeout.)
    pub wait_timeout: Option<Duration>,
}

impl Default for PoolOptions {
    fn default() -> PoolOptions {
        PoolOptions {
            max_size: 4,
            idle_timeout: Duration::from_secs(60),
            health_check_after: Duration::from_secs(10),
            max_lifetime: None,
            wait_timeout: None,
        }
    }
}

impl PoolOptions {
    /// The defaults: 4 connections, 60 s idle timeout, NOOP after 10 s idle.
    pub fn new() -> PoolOptions {
        PoolOptions::default()
    }

    /// Sets [`PoolOptions::max_size`].
    pub fn max_size(mut self, max_size: usize) -> PoolOptions {
        self.max_size = max_size;
        self
    }

    /// Sets [`PoolOptions::idle_timeout`].
    pub fn idle_timeout(mut self, timeout: Duration) -> PoolOptions {
        self.idle_timeout = timeout;
        self
    }

    /// Sets [`PoolOptions::health_check_after`].
    pub fn health_check_after(mut self, after: Duration) -> PoolOptions {
        self.health_check_after = after;
        self
    }

    /// Sets [`PoolOptions::max_lifetime`].
    pub fn max_lifetime(mut self, lifetime: Option<Duration>) -> PoolOptions {
        self.max_lifetime = lifetime;
        self
    }

    /// Sets [`PoolOptions::wait_timeout`].
    pub fn wait_timeout(mut self, timeout: Option<Duration>) -> PoolOptions {
        self.wait_timeout = timeout;
        self
    }
}

/// A snapshot of a pool's connections, and counters since it was created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStatus {
    /// Connections waiting in the idle list.
    pub idle: usize,
    /// Slots taken by sends in progress (connecting, checking or sending).
    pub in_use: usize,
    /// [`PoolOptions::max_size`] as applied (at least 1).
    pub max_size: usize,
    /// Connections opened.
    pub opened: u64,
    /// Idle connections reused for a send.
    pub reused: u64,
    /// Idle connections the idle check found closed by the server (a `421`
    /// or a close, read without writing) and discarded.
    pub closed_while_idle: u64,
    /// Idle connections discarded because their NOOP failed.
    pub failed_health_checks: u64,
    /// Sends retried on a new connection because a reused one broke before
    /// any body was read.
    pub retried: u64,
}

/// A bounded pool of [`Client`] connections to one server, shared by
/// threads. Cheap to clone: clones share the connections.
///
/// See the [module documentation](self) for the rules.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    connector: Connector,
    options: PoolOptions,
    /// The only lock: the idle list and the slot count.
    state: Mutex<State>,
    /// Signalled when a slot is freed or the pool closes.
    slot_freed: Condvar,
    next_id: AtomicU64,
    counters: Counters,
}

struct State {
    idle: Vec<Idle>,
    in_use: usize,
    closed: bool,
}

/// What [`PoolStatus`] counts.
#[derive(Default)]
struct Counters {
    reused: AtomicU64,
    closed_while_idle: AtomicU64,
    failed_health_checks: AtomicU64,
    retried: AtomicU64,
}

fn add(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

struct Conn {
    client: Client,
    id: u64,
    created: Instant,
    messages: u64,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

impl Pool {
    /// A pool opening connections with `connector`, none yet. `max_size` 0 is
    /// taken as 1.
    pub fn new(connector: Connector, options: PoolOptions) -> Pool {
        let mut options = options;
        options.max_size = options.max_size.max(1);
        Pool {
            inner: Arc::new(Inner {
                connector,
                options,
                state: Mutex::new(State {
                    idle: Vec::new(),
                    in_use: 0,
                    closed: false,
                }),
                slot_freed: Condvar::new(),
                next_id: AtomicU64::new(1),
                counters: Counters::default(),
            }),
        }
    }

    /// Sends one message on a pooled connection, like [`Client::send`]
    /// (SIZE and BODY filled in from `body`).
    ///
    /// Waits for a free slot when `max_size` sends are in progress. Retries
    /// once on a new connection when a reused one turns out broken before
    /// the body was sent (see the module's rules). After [`Pool::close`]
    /// the error is [`smtp_proto::Error::InvalidState`].
    pub fn send(&self, envelope: Envelope, body: &[u8]) -> Result<Delivery, Error> {
        first(self.run(&mut [(envelope.for_body(body), body)]))
    }

    /// Sends one message whose body is read from `body`, like
    /// [`Client::send_reader`]. `body` is only ever read on one connection,
    /// so a retry happens only when it was not read at all.
    pub fn send_reader<R: Read>(&self, envelope: Envelope, body: R) -> Result<Delivery, Error> {
        first(self.run(&mut [(envelope, body)]))
    }

    /// Sends several messages over one pooled connection, like
    /// [`Client::send_all`], holding one slot from start to end. One result
    /// per message, in order: a refused transaction is that message's error
    /// and the batch goes on; when the connection fails, the message in
    /// flight gets the error and every later one [`Error::NotSent`].
    pub fn send_all<'a, I>(&self, messages: I) -> Vec<Result<Delivery, Error>>
    where
        I: IntoIterator<Item = (Envelope, &'a [u8])>,
    {
        let mut messages: Vec<(Envelope, &[u8])> = messages
            .into_iter()
            .map(|(envelope, body)| (envelope.for_body(body), body))
            .collect();
        self.run(&mut messages)
    }

    /// QUITs idle connections that are past [`PoolOptions::idle_timeout`] or
    /// [`PoolOptions::max_lifetime`], on this thread. Call it now and then to
    /// close connections the pool would otherwise keep until its next send.
    pub fn prune(&self) {
        let expired = {
            let mut state = self.inner.lock();
            self.inner.take_expired(&mut state.idle)
        };
        for conn in expired {
            quit(conn, "expired");
        }
    }

    /// Closes the pool: later and waiting sends fail, idle connections are
    /// QUIT (on this thread), connections in use are QUIT when their send
    /// ends.
    pub fn close(&self) {
        let idle = {
            let mut state = self.inner.lock();
            state.closed = true;
            std::mem::take(&mut state.idle)
        };
        self.inner.slot_freed.notify_all();
        for entry in idle {
            quit(entry.conn, "pool closed");
        }
    }

    /// Whether [`Pool::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    /// How many connections are idle and how many slots are taken.
    pub fn status(&self) -> PoolStatus {
        let (idle, in_use) = {
            let state = self.inner.lock();
            (state.idle.len(), state.in_use)
        };
        let counters = &self.inner.counters;
        PoolStatus {
            idle,
            in_use,
            max_size: self.inner.options.max_size,
            // Ids start at 1 and are taken only by connections opened.
            opened: self.inner.next_id.load(Ordering::Relaxed).saturating_sub(1),
            reused: counters.reused.load(Ordering::Relaxed),
            closed_while_idle: counters.closed_while_idle.load(Ordering::Relaxed),
            failed_health_checks: counters.failed_health_checks.load(Ordering::Relaxed),
            retried: counters.retried.load(Ordering::Relaxed),
        }
    }

    /// The one sending path: a batch on one connection, retried once on a
    /// new connection when a reused one was broken before any body was read.
    fn run<R: Read>(&self, messages: &mut [(Envelope, R)]) -> Vec<Result<Delivery, Error>> {
        let span = tracing::debug_span!(
            target: "smtp_blocking::pool",
            "smtp.pool.send",
            messages = messages.len()
        );
        let _enter = span.enter();
        let slot = match self.inner.acquire() {
            Ok(slot) => slot,
            Err(err) => return vec![Err(err)],
        };
        let mut lease = match self.inner.checkout(slot) {
            Ok(lease) => lease,
            Err(err) => return vec![Err(err)],
        };
        let touched = Cell::new(false);
        let results = lease.send(messages, &touched);
        // Only a message refused or not sent may go again (never one whose
        // outcome is unknown: RFC 1047), and only a body never read, since
        // a reader cannot be rewound.
        let body_read = touched.get();
        let broken_before_any_body = matches!(results.as_slice(), [Err(err)]
            if retry::may_retry(lease.reused, body_read, is_broken(err), err.outcome()));
        if !broken_before_any_body {
            lease.done(last_error(&results));
            return retry::not_sent_to_the_end(results, messages.len());
        }
        let id = lease.id();
        let slot = match lease.discard_keep_slot("broken before the message was sent") {
            Some(slot) => slot,
            None => match self.inner.acquire() {
                Ok(slot) => slot,
                Err(err) => return vec![Err(err)],
            },
        };
        add(&self.inner.counters.retried);
        if let Some(Err(err)) = results.first() {
            tracing::debug!(
                target: "smtp_blocking::pool",
                connection = id,
                error = %err,
                "retrying on a new connection"
            );
        }
        let mut lease = match self.inner.open(slot) {
            Ok(lease) => lease,
            Err(err) => return vec![Err(err)],
        };
        let results = lease.send(messages, &touched);
        lease.done(last_error(&results));
        retry::not_sent_to_the_end(results, messages.len())
    }
}

/// The pool as the application's [`Mailer`]: code written against the trait
/// sends through a shared `Pool` in production and a
/// [`RecordingMailer`](smtp_proto::RecordingMailer) in its tests.
///
/// ```
/// use smtp_blocking::pool::{Connector, Pool, PoolOptions};
/// use smtp_blocking::{Address, Config, Envelope, Error, Mailer, Options, RecordingMailer};
/// use std::sync::Arc;
///
/// struct Shop {
///     mailer: Arc<dyn Mailer<Error = Error>>,
/// }
///
/// impl Shop {
///     fn send_receipt(&self, to: &str) -> Result<(), Error> {
///         let envelope = Envelope::new(
///             Some(Address::new("shop@example.com")?),
///             [Address::new(to)?],
///         )?;
///         self.mailer
///             .send(envelope, b"Subject: receipt\r\n\r\nThanks.\r\n")?;
///         Ok(())
///     }
/// }
///
/// /// Production: one pool behind the trait.
/// fn production() -> Shop {
///     let config = Config::new("smtp.example.com");
///     let connector = Connector::new("smtp.example.com", 587, config, Options::new());
///     Shop {
///         mailer: Arc::new(Pool::new(connector, PoolOptions::new())),
///     }
/// }
///
/// // The application's unit test: the double, with the adapter's error type.
/// let mailer = RecordingMailer::<Error>::default();
/// let shop = Shop {
///     mailer: Arc::new(mailer.clone()),
/// };
/// shop.send_receipt("you@example.org")?;
/// assert_eq!(mailer.sent().len(), 1);
/// # let _ = production;
/// # Ok::<(), Error>(())
/// ```
impl Mailer for Pool {
    type Error = Error;

    fn send(&self, envelope: Envelope, body: &[u8]) -> Result<Delivery, Error> {
        Pool::send(self, envelope, body)
    }

    fn send_all(&self, messages: Vec<(Envelope, &[u8])>) -> Vec<Result<Delivery, Error>> {
        Pool::send_all(self, messages)
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("connector", &self.inner.connector)
            .field("options", &self.inner.options)
            .field("status", &self.status())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The only result of a batch of one.
fn first(results: Vec<Result<Delivery, Error>>) -> Result<Delivery, Error> {
    results.into_iter().next().unwrap_or_else(|| {
        Err(Error::Smtp(smtp_proto::Error::InvalidState {
            call: "Pool::send",
            reason: "a batch of one ended without a result",
        }))
    })
}

/// What ended a batch, if anything did: its last result's error.
fn last_error(results: &[Result<Delivery, Error>]) -> Option<&Error> {
    results.last().and_then(|result| result.as_ref().err())
}

/// The failures after which a connection is gone: `421`, the server closing
/// it, an I/O error, a poisoned client.
fn is_broken(err: &Error) -> bool {
    match err {
        Error::Io(_) | Error::Poisoned => true,
        Error::Smtp(err) => err.closes_connection(),
        _ => false,
    }
}

fn closed_error() -> Error {
    Error::Smtp(smtp_proto::Error::InvalidState {
        call: "Pool::send",
        reason: "the pool is closed",
    })
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves a valid state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a slot, waiting while all are taken (at most
    /// [`PoolOptions::wait_timeout`]).
    fn acquire(self: &Arc<Self>) -> Result<Slot, Error> {
        let started = Instant::now();
        let mut state = self.lock();
        loop {
            if state.closed {
                return Err(closed_error());
            }
            if state.in_use < self.options.max_size {
                state.in_use += 1;
                return Ok(Slot {
                    inner: Arc::clone(self),
                });
            }
            state = match self.options.wait_timeout {
                None => self
                    .slot_freed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(timeout) => {
                    let waited = started.elapsed();
                    if waited >= timeout {
                        return Err(Error::PoolTimeout { waited });
                    }
                    self.slot_freed
                        .wait_timeout(state, timeout - waited)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    fn is_expired(&self, entry: &Idle, now: Instant) -> bool {
        now.saturating_duration_since(entry.since) >= self.options.idle_timeout
            || self.too_old(&entry.conn, now)
    }

    fn too_old(&self, conn: &Conn, now: Instant) -> bool {
        self.options
            .max_lifetime
            .is_some_and(|max| now.saturating_duration_since(conn.created) >= max)
    }

    /// Removes the expired idle connections, keeping the others in order.
    fn take_expired(&self, idle: &mut Vec<Idle>) -> Vec<Conn> {
        let now = Instant::now();
        let (expired, kept): (Vec<Idle>, Vec<Idle>) = std::mem::take(idle)
            .into_iter()
            .partition(|entry| self.is_expired(entry, now));
        *idle = kept;
        expired
            .into_iter()
            .map(|entry| {
                tracing::debug!(
                    target: "smtp_blocking::pool",
                    connection = entry.conn.id,
                    idle_ms = now.saturating_duration_since(entry.since).as_millis() as u64,
                    "expired"
                );
                entry.conn
            })
            .collect()
    }

    /// A connection for one send: the newest idle one that is usable (after
    /// a NOOP if it was idle long), else a new one.
    fn checkout(self: &Arc<Self>, slot: Slot) -> Result<Lease, Error> {
        let mut slot = slot;
        loop {
            let (entry, expired) = {
                let mut state = self.lock();
                let expired = self.take_expired(&mut state.idle);
                (state.idle.pop(), expired)
            };
            for conn in expired {
                quit_detached(conn, "expired");
            }
            let Some(Idle { conn, since }) = entry else {
                break;
            };
            let idle_for = since.elapsed();
            let mut lease = Lease {
                conn: Some(conn),
                reused: true,
                slot: Some(slot),
            };
            let Some(client) = lease.client() else {
                return Err(Error::Poisoned);
            };
            // Unusable, or closed while it idled (read without writing), or
            // silent to a NOOP after a long idle: discarded, and the next one
            // is tried.
            let check = if !client.is_usable() {
                Err((Error::Poisoned, "unusable while idle"))
            } else if let Err(reason) = client.check_idle() {
                add(&self.counters.closed_while_idle);
                Err((reason, "closed while idle"))
            } else if idle_for >= self.options.health_check_after {
                let checked = client.noop();
                if checked.is_err() {
                    add(&self.counters.failed_health_checks);
                }
                checked.map_err(|reason| (reason, "health check failed"))
            } else {
                Ok(())
            };
            if let Err((reason, why)) = check {
                tracing::debug!(
                    target: "smtp_blocking::pool",
                    connection = lease.id(),
                    error = %reason,
                    "{why}"
                );
                slot = match lease.discard_keep_slot(why) {
                    Some(slot) => slot,
                    None => self.acquire()?,
                };
                continue;
            }
            add(&self.counters.reused);
            tracing::debug!(
                target: "smtp_blocking::pool",
                connection = lease.id(),
                idle_ms = idle_for.as_millis() as u64,
                "reused"
            );
            return Ok(lease);
        }
        self.open(slot)
    }

    /// Opens a new connection in `slot`.
    fn open(self: &Arc<Self>, slot: Slot) -> Result<Lease, Error> {
        let started = Instant::now();
        let client = match self.connector.connect() {
            Ok(client) => client,
            Err(err) => {
                tracing::debug!(target: "smtp_blocking::pool", error = %err, "connect failed");
                return Err(err);
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            target: "smtp_blocking::pool",
            connection = id,
            connect_ms = started.elapsed().as_millis() as u64,
            tls = client.is_tls(),
            "opened"
        );
        Ok(Lease {
            conn: Some(Conn {
                client,
                id,
                created: Instant::now(),
                messages: 0,
            }),
            reused: false,
            slot: Some(slot),
        })
    }

    /// Takes back a connection whose operation ended: into the idle list if
    /// it is usable, else closed.
    fn check_in(&self, conn: Conn) {
        if !conn.client.is_usable() {
            discard(conn, "unusable after the operation");
            return;
        }
        if self.too_old(&conn, Instant::now()) {
            quit_detached(conn, "max lifetime reached");
            return;
        }
        let refused = {
            let mut state = self.lock();
            if state.closed {
                Some(conn)
            } else {
                state.idle.push(Idle {
                    conn,
                    since: Instant::now(),
                });
                None
            }
        };
        if let Some(conn) = refused {
            quit_detached(conn, "pool closed");
        }
    }
}

/// One of `max_size` slots; dropping it frees it and wakes one waiting send.
struct Slot {
    inner: Arc<Inner>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        {
            let mut state = self.inner.lock();
            state.in_use = state.in_use.saturating_sub(1);
        }
        self.inner.slot_freed.notify_one();
    }
}

/// One send's hold on a slot and a connection. Dropping it returns the
/// connection only if it is usable, then frees the slot.
struct Lease {
    conn: Option<Conn>,
    reused: bool,
    slot: Option<Slot>,
}

impl Lease {
    fn id(&self) -> u64 {
        self.conn.as_ref().map_or(0, |conn| conn.id)
    }

    fn client(&mut self) -> Option<&mut Client> {
        self.conn.as_mut().map(|conn| &mut conn.client)
    }

    /// Sends `messages` as one batch; `touched` is set once any body is read.
    fn send<R: Read>(
        &mut self,
        messages: &mut [(Envelope, R)],
        touched: &Cell<bool>,
    ) -> Vec<Result<Delivery, Error>> {
        let Some(conn) = self.conn.as_mut() else {
            return vec![Err(Error::Poisoned)];
        };
        let mut results = Vec::with_capacity(messages.len());
        let bodies = messages.iter_mut().map(|(envelope, body)| {
            let body = Tracked {
                inner: body,
                touched,
            };
            (envelope.clone(), body)
        });
        conn.client.send_each(bodies, |result| results.push(result));
        conn.messages += results.iter().filter(|result| result.is_ok()).count() as u64;
        results
    }

    /// The operation ended: drop the connection if `err` ended the session,
    /// else let [`Drop`] return it (if usable).
    fn done(mut self, err: Option<&Error>) {
        if let Some(err) = err.filter(|err| is_broken(err)) {
            if let Some(conn) = self.conn.take() {
                tracing::debug!(target: "smtp_blocking::pool", connection = conn.id, error = %err, "the operation broke the connection");
                discard(conn, "broken by the operation");
            }
        }
    }

    /// Drops the connection and keeps the slot for another (`None` never
    /// happens: a lease gives up its slot only here, consuming itself).
    fn discard_keep_slot(mut self, reason: &'static str) -> Option<Slot> {
        if let Some(conn) = self.conn.take() {
            discard(conn, reason);
        }
        self.slot.take()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if std::thread::panicking() {
                // A panic (a reader's, say) left the dialogue wherever it
                // was: the connection is not handed to the next send.
                discard(conn, "a panic during the operation");
            } else if let Some(slot) = &self.slot {
                slot.inner.check_in(conn);
            }
        }
        // The slot is dropped after this body, once the connection is back.
    }
}

/// Closes a connection that cannot be used, writing nothing.
fn discard(conn: Conn, reason: &'static str) {
    tracing::debug!(
        target: "smtp_blocking::pool",
        connection = conn.id,
        messages = conn.messages,
        reason,
        "discarded"
    );
    drop(conn);
}

/// QUITs a usable connection on a short-lived thread of its own, so the
/// send that found it expired does not wait for the server's `221` (just
/// closes it when no thread can be started).
fn quit_detached(conn: Conn, reason: &'static str) {
    let spawned = std::thread::Builder::new()
        .name("smtp-pool-quit".to_owned())
        .spawn(move || quit(conn, reason));
    if let Err(err) = spawned {
        tracing::debug!(target: "smtp_blocking::pool", error = %err, "no thread for QUIT");
    }
}

fn quit(conn: Conn, reason: &'static str) {
    let Conn {
        client,
        id,
        messages,
        ..
    } = conn;
    let outcome = match client.quit() {
        Ok(()) => "ok",
        Err(_) => "failed",
    };
    tracing::debug!(
        target: "smtp_blocking::pool",
        connection = id,
        messages,
        reason,
        quit = outcome,
        "closed"
    );
}

/// Remembers whether the body was ever read: if not, the server never got a
/// byte of it.
struct Tracked<'a, R> {
    inner: R,
    touched: &'a Cell<bool>,
}

impl<R: Read> Read for Tracked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.touched.set(true);
        self.inner.read(buf)
    }
}
