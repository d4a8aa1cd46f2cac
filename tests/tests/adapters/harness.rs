//! One interface over every adapter: [`Adapter`] connects, [`Conn`] is a
//! connected client, [`AdapterError`] classifies errors alike.
//!
//! The adapters: `smtp_blocking::Client`; `smtp_tokio::tokio::Client` on a
//! current-thread runtime (one per connection, `block_on` per call);
//! `smtp_tokio::futures::Client` under async-std (dialling with async-std's
//! `TcpStream`) and under smol (over `smol::net::TcpStream`, via
//! `with_stream`). Only public paths of the adapter crates are used.

use std::future::Future;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use proto::{Capabilities, Config, Delivery, Envelope, Mechanism, Outcome, Stage, Timeouts};
use smtp_blocking::smtp_proto as proto;

/// Where `Options::transcript` puts each line (its `Display`).
pub type Transcript = Arc<Mutex<Vec<String>>>;

/// What every adapter's `Options` is built from.
#[derive(Clone, Debug)]
pub struct Opts {
    /// The rustls client configuration (`None`: the adapter's default roots).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Per-stage timeouts.
    pub timeouts: Timeouts,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// `Options::time_limit`.
    pub time_limit: Option<Duration>,
    /// `Options::transcript`, collecting the lines here.
    pub transcript: Option<Transcript>,
}

impl Opts {
    /// No TLS configuration (the adapter's default), 5 s per stage.
    pub fn new() -> Self {
        Self {
            tls: None,
            timeouts: Timeouts::uniform(Duration::from_secs(5)),
            connect_timeout: Duration::from_secs(5),
            time_limit: None,
            transcript: None,
        }
    }

    /// Trusts these roots.
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Sets the per-stage timeouts.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Sets the time limit of the set-up and of each message.
    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = Some(limit);
        self
    }

    /// Collects the transcript in `sink`.
    pub fn transcript(mut self, sink: Transcript) -> Self {
        self.transcript = Some(sink);
        self
    }
}

/// Sets the options every adapter's `Options` has (`$options`: a value of
/// that type); the same code for each crate.
macro_rules! options {
    ($options:expr, $opts:expr) => {{
        let opts: &Opts = $opts;
        let mut options = $options
            .timeouts(opts.timeouts)
            .connect_timeout(opts.connect_timeout);
        if let Some(tls) = &opts.tls {
            options = options.tls(Arc::clone(tls));
        }
        if let Some(limit) = opts.time_limit {
            options = options.time_limit(limit);
        }
        if let Some(sink) = &opts.transcript {
            let sink = Arc::clone(sink);
            options = options.transcript(move |line| {
                sink.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(line.to_string())
            });
        }
        options
    }};
}

/// What went wrong, the same way for every adapter.
#[derive(Clone, Debug)]
pub enum Kind {
    /// The core's verdict.
    Smtp(proto::Error),
    /// rustls refused (certificate, alert, corrupt record).
    Tls(rustls::Error),
    /// A stage timed out.
    Timeout(Stage),
    /// The time limit was reached, at this stage.
    TimeLimit(Stage),
    /// A socket error.
    Io(io::ErrorKind),
    /// The body reader failed.
    BodyRead,
    /// TCP connect or name resolution failed; the address tried last,
    /// when the client reports one (not when the harness dialled itself).
    Connect(Option<SocketAddr>),
    /// The TLS configuration could not be built.
    TlsConfig,
    /// An earlier error left the client unusable.
    Poisoned,
    /// A batch's message behind the one a failure ended.
    NotSent,
    /// A variant this suite does not know.
    Other,
}

/// An adapter error, classified.
#[derive(Clone, Debug)]
pub struct AdapterError {
    /// Which kind.
    pub kind: Kind,
    /// `Error::is_security()`.
    pub security: bool,
    /// `Error::is_transient()`.
    pub transient: bool,
    /// `Error::is_timeout()`.
    pub timeout: bool,
    /// The error's `Display`.
    pub message: String,
    /// `Error::outcome()`: what became of the message.
    pub outcome: Outcome,
}

impl AdapterError {
    /// The core's error, if it is one (`Error::smtp()`).
    pub fn smtp(&self) -> Option<&proto::Error> {
        match &self.kind {
            Kind::Smtp(e) => Some(e),
            _ => None,
        }
    }

