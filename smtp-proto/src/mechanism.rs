//! SASL mechanism names (RFC 4954 §3: the `AUTH` EHLO keyword lists them).
//!
//! A leaf module, re-exported as [`auth::Mechanism`](crate::auth::Mechanism):
//! [`Error`](crate::Error) and [`Capabilities`](crate::Capabilities) name
//! mechanisms without depending on the exchanges in `auth`, which report
//! `Error`s.

use core::fmt;

/// A SASL mechanism name as advertised after `AUTH` in an EHLO reply.
///
/// Names are matched as whole tokens, case-insensitively: `LOGIN-MD5` is not
/// `LOGIN`, and `XPLAIN` is not `PLAIN`.
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mechanism {
    /// `PLAIN` (RFC 4616), sent with an initial response.
    Plain,
    /// `LOGIN` (draft-murchison-sasl-login): user name and password in two challenges.
    Login,
    /// `XOAUTH2` (Google and Microsoft): an OAuth 2.0 bearer token.
    XOAuth2,
    /// `OAUTHBEARER` (RFC 7628): an OAuth 2.0 bearer token.
    OAuthBearer,
    /// Any other mechanism, kept upper-cased so it can be reported.
    Other(Box<str>),
}

impl Mechanism {
    /// Parses one mechanism token, case-insensitively and exactly.
    pub fn parse(token: &str) -> Mechanism {
        if token.eq_ignore_ascii_case("PLAIN") {
            Mechanism::Plain
        } else if token.eq_ignore_ascii_case("LOGIN") {
            Mechanism::Login
        } else if token.eq_ignore_ascii_case("XOAUTH2") {
            Mechanism::XOAuth2
        } else if token.eq_ignore_ascii_case("OAUTHBEARER") {
            Mechanism::OAuthBearer
        } else {
            Mechanism::Other(token.to_ascii_uppercase().into_boxed_str())
        }
    }

    /// The mechanism's name as written in an `AUTH` command.
    pub fn as_str(&self) -> &str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::XOAuth2 => "XOAUTH2",
            Mechanism::OAuthBearer => "OAUTHBEARER",
            Mechanism::Other(name) => name,
        }
    }

    /// Whether this mechanism carries a bearer token rather than a password.
    pub fn uses_token(&self) -> bool {
        matches!(self, Mechanism::XOAuth2 | Mechanism::OAuthBearer)
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
