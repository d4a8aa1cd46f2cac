//! Opening the dialogue: the greeting, EHLO with the HELO fallback
//! (RFC 5321), and STARTTLS with the TLS handshake the caller performs
//! (RFC 3207); then on to AUTH ([`authenticate`](super::authenticate)).

use super::phase::Phase;
use super::replies::Expect;
use super::ClientSession;
use crate::capabilities::Capabilities;
use crate::config::{same_server_name, TlsPolicy};
use crate::error::Error;
use crate::reply::{Reply, ReplyCode};
use crate::session::Event;
use crate::stage::Stage;
use bytes::BufMut;

impl ClientSession {
    /// Reports that the TLS handshake succeeded and which server name the
    /// certificate was verified for. A name other than the configured server
    /// name fails the session ([`Error::TlsNameMismatch`]) with nothing sent.
    ///
    /// After STARTTLS the session forgets every capability it learnt in
    /// plaintext and sends EHLO again (RFC 3207 §4.2).
    pub fn tls_established(&mut self, verified_name: &str) -> Result<(), Error> {
        self.begin_call();
        self.check_alive("tls_established")?;
        let Phase::Handshake { after_starttls } = self.phase else {
            return Err(Error::InvalidState {
                call: "tls_established",
                reason: "no TLS handshake was requested",
            });
        };
        if !same_server_name(&self.config.server_name, verified_name) {
            let err = Error::TlsNameMismatch {
                expected: self.config.server_name.clone(),
                verified: verified_name.to_owned(),
            };
            return Err(self.fail(err));
        }
        self.tls = true;
        self.clock.clear_wait();
        self.clock.reset_reply();
        self.caps = Capabilities::default();
        self.phase = Phase::Busy;
        if after_starttls {
            // Kept for the caller to see, never consulted again here.
            self.ehlo_before_tls = self.ehlo.take();
            self.send_hello(Expect::Ehlo);
        } else {
            self.expect.push_back(Expect::Greeting);
        }
        self.process()
    }

    /// The greeting: EHLO follows a positive one.
    pub(super) fn on_greeting(&mut self, reply: Reply) -> Result<(), Error> {
        if !reply.is_positive() {
            return Err(Error::Rejected {
                stage: Stage::Greeting,
                reply,
            });
        }
        self.send_hello(Expect::Ehlo);
        Ok(())
    }

    /// The reply to EHLO or HELO: the capabilities in force, or HELO after an
    /// EHLO the server does not know.
    pub(super) fn on_hello(&mut self, expect: Expect, reply: Reply) -> Result<(), Error> {
        let code = reply.code().get();
        if reply.is_positive() {
            if expect == Expect::Ehlo {
                self.caps = Capabilities::from_ehlo(&reply);
                self.ehlo = Some(reply);
            } else {
                self.caps = Capabilities::default();
                self.ehlo = None;
            }
            self.after_hello()
        } else if expect == Expect::Ehlo && matches!(code, 500 | 501 | 502 | 504) {
            // RFC 5321 §3.2: a server that does not know EHLO gets HELO,
            // and then there are no extensions. 500/502 (unknown
            // command), 501 (its argument refused) and 504 (not
            // implemented) all mean "not EHLO here", as curl, Go and
            // smtplib read them; 4yz, 550 and 554 stay refusals.
            self.send_hello(Expect::Helo);
            Ok(())
        } else {
            Err(Error::Rejected {
                stage: Stage::Ehlo,
                reply,
            })
        }
    }

    /// The reply to STARTTLS: the handshake on `220`, else as the policy says.
    pub(super) fn on_starttls_reply(&mut self, reply: Reply) -> Result<(), Error> {
        if reply.code() == ReplyCode::SERVICE_READY {
            self.phase = Phase::Handshake {
                after_starttls: true,
            };
            self.events.push_back(Event::StartTls);
            Ok(())
        } else if self.config.tls == TlsPolicy::Required {
            Err(Error::TlsRequired { reply: Some(reply) })
        } else {
            self.begin_auth()
        }
    }

    /// After EHLO/HELO: STARTTLS as the policy says, then AUTH, then ready.
    fn after_hello(&mut self) -> Result<(), Error> {
        if !self.tls {
            let policy = self.config.tls;
            let offered = self.caps.starttls();
            match policy {
                TlsPolicy::Required | TlsPolicy::Opportunistic if offered => {
                    self.write_line(b"STARTTLS", Expect::StartTls);
                    return Ok(());
                }
                TlsPolicy::Required => return Err(Error::TlsRequired { reply: None }),
                _ => {}
            }
        }
        self.begin_auth()
    }

    fn send_hello(&mut self, expect: Expect) {
        let verb: &[u8] = if expect == Expect::Helo {
            b"HELO "
        } else {
            b"EHLO "
        };
        let start = self.out.len();
        self.out.put_slice(verb);
        self.out
            .put_slice(self.config.ehlo_name.as_str().as_bytes());
        self.out.put_slice(b"\r\n");
        self.transcript.record_sent(&self.out[start..]);
        self.expect.push_back(expect);
    }
}
