//! What a client is told besides the session configuration: timeouts, TLS
//! configuration, transcript hook. Shared with `smtp-tokio`, which re-exports
//! [`Options`], [`TranscriptHook`] and [`DEFAULT_CONNECT_TIMEOUT`].

use smtp_proto::{ClientSession, Config, Timeouts, TranscriptLine};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A callback that receives every line of the dialogue, secrets already
/// redacted by the core.
pub type TranscriptHook = Arc<dyn Fn(&TranscriptLine) + Send + Sync>;

/// The default [`Options::connect_timeout`]: 60 seconds.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// What a client needs beyond the session's [`Config`](smtp_proto::Config):
/// timeouts, the TLS configuration and the transcript hook.
///
/// Build it with [`Options::default`] and the setters; the fields are public
/// for reading and adjusting.
///
/// ```
/// use smtp_blocking::Options;
/// use smtp_proto::Timeouts;
/// use std::time::Duration;
///
/// let options = Options::default()
///     .connect_timeout(Duration::from_secs(10))
///     .timeouts(Timeouts::uniform(Duration::from_secs(30)))
///     .transcript(|line| eprintln!("{line}"));
/// # let _ = options;
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct Options {
    /// How long connecting may take. Default [`DEFAULT_CONNECT_TIMEOUT`]
    /// (60 s). In `smtp-blocking`, each TCP connection attempt gets this
    /// long; in `smtp-tokio`, resolving the host and opening the TCP
    /// connection, all addresses together.
    pub connect_timeout: Duration,
    /// How long to wait at each stage of the dialogue (for each read, write
    /// and the TLS handshake). A reply must arrive whole within its stage's
    /// timeout; a write must make progress within it. Default: RFC 5321
    /// §4.5.3.2.
    pub timeouts: Timeouts,
    /// The most, in all, that setting up the session (connecting, the
    /// greeting, EHLO, TLS and AUTH) may take, and then each message (from
    /// when sending it begins until its result is known; in a batch, from
    /// the previous message's result). The per-stage timeouts bound each
    /// wait (RFC 5321 §4.5.3.2 times each write of a data block, so a server
    /// that takes every block just in time keeps a large body going for
    /// hours); this bounds the whole. Past it the client fails with
    /// [`Error::TimeLimit`](crate::Error::TimeLimit) and is poisoned. Default
    /// `None`: no limit.
    pub time_limit: Option<Duration>,
    /// The rustls configuration for implicit TLS and STARTTLS. `None` uses
    /// the bundled webpki roots ([`tls::client_config`](crate::tls::client_config)
    /// with [`TlsRoots::WebPki`](crate::tls::TlsRoots::WebPki), built once
    /// per process) when the session's policy may use TLS.
    #[cfg(feature = "rustls")]
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Receives the dialogue line by line (secrets redacted). When set (or
    /// when `tracing` is enabled at DEBUG), the session records a transcript,
    /// and every line is also logged with `tracing::debug!` (`smtp-tokio`:
    /// under the target `smtp_tokio::transcript`).
    pub transcript: Option<TranscriptHook>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeouts: Timeouts::default(),
            time_limit: None,
            #[cfg(feature = "rustls")]
            tls: None,
            transcript: None,
        }
    }
}

impl Options {
    /// The defaults: 60 s to connect, RFC 5321 timeouts, bundled Mozilla
    /// (webpki) roots, no transcript hook.
    pub fn new() -> Options {
        Options::default()
    }

    /// Sets [`Options::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Options {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`Options::timeouts`], the per-stage timeouts.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Options {
        self.timeouts = timeouts;
        self
    }

    /// Sets [`Options::time_limit`]: the most the session's set-up, and
    /// then each message, may take in all.
    pub fn time_limit(mut self, limit: Duration) -> Options {
        self.time_limit = Some(limit);
        self
    }

    /// Sets [`Options::tls`]: this rustls configuration (custom roots,
    /// client certificates, another provider) instead of the default.
    #[cfg(feature = "rustls")]
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> Options {
        self.tls = Some(config);
        self
    }

    /// Sets [`Options::transcript`]: calls `hook` with each transcript line.
    pub fn transcript(mut self, hook: impl Fn(&TranscriptLine) + Send + Sync + 'static) -> Options {
        self.transcript = Some(Arc::new(hook));
        self
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Options");
        s.field("connect_timeout", &self.connect_timeout)
            .field("timeouts", &self.timeouts)
            .field("time_limit", &self.time_limit);
        #[cfg(feature = "rustls")]
        s.field("tls", &self.tls.as_ref().map(|_| "custom"));
        s.field("transcript", &self.transcript.as_ref().map(|_| "hook"))
            .finish()
    }
}

/// Where transcript lines go: the hook and a `tracing` logger. Shared with
/// `smtp-tokio` (each client passes its own logger, since a `tracing` target
/// is fixed where the macro is written).
#[doc(hidden)]
pub struct Transcript {
    hook: Option<TranscriptHook>,
    log: fn(&TranscriptLine),
    record: bool,
}

impl Transcript {
    /// Lines go to `hook` and to `log`; the session records them when there
    /// is a hook or `logging` (the logger's level is enabled).
    pub fn new(hook: Option<TranscriptHook>, logging: bool, log: fn(&TranscriptLine)) -> Self {
        let record = hook.is_some() || logging;
        Transcript { hook, log, record }
    }

    /// Whether the session records a transcript.
    pub fn records(&self) -> bool {
        self.record
    }

    /// `config` with transcript recording turned on when anyone listens.
    pub fn config(&self, config: Config) -> Config {
        if self.record {
            config.transcript(true)
        } else {
            config
        }
    }

    /// Hands every line the session recorded since the last call to the
    /// logger and the hook.
    pub fn drain(&self, session: &mut ClientSession) {
        if !self.record {
            return;
        }
        for line in session.take_transcript() {
            (self.log)(&line);
            if let Some(hook) = &self.hook {
                hook(&line);
            }
        }
    }
}

impl fmt::Debug for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transcript")
            .field("hook", &self.hook.as_ref().map(|_| "hook"))
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}