    /// The rustls error, if it is one.
    pub fn tls(&self) -> Option<&rustls::Error> {
        match &self.kind {
            Kind::Tls(e) => Some(e),
            _ => None,
        }
    }

    fn connect(e: io::Error) -> Self {
        AdapterError {
            kind: Kind::Connect(None),
            security: false,
            transient: true,
            timeout: false,
            message: e.to_string(),
            outcome: Outcome::NotSent,
        }
    }
}

/// Maps `<krate>::Error` to [`AdapterError`]; the same code for each crate
/// (they may share one type: smtp-tokio re-exporting smtp-blocking's).
macro_rules! classify {
    ($err:expr, $krate:ident) => {{
        let e = $err;
        // An unknown delivery is classified by what ended the connection;
        // `outcome` says it is unknown.
        let inner = match &e {
            $krate::Error::DeliveryUnknown { source } => &**source,
            other => other,
        };
        let kind = match inner {
            $krate::Error::Smtp(proto::Error::Timeout { stage }) => Kind::Timeout(*stage),
            $krate::Error::Smtp(proto::Error::TimeLimit { stage, .. }) => Kind::TimeLimit(*stage),
            $krate::Error::Smtp(proto::Error::TlsConfig { .. }) => Kind::TlsConfig,
            $krate::Error::Smtp(s) => Kind::Smtp(s.clone()),
            $krate::Error::Tls(t) => Kind::Tls(t.clone()),
            $krate::Error::Io(io) => Kind::Io(io.kind()),
            $krate::Error::BodyRead(_) => Kind::BodyRead,
            $krate::Error::Connect { address, .. } => Kind::Connect(Some(*address)),
            $krate::Error::Resolve { .. } => Kind::Connect(None),
            $krate::Error::Poisoned => Kind::Poisoned,
            $krate::Error::NotSent => Kind::NotSent,
            _ => Kind::Other,
        };
        AdapterError {
            kind,
            security: e.is_security(),
            transient: e.is_transient(),
            timeout: e.is_timeout(),
            message: chain(&e),
            outcome: e.outcome(),
        }
    }};
}

/// An error and its causes, `: `-separated (a `Display` never repeats its
/// `source()`).
fn chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn from_blocking(e: smtp_blocking::Error) -> AdapterError {
    classify!(e, smtp_blocking)
}

fn from_tokio(e: smtp_tokio::Error) -> AdapterError {
    classify!(e, smtp_tokio)
}

/// A body read lazily: any `Read` (the async adapters get it through
/// [`AsyncBody`]).
pub type Body = Box<dyn Read + Send>;

/// Where `send_each` hands each result.
pub type OnResult<'a> = &'a mut dyn FnMut(Result<Delivery, AdapterError>);

/// A connected client of some adapter.
pub trait Conn {
    /// `Client::send`.
    fn send(&mut self, envelope: Envelope, body: &[u8]) -> Result<Delivery, AdapterError>;
    /// `Client::send_reader`.
    fn send_reader(&mut self, envelope: Envelope, body: Body) -> Result<Delivery, AdapterError>;
    /// `Client::send_all`.
    fn send_all(&mut self, messages: Vec<(Envelope, &[u8])>)
        -> Vec<Result<Delivery, AdapterError>>;
    /// `Client::send_all_readers`.
    fn send_all_readers(
        &mut self,
        messages: Vec<(Envelope, Body)>,
    ) -> Vec<Result<Delivery, AdapterError>>;
    /// `Client::send_each`.
    fn send_each(&mut self, messages: Vec<(Envelope, Body)>, on_result: OnResult<'_>);
    /// `Client::noop`.
    fn noop(&mut self) -> Result<(), AdapterError>;
    /// `Client::quit`.
    fn quit(self: Box<Self>) -> Result<(), AdapterError>;
    /// `Client::is_tls`.
    fn is_tls(&self) -> bool;
    /// `Client::auth_mechanism`.
    fn auth_mechanism(&self) -> Option<Mechanism>;
    /// `Client::capabilities`.
    fn capabilities(&self) -> Capabilities;
    /// `Client::is_poisoned`.
    fn is_poisoned(&self) -> bool;
    /// `Client::is_usable`.
    fn is_usable(&self) -> bool;
    /// `Client::check_idle`.
    fn check_idle(&mut self) -> Result<(), AdapterError>;
}

/// An adapter: how to connect.
pub trait Adapter: Sync {
    /// Its name, for messages.
    fn name(&self) -> &'static str;
    /// `Client::connect_to(addr, config, options)`.
    fn connect(
        &self,
        addr: SocketAddr,
        config: Config,
        opts: &Opts,
    ) -> Result<Box<dyn Conn>, AdapterError>;
    /// `Client::connect(host, port, config, options)`: resolves `host` and
    /// tries each address (every adapter, smol's included, dials itself).
    fn connect_host(
        &self,
        host: &str,
        port: u16,
        config: Config,
        opts: &Opts,
    ) -> Result<Box<dyn Conn>, AdapterError>;
}

// ------------------------------------------------------------- blocking

/// smtp-blocking.
pub struct Blocking;

impl Adapter for Blocking {
    fn name(&self) -> &'static str {
        "blocking"
    }

