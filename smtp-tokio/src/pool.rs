//! A connection pool for the tokio backend: many messages, sent
//! concurrently, over at most [`PoolOptions::max_size`] connections, without
//! one TLS handshake and AUTH per message.
//!
//! ```no_run
//! # async fn example() -> Result<(), smtp_tokio::Error> {
//! use smtp_tokio::pool::{BoxError, Connector, Pool, PoolOptions};
//! use smtp_tokio::smtp_proto::{Address, Config, Credentials, Envelope, TlsPolicy};
//! use smtp_tokio::Options;
//! use std::time::Duration;
//!
//! /// Fetches a fresh OAuth2 access token (from the identity provider).
//! async fn access_token() -> Result<String, BoxError> {
//!     Ok("eyJ0eXAiOi...".to_owned())
//! }
//!
//! let config = Config::new("smtp.office365.com").tls(TlsPolicy::Required);
//! let connector = Connector::new("smtp.office365.com", 587, config, Options::new())
//!     // Called for every new connection: the token is always fresh.
//!     .credentials_with(|| async {
//!         let token = access_token().await?;
//!         Ok(Some(Credentials::token("me@example.com", token)))
//!     });
//! let pool = Pool::new(
//!     connector,
//!     PoolOptions::new()
//!         .max_size(3)
//!         .idle_timeout(Duration::from_secs(60))
//!         .health_check_after(Duration::from_secs(10)),
//! );
//!
//! // `Pool` is a cheap handle: clone it into as many tasks as you like.
//! let envelope = Envelope::new(
//!     Some(Address::new("me@example.com")?),
//!     [Address::new("you@example.org")?],
//! )?;
//! let delivery = pool
//!     .send(envelope, b"Subject: hello\r\n\r\nHi there.\r\n")
//!     .await?;
//! println!("queued: {}", delivery.reply());
//! pool.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Rules
//!
//! **Queue.** [`Pool::send`] puts the message (its body copied) in the
//! pool's queue and waits for its result. Connection tasks, spawned on the
//! runtime, drain the queue: each holds one connection and sends the
//! waiting messages over it as one batch, taking the next message while
//! earlier ones are still in flight. So concurrent single sends get what
//! only a batch would: with PIPELINING one round trip per message, and
//! with CHUNKING and exact sizes a window of up to [`Config::window`]
//! whole transactions in flight (RFC 2920, RFC 3030), far less than one
//! round trip each. A refusal is that message's result only; a failure
//! that ends the connection answers each message it took (refused, not
//! sent, or delivery unknown). A task starts for a waiting message when a
//! slot is free and no starting task will take it; it gives its connection
//! back when the queue is empty (before the last sender hears, so that a
//! sender's next message finds the connection idle), or after 1,024
//! messages, and the queue kicks the next task.
//!
//! **Size.** A connection task, or a [`Pool::send_all`] or
//! [`Pool::send_reader`] (which run on the caller's task), first takes one
//! of `max_size` slots (a tokio [`Semaphore`], first come first served),
//! waiting while all are taken. With its slot it takes the most recently
//! returned idle connection (LIFO, so surplus connections age out), or
//! opens a new one when none is idle. A connection is opened only when no
//! connection is idle, so the pool never holds more than `max_size`
//! connections (ones being closed in the background aside). To bound the
//! wait, put a timeout around the send: that is cancellation safe.
//!
//! **Expiry.** An idle connection idle for [`PoolOptions::idle_timeout`] or
//! longer, or older than [`PoolOptions::max_lifetime`], is closed (QUIT, best
//! effort, in the background) instead of reused. Expired connections are
//! swept whenever a connection is taken, and by [`Pool::prune`]; there is no
//! background timer.
//!
//! **Idle check.** Before any reuse, what the server sent while the
//! connection idled is read without waiting and without writing
//! ([`Client::check_idle`]): a `421` on its idle timeout, or a close, fails
//! the session and the connection is discarded, so nothing (with CHUNKING,
//! not even a whole `BDAT` body) is written to a server that has gone.
//!
//! **Health check.** A connection idle for [`PoolOptions::health_check_after`]
//! or longer gets a NOOP (within [`PoolOptions::health_check_timeout`])
//! before it is used. A failed check discards that connection and the send
//! moves on to the next idle one, or a new one; the message was not touched,
//! so this is not a retry.
//!
//! **Return.** After the operation the connection goes back to the idle list
//! only if [`Client::is_usable`] (not poisoned, session ready) and the error,
//! if any, did not end the session. A refusal (a recipient or the message
//! rejected, `5yz` or `4yz` to MAIL) leaves the connection usable and is
//! returned to the caller as is; `421` ([`ServiceClosing`]), the server
//! closing the connection, an I/O error, a timeout or a poisoned client
//! discard it.
//!
//! **Retry.** A send is retried at most once, on a *new* connection (not
//! another idle one, which may be just as stale), when all of these hold:
//!
//! 1. the connection was *reused* from the idle list (a failure on a
//!    connection opened for this send is reported, not retried);
//! 2. the failure is a broken connection: `421` ([`ServiceClosing`]), the
//!    server closing the connection ([`ConnectionClosed`]), an
//!    [`Error::Io`] (broken pipe, reset) or [`Error::Poisoned`] — not a
//!    timeout, not a TLS error, not a refusal;
//! 3. the body was never read: the server had not yet invited it (no `354`,
//!    no first BDAT chunk), so not a byte of the message, and certainly not
//!    the final dot, was written. Nothing can have been accepted: the
//!    message's [`Outcome`](smtp_proto::Outcome) is `NotSent` (or `Refused`, for a `421` to
//!    `MAIL`), never `Unknown`, the one outcome nobody may resend blindly
//!    (see [`Outcome`](smtp_proto::Outcome) for RFC 1047's reason); a body already read cannot be
//!    read again, so the pool asks for both.
//!
//! A failure once the body has started is returned as is, whatever it is: the
//! pool never resends a message the server may have accepted. Opening the new
//! connection may itself fail; that error is returned.
//!
//! **Batches.** [`Pool::send_all`] sends several messages over one pooled
//! connection (with PIPELINING one round trip each, and with CHUNKING a
//! window of them in flight), holding one slot throughout. The same rules apply to the batch as a whole: it is retried
//! once on a new connection only when a reused one was broken before any
//! body was read; the connection goes back to the idle list if the batch
//! left it usable.
//!
//! **Credentials.** The [`Connector`]'s [`CredentialProvider`] is called
//! before each *new* connection is opened (never for a reused one), so
//! short-lived OAuth2 tokens (XOAUTH2, OAUTHBEARER) are refreshed without
//! rebuilding the pool. A provider failure, or a provider that does not
//! answer within [`Options::connect_timeout`](crate::Options::connect_timeout),
//! is returned as [`Error::Credentials`]; no connection was opened.
//!
//! **Cancellation.** Dropping a [`Pool::send`] future (a `select!`, a
//! timeout) while its message waits in the queue withdraws the message: it
//! is never sent. Once a connection task took it, the message goes on
//! (other senders' messages share that connection) and its result is
//! dropped. [`Pool::send_all`] and [`Pool::send_reader`] hold their
//! connection in a guard on the caller's task: dropping the future drops
//! the guard, which returns the connection only if it is usable (a
//! connection dropped mid-operation is [poisoned](Client::is_poisoned) by
//! the client and therefore closed, never handed to the next send). The
//! slot is released either way.
//!
//! **Closing.** [`Pool::close`] refuses new sends, answers queued and
//! waiting ones (with the error described at [`Pool::send`]) and QUITs the
//! idle connections; connections in use are QUIT when their batch
//! finishes. Dropping the last
//! [`Pool`] handle closes idle connections without QUIT.
//!
//! **Tracing.** Events at `DEBUG` under the target `smtp_tokio::pool`:
//! `opened`, `reused`, `health check failed`, `discarded` (with a reason),
//! `expired`, `retrying`; connection tasks run in the span
//! `smtp.pool.connection`, [`Pool::send_all`] and [`Pool::send_reader`] in
//! `smtp.pool.send`.
//!
//! [`ServiceClosing`]: smtp_proto::Error::ServiceClosing
//! [`ConnectionClosed`]: smtp_proto::Error::ConnectionClosed
//! [`Semaphore`]: ::tokio::sync::Semaphore

