//! SASL authentication (RFC 4954): mechanisms, credentials and the exchanges
//! that turn server challenges into responses.
//!
//! Each mechanism lives in its own module (`plain`, `login`, `xoauth2`,
//! `oauthbearer`). None of them decides *whether* credentials may be sent:
//! that is the session's credential guard, the one place every mechanism
//! passes through before its first byte is written.

use std::fmt;

/// A SASL mechanism name as advertised after `AUTH` in an EHLO reply.
///
/// Names are matched as whole tokens, case-insensitively: `LOGIN-MD5` is not
/// `LOGIN`, and `XPLAIN` is not `PLAIN`.
#[derive(Clone, PartialEq, Eq, Hash)]
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

/// A secret (password or token) whose value never appears in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself; call only where it is about to be encoded for the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_owned())
    }
}

/// What the client authenticates with.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A user name and password (PLAIN, LOGIN).
    Password {
        /// The authentication identity.
        username: String,
        /// The password.
        password: Secret,
    },
    /// A user name and an OAuth 2.0 access token (XOAUTH2, OAUTHBEARER).
    Token {
        /// The account the token was issued for.
        username: String,
        /// The bearer token.
        token: Secret,
    },
}

impl Credentials {
    /// User name and password credentials.
    pub fn password(username: impl Into<String>, password: impl Into<Secret>) -> Credentials {
        Credentials::Password {
            username: username.into(),
            password: password.into(),
        }
    }

    /// User name and OAuth 2.0 bearer token credentials.
    pub fn token(username: impl Into<String>, token: impl Into<Secret>) -> Credentials {
        Credentials::Token {
            username: username.into(),
            token: token.into(),
        }
    }

    /// The user name, which is not secret but is still never logged by the session.
    pub fn username(&self) -> &str {
        match self {
            Credentials::Password { username, .. } | Credentials::Token { username, .. } => {
                username
            }
        }
    }

    /// Whether these credentials are a bearer token.
    pub fn is_token(&self) -> bool {
        matches!(self, Credentials::Token { .. })
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::Token { username, .. } => f
                .debug_struct("Token")
                .field("username", username)
                .field("token", &"<redacted>")
                .finish(),
        }
    }
}