    fn connect(
        &self,
        addr: SocketAddr,
        config: Config,
        opts: &Opts,
    ) -> Result<Box<dyn Conn>, AdapterError> {
        let options = options!(smtp_blocking::Options::new(), opts);
        let client =
            smtp_blocking::Client::connect_to(addr, config, options).map_err(from_blocking)?;
        Ok(Box::new(client))
    }

    fn connect_host(
        &self,
        host: &str,
        port: u16,
        config: Config,
        opts: &Opts,
    ) -> Result<Box<dyn Conn>, AdapterError> {
        let options = options!(smtp_blocking::Options::new(), opts);
        let client =
            smtp_blocking::Client::connect(host, port, config, options).map_err(from_blocking)?;
        Ok(Box::new(client))
    }
}

impl Conn for smtp_blocking::Client {
    fn send(&mut self, envelope: Envelope, body: &[u8]) -> Result<Delivery, AdapterError> {
        smtp_blocking::Client::send(self, envelope, body).map_err(from_blocking)
    }
    fn send_reader(&mut self, envelope: Envelope, body: Body) -> Result<Delivery, AdapterError> {
        smtp_blocking::Client::send_reader(self, envelope, body).map_err(from_blocking)
    }
    fn send_all(
        &mut self,
        messages: Vec<(Envelope, &[u8])>,
    ) -> Vec<Result<Delivery, AdapterError>> {
        let results = smtp_blocking::Client::send_all(self, messages);
        results
            .into_iter()
            .map(|r| r.map_err(from_blocking))
            .collect()
    }
    fn send_all_readers(
        &mut self,
        messages: Vec<(Envelope, Body)>,
    ) -> Vec<Result<Delivery, AdapterError>> {
        let results = smtp_blocking::Client::send_all_readers(self, messages);
        results
            .into_iter()
            .map(|r| r.map_err(from_blocking))
            .collect()
    }
    fn send_each(&mut self, messages: Vec<(Envelope, Body)>, on_result: OnResult<'_>) {
        smtp_blocking::Client::send_each(self, messages, |r| on_result(r.map_err(from_blocking)));
    }
    fn noop(&mut self) -> Result<(), AdapterError> {
        smtp_blocking::Client::noop(self).map_err(from_blocking)
    }
    fn quit(self: Box<Self>) -> Result<(), AdapterError> {
        smtp_blocking::Client::quit(*self).map_err(from_blocking)
    }
    fn is_tls(&self) -> bool {
        smtp_blocking::Client::is_tls(self)
    }
    fn auth_mechanism(&self) -> Option<Mechanism> {
        smtp_blocking::Client::auth_mechanism(self).cloned()
    }
    fn capabilities(&self) -> Capabilities {
        smtp_blocking::Client::capabilities(self).clone()
    }
    fn is_poisoned(&self) -> bool {
        smtp_blocking::Client::is_poisoned(self)
    }
    fn is_usable(&self) -> bool {
        smtp_blocking::Client::is_usable(self)
    }
    fn check_idle(&mut self) -> Result<(), AdapterError> {
        smtp_blocking::Client::check_idle(self).map_err(from_blocking)
    }
}

// ---------------------------------------------------------------- tokio

