//! The AUTH step of the session (RFC 4954): the credential guard every
//! mechanism passes before its first byte is written, and the exchange of
//! challenges and responses. The mechanisms themselves are in [`crate::auth`].

use super::replies::Expect;
use super::ClientSession;
use crate::auth::{select_mechanism, AuthExchange};
use crate::config::is_loopback_name;
use crate::error::Error;
use crate::reply::{Reply, ReplyCode};
use crate::stage::Stage;
use crate::transcript::{Direction, REDACTED};
use bytes::BufMut;
use core::net::IpAddr;

impl ClientSession {
    /// Reports the address of the peer the connection reached. Adapters call
    /// this once connected, before feeding the greeting: the credential
    /// guard's loopback exemption holds only when the configured name is a
    /// loopback name *and* the connected peer is a loopback address, so a
    /// `localhost` pointed at a remote host (a hosts file, a `--connect`
    /// override) never gets a password in plaintext. Without a reported
    /// peer the exemption does not apply.
    pub fn set_peer_addr(&mut self, peer: IpAddr) {
        self.peer = Some(peer);
    }

    /// Whether the loopback exemption of the credential guard applies.
    fn loopback_peer(&self) -> bool {
        is_loopback_name(&self.config.server_name)
            && self.peer.is_some_and(|ip| ip.to_canonical().is_loopback())
    }

    /// The credential guard and the start of AUTH. Every mechanism passes
    /// here before its first byte is written.
    pub(super) fn begin_auth(&mut self) -> Result<(), Error> {
        let Some(credentials) = &self.config.credentials else {
            self.become_ready();
            return Ok(());
        };
        // TLS, or a loopback name whose connected peer is loopback too (a name
        // alone proves nothing: `localhost` may be connected anywhere), or the
        // caller's explicit consent; otherwise nothing of AUTH is written.
        if !(self.tls || self.loopback_peer() || self.config.allow_insecure_auth) {
            return Err(Error::InsecureAuth);
        }
        let offered = self
            .caps
            .auth_advertised()
            .then(|| self.caps.auth_mechanisms());
        let mechanism = select_mechanism(offered, credentials, self.config.mechanism.as_ref())?;
        let mut exchange = AuthExchange::new(mechanism, credentials)?;
        let mut line = exchange.command();
        let redacted_len = b"AUTH ".len() + exchange.mechanism().as_str().len();
        self.out.put_slice(&line);
        self.out.put_slice(b"\r\n");
        if line.len() > redacted_len {
            line.truncate(redacted_len);
            line.push(b' ');
            line.extend_from_slice(REDACTED);
        }
        self.transcript.record(Direction::Client, &line);
        self.expect.push_back(Expect::Auth);
        self.auth = Some(exchange);
        Ok(())
    }

    pub(super) fn on_auth_reply(&mut self, reply: Reply) -> Result<(), Error> {
        let Some(exchange) = self.auth.as_mut() else {
            return Err(Error::UnexpectedReply {
                stage: Stage::Auth,
                reply,
            });
        };
        if reply.code() == ReplyCode::AUTH_SUCCEEDED {
            self.authenticated = Some(exchange.mechanism().clone());
            self.auth = None;
            self.become_ready();
            return Ok(());
        }
        if reply.code() == ReplyCode::AUTH_CHALLENGE {
            let challenge = reply.lines().next().unwrap_or_default();
            return match exchange.respond(challenge) {
                Ok(response) => {
                    self.out.put_slice(&response);
                    self.out.put_slice(b"\r\n");
                    self.transcript.record(Direction::Client, REDACTED);
                    self.expect.push_back(Expect::Auth);
                    Ok(())
                }
                Err(err) => {
                    // RFC 4954 §4: "*" cancels the exchange; the secret stays here.
                    self.out.put_slice(b"*\r\n");
                    self.transcript.record(Direction::Client, b"*");
                    Err(err)
                }
            };
        }
        Err(Error::AuthFailed {
            mechanism: exchange.mechanism().clone(),
            detail: exchange.error_detail().map(str::to_owned),
            reply: Box::new(reply),
        })
    }
}