use crate::tokio::Client;
use crate::{Error, Options};
use ::tokio::io::{AsyncRead, ReadBuf};
use ::tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use smtp_proto::{retry, BatchError, Config, Credentials, Delivery, Envelope};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// How long a best-effort QUIT of a discarded or expired connection may take.
const QUIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most queued messages one connection task sends before it gives its
/// connection back (and another task, maybe on another connection, takes
/// over): a busy connection still reaches the idle list, where its
/// lifetime is checked, now and then.
const MESSAGES_PER_TURN: usize = 1024;

/// A boxed error from a [`CredentialProvider`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a [`CredentialProvider`] returns: credentials for one new connection
/// (`None`: connect without AUTH).
pub type CredentialsFuture =
    Pin<Box<dyn Future<Output = Result<Option<Credentials>, BoxError>> + Send + 'static>>;

/// Supplies the credentials for each new connection of a [`Pool`].
///
/// Called once per connection opened, just before connecting; reused
/// connections are already authenticated. Any
/// `Fn() -> CredentialsFuture + Send + Sync` is a provider; see also
/// [`Connector::credentials_with`] for an `async` closure and
/// [`Connector::credentials`] for fixed credentials.
pub trait CredentialProvider: Send + Sync {
    /// The credentials for the next connection.
    fn credentials(&self) -> CredentialsFuture;
}

impl<F> CredentialProvider for F
where
    F: Fn() -> CredentialsFuture + Send + Sync,
{
    fn credentials(&self) -> CredentialsFuture {
        self()
    }
}

/// The same credentials for every connection.
#[derive(Clone, Debug)]
pub struct StaticCredentials(pub Credentials);

impl CredentialProvider for StaticCredentials {
    fn credentials(&self) -> CredentialsFuture {
        let credentials = self.0.clone();
        Box::pin(async move { Ok(Some(credentials)) })
    }
}

#[derive(Clone, Debug)]
enum Target {
    Host(String, u16),
    Addr(SocketAddr),
}