/// The `Conn` of both smtp-tokio backends, which differ only in the
/// executor (`$exec.$run` runs a future to completion).
macro_rules! async_conn {
    ([$($generics:tt)*] $ty:ty, [$($bounds:tt)*], $exec:ident . $run:ident) => {
        impl<$($generics)*> Conn for $ty
        where
            $($bounds)*
        {
            fn send(&mut self, envelope: Envelope, body: &[u8]) -> Result<Delivery, AdapterError> {
                let sent = self.client.send(envelope, body);
                self.$exec.$run(sent).map_err(from_tokio)
            }
            fn send_reader(
                &mut self,
                envelope: Envelope,
                body: Body,
            ) -> Result<Delivery, AdapterError> {
                let sent = self.client.send_reader(envelope, AsyncBody(body));
                self.$exec.$run(sent).map_err(from_tokio)
            }
            fn send_all(
                &mut self,
                messages: Vec<(Envelope, &[u8])>,
            ) -> Vec<Result<Delivery, AdapterError>> {
                let results = self.$exec.$run(self.client.send_all(messages));
                results.into_iter().map(|r| r.map_err(from_tokio)).collect()
            }
            fn send_all_readers(
                &mut self,
                messages: Vec<(Envelope, Body)>,
            ) -> Vec<Result<Delivery, AdapterError>> {
                let messages = async_bodies(messages);
                let results = self.$exec.$run(self.client.send_all_readers(messages));
                results.into_iter().map(|r| r.map_err(from_tokio)).collect()
            }
            fn send_each(&mut self, messages: Vec<(Envelope, Body)>, on_result: OnResult<'_>) {
                let on_result =
                    |r: Result<Delivery, smtp_tokio::Error>| on_result(r.map_err(from_tokio));
                let messages = async_bodies(messages);
                self.$exec.$run(self.client.send_each(messages, on_result));
            }
            fn noop(&mut self) -> Result<(), AdapterError> {
                self.$exec.$run(self.client.noop()).map_err(from_tokio)
            }
            fn quit(self: Box<Self>) -> Result<(), AdapterError> {
                let this = *self;
                this.$exec.$run(this.client.quit()).map_err(from_tokio)
            }
            fn is_tls(&self) -> bool {
                self.client.is_tls()
            }
            fn auth_mechanism(&self) -> Option<Mechanism> {
                self.client.auth_mechanism().cloned()
            }
            fn capabilities(&self) -> Capabilities {
                self.client.capabilities().clone()
            }
            fn is_poisoned(&self) -> bool {
                self.client.is_poisoned()
            }
            fn is_usable(&self) -> bool {
                self.client.is_usable()
            }
            fn check_idle(&mut self) -> Result<(), AdapterError> {
                self.$exec.$run(self.client.check_idle()).map_err(from_tokio)
            }
        }
    };
}

fn tokio_options(opts: &Opts) -> smtp_tokio::Options {
    options!(smtp_tokio::Options::new(), opts)
}

/// smtp-tokio's tokio backend on a current-thread runtime.
pub struct Tokio;

struct TokioConn {
    // Dropped before the runtime.
    client: smtp_tokio::tokio::Client,
    rt: tokio::runtime::Runtime,
}

impl Adapter for Tokio {
    fn name(&self) -> &'static str {
        "tokio"
    }

    fn connect(
        &self,
        addr: SocketAddr,
        config: Config,
        opts: &Opts,
    ) -> Result<Box<dyn Conn>, AdapterError> {
        let rt = tokio_runtime()?;
        let client = rt
            .block_on(smtp_tokio::tokio::Client::connect_to(
                addr,
                config,
                tokio_options(opts),
            ))
            .map_err(from_tokio)?;
        Ok(Box::new(TokioConn { client, rt }))
    }

    fn connect_host(
        &self,
        host: &str,
        port: u16,
        config: Config,
        opts: &Opts,
    ) -> Result<Box<dyn Conn>, AdapterError> {
        let rt = tokio_runtime()?;
        let client = rt
            .block_on(smtp_tokio::tokio::Client::connect(
                host,
                port,
                config,
                tokio_options(opts),
            ))
            .map_err(from_tokio)?;
        Ok(Box::new(TokioConn { client, rt }))
    }
}

fn tokio_runtime() -> Result<tokio::runtime::Runtime, AdapterError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AdapterError::connect)
}

async_conn!([] TokioConn, [], rt.block_on);

// -------------------------------------------------------- futures-io backend

