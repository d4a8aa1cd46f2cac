//! SASL authentication (RFC 4954): mechanisms, credentials and the exchanges
//! that turn server challenges into responses.
//!
//! Each mechanism lives in its own module (`plain`, `login`, `xoauth2`,
//! `oauthbearer`). None of them decides *whether* credentials may be sent:
//! that is the session's credential guard, the one place every mechanism
//! passes through before its first byte is written.

use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use crate::address::is_control;
use crate::error::{Error, InputField};
use crate::reply::write_escaped;

// Defined in a leaf module so that `Error`, which names mechanisms, does not
// depend on this module, whose exchanges report `Error`s.
pub(crate) use crate::mechanism::Mechanism;

mod login;
mod oauthbearer;
mod plain;
mod xoauth2;

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
#[non_exhaustive]
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
    /// A user name with both a password and an OAuth 2.0 access token: the
    /// mechanism is chosen from what the server offers (PLAIN, else LOGIN
    /// with the password; else XOAUTH2, else OAUTHBEARER with the token).
    PasswordAndToken {
        /// The authentication identity.
        username: String,
        /// The password.
        password: Secret,
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

    /// A user name with both a password and a token; see
    /// [`Credentials::PasswordAndToken`].
    pub fn password_and_token(
        username: impl Into<String>,
        password: impl Into<Secret>,
        token: impl Into<Secret>,
    ) -> Credentials {
        Credentials::PasswordAndToken {
            username: username.into(),
            password: password.into(),
            token: token.into(),
        }
    }

    /// The user name, which is not secret but is still never logged by the session.
    pub fn username(&self) -> &str {
        match self {
            Credentials::Password { username, .. }
            | Credentials::Token { username, .. }
            | Credentials::PasswordAndToken { username, .. } => username,
        }
    }

    /// Whether these credentials are a bearer token alone.
    pub fn is_token(&self) -> bool {
        matches!(self, Credentials::Token { .. })
    }

    /// The password, when there is one.
    fn password_secret(&self) -> Option<&Secret> {
        match self {
            Credentials::Password { password, .. }
            | Credentials::PasswordAndToken { password, .. } => Some(password),
            Credentials::Token { .. } => None,
        }
    }

    /// The bearer token, when there is one.
    fn token_secret(&self) -> Option<&Secret> {
        match self {
            Credentials::Token { token, .. } | Credentials::PasswordAndToken { token, .. } => {
                Some(token)
            }
            Credentials::Password { .. } => None,
        }
    }

    /// Refuses what no mechanism can send, without echoing a secret: an empty
    /// user name or one with a C0 control or DEL, an empty secret, and a token
    /// with a control character or space (`\x01` and space frame XOAUTH2 and
    /// OAUTHBEARER). The session checks this before it writes anything.
    pub fn check(&self) -> Result<(), Error> {
        let username = self.username();
        if username.is_empty() {
            return Err(Error::invalid(
                InputField::Username,
                "the user name is empty",
            ));
        }
        if username.bytes().any(is_control) {
            return Err(Error::invalid(
                InputField::Username,
                "the user name contains a control character",
            ));
        }
        if self
            .password_secret()
            .is_some_and(|p| p.expose().is_empty())
        {
            return Err(Error::invalid(InputField::Secret, "the password is empty"));
        }
        match self.token_secret().map(Secret::expose) {
            Some("") => Err(Error::invalid(InputField::Secret, "the token is empty")),
            Some(token) if token.bytes().any(|b| is_control(b) || b == b' ') => {
                Err(Error::invalid(
                    InputField::Secret,
                    "the token contains a control character or a space",
                ))
            }
            _ => Ok(()),
        }
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
            Credentials::PasswordAndToken { username, .. } => f
                .debug_struct("PasswordAndToken")
                .field("username", username)
                .field("password", &"<redacted>")
                .field("token", &"<redacted>")
                .finish(),
        }
    }
}

