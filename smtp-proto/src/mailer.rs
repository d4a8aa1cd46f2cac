//! What an application sends mail through: [`Mailer`] (blocking) and
//! [`AsyncMailer`] (async), implemented by the adapters' shared pools and
//! by [`RecordingMailer`], the test double.
//!
//! # Two traits, one shape
//!
//! Both say the same two things — send one message, send a batch — and
//! differ only in how the caller waits. They live here, in the core, so that
//! `smtp-blocking` and `smtp-tokio` implement them without depending on each
//! other, and an application can be written against the trait and given a
//! real pool in production and a [`RecordingMailer`] in its unit tests.
//!
//! Why two traits and not one: a blocking `send` cannot be implemented by an
//! async pool without blocking a runtime thread (or owning a runtime), and a
//! single trait returning boxed futures would force the blocking pool into
//! async and cost an allocation per send. So [`Mailer`] is synchronous and
//! dyn-compatible (`Arc<dyn Mailer<Error = E>>` works), and [`AsyncMailer`]
//! returns `impl Future + Send` (no allocation, usable from
//! `tokio::spawn`), at the price of not being dyn-compatible: take it as a
//! generic parameter (`M: AsyncMailer`). The double implements both.
//!
//! Each has an associated `Error`: the adapter's own error type, so nothing
//! of what a failure says (its [`Outcome`](crate::Outcome), whether it is
//! transient) is lost behind a trait object.

use crate::error::Error;
use crate::outcome::{Delivery, RecipientResult};
use crate::reply::Reply;
use crate::transaction::Envelope;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Sends mail, blocking the calling thread: implemented by
/// `smtp_blocking::pool::Pool` and by [`RecordingMailer`].
///
/// Shared between threads (`Send + Sync`, methods take `&self`): a pool
/// behind it decides which connection each send uses.
///
/// ```
/// use smtp_proto::{Address, Envelope, Mailer, RecordingMailer};
///
/// /// Application code: knows nothing of SMTP connections.
/// fn welcome<M: Mailer>(mailer: &M, to: &str) -> Result<(), M::Error> {
///     let envelope = Envelope::new(
///         Some(Address::new("noreply@example.com").expect("valid")),
///         [Address::new(to).expect("valid")],
///     )
///     .expect("valid");
///     mailer.send(envelope, b"Subject: welcome\r\n\r\nHello!\r\n")?;
///     Ok(())
/// }
///
/// // Its unit test: no network.
/// let mailer = RecordingMailer::new();
/// welcome(&mailer, "new@example.org")?;
/// let sent = mailer.sent();
/// assert_eq!(sent.len(), 1);
/// assert_eq!(sent[0].envelope.recipients()[0].address().as_str(), "new@example.org");
/// # Ok::<(), smtp_proto::Error>(())
/// ```
pub trait Mailer: Send + Sync {
    /// What a failed send says.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Sends one message (its bytes as they are to be delivered; line endings
    /// and dot-stuffing are the implementation's business).
    fn send(&self, envelope: Envelope, body: &[u8]) -> Result<Delivery, Self::Error>;

    /// Sends several messages and returns one result per message, in order.
    ///
    /// A pool sends them over one connection; a failure that ends the
    /// connection is that message's error and every later message's result
    /// says it was not sent. The default sends them one by one with
    /// [`send`](Mailer::send).
    fn send_all(&self, messages: Vec<(Envelope, &[u8])>) -> Vec<Result<Delivery, Self::Error>> {
        messages
            .into_iter()
            .map(|(envelope, body)| self.send(envelope, body))
            .collect()
    }
}

/// [`Mailer`] for async code: implemented by `smtp_tokio::pool::Pool` and
/// by [`RecordingMailer`].
///
/// The futures are `Send`, so a send can be spawned. Not dyn-compatible (the
/// methods return `impl Future`): take it as a generic parameter.
///
/// ```
/// use smtp_proto::{Address, AsyncMailer, Envelope, RecordingMailer};
///
/// async fn notify<M: AsyncMailer>(mailer: &M) -> Result<(), M::Error> {
///     let envelope = Envelope::new(
///         Some(Address::new("alerts@example.com").expect("valid")),
///         [Address::new("ops@example.org").expect("valid")],
///     )
///     .expect("valid");
///     mailer.send(envelope, b"Subject: disk full\r\n\r\n/var is full\r\n").await?;
///     Ok(())
/// }
///
/// // A RecordingMailer never waits: any executor (or none) drives it.
/// fn block_on<F: std::future::Future>(future: F) -> F::Output {
///     let mut future = std::pin::pin!(future);
///     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
///     loop {
///         if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
///             return out;
///         }
///     }
/// }
/// let mailer = RecordingMailer::new();
/// block_on(notify(&mailer))?;
/// assert_eq!(mailer.sent()[0].body_text(), "Subject: disk full\r\n\r\n/var is full\r\n");
/// # Ok::<(), smtp_proto::Error>(())
/// ```
pub trait AsyncMailer: Send + Sync {
    /// What a failed send says.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Sends one message, like [`Mailer::send`].
    fn send(
        &self,
        envelope: Envelope,
        body: &[u8],
    ) -> impl Future<Output = Result<Delivery, Self::Error>> + Send;