/// How a [`Pool`] opens a connection: where to, the session's [`Config`]
/// (without credentials), the [`Options`], and where credentials come from.
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
    /// config's (none, for a config without credentials).
    pub fn credential_provider(mut self, provider: impl CredentialProvider + 'static) -> Connector {
        self.credentials = Some(Arc::new(provider));
        self
    }

    /// Calls the async closure `provider` before each new connection, e.g. to
    /// fetch a fresh OAuth2 access token. See
    /// [`credential_provider`](Connector::credential_provider).
    pub fn credentials_with<F, Fut>(self, provider: F) -> Connector
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<Credentials>, BoxError>> + Send + 'static,
    {
        self.credential_provider(move || -> CredentialsFuture { Box::pin(provider()) })
    }

    /// Opens one connection: asks the provider for credentials, connects and
    /// runs the session up to ready (TLS, AUTH).
    pub async fn connect(&self) -> Result<Client, Error> {
        let mut config = self.config.clone();
        if let Some(provider) = &self.credentials {
            // A provider that never answers (an identity provider that hangs)
            // must not hold the send forever: it gets the connect timeout.
            let timeout = self.options.connect_timeout;
            let credentials = ::tokio::time::timeout(timeout, provider.credentials())
                .await
                .unwrap_or_else(|_| {
                    Err(format!("the credential provider did not answer within {timeout:?}").into())
                })
                .map_err(Error::Credentials)?;
            if let Some(credentials) = credentials {
                config = config.credentials(credentials);
            }
        }
        let options = self.options.clone();
        match &self.target {
            Target::Host(host, port) => Client::connect(host, *port, config, options).await,
            Target::Addr(addr) => Client::connect_to(*addr, config, options).await,
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

/// The pool's limits and timers.
///
/// ```
/// use smtp_tokio::pool::PoolOptions;
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
    /// How long the health check NOOP may take before the connection is
    /// discarded. Default 10 seconds.
    pub health_check_timeout: Duration,
    /// A connection this old is closed instead of reused, however busy.
    /// Default `None` (no limit).
    pub max_lifetime: Option<Duration>,
}

impl Default for PoolOptions {
    fn default() -> PoolOptions {
        PoolOptions {
            max_size: 4,
            idle_timeout: Duration::from_secs(60),
            health_check_after: Duration::from_secs(10),
            health_check_timeout: Duration::from_secs(10),
            max_lifetime: None,
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

    /// Sets [`PoolOptions::health_check_timeout`].
    pub fn health_check_timeout(mut self, timeout: Duration) -> PoolOptions {
        self.health_check_timeout = timeout;
        self
    }

    /// Sets [`PoolOptions::max_lifetime`].
    pub fn max_lifetime(mut self, lifetime: Option<Duration>) -> PoolOptions {
        self.max_lifetime = lifetime;
        self
    }
}

/// A snapshot of a pool's connections, and counters since it was created
/// (for metrics: how often connections are reused, found gone, retried).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStatus {
    /// Connections waiting in the idle list.
    pub idle: usize,
    /// Slots taken by connection tasks and batches in progress (connecting,
    /// checking or sending).
    pub in_use: usize,
    /// Messages given to [`Pool::send`] waiting for a connection to take
    /// them.
    pub queued: usize,
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
    /// any body was read: what the idle check could not prevent (the server
    /// closed it between the check and the first command).
    pub retried: u64,
}

/// A bounded pool of [`Client`] connections to one server. Cheap to clone:
/// clones share the connections.
///
/// See the [module documentation](self) for the rules.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    connector: Connector,
    options: PoolOptions,
    slots: Arc<Semaphore>,
    idle: Mutex<Vec<Idle>>,
    /// [`Pool::send`]'s messages waiting for a connection task.
    queue: Mutex<Queue>,
    closed: AtomicBool,
    next_id: AtomicU64,
    counters: Counters,
}

/// What [`PoolStatus`] counts.
#[derive(Default)]
struct Counters {
    reused: AtomicU64,
    closed_while_idle: AtomicU64,
    failed_health_checks: AtomicU64,
    retried: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
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
    /// taken as 1. Needs no runtime; sends need tokio's.
    pub fn new(connector: Connector, options: PoolOptions) -> Pool {
        let mut options = options;
        options.max_size = options.max_size.clamp(1, Semaphore::MAX_PERMITS);
        Pool {
            inner: Arc::new(Inner {
                slots: Arc::new(Semaphore::new(options.max_size)),
                connector,
                options,
                idle: Mutex::new(Vec::new()),
                queue: Mutex::new(Queue::default()),
                closed: AtomicBool::new(false),
                next_id: AtomicU64::new(1),
                counters: Counters::default(),
            }),
        }
    }

    /// Sends one message on a pooled connection, like [`Client::send`]
    /// (SIZE and BODY filled in from `body`).
    ///
    /// The message joins the pool's queue (its body copied, so that the
    /// connection's task can own it); each connection drains the queue as
    /// one batch, so concurrent sends share round trips: with PIPELINING a
    /// message costs one round trip, and with CHUNKING too up to
    /// [`Config::window`] messages are in flight at once. When the queue
    /// is empty the message goes at once, on an idle connection or a new
    /// one within `max_size`. Retries once on a new connection when a
    /// reused one turns out broken before the body was sent (see the
    /// module's rules). After [`Pool::close`] the error is
    /// [`smtp_proto::Error::InvalidState`].
    ///
    /// Dropping the future before a connection took the message withdraws
    /// it; after, the message is sent anyway (other senders' messages share
    /// its connection) and its result dropped.
    pub async fn send(&self, envelope: Envelope, body: &[u8]) -> Result<Delivery, Error> {
        if self.is_closed() {
            return Err(closed_error());
        }
        if ::tokio::runtime::Handle::try_current().is_err() {
            // No runtime to run the connection tasks on: the message would
            // wait forever.
            return Err(Error::Smtp(smtp_proto::Error::InvalidState {
                call: "Pool::send",
                reason: "not inside a tokio runtime",
            }));
        }
        let (tx, rx) = oneshot::channel();
        let waiting = Waiting {
            envelope: envelope.for_body(body),
            body: Arc::from(body),
            result: tx,
            retried: false,
        };
        self.inner.lock_queue().waiting.push_back(waiting);
        if self.is_closed() {
            // `close` may have emptied the queue just before the push.
            self.inner.fail_queued();
        }
        self.inner.kick();
        rx.await.unwrap_or_else(|_| {
            // The connection task ended without answering: only a runtime
            // shutting down (or a panic) drops a task mid-batch.
            Err(<Error as BatchError>::delivery_unknown(Error::Poisoned))
        })
    }

    /// Sends one message whose body is read from `body`, like
    /// [`Client::send_reader`]. The retry rule is the same: `body` is only
    /// ever read on one connection, so a retry happens only when it was not
    /// read at all.
    pub async fn send_reader<R>(&self, envelope: Envelope, body: R) -> Result<Delivery, Error>
    where
        R: AsyncRead + Unpin,
    {
        first(self.run(&mut [(envelope, body)]).await)
    }

    /// Sends several messages over one pooled connection, like
    /// [`Client::send_all`](crate::Client::send_all): with PIPELINING each
    /// message's commands ride behind the previous message's end, one round
    /// trip per message. The batch holds one slot from start to end.
    /// Results come in order; a refused transaction is that message's error
    /// and the batch goes on; an error that ends the connection is the last
    /// result (the messages after it were not sent).
    ///
    /// The retry rule is [`Pool::send`]'s: when a reused connection turns out
    /// broken before any body was read, the whole batch goes once more on a
    /// new connection.
    pub async fn send_all<'a, I>(&self, messages: I) -> Vec<Result<Delivery, Error>>
    where
        I: IntoIterator<Item = (Envelope, &'a [u8])>,
    {
        let mut messages: Vec<(Envelope, &[u8])> = messages
            .into_iter()
            .map(|(envelope, body)| (envelope.for_body(body), body))
            .collect();
        self.run(&mut messages).await
    }

    /// QUITs idle connections that are past [`PoolOptions::idle_timeout`] or
    /// [`PoolOptions::max_lifetime`]. Call it on an interval to close
    /// connections the pool would otherwise keep until its next send.
    pub async fn prune(&self) {
        let expired = {
            let mut idle = self.inner.lock_idle();
            self.inner.take_expired(&mut idle)
        };
        for conn in expired {
            quit(conn, "expired").await;
        }
    }

    /// Closes the pool: later and waiting sends fail, idle connections are
    /// QUIT (each within 10 seconds), connections in use are QUIT when their
    /// send ends.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.slots.close();
        self.inner.fail_queued();
        let idle = std::mem::take(&mut *self.inner.lock_idle());
        for entry in idle {
            quit(entry.conn, "pool closed").await;
        }
    }

    /// Whether [`Pool::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// How many connections are idle and how many slots are taken.
    pub fn status(&self) -> PoolStatus {
        let max_size = self.inner.options.max_size;
        let counters = &self.inner.counters;
        PoolStatus {
            idle: self.inner.lock_idle().len(),
            in_use: max_size.saturating_sub(self.inner.slots.available_permits()),
            queued: self.inner.lock_queue().waiting.len(),
            max_size,
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
    async fn run<R>(&self, messages: &mut [(Envelope, R)]) -> Vec<Result<Delivery, Error>>
    where
        R: AsyncRead + Unpin,
    {
        let span = tracing::debug_span!(
            target: "smtp_tokio::pool",
            "smtp.pool.send",
            messages = messages.len(),
            recipients = messages.iter().map(|(e, _)| e.recipients().len()).sum::<usize>()
        );
        async move {
            let permit = match self.inner.acquire().await {
                Ok(permit) => permit,
                Err(err) => return vec![Err(err)],
            };
            let mut lease = match self.inner.checkout(permit).await {
                Ok(lease) => lease,
                Err(err) => return vec![Err(err)],
            };
            let touched = AtomicBool::new(false);
            let results = lease.send(messages, &touched).await;
            // Only a message refused or not sent may go again (never one
            // whose outcome is unknown: RFC 1047), and only a body never
            // read, since a reader cannot be rewound.
            let body_read = touched.load(Ordering::Relaxed);
            let broken_before_any_body = matches!(results.as_slice(), [Err(err)]
                if retry::may_retry(lease.reused, body_read, is_broken(err), err.outcome()));
            if !broken_before_any_body {
                lease.done(last_error(&results));
                return retry::not_sent_to_the_end(results, messages.len());
            }
            let id = lease.id();
            let permit = match lease.discard_keep_slot("broken before the message was sent") {
                Some(permit) => permit,
                None => match self.inner.acquire().await {
                    Ok(permit) => permit,
                    Err(err) => return vec![Err(err)],
                },
            };
            Counters::add(&self.inner.counters.retried);
            if let Some(Err(err)) = results.first() {
                tracing::debug!(
                    target: "smtp_tokio::pool",
                    connection = id,
                    error = %err,
                    "retrying on a new connection"
                );
            }
            let mut lease = match self.inner.open(permit).await {
                Ok(lease) => lease,
                Err(err) => return vec![Err(err)],
            };
            let results = lease.send(messages, &touched).await;
            lease.done(last_error(&results));
            retry::not_sent_to_the_end(results, messages.len())
        }
        .instrument(span)
        .await
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

/// The failures after which a connection is gone: `421`, the server closing
/// it, an I/O error, a poisoned client; a message whose delivery such a
/// failure left unknown, or that it kept from being sent.
fn is_broken(err: &Error) -> bool {
    match err {
        Error::Io(_) | Error::Poisoned | Error::NotSent => true,
        Error::Smtp(err) => err.closes_connection(),
        Error::DeliveryUnknown { source } => is_broken(source),
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
    fn lock_idle(&self) -> MutexGuard<'_, Vec<Idle>> {
        // A panic elsewhere while holding the lock leaves a valid list.
        lock(&self.idle)
    }

    fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        lock(&self.queue)
    }

    /// Answers every queued message with the pool-closed error.
    fn fail_queued(&self) {
        let queued = std::mem::take(&mut self.lock_queue().waiting);
        for waiting in queued {
            let _ = waiting.result.send(Err(closed_error()));
        }
    }

    /// Starts connection tasks while more messages wait than tasks are
    /// starting, each in a free slot. A task that has its connection takes
    /// queued messages as its batch goes (so a message arriving while one
    /// is busy may ride its pipeline, or start another connection).
    ///
    /// Called after every push to the queue and after every slot is freed,
    /// each time looking at both under the queue's lock: whichever of a
    /// push and a release comes second sees the other, so no message waits
    /// while a slot is free.
    fn kick(self: &Arc<Self>) {
        let Ok(runtime) = ::tokio::runtime::Handle::try_current() else {
            // No runtime, no task: the next send (inside one) kicks again.
            return;
        };
        let mut queue = self.lock_queue();
        while queue.waiting.len() > queue.starting {
            let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() else {
                return;
            };
            queue.starting += 1;
            runtime.spawn(serve(Arc::clone(self), permit));
        }
    }

    /// The next queued message whose sender still waits (a send dropped
    /// while queued is withdrawn, never sent).
    fn next_queued(&self) -> Option<Waiting> {
        if self.closed.load(Ordering::SeqCst) {
            return None;
        }
        let mut queue = self.lock_queue();
        while let Some(waiting) = queue.waiting.pop_front() {
            if !waiting.result.is_closed() {
                return Some(waiting);
            }
        }
        None
    }

    async fn acquire(&self) -> Result<OwnedSemaphorePermit, Error> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(closed_error());
        }
        Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| closed_error())
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
                    target: "smtp_tokio::pool",
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
    async fn checkout(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Result<Lease, Error> {
        let mut permit = permit;
        loop {
            let (entry, expired) = {
                let mut idle = self.lock_idle();
                let expired = self.take_expired(&mut idle);
                (idle.pop(), expired)
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
                inner: Arc::clone(self),
                permit: Some(permit),
            };
            // Unusable, or closed while it idled (a 421 on the server's idle
            // timeout, read without writing anything), or silent to a NOOP
            // after a long idle: discarded, and the next one is tried.
            let counters = &self.counters;
            let check = if !lease.is_usable() {
                Err((Error::Poisoned, "unusable while idle"))
            } else if let Err(reason) = lease.check_idle().await {
                Counters::add(&counters.closed_while_idle);
                Err((reason, "closed while idle"))
            } else if idle_for >= self.options.health_check_after {
                let timeout = self.options.health_check_timeout;
                let checked = lease.health_check(timeout).await;
                if checked.is_err() {
                    Counters::add(&counters.failed_health_checks);
                }
                checked.map_err(|reason| (reason, "health check failed"))
            } else {
                Ok(())
            };
            if let Err((reason, why)) = check {
                tracing::debug!(
                    target: "smtp_tokio::pool",
                    connection = lease.id(),
                    error = %reason,
                    "{why}"
                );
                permit = match lease.discard_keep_slot(why) {
                    Some(permit) => permit,
                    None => self.acquire().await?,
                };
                continue;
            }
            Counters::add(&self.counters.reused);
            tracing::debug!(
                target: "smtp_tokio::pool",
                connection = lease.id(),
                idle_ms = idle_for.as_millis() as u64,
                "reused"
            );
            return Ok(lease);
        }
        self.open(permit).await
    }

    /// Opens a new connection in the slot `permit`.
    async fn open(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Result<Lease, Error> {
        let started = Instant::now();
        let client = match self.connector.connect().await {
            Ok(client) => client,
            Err(err) => {
                tracing::debug!(target: "smtp_tokio::pool", error = %err, "connect failed");
                return Err(err);
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            target: "smtp_tokio::pool",
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
            inner: Arc::clone(self),
            permit: Some(permit),
        })
    }

    /// Takes back a connection whose operation ended (or was dropped): into
    /// the idle list if it is usable, else closed.
    fn check_in(&self, conn: Conn) {
        if !conn.client.is_usable() {
            discard(conn, "unusable after the operation");
        } else if self.closed.load(Ordering::SeqCst) {
            quit_detached(conn, "pool closed");
        } else if self.too_old(&conn, Instant::now()) {
            quit_detached(conn, "max lifetime reached");
        } else {
            self.lock_idle().push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }
}

/// One send's hold on a slot and a connection. Dropping it (the send
/// finished, or its future was dropped) returns the connection only if it
/// is usable, then frees the slot.
struct Lease {
    conn: Option<Conn>,
    reused: bool,
    inner: Arc<Inner>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Lease {
    fn id(&self) -> u64 {
        self.conn.as_ref().map_or(0, |conn| conn.id)
    }

    fn is_usable(&self) -> bool {
        self.conn
            .as_ref()
            .is_some_and(|conn| conn.client.is_usable())
    }

    async fn check_idle(&mut self) -> Result<(), Error> {
        match self.conn.as_mut() {
            Some(conn) => conn.client.check_idle().await,
            None => Err(Error::Poisoned),
        }
    }

    async fn health_check(&mut self, timeout: Duration) -> Result<(), Error> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(Error::Poisoned);
        };
        // A timed-out NOOP is dropped mid-way, which poisons the client.
        match ::tokio::time::timeout(timeout, conn.client.noop()).await {
            Ok(result) => result,
            Err(_) => Err(Error::Smtp(smtp_proto::Error::Timeout {
                stage: smtp_proto::Stage::Noop,
            })),
        }
    }

    /// Sends `messages` as one batch; `touched` is set once any body is read.
    async fn send<R>(
        &mut self,
        messages: &mut [(Envelope, R)],
        touched: &AtomicBool,
    ) -> Vec<Result<Delivery, Error>>
    where
        R: AsyncRead + Unpin,
    {
        let Some(conn) = self.conn.as_mut() else {
            return vec![Err(Error::Poisoned)];
        };
        let mut results = Vec::with_capacity(messages.len());
        let bodies = TrackedMessages {
            messages: messages.iter_mut(),
            touched,
        };
        conn.client
            .send_each(bodies, |result| results.push(result))
            .await;
        conn.messages += results.iter().filter(|result| result.is_ok()).count() as u64;
        results
    }

    /// The operation ended: drop the connection if `err` ended the session,
    /// else let [`Drop`] return it (if usable).
    fn done(mut self, err: Option<&Error>) {
        if let Some(err) = err.filter(|err| is_broken(err)) {
            if let Some(conn) = self.conn.take() {
                tracing::debug!(target: "smtp_tokio::pool", connection = conn.id, error = %err, "the operation broke the connection");
                discard(conn, "broken by the operation");
            }
        }
    }

    /// Drops the connection and keeps the slot for another (`None` never
    /// happens: a lease gives up its permit only here, consuming itself).
    fn discard_keep_slot(mut self, reason: &'static str) -> Option<OwnedSemaphorePermit> {
        if let Some(conn) = self.conn.take() {
            discard(conn, reason);
        }
        self.permit.take()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.inner.check_in(conn);
        }
        // The slot is freed once the connection is back, then offered to
        // the queue.
        if self.permit.take().is_some() {
            self.inner.kick();
        }
    }
}

/// Closes a connection that cannot be used: nothing is written (a poisoned
/// client would write into the middle of a dialogue; a closed one has
/// nothing to say).
fn discard(conn: Conn, reason: &'static str) {
    tracing::debug!(
        target: "smtp_tokio::pool",
        connection = conn.id,
        messages = conn.messages,
        reason,
        "discarded"
    );
    drop(conn);
}

/// QUITs a usable connection in a background task (or just closes it when
/// there is no runtime to run one).
fn quit_detached(conn: Conn, reason: &'static str) {
    match ::tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(quit(conn, reason));
        }
        Err(_) => discard(conn, reason),
    }
}

async fn quit(conn: Conn, reason: &'static str) {
    let Conn {
        client,
        id,
        messages,
        ..
    } = conn;
    let result = ::tokio::time::timeout(QUIT_TIMEOUT, client.quit()).await;
    let outcome = match &result {
        Ok(Ok(())) => "ok",
        Ok(Err(_)) => "failed",
        Err(_) => "timed out",
    };
    tracing::debug!(
        target: "smtp_tokio::pool",
        connection = id,
        messages,
        reason,
        quit = outcome,
        "closed"
    );
}

/// A message [`Pool::send`] queued, and where its result goes.
struct Waiting {
    envelope: Envelope,
    body: Arc<[u8]>,
    result: oneshot::Sender<Result<Delivery, Error>>,
    /// Already sent back once after a reused connection broke under it.
    retried: bool,
}

/// [`Pool::send`]'s messages, and how many connection tasks are still
/// getting their connection (each will take one at least).
#[derive(Default)]
struct Queue {
    waiting: VecDeque<Waiting>,
    starting: usize,
}

/// A queued message a batch took: kept until its result comes, to answer
/// its sender or send it again.
struct InFlight {
    waiting: Waiting,
    read: Arc<AtomicBool>,
}

/// One connection task: takes a connection for the slot `permit` and
/// sends queued messages over it as batches while any wait, up to
/// [`MESSAGES_PER_TURN`]; then gives the connection back, which frees the
/// slot and kicks the queue again. Spawned, so no sender's cancellation
/// cuts the batch that carries the others' messages.
async fn serve(inner: Arc<Inner>, permit: OwnedSemaphorePermit) {
    let span = tracing::debug_span!(target: "smtp_tokio::pool", "smtp.pool.connection");
    async move {
        let starting = Starting(&inner);
        let checkout = inner.checkout(permit).await;
        drop(starting);
        let mut lease = match checkout {
            Ok(lease) => lease,
            Err(err) => {
                // One waiting message gets the error, as a send of its own
                // would have; the others get their own attempts.
                if let Some(waiting) = inner.next_queued() {
                    let _ = waiting.result.send(Err(err));
                }
                inner.kick();
                return;
            }
        };
        // Messages a broken reused connection sent back: first on the next.
        let mut again: VecDeque<Waiting> = VecDeque::new();
        let mut sent = 0;
        loop {
            let limit = MESSAGES_PER_TURN.saturating_sub(sent);
            let turn = send_queued(&inner, &mut lease, &mut again, limit).await;
            sent += turn.answered;
            let Turn {
                broke, back, held, ..
            } = turn;
            if !broke {
                let more = lease.is_usable()
                    && sent < MESSAGES_PER_TURN
                    && !inner.lock_queue().waiting.is_empty();
                if !more {
                    // Back to the idle list before the last sender hears,
                    // so that its next send finds the connection there.
                    drop(lease);
                    answer_held(held);
                    return;
                }
                answer_held(held);
                continue;
            }
            let id = lease.id();
            if back.is_empty() {
                if let Some(conn) = lease.conn.take() {
                    tracing::debug!(target: "smtp_tokio::pool", connection = id, "the operation broke the connection");
                    discard(conn, "broken by the operation");
                }
                drop(lease);
                answer_held(held);
                return;
            }
            answer_held(held);
            // A reused connection broke before these bodies were read:
            // once more, on a new connection (the module's retry rule).
            let Some(permit) = lease.discard_keep_slot("broken before the message was sent")
            else {
                return;
            };
            Counters::add(&inner.counters.retried);
            tracing::debug!(
                target: "smtp_tokio::pool",
                connection = id,
                messages = back.len(),
                "retrying on a new connection"
            );
            for mut waiting in back.into_iter().rev() {
                waiting.retried = true;
                again.push_front(waiting);
            }
            lease = match inner.open(permit).await {
                Ok(lease) => lease,
                Err(err) => {
                    if let Some(waiting) = again.pop_front() {
                        let _ = waiting.result.send(Err(err));
                    }
                    // The others were not tried again: back to the front
                    // of the queue, still marked as retried.
                    {
                        let mut queue = inner.lock_queue();
                        while let Some(waiting) = again.pop_back() {
                            queue.waiting.push_front(waiting);
                        }
                    }
                    inner.kick();
                    return;
                }
            };
        }
    }
    .instrument(span)
    .await
}

/// A connection task still getting its connection, counted in
/// [`Queue::starting`] until it has one, fails, or is dropped with its
/// runtime.
struct Starting<'a>(&'a Inner);

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        let mut queue = self.0.lock_queue();
        queue.starting = queue.starting.saturating_sub(1);
    }
}