/// Picks the mechanism for `credentials`, deterministically.
///
/// `offered` is `None` when the server advertised no `AUTH` at all, else the
/// advertised list (possibly empty).
///
/// - An `explicit` mechanism is checked first: one this crate does not
///   implement ([`Mechanism::Other`]) gives [`Error::AuthUnavailable`]; one
///   that does not fit the credential kind (a password for `XOAUTH2`, a token
///   for `PLAIN`) gives [`Error::InvalidInput`] for [`InputField::Secret`];
///   otherwise it is used when the server offers it or advertised no `AUTH`
///   (legacy servers that accept `AUTH` without announcing it), and refused
///   with [`Error::AuthUnavailable`] when the server offers a list without it.
/// - Password credentials: `PLAIN` if offered, else `LOGIN` if offered;
///   with no `AUTH` advertised, `PLAIN`; else [`Error::AuthUnavailable`].
/// - Token credentials: `XOAUTH2` if offered, else `OAUTHBEARER` if offered;
///   else [`Error::AuthUnavailable`], also when no `AUTH` was advertised: the
///   legacy servers that take `AUTH` unannounced predate OAuth 2.0, and
///   guessing would send a bearer token to a server that never asked for one.
/// - Both a password and a token: `PLAIN`, `LOGIN`, `XOAUTH2`, `OAUTHBEARER`,
///   the first one offered; with no `AUTH` advertised, `PLAIN`.
///
/// The order of `offered` does not matter, and unknown names in it (say
/// `XPLAIN`, `LOGIN-MD5`, `CRAM-MD5`) are never picked.
pub(crate) fn select_mechanism(
    offered: Option<&[Mechanism]>,
    credentials: &Credentials,
    explicit: Option<&Mechanism>,
) -> Result<Mechanism, Error> {
    let unavailable = || Error::AuthUnavailable {
        offered: offered.map(<[Mechanism]>::to_vec).unwrap_or_default(),
    };
    if let Some(mechanism) = explicit {
        if matches!(mechanism, Mechanism::Other(_)) {
            return Err(unavailable());
        }
        check_fit(mechanism, credentials)?;
        return match offered {
            None => Ok(mechanism.clone()),
            Some(list) if list.contains(mechanism) => Ok(mechanism.clone()),
            Some(_) => Err(unavailable()),
        };
    }
    let (preferred, legacy): (&[Mechanism], Option<Mechanism>) = match credentials {
        Credentials::Token { .. } => (&[Mechanism::XOAuth2, Mechanism::OAuthBearer], None),
        Credentials::Password { .. } => (
            &[Mechanism::Plain, Mechanism::Login],
            Some(Mechanism::Plain),
        ),
        Credentials::PasswordAndToken { .. } => (
            &[
                Mechanism::Plain,
                Mechanism::Login,
                Mechanism::XOAuth2,
                Mechanism::OAuthBearer,
            ],
            Some(Mechanism::Plain),
        ),
    };
    match offered {
        None => legacy.ok_or_else(unavailable),
        Some(list) => preferred
            .iter()
            .find(|m| list.contains(m))
            .cloned()
            .ok_or_else(unavailable),
    }
}

/// Refuses a mechanism that does not fit the credential kind.
fn check_fit(mechanism: &Mechanism, credentials: &Credentials) -> Result<(), Error> {
    match (mechanism.uses_token(), credentials) {
        (true, Credentials::Password { .. }) => Err(Error::invalid(
            InputField::Secret,
            format!("{mechanism} needs a token, not a password"),
        )),
        (false, Credentials::Token { .. }) => Err(Error::invalid(
            InputField::Secret,
            format!("{mechanism} needs a password, not a token"),
        )),
        _ => Ok(()),
    }
}

/// The longest `AUTH` command line a client may send, CRLF included: RFC
/// 4954 §4 raises SMTP's line limit to 12,288 octets for `AUTH`, and an
/// initial response that would make the line longer MUST NOT be sent with it.
pub const AUTH_LINE_LIMIT: usize = 12_288;

/// One AUTH exchange in progress.
///
/// The session writes [`command`](AuthExchange::command) plus CRLF, then for
/// every `334` reply calls [`respond`](AuthExchange::respond) with the reply's
/// text and writes the returned line plus CRLF; on `Err` it writes `*\r\n`
/// (RFC 4954 §4 cancel) and reports the error. Its `Debug` output never shows
/// the password or token.
#[derive(Debug)]
pub(crate) struct AuthExchange {
    mechanism: Mechanism,
    initial_taken: bool,
    /// An initial response too long for the `AUTH` line, kept for the
    /// server's empty challenge (RFC 4422 §5.1).
    deferred: Option<Secret>,
    state: State,
}