    /// Sends several messages, like [`Mailer::send_all`]. The default sends
    /// them one by one with [`send`](AsyncMailer::send).
    fn send_all(
        &self,
        messages: Vec<(Envelope, &[u8])>,
    ) -> impl Future<Output = Vec<Result<Delivery, Self::Error>>> + Send {
        async move {
            let mut results = Vec::with_capacity(messages.len());
            for (envelope, body) in messages {
                results.push(self.send(envelope, body).await);
            }
            results
        }
    }
}

impl<M: Mailer + ?Sized> Mailer for &M {
    type Error = M::Error;

    fn send(&self, envelope: Envelope, body: &[u8]) -> Result<Delivery, Self::Error> {
        (**self).send(envelope, body)
    }

    fn send_all(&self, messages: Vec<(Envelope, &[u8])>) -> Vec<Result<Delivery, Self::Error>> {
        (**self).send_all(messages)
    }
}

impl<M: Mailer + ?Sized> Mailer for Arc<M> {
    type Error = M::Error;

    fn send(&self, envelope: Envelope, body: &[u8]) -> Result<Delivery, Self::Error> {
        (**self).send(envelope, body)
    }

    fn send_all(&self, messages: Vec<(Envelope, &[u8])>) -> Vec<Result<Delivery, Self::Error>> {
        (**self).send_all(messages)
    }
}

impl<M: AsyncMailer> AsyncMailer for &M {
    type Error = M::Error;

    fn send(
        &self,
        envelope: Envelope,
        body: &[u8],
    ) -> impl Future<Output = Result<Delivery, Self::Error>> + Send {
        (**self).send(envelope, body)
    }

    fn send_all(
        &self,
        messages: Vec<(Envelope, &[u8])>,
    ) -> impl Future<Output = Vec<Result<Delivery, Self::Error>>> + Send {
        (**self).send_all(messages)
    }
}

impl<M: AsyncMailer> AsyncMailer for Arc<M> {
    type Error = M::Error;

    fn send(
        &self,
        envelope: Envelope,
        body: &[u8],
    ) -> impl Future<Output = Result<Delivery, Self::Error>> + Send {
        (**self).send(envelope, body)
    }

    fn send_all(
        &self,
        messages: Vec<(Envelope, &[u8])>,
    ) -> impl Future<Output = Vec<Result<Delivery, Self::Error>>> + Send {
        (**self).send_all(messages)
    }
}

/// A message a [`RecordingMailer`] accepted: what the application asked to
/// send, as it asked.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SentMessage {
    /// The envelope, as given.
    pub envelope: Envelope,
    /// The body, as given (not normalized, not dot-stuffed).
    pub body: Vec<u8>,
}