/// Results held back until the connection is settled.
type Held = Vec<(
    oneshot::Sender<Result<Delivery, Error>>,
    Result<Delivery, Error>,
)>;

fn answer_held(held: Held) {
    for (sender, result) in held {
        // A sender that gave up does not want the result.
        let _ = sender.send(result);
    }
}

/// What one batch of queued messages came to.
struct Turn {
    /// Messages answered (sent, refused or failed).
    answered: usize,
    /// A failure ended the connection.
    broke: bool,
    /// Messages that may go again on a new connection, in order.
    back: Vec<Waiting>,
    /// The results that end the batch (one that came with nothing else in
    /// flight and no message taken after it, or every one from the failure
    /// that ended the connection): answered once the connection is back in
    /// the idle list, or discarded, so that the sender's next step sees the
    /// pool settled.
    held: Held,
}

/// The messages a batch took and has not answered yet, and the results
/// held until it is known whether the batch goes on.
#[derive(Default)]
struct Taken {
    in_flight: VecDeque<InFlight>,
    /// Results that came when nothing else was in flight: held until the
    /// batch takes another message (it goes on: answered then) or ends.
    held: Held,
}

/// Sends `again`, then queued messages, as one batch on `lease`'s
/// connection, at most `limit`: each result goes to its sender as soon as
/// it is known (the last one, see [`Turn::last`]).
async fn send_queued(
    inner: &Inner,
    lease: &mut Lease,
    again: &mut VecDeque<Waiting>,
    limit: usize,
) -> Turn {
    let mut turn = Turn {
        answered: 0,
        broke: false,
        back: Vec::new(),
        held: Vec::new(),
    };
    let reused = lease.reused;
    let Some(conn) = lease.conn.as_mut() else {
        turn.broke = true;
        return turn;
    };
    let taken = Mutex::new(Taken::default());
    let mut delivered = 0;
    let mut answer = |result: Result<Delivery, Error>, one: InFlight, last: bool| {
        turn.answered += 1;
        match &result {
            Ok(_) => delivered += 1,
            Err(err) => {
                let broke = is_broken(err);
                turn.broke |= broke;
                let body_read = one.read.load(Ordering::Relaxed);
                if !one.waiting.retried && retry::may_retry(reused, body_read, broke, err.outcome())
                {
                    turn.back.push(one.waiting);
                    return;
                }
            }
        }
        if turn.broke {
            turn.held.push((one.waiting.result, result));
        } else if last {
            lock(&taken).held.push((one.waiting.result, result));
        } else {
            let _ = one.waiting.result.send(result);
        }
    };
    let source = Queued {
        inner,
        again,
        taken: &taken,
        left: limit,
    };
    conn.client
        .send_each(source, |result| {
            let (one, last) = {
                let mut taken = lock(&taken);
                let one = taken.in_flight.pop_front();
                (one, taken.in_flight.is_empty())
            };
            if let Some(one) = one {
                answer(result, one, last);
            }
        })
        .await;
    // Taken but never answered: the batch ended on a failure first.
    let unanswered = std::mem::take(&mut lock(&taken).in_flight);
    for one in unanswered {
        answer(Err(Error::NotSent), one, false);
    }
    let mut held = std::mem::take(&mut lock(&taken).held);
    held.append(&mut turn.held);
    turn.held = held;
    conn.messages += delivered;
    if !conn.client.is_usable() {
        turn.broke = true;
    }
    turn
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The queue as a batch's messages: first those sent back by a broken
/// connection, then the queue's, while any wait, up to `left`; each taken
/// is remembered in `in_flight` until its result comes.
struct Queued<'a> {
    inner: &'a Inner,
    again: &'a mut VecDeque<Waiting>,
    taken: &'a Mutex<Taken>,
    left: usize,
}

