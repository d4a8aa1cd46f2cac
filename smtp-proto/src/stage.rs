//! Where a session is in the dialogue: which command's reply it awaits.
//!
//! Adapters use the stage to pick a timeout; errors use it to say which
//! step a server refusal belongs to.

use core::fmt;
use core::time::Duration;

/// A step of the SMTP dialogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// Waiting for the TLS handshake the caller performs (implicit TLS or after STARTTLS).
    TlsHandshake,
    /// Waiting for the server's `220` greeting.
    Greeting,
    /// `EHLO` (or the `HELO` fallback).
    Ehlo,
    /// `STARTTLS` (RFC 3207).
    StartTls,
    /// `AUTH` and its challenges (RFC 4954).
    Auth,
    /// `MAIL FROM`.
    Mail,
    /// `RCPT TO`.
    Rcpt,
    /// `DATA`, waiting for `354`.
    Data,
    /// Streaming the message body.
    Body,
    /// The `.` that ends the body, waiting for the final reply.
    DataEnd,
    /// `RSET`.
    Rset,
    /// `NOOP`.
    Noop,
    /// `QUIT`.
    Quit,
    /// Between commands, nothing awaited: what an unsolicited `421` or a
    /// close is reported at.
    Idle,
}

impl Stage {
    /// The timeout RFC 5321 §4.5.3.2 recommends for this stage.
    ///
    /// Stages the RFC does not name (EHLO, STARTTLS, AUTH, RSET, NOOP and the
    /// TLS handshake) get the five minutes it gives to commands in general,
    /// except QUIT: every result is known by then, and a server that does not
    /// answer it should not hold them back, so QUIT gets ten seconds.
    pub fn default_timeout(self) -> Duration {
        let minutes = match self {
            Stage::Quit => return Duration::from_secs(10),
            Stage::Data => 2,
            Stage::Body => 3,
            Stage::DataEnd => 10,
            _ => 5,
        };
        Duration::from_secs(minutes * 60)
    }

    /// A short name for messages: the command, or what is awaited.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::TlsHandshake => "TLS handshake",
            Stage::Greeting => "greeting",
            Stage::Ehlo => "EHLO",
            Stage::StartTls => "STARTTLS",
            Stage::Auth => "AUTH",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Body => "message body",
            Stage::DataEnd => "end of data",
            Stage::Rset => "RSET",
            Stage::Noop => "NOOP",
            Stage::Quit => "QUIT",
            Stage::Idle => "idle",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long an adapter waits at each stage before giving up. Defaults to
/// [`Stage::default_timeout`] (RFC 5321 §4.5.3.2); plain data, no clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    by_stage: [Duration; STAGES.len()],
}

const STAGES: [Stage; 14] = [
    Stage::TlsHandshake,
    Stage::Greeting,
    Stage::Ehlo,
    Stage::StartTls,
    Stage::Auth,
    Stage::Mail,
    Stage::Rcpt,
    Stage::Data,
    Stage::Body,
    Stage::DataEnd,
    Stage::Rset,
    Stage::Noop,
    Stage::Quit,
    Stage::Idle,
];

fn index(stage: Stage) -> usize {
    STAGES.iter().position(|s| *s == stage).unwrap_or(0)
}

impl Timeouts {
    /// The RFC 5321 §4.5.3.2 values.
    pub fn rfc5321() -> Timeouts {
        Timeouts {
            by_stage: STAGES.map(Stage::default_timeout),
        }
    }

    /// The same timeout for every stage.
    pub fn uniform(timeout: Duration) -> Timeouts {
        Timeouts {
            by_stage: [timeout; STAGES.len()],
        }
    }

    /// Sets one stage's timeout.
    pub fn with(mut self, stage: Stage, timeout: Duration) -> Timeouts {
        self.by_stage[index(stage)] = timeout;
        self
    }

    /// The timeout for `stage`.
    pub fn get(&self, stage: Stage) -> Duration {
        self.by_stage[index(stage)]
    }
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts::rfc5321()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_name_themselves() {
        let names: Vec<String> = STAGES.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "TLS handshake",
                "greeting",
                "EHLO",
                "STARTTLS",
                "AUTH",
                "MAIL FROM",
                "RCPT TO",
                "DATA",
                "message body",
                "end of data",
                "RSET",
                "NOOP",
                "QUIT",
                "idle",
            ]
        );
        for stage in STAGES {
            assert_eq!(stage.to_string(), stage.as_str());
        }
    }

    #[test]
    fn every_stage_has_its_own_timeout() {
        let mut timeouts = Timeouts::uniform(Duration::from_secs(1));
        for (i, stage) in STAGES.iter().enumerate() {
            timeouts = timeouts.with(*stage, Duration::from_secs(100 + i as u64));
        }
        for (i, stage) in STAGES.iter().enumerate() {
            assert_eq!(timeouts.get(*stage), Duration::from_secs(100 + i as u64));
        }
    }

    #[test]
    fn timeouts_follow_rfc5321_and_can_be_overridden() {
        let t = Timeouts::default();
        assert_eq!(t.get(Stage::Greeting), Duration::from_secs(300));
        assert_eq!(t.get(Stage::Data), Duration::from_secs(120));
        assert_eq!(t.get(Stage::Body), Duration::from_secs(180));
        assert_eq!(t.get(Stage::DataEnd), Duration::from_secs(600));
        assert_eq!(t.get(Stage::Quit), Duration::from_secs(10));
        assert_eq!(t.get(Stage::Rset), Duration::from_secs(300));
        let t = t.with(Stage::Rcpt, Duration::from_secs(7));
        assert_eq!(t.get(Stage::Rcpt), Duration::from_secs(7));
        assert_eq!(t.get(Stage::Mail), Duration::from_secs(300));
        assert_eq!(
            Timeouts::uniform(Duration::from_secs(1)).get(Stage::Quit),
            Duration::from_secs(1)
        );
    }
}