impl SentMessage {
    /// The body as text (invalid UTF-8 replaced), for assertions.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A [`Mailer`] and [`AsyncMailer`] for applications' unit tests: no
/// network; it keeps every message it accepts, and can be told to refuse.
///
/// Cheap to clone (clones share what was sent), `Send + Sync`. Every
/// recipient of an accepted message is accepted (`250 2.1.5`), and the
/// message gets `250 2.0.0`. After [`refuse`](Self::refuse), every send
/// fails with that error (nothing is recorded) until
/// [`accept`](Self::accept).
///
/// `E` is the error type the double reports, [`Error`](crate::Error) by
/// default; give it the adapter's (`RecordingMailer::<smtp_blocking::Error>::default()`)
/// to stand in where a `dyn Mailer<Error = smtp_blocking::Error>` is
/// expected.
///
/// ```
/// use smtp_proto::{Address, Envelope, Error, Mailer, RecordingMailer, Reply, Stage};
///
/// let mailer = RecordingMailer::new();
/// let envelope = Envelope::new(None, [Address::new("you@example.org")?])?;
/// let delivery = mailer.send(envelope.clone(), b"Subject: one\r\n\r\n")?;
/// assert!(delivery.recipients()[0].accepted());
///
/// // The server is down (for the application's error path).
/// let reply = Reply::parse(b"451 4.3.0 try again later\r\n").expect("a reply");
/// mailer.refuse(Error::Rejected { stage: Stage::Mail, reply });
/// let err = mailer.send(envelope, b"Subject: two\r\n\r\n").unwrap_err();
/// assert!(err.is_transient());
/// assert_eq!(mailer.sent().len(), 1);
/// assert_eq!(mailer.attempts(), 2);
/// # Ok::<(), Error>(())
/// ```
pub struct RecordingMailer<E = Error> {
    state: Arc<Mutex<State<E>>>,
}

/// A way to make the error every send fails with.
type MakeError<E> = Box<dyn Fn() -> E + Send + Sync>;

struct State<E> {
    sent: Vec<SentMessage>,
    attempts: usize,
    refusal: Option<MakeError<E>>,
}

impl RecordingMailer {
    /// A double that accepts everything, reporting [`Error`](crate::Error)s.
    /// [`RecordingMailer::default`] makes one with another error type.
    pub fn new() -> RecordingMailer {
        RecordingMailer::default()
    }
}

impl<E> Default for RecordingMailer<E> {
    fn default() -> RecordingMailer<E> {
        RecordingMailer {
            state: Arc::new(Mutex::new(State {
                sent: Vec::new(),
                attempts: 0,
                refusal: None,
            })),
        }
    }
}

impl<E> Clone for RecordingMailer<E> {
    fn clone(&self) -> RecordingMailer<E> {
        RecordingMailer {
            state: Arc::clone(&self.state),
        }
    }
}

impl<E> fmt::Debug for RecordingMailer<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("RecordingMailer")
            .field("sent", &state.sent.len())
            .field("attempts", &state.attempts)
            .field("refusing", &state.refusal.is_some())
            .finish()
    }
}

impl<E> RecordingMailer<E> {
    fn lock(&self) -> MutexGuard<'_, State<E>> {
        // A test that panicked while holding the lock left a valid state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every message accepted so far, in order.
    pub fn sent(&self) -> Vec<SentMessage> {
        self.lock().sent.clone()
    }

    /// The messages accepted so far, forgetting them.
    pub fn take(&self) -> Vec<SentMessage> {
        std::mem::take(&mut self.lock().sent)
    }

    /// How many sends were attempted, refused ones included.
    pub fn attempts(&self) -> usize {
        self.lock().attempts
    }

    /// From now on every send fails with `error` (converted into `E`).
    pub fn refuse(&self, error: Error)
    where
        E: From<Error>,
    {
        self.refuse_with(move || E::from(error.clone()));
    }

    /// From now on every send fails with what `make` returns: for errors
    /// that are not the core's (an adapter's I/O error, say).
    pub fn refuse_with(&self, make: impl Fn() -> E + Send + Sync + 'static) {
        self.lock().refusal = Some(Box::new(make));
    }

    /// Accepts messages again after [`refuse`](Self::refuse).
    pub fn accept(&self) {
        self.lock().refusal = None;
    }

    /// One send: refused, or recorded and accepted.
    fn record(&self, envelope: Envelope, body: &[u8]) -> Result<Delivery, E> {
        let mut state = self.lock();
        state.attempts += 1;
        if let Some(make) = &state.refusal {
            return Err(make());
        }
        let recipients = envelope
            .recipients()
            .iter()
            .map(|recipient| {
                RecipientResult::new(
                    recipient.address().clone(),
                    Reply::made_up_ok("2.1.5 recipient ok"),
                )
            })
            .collect();
        state.sent.push(SentMessage {
            envelope,
            body: body.to_vec(),
        });
        let reply = Reply::made_up_ok(&format!(
            "2.0.0 OK: recorded as message {}",
            state.sent.len()
        ));
        Ok(Delivery::new(recipients, reply))
    }
}

impl<E> Mailer for RecordingMailer<E>
where
    E: std::error::Error + Send + Sync + 'static,
{
    type Error = E;

    fn send(&self, envelope: Envelope, body: &[u8]) -> Result<Delivery, E> {
        self.record(envelope, body)
    }
}