#[derive(Debug)]
enum State {
    Plain(plain::Plain),
    Login(login::Login),
    XOAuth2(xoauth2::XOAuth2),
    OAuthBearer(oauthbearer::OAuthBearer),
}

impl AuthExchange {
    /// Starts an exchange, checking the credentials first (nothing is sent
    /// for invalid ones):
    ///
    /// - [`Mechanism::Other`]: [`Error::AuthUnavailable`] with an empty
    ///   `offered` (this crate cannot run it; [`select_mechanism`] never
    ///   returns one);
    /// - a mechanism that does not fit the credential kind, an empty secret, a
    ///   NUL in a PLAIN password, or a control character or space in a token:
    ///   [`Error::InvalidInput`] for [`InputField::Secret`], the secret never
    ///   echoed;
    /// - an empty user name or one with a C0 control or DEL:
    ///   [`Error::InvalidInput`] for [`InputField::Username`].
    pub(crate) fn new(
        mechanism: Mechanism,
        credentials: &Credentials,
    ) -> Result<AuthExchange, Error> {
        if matches!(mechanism, Mechanism::Other(_)) {
            return Err(Error::AuthUnavailable {
                offered: Vec::new(),
            });
        }
        check_fit(&mechanism, credentials)?;
        credentials.check()?;
        let username = credentials.username();
        let (password, token) = (credentials.password_secret(), credentials.token_secret());
        let state = match (&mechanism, password, token) {
            (Mechanism::Plain, Some(password), _) => {
                State::Plain(plain::Plain::new(username, password)?)
            }
            (Mechanism::Login, Some(password), _) => {
                State::Login(login::Login::new(username, password))
            }
            (Mechanism::XOAuth2, _, Some(token)) => {
                State::XOAuth2(xoauth2::XOAuth2::new(username, token))
            }
            (Mechanism::OAuthBearer, _, Some(token)) => {
                State::OAuthBearer(oauthbearer::OAuthBearer::new(username, token))
            }
            // Other(_) and misfits were refused above; kept total without a panic.
            _ => {
                return Err(Error::AuthUnavailable {
                    offered: Vec::new(),
                })
            }
        };
        Ok(AuthExchange {
            mechanism,
            initial_taken: false,
            deferred: None,
            state,
        })
    }

    /// The `AUTH` command line, without CRLF: `AUTH <mechanism>` and the
    /// initial response when the line fits [`AUTH_LINE_LIMIT`]; otherwise
    /// the mechanism alone, and the initial response answers the server's
    /// empty `334` instead (RFC 4954 §4). Call once.
    pub(crate) fn command(&mut self) -> Vec<u8> {
        let name = self.mechanism.as_str().as_bytes();
        let mut line = Vec::with_capacity(64);
        line.extend_from_slice(b"AUTH ");
        line.extend_from_slice(name);
        if let Some(initial) = self.initial_response() {
            // "AUTH " + name + " " + response + CRLF
            if line.len() + 1 + initial.len() + 2 <= AUTH_LINE_LIMIT {
                line.push(b' ');
                line.extend_from_slice(&initial);
            } else {
                // base64 is ASCII, so this never fails; an empty deferral
                // would only cancel at the challenge.
                self.deferred = String::from_utf8(initial).ok().map(Secret::new);
            }
        }
        line
    }

    /// The mechanism being run.
    pub(crate) fn mechanism(&self) -> &Mechanism {
        &self.mechanism
    }

    /// The base64 initial response for the `AUTH` line, handed out once
    /// (later calls return `None`). `LOGIN` has none: strict servers answer
    /// `535` to a user name inside the `AUTH LOGIN` line.
    pub(crate) fn initial_response(&mut self) -> Option<Vec<u8>> {
        if self.initial_taken {
            return None;
        }
        self.initial_taken = true;
        match &self.state {
            State::Plain(plain) => Some(plain.initial_response()),
            State::Login(_) => None,
            State::XOAuth2(x) => Some(x.initial_response()),
            State::OAuthBearer(o) => Some(o.initial_response()),
        }
    }