impl Iterator for Queued<'_> {
    type Item = (Envelope, QueuedBody);

    fn next(&mut self) -> Option<Self::Item> {
        let next = match self.again.pop_front() {
            Some(waiting) => Some(waiting),
            None if self.left == 0 => None,
            None => self.inner.next_queued(),
        };
        let waiting = next?;
        self.left = self.left.saturating_sub(1);
        let read = Arc::new(AtomicBool::new(false));
        let item = (
            waiting.envelope.clone(),
            QueuedBody {
                body: Arc::clone(&waiting.body),
                at: 0,
                read: Arc::clone(&read),
            },
        );
        let held = {
            let mut taken = lock(self.taken);
            taken.in_flight.push_back(InFlight { waiting, read });
            std::mem::take(&mut taken.held)
        };
        // The batch goes on: whoever was waiting behind nothing hears now.
        answer_held(held);
        Some(item)
    }
}

/// A queued body as the batch reads it, remembering whether it was.
struct QueuedBody {
    body: Arc<[u8]>,
    at: usize,
    read: Arc<AtomicBool>,
}

impl AsyncRead for QueuedBody {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.read.store(true, Ordering::Relaxed);
        let rest = this.body.get(this.at..).unwrap_or_default();
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        this.at += n;
        Poll::Ready(Ok(()))
    }
}