impl<E> AsyncMailer for RecordingMailer<E>
where
    E: std::error::Error + Send + Sync + 'static,
{
    type Error = E;

    fn send(
        &self,
        envelope: Envelope,
        body: &[u8],
    ) -> impl Future<Output = Result<Delivery, E>> + Send {
        std::future::ready(self.record(envelope, body))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{Address, Stage};

    fn envelope(to: &[&str]) -> Envelope {
        Envelope::new(
            Some(Address::new("me@example.com").unwrap()),
            to.iter().map(|to| Address::new(*to).unwrap()),
        )
        .unwrap()
    }

    fn assert_shared<T: Clone + Send + Sync + 'static>() {}

    #[test]
    fn the_double_is_a_shared_handle() {
        assert_shared::<RecordingMailer>();
        let _: &dyn Mailer<Error = Error> = &RecordingMailer::new();
        let _: Arc<dyn Mailer<Error = Error>> = Arc::new(RecordingMailer::new());
    }

    #[test]
    fn references_and_arcs_send_batches_through_the_mailer() {
        let mailer = RecordingMailer::new();
        let batch = || {
            vec![
                (envelope(&["a@x.org"]), &b"one"[..]),
                (envelope(&["b@x.org"]), &b"two"[..]),
            ]
        };
        let by_ref = Mailer::send_all(&&mailer, batch());
        let shared = Arc::new(mailer.clone());
        let by_arc = Mailer::send_all(&shared, batch());
        assert_eq!(by_ref.len(), 2);
        assert_eq!(by_arc.len(), 2);
        assert!(by_ref.iter().chain(&by_arc).all(Result::is_ok));
        assert_eq!(mailer.sent().len(), 4);
        // Debug shows how much was kept, never a body.
        let shown = format!("{mailer:?}");
        assert!(shown.starts_with("RecordingMailer"), "{shown}");
        assert!(!shown.contains("one") && !shown.contains("two"), "{shown}");
    }

    #[test]
    fn records_and_accepts_every_recipient() {
        let mailer = RecordingMailer::new();
        let clone = mailer.clone();
        let delivery = Mailer::send(&clone, envelope(&["a@x.org", "b@x.org"]), b"one").unwrap();
        assert_eq!(delivery.recipients().len(), 2);
        assert!(delivery.recipients().iter().all(RecipientResult::accepted));
        assert_eq!(
            delivery.reply().to_string(),
            "250 2.0.0 OK: recorded as message 1"
        );
        assert_eq!(
            delivery.recipients()[0]
                .reply()
                .enhanced_code()
                .map(|c| c.subject),
            Some(1)
        );
        let results = Mailer::send_all(
            &mailer,
            vec![
                (envelope(&["c@x.org"]), b"two"),
                (envelope(&["d@x.org"]), b"3"),
            ],
        );
        assert!(results.iter().all(Result::is_ok));
        let sent = mailer.take();
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[1].body_text(), "two");
        assert_eq!(sent[2].envelope, envelope(&["d@x.org"]));
        assert!(mailer.sent().is_empty());
        assert_eq!(mailer.attempts(), 3);
    }

    #[test]
    fn refuses_when_told_and_accepts_again() {
        let mailer = RecordingMailer::new();
        let reply = Reply::parse(b"550 5.7.1 relaying denied\r\n").unwrap();
        mailer.refuse(Error::Rejected {
            stage: Stage::Mail,
            reply,
        });
        let err = Mailer::send(&mailer, envelope(&["a@x.org"]), b"x").unwrap_err();
        assert!(matches!(err, Error::Rejected { .. }), "{err:?}");
        assert!(!err.is_transient());
        let results = Mailer::send_all(
            &mailer,
            vec![
                (envelope(&["a@x.org"]), b"x"),
                (envelope(&["b@x.org"]), b"y"),
            ],
        );
        assert!(results.iter().all(Result::is_err));
        assert!(mailer.sent().is_empty());
        mailer.accept();
        Mailer::send(&mailer, envelope(&["a@x.org"]), b"x").unwrap();
        assert_eq!(mailer.sent().len(), 1);
        assert_eq!(mailer.attempts(), 4);
    }

    #[test]
    fn another_error_type() {
        #[derive(Debug, thiserror::Error)]
        #[error("app error")]
        struct AppError;
        let mailer = RecordingMailer::<AppError>::default();
        mailer.refuse_with(|| AppError);
        assert!(Mailer::send(&mailer, envelope(&["a@x.org"]), b"x").is_err());
    }

    #[test]
    fn the_async_double_is_ready_at_once() {
        let mailer = RecordingMailer::new();
        let future = AsyncMailer::send(&mailer, envelope(&["a@x.org"]), b"x");
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(matches!(
            future.as_mut().poll(&mut cx),
            std::task::Poll::Ready(Ok(_))
        ));
        assert_eq!(mailer.sent().len(), 1);
    }
}