    /// Answers a `334` challenge. `challenge` is the reply line's text
    /// (base64, maybe empty; surrounding ASCII whitespace is tolerated). The
    /// result is the base64 response without CRLF; `Err` is always
    /// [`Error::AuthCancelled`] and means: write `*`.
    pub(crate) fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, Error> {
        if let Some(initial) = self.deferred.take() {
            // RFC 4422 §5.1: without an initial response the server's first
            // challenge is empty, and the initial response answers it.
            if !challenge.trim_ascii().is_empty() {
                return Err(cancel(
                    self.mechanism.clone(),
                    prompt_text(challenge),
                    "a challenge with data where an empty one asks for the initial response",
                ));
            }
            return Ok(initial.expose().as_bytes().to_vec());
        }
        match &mut self.state {
            State::Plain(plain) => plain.respond(challenge),
            State::Login(login) => login.respond(challenge),
            State::XOAuth2(x) => x.respond(challenge),
            State::OAuthBearer(o) => o.respond(challenge),
        }
    }

    /// For `XOAUTH2` and `OAUTHBEARER`: the decoded error challenge (JSON
    /// text, control characters escaped) if the server sent one.
    pub(crate) fn error_detail(&self) -> Option<&str> {
        match &self.state {
            State::XOAuth2(x) => x.error_detail(),
            State::OAuthBearer(o) => o.error_detail(),
            State::Plain(_) | State::Login(_) => None,
        }
    }
}

/// Decodes server challenges: the standard alphabet, padding optional.
const CHALLENGE_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The reason given when a challenge does not decode.
const NOT_BASE64: &str = "challenge is not valid base64";
/// The reason given when a bearer mechanism gets a second challenge.
const ERROR_CHALLENGE_TWICE: &str = "second challenge after the error challenge";

/// Decodes a challenge's text, surrounding ASCII whitespace tolerated.
fn decode_challenge(challenge: &[u8]) -> Option<Vec<u8>> {
    CHALLENGE_ENGINE.decode(challenge.trim_ascii()).ok()
}

/// base64 (standard, padded) of `bytes`, as ASCII.
fn encode(bytes: &[u8]) -> Vec<u8> {
    STANDARD.encode(bytes).into_bytes()
}

/// Server text as a string, control characters and invalid UTF-8 escaped.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_escaped(&mut out, bytes);
    out
}

/// The challenge as shown in an error: decoded when it is base64, else as sent.
fn prompt_text(challenge: &[u8]) -> String {
    match decode_challenge(challenge) {
        Some(decoded) => escape(&decoded),
        None => escape(challenge),
    }
}

fn cancel(mechanism: Mechanism, prompt: String, reason: &'static str) -> Error {
    Error::AuthCancelled {
        mechanism,
        prompt,
        reason,
    }
}

/// The error challenge of `XOAUTH2` and `OAUTHBEARER`: the first `334` after
/// the initial response carries the error as base64 JSON; it is kept as the
/// detail and answered with `reply`. A second `334`, or one that is not
/// base64, cancels.
#[derive(Debug, Default)]
struct BearerErrorChallenge {
    seen: bool,
    detail: Option<String>,
}

impl BearerErrorChallenge {
    fn respond(
        &mut self,
        mechanism: Mechanism,
        challenge: &[u8],
        reply: Vec<u8>,
    ) -> Result<Vec<u8>, Error> {
        if self.seen {
            return Err(cancel(
                mechanism,
                prompt_text(challenge),
                ERROR_CHALLENGE_TWICE,
            ));
        }
        self.seen = true;
        let Some(decoded) = decode_challenge(challenge) else {
            return Err(cancel(mechanism, escape(challenge), NOT_BASE64));
        };
        let text = escape(decoded.trim_ascii());
        self.detail = (!text.is_empty()).then_some(text);
        Ok(reply)
    }

    fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn b64(bytes: &[u8]) -> Vec<u8> {
        STANDARD.encode(bytes).into_bytes()
    }

    pub(crate) fn decode(text: &[u8]) -> Vec<u8> {
        STANDARD.decode(text).unwrap()
    }

    /// The secret, and its base64, appear nowhere in the error.
    pub(crate) fn assert_no_secret(err: &Error, secret: &str) {
        let shown = [format!("{err}"), format!("{err:?}")];
        let encoded = STANDARD.encode(secret);
        for text in &shown {
            assert!(!text.contains(secret), "secret in {text:?}");
            assert!(!text.contains(&encoded), "encoded secret in {text:?}");
        }
        if let Error::AuthCancelled { prompt, .. } = err {
            assert!(!prompt.contains(secret));
        }
    }