/// Which executor runs the futures-io backend.
#[derive(Clone, Copy, Debug)]
pub enum Executor {
    /// `async_std::task::block_on`, async-std's `TcpStream`.
    AsyncStd,
    /// `smol::block_on`, `smol::net::TcpStream`.
    Smol,
}

impl Executor {
    fn run<F: Future>(self, future: F) -> F::Output {
        match self {
            Executor::AsyncStd => async_std::task::block_on(future),
            Executor::Smol => smol::block_on(future),
        }
    }
}

/// smtp-tokio's futures-io backend under async-std.
pub struct AsyncStd;
/// smtp-tokio's futures-io backend under smol.
pub struct Smol;

struct FuturesConn<S> {
    client: smtp_tokio::futures::Client<S>,
    exec: Executor,
}

impl Adapter for AsyncStd {
    fn name(&self) -> &'static str {
        "async-std"
    }

    fn connect(
        &self,
        addr: SocketAddr,
        config: Config,
        opts: &Opts,
    ) -> Result<Box<dyn Conn>, AdapterError> {
        let exec = Executor::AsyncStd;
        let client = exec
            .run(smtp_tokio::futures::Client::connect_to(
                addr,
                config,
                tokio_options(opts),
            ))
            .map_err(from_tokio)?;
        Ok(Box::new(FuturesConn { client, exec }))
    }

    fn connect_host(
        &self,
        host: &str,
        port: u16,
        config: Config,
        opts: &Opts,
    ) -> Result<Box<dyn Conn>, AdapterError> {
        futures_connect_host(Executor::AsyncStd, host, port, config, opts)
    }
}

/// `smtp_tokio::futures::Client::connect` under `exec`: the backend's own
/// resolver and dialler.
fn futures_connect_host(
    exec: Executor,
    host: &str,
    port: u16,
    config: Config,
    opts: &Opts,
) -> Result<Box<dyn Conn>, AdapterError> {
    let connect = smtp_tokio::futures::Client::connect(host, port, config, tokio_options(opts));
    let client = exec.run(connect).map_err(from_tokio)?;
    Ok(Box::new(FuturesConn { client, exec }))
}

impl Adapter for Smol {
    fn name(&self) -> &'static str {
        "smol"
    }

    fn connect(
        &self,
        addr: SocketAddr,
        config: Config,
        opts: &Opts,
    ) -> Result<Box<dyn Conn>, AdapterError> {
        let exec = Executor::Smol;
        let options = tokio_options(opts);
        let timeout = opts.connect_timeout;
        let client = exec.run(async move {
            let connect = smol::net::TcpStream::connect(addr);
            let timer = async {
                smol::Timer::after(timeout).await;
                Err(io::Error::new(io::ErrorKind::TimedOut, "connect timeout"))
            };
            let tcp = smol::future::or(connect, timer)
                .await
                .map_err(AdapterError::connect)?;
            tcp.set_nodelay(true).map_err(AdapterError::connect)?;
            let peer = tcp.peer_addr().map_err(AdapterError::connect)?;
            smtp_tokio::futures::Client::with_stream_to(tcp, peer, config, options)
                .await
                .map_err(from_tokio)
        })?;
        Ok(Box::new(FuturesConn { client, exec }))
    }

    fn connect_host(
        &self,
        host: &str,
        port: u16,
        config: Config,
        opts: &Opts,
    ) -> Result<Box<dyn Conn>, AdapterError> {
        futures_connect_host(Executor::Smol, host, port, config, opts)
    }
}

async_conn!(
    [S] FuturesConn<S>,
    [S: smol::io::AsyncRead + smol::io::AsyncWrite + Unpin + Send],
    exec.run
);

// ------------------------------------------------------------ async bodies

/// A `Read` as an `AsyncRead` (tokio's and futures-io's) that is always
/// ready: the bodies here are generated, never waited for.
pub struct AsyncBody(pub Body);

fn async_bodies(messages: Vec<(Envelope, Body)>) -> impl Iterator<Item = (Envelope, AsyncBody)> {
    messages.into_iter().map(|(e, b)| (e, AsyncBody(b)))
}

impl tokio::io::AsyncRead for AsyncBody {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.0.read(buf.initialize_unfilled())?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl smol::io::AsyncRead for AsyncBody {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.0.read(buf))
    }
}