/// The messages of a batch with their bodies tracked (an iterator of its own
/// rather than `map` with a closure, which would keep the compiler from
/// proving the send's future `Send`).
struct TrackedMessages<'a, 'b, R> {
    messages: std::slice::IterMut<'a, (Envelope, R)>,
    touched: &'b AtomicBool,
}

impl<'a, 'b, R> Iterator for TrackedMessages<'a, 'b, R> {
    type Item = (Envelope, Tracked<'b, &'a mut R>);

    fn next(&mut self) -> Option<Self::Item> {
        let (envelope, body) = self.messages.next()?;
        let body = Tracked {
            inner: body,
            touched: self.touched,
        };
        Some((envelope.clone(), body))
    }
}

/// Remembers whether the body was ever read: if not, the server never got a
/// byte of it.
struct Tracked<'a, R> {
    inner: R,
    touched: &'a AtomicBool,
}

impl<R: AsyncRead + Unpin> AsyncRead for Tracked<'_, R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.touched.store(true, Ordering::Relaxed);
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

/// The pool as the application's [`AsyncMailer`](smtp_proto::AsyncMailer):
/// code written against the trait sends through a shared `Pool` in
/// production and a [`RecordingMailer`](smtp_proto::RecordingMailer) in its
/// tests.
///
/// ```
/// use smtp_tokio::pool::{Connector, Pool, PoolOptions};
/// use smtp_tokio::{Address, AsyncMailer, Config, Envelope, Options, RecordingMailer};
///
/// /// Application code: any mailer, any task.
/// async fn send_receipt<M: AsyncMailer>(mailer: &M, to: &str) -> Result<(), M::Error> {
///     let envelope = Envelope::new(
///         Some(Address::new("shop@example.com").expect("valid")),
///         [Address::new(to).expect("valid")],
///     )
///     .expect("valid");
///     mailer.send(envelope, b"Subject: receipt\r\n\r\nThanks.\r\n").await?;
///     Ok(())
/// }
///
/// /// Production: one pool, cloned into every handler.
/// async fn production() -> Result<(), smtp_tokio::Error> {
///     let config = Config::new("smtp.example.com");
///     let connector = Connector::new("smtp.example.com", 587, config, Options::new());
///     let pool = Pool::new(connector, PoolOptions::new());
///     send_receipt(&pool, "you@example.org").await
/// }
///
/// // The application's unit test: no network.
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// let mailer = RecordingMailer::new();
/// runtime.block_on(send_receipt(&mailer, "you@example.org"))?;
/// assert_eq!(mailer.sent()[0].envelope.recipients().len(), 1);
/// # let _ = production;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl smtp_proto::AsyncMailer for Pool {
    type Error = Error;

    fn send(
        &self,
        envelope: Envelope,
        body: &[u8],
    ) -> impl Future<Output = Result<Delivery, Error>> + Send {
        Pool::send(self, envelope, body)
    }

    fn send_all(
        &self,
        messages: Vec<(Envelope, &[u8])>,
    ) -> impl Future<Output = Vec<Result<Delivery, Error>>> + Send {
        Pool::send_all(self, messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smtp_proto::Stage;

    fn closed() -> Error {
        Error::Smtp(smtp_proto::Error::ConnectionClosed { stage: Stage::Mail })
    }

    #[test]
    fn what_breaks_a_connection() {
        let reset = || Error::Io(io::Error::from(io::ErrorKind::ConnectionReset));
        for broken in [
            reset(),
            Error::Poisoned,
            Error::NotSent,
            closed(),
            Error::DeliveryUnknown {
                source: Box::new(reset()),
            },
            Error::DeliveryUnknown {
                source: Box::new(closed()),
            },
        ] {
            assert!(is_broken(&broken), "{broken:?}");
        }
        let refused = Error::Smtp(smtp_proto::Error::InvalidState {
            call: "test",
            reason: "not a broken connection",
        });
        for kept in [
            Error::BodyRead(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Error::Credentials("no token".into()),
            Error::DeliveryUnknown {
                source: Box::new(Error::BodyRead(io::Error::from(io::ErrorKind::Other))),
            },
            refused,
        ] {
            assert!(!is_broken(&kept), "{kept:?}");
        }
    }
}