    #[test]
    fn debug_never_shows_a_secret_but_shows_what_is_not_secret() {
        assert_eq!(
            format!("{:?}", Secret::new("hunter2")),
            "Secret(<redacted>)"
        );
        assert_eq!(format!("{:?}", Mechanism::XOAuth2), "XOAUTH2");
        assert_eq!(format!("{:?}", Mechanism::parse("x-custom")), "X-CUSTOM");
        for credentials in [
            password(),
            token(),
            Credentials::password_and_token("me@example.com", "hunter2", "ya29.token"),
        ] {
            let shown = format!("{credentials:?}");
            assert!(shown.contains(credentials.username()), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
            let secrets = [credentials.password_secret(), credentials.token_secret()];
            for secret in secrets.into_iter().flatten() {
                assert!(!shown.contains(secret.expose()), "{shown}");
            }
        }
    }

    #[test]
    fn is_token_means_a_token_alone() {
        assert!(token().is_token());
        assert!(!password().is_token());
        assert!(!Credentials::password_and_token("me", "pw", "tok").is_token());
    }

    #[test]
    fn both_secrets_pick_from_the_offer() {
        let both = Credentials::password_and_token("me", "pw", "tok");
        for (offer, want) in [
            ("XOAUTH2", Mechanism::XOAuth2),
            ("OAUTHBEARER XOAUTH2", Mechanism::XOAuth2),
            ("OAUTHBEARER", Mechanism::OAuthBearer),
            ("XOAUTH2 LOGIN", Mechanism::Login),
            ("LOGIN PLAIN XOAUTH2", Mechanism::Plain),
        ] {
            let offered = mechs(offer);
            assert_eq!(
                select_mechanism(Some(&offered), &both, None),
                Ok(want),
                "{offer}"
            );
        }
        assert_eq!(select_mechanism(None, &both, None), Ok(Mechanism::Plain));
        assert!(matches!(
            select_mechanism(Some(&mechs("CRAM-MD5")), &both, None),
            Err(Error::AuthUnavailable { .. })
        ));
        // Either kind of explicit mechanism fits, with its own secret.
        for explicit in [
            Mechanism::Plain,
            Mechanism::Login,
            Mechanism::XOAuth2,
            Mechanism::OAuthBearer,
        ] {
            assert_eq!(
                select_mechanism(None, &both, Some(&explicit)),
                Ok(explicit.clone())
            );
            let mut exchange = AuthExchange::new(explicit.clone(), &both).unwrap();
            let line = exchange.command();
            let text = String::from_utf8(line).unwrap();
            if let Some(initial) = text.split(' ').nth(2) {
                let decoded = String::from_utf8(decode(initial.as_bytes())).unwrap();
                let secret = if explicit.uses_token() {
                    "auth=Bearer tok"
                } else {
                    "\0pw"
                };
                assert!(decoded.contains(secret), "{explicit}: {decoded:?}");
            }
        }
    }

    #[test]
    fn both_secrets_are_each_checked() {
        for (password, token) in [("", "tok"), ("pw", ""), ("pw", "to k")] {
            let both = Credentials::password_and_token("me", password, token);
            assert!(
                matches!(
                    both.check(),
                    Err(Error::InvalidInput {
                        field: InputField::Secret,
                        ..
                    })
                ),
                "{password:?} {token:?}"
            );
        }
        assert_eq!(
            Credentials::password_and_token("me", "pw", "tok").check(),
            Ok(())
        );
    }

    fn mechs(names: &str) -> Vec<Mechanism> {
        names.split_whitespace().map(Mechanism::parse).collect()
    }

    fn password() -> Credentials {
        Credentials::password("user@example.org", "pw-secret")
    }

    fn token() -> Credentials {
        Credentials::token("user@example.org", "tok-secret")
    }

    #[test]
    fn plain_preferred_over_login() {
        for offered in ["PLAIN LOGIN", "LOGIN PLAIN", "login plain CRAM-MD5"] {
            let list = mechs(offered);
            assert_eq!(
                select_mechanism(Some(&list), &password(), None),
                Ok(Mechanism::Plain)
            );
        }
    }

    #[test]
    fn login_fallback_on_microsoft_365() {
        let list = mechs("LOGIN XOAUTH2");
        assert_eq!(
            select_mechanism(Some(&list), &password(), None),
            Ok(Mechanism::Login)
        );
    }

    #[test]
    fn legacy_no_auth_uses_plain() {
        assert_eq!(
            select_mechanism(None, &password(), None),
            Ok(Mechanism::Plain)
        );
    }

    #[test]
    fn lookalike_names_are_unavailable() {
        let list = mechs("XPLAIN LOGIN-MD5");
        let err = select_mechanism(Some(&list), &password(), None).unwrap_err();
        assert_eq!(
            err,
            Error::AuthUnavailable {
                offered: list.clone()
            }
        );
        let shown = err.to_string();
        assert!(shown.contains("XPLAIN LOGIN-MD5"), "{shown}");
        assert_eq!(
            select_mechanism(Some(&list), &token(), None),
            Err(Error::AuthUnavailable { offered: list })
        );
    }

    #[test]
    fn empty_auth_list_is_unavailable() {
        assert_eq!(
            select_mechanism(Some(&[]), &password(), None),
            Err(Error::AuthUnavailable { offered: vec![] })
        );
    }

    #[test]
    fn token_prefers_xoauth2_then_oauthbearer() {
        let list = mechs("PLAIN LOGIN OAUTHBEARER XOAUTH2");
        assert_eq!(
            select_mechanism(Some(&list), &token(), None),
            Ok(Mechanism::XOAuth2)
        );
        let list = mechs("PLAIN LOGIN OAUTHBEARER");
        assert_eq!(
            select_mechanism(Some(&list), &token(), None),
            Ok(Mechanism::OAuthBearer)
        );
        let list = mechs("PLAIN LOGIN");
        assert_eq!(
            select_mechanism(Some(&list), &token(), None),
            Err(Error::AuthUnavailable { offered: list })
        );
    }

    #[test]
    fn token_without_auth_is_unavailable() {
        assert_eq!(
            select_mechanism(None, &token(), None),
            Err(Error::AuthUnavailable { offered: vec![] })
        );
    }

    #[test]
    fn password_never_picks_a_token_mechanism() {
        let list = mechs("XOAUTH2 OAUTHBEARER");
        assert_eq!(
            select_mechanism(Some(&list), &password(), None),
            Err(Error::AuthUnavailable { offered: list })
        );
    }

    #[test]
    fn explicit_offered_is_used() {
        let list = mechs("PLAIN LOGIN");
        assert_eq!(
            select_mechanism(Some(&list), &password(), Some(&Mechanism::Login)),
            Ok(Mechanism::Login)
        );
    }

    #[test]
    fn explicit_not_offered_is_unavailable() {
        let list = mechs("PLAIN");
        assert_eq!(
            select_mechanism(Some(&list), &password(), Some(&Mechanism::Login)),
            Err(Error::AuthUnavailable { offered: list })
        );
    }

    #[test]
    fn explicit_without_auth_advertised_is_used() {
        assert_eq!(
            select_mechanism(None, &password(), Some(&Mechanism::Login)),
            Ok(Mechanism::Login)
        );
        assert_eq!(
            select_mechanism(None, &token(), Some(&Mechanism::OAuthBearer)),
            Ok(Mechanism::OAuthBearer)
        );
    }

    #[test]
    fn explicit_misfit_is_invalid_input() {
        let list = mechs("PLAIN LOGIN XOAUTH2 OAUTHBEARER");
        for (creds, mechanism, needs) in [
            (password(), Mechanism::XOAuth2, "needs a token"),
            (password(), Mechanism::OAuthBearer, "needs a token"),
            (token(), Mechanism::Plain, "needs a password"),
            (token(), Mechanism::Login, "needs a password"),
        ] {
            for offered in [Some(&list[..]), None] {
                let err = select_mechanism(offered, &creds, Some(&mechanism)).unwrap_err();
                match &err {
                    Error::InvalidInput {
                        field: InputField::Secret,
                        reason,
                    } => {
                        assert!(reason.contains(needs), "{reason}");
                        assert!(reason.contains(mechanism.as_str()), "{reason}");
                    }
                    other => panic!("{other:?}"),
                }
                assert_no_secret(&err, "pw-secret");
                assert_no_secret(&err, "tok-secret");
            }
        }
    }

    #[test]
    fn explicit_other_is_unavailable() {
        let list = mechs("CRAM-MD5 PLAIN");
        let cram = Mechanism::parse("CRAM-MD5");
        assert_eq!(
            select_mechanism(Some(&list), &password(), Some(&cram)),
            Err(Error::AuthUnavailable { offered: list })
        );
        assert_eq!(
            select_mechanism(None, &password(), Some(&cram)),
            Err(Error::AuthUnavailable { offered: vec![] })
        );
    }

    #[test]
    fn new_refuses_other_mechanisms() {
        let err = AuthExchange::new(Mechanism::parse("CRAM-MD5"), &password()).unwrap_err();
        assert_eq!(err, Error::AuthUnavailable { offered: vec![] });
    }

    #[test]
    fn new_refuses_misfits() {
        for (mechanism, creds) in [
            (Mechanism::Plain, token()),
            (Mechanism::Login, token()),
            (Mechanism::XOAuth2, password()),
            (Mechanism::OAuthBearer, password()),
        ] {
            let err = AuthExchange::new(mechanism, &creds).unwrap_err();
            assert!(matches!(
                err,
                Error::InvalidInput {
                    field: InputField::Secret,
                    ..
                }
            ));
            assert_no_secret(&err, "pw-secret");
            assert_no_secret(&err, "tok-secret");
        }
    }

    #[test]
    fn control_characters_in_user_name_are_refused() {
        for user in [
            "a\0b",
            "a\r\nb",
            "tab\tuser",
            "del\x7f",
            "\x1b[31m",
            "x\x01",
        ] {
            for (mechanism, creds) in [
                (Mechanism::Plain, Credentials::password(user, "pw-secret")),
                (Mechanism::Login, Credentials::password(user, "pw-secret")),
                (Mechanism::XOAuth2, Credentials::token(user, "tok-secret")),
                (
                    Mechanism::OAuthBearer,
                    Credentials::token(user, "tok-secret"),
                ),
            ] {
                let err = AuthExchange::new(mechanism.clone(), &creds).unwrap_err();
                assert!(
                    matches!(
                        err,
                        Error::InvalidInput {
                            field: InputField::Username,
                            ..
                        }
                    ),
                    "{mechanism} {user:?}: {err:?}"
                );
                assert_no_secret(&err, "pw-secret");
                assert_no_secret(&err, "tok-secret");
                assert!(!err.to_string().contains(user));
            }
        }
    }

    #[test]
    fn non_ascii_user_name_is_fine() {
        let creds = Credentials::password("jörg@bücher.example", "pw-secret");
        assert!(AuthExchange::new(Mechanism::Login, &creds).is_ok());
    }

    #[test]
    fn empty_fields_are_refused() {
        let err =
            AuthExchange::new(Mechanism::Plain, &Credentials::password("", "pw")).unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidInput {
                field: InputField::Username,
                ..
            }
        ));
        for mechanism in [Mechanism::Plain, Mechanism::Login] {
            let err = AuthExchange::new(mechanism, &Credentials::password("u", "")).unwrap_err();
            assert!(matches!(
                err,
                Error::InvalidInput {
                    field: InputField::Secret,
                    ..
                }
            ));
        }
        for mechanism in [Mechanism::XOAuth2, Mechanism::OAuthBearer] {
            let err = AuthExchange::new(mechanism, &Credentials::token("u", "")).unwrap_err();
            assert!(matches!(
                err,
                Error::InvalidInput {
                    field: InputField::Secret,
                    ..
                }
            ));
        }
    }

    #[test]
    fn error_detail_is_none_for_password_mechanisms() {
        let mut ex = AuthExchange::new(Mechanism::Login, &password()).unwrap();
        let _ = ex.respond(&b64(b"{\"status\":\"400\"}"));
        assert_eq!(ex.error_detail(), None);
        let ex = AuthExchange::new(Mechanism::Plain, &password()).unwrap();
        assert_eq!(ex.error_detail(), None);
    }

    #[test]
    fn challenge_decoding() {
        assert_eq!(decode_challenge(b""), Some(vec![]));
        assert_eq!(decode_challenge(b"  \t"), Some(vec![]));
        assert_eq!(decode_challenge(b" VXNlcg== "), Some(b"User".to_vec()));
        assert_eq!(decode_challenge(b"VXNlcg"), Some(b"User".to_vec()));
        assert_eq!(decode_challenge(b"VXN lcg=="), None);
        assert_eq!(decode_challenge(b"VXNlcg=!"), None);
    }
}
