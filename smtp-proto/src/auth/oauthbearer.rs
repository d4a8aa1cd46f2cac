//! `OAUTHBEARER` (RFC 7628): `n,a=U,\x01auth=Bearer T\x01\x01` in the
//! initial response, the user name in the GS2 header with `,` and `=`
//! escaped as `=2C` and `=3D` (RFC 5801 `saslname`).
//!
//! On failure the server sends a `334` whose text is base64 JSON such as
//! `{"status":"invalid_token","scope":"..."}`; the client answers with a
//! single `0x01` byte (RFC 7628 §3.2.3), base64 `AQ==`, and the server then
//! sends its final error reply.

use super::{encode, BearerErrorChallenge};
use crate::auth::{Mechanism, Secret};
use crate::error::Error;

/// An OAUTHBEARER exchange.
#[derive(Debug)]
pub(super) struct OAuthBearer {
    username: String,
    token: Secret,
    error: BearerErrorChallenge,
}

impl OAuthBearer {
    /// The user name and token are checked by the caller (no control
    /// characters, so `\x01` cannot break the framing).
    pub(super) fn new(username: &str, token: &Secret) -> OAuthBearer {
        OAuthBearer {
            username: username.to_owned(),
            token: token.clone(),
            error: BearerErrorChallenge::default(),
        }
    }

    /// base64 of `n,a=U,\x01auth=Bearer T\x01\x01`.
    pub(super) fn initial_response(&self) -> Vec<u8> {
        let mut message = Vec::new();
        message.extend_from_slice(b"n,a=");
        message.extend_from_slice(saslname(&self.username).as_bytes());
        message.extend_from_slice(b",\x01auth=Bearer ");
        message.extend_from_slice(self.token.expose().as_bytes());
        message.extend_from_slice(b"\x01\x01");
        encode(&message)
    }

    /// The first challenge is the error challenge, answered with `AQ==`
    /// (a lone `0x01`); a second one cancels.
    pub(super) fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, Error> {
        self.error
            .respond(Mechanism::OAuthBearer, challenge, encode(b"\x01"))
    }

    pub(super) fn error_detail(&self) -> Option<&str> {
        self.error.detail()
    }
}

/// RFC 5801 `saslname`: `,` becomes `=2C` and `=` becomes `=3D`.
fn saslname(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            ',' => out.push_str("=2C"),
            '=' => out.push_str("=3D"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_no_secret, b64, decode};
    use super::super::{AuthExchange, ERROR_CHALLENGE_TWICE};
    use super::saslname;
    use crate::auth::{Credentials, Mechanism};
    use crate::error::{Error, InputField};

    const TOKEN: &str = "vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg==";

    fn exchange(user: &str) -> AuthExchange {
        let creds = Credentials::token(user, TOKEN);
        AuthExchange::new(Mechanism::OAuthBearer, &creds).unwrap()
    }

    #[test]
    fn initial_response_bytes() {
        let mut ex = exchange("user@example.com");
        assert_eq!(ex.mechanism(), &Mechanism::OAuthBearer);
        let ir = ex.initial_response().unwrap();
        assert_eq!(
            decode(&ir),
            format!("n,a=user@example.com,\x01auth=Bearer {TOKEN}\x01\x01").as_bytes()
        );
        assert_eq!(ex.initial_response(), None);
    }

    #[test]
    fn username_is_escaped() {
        assert_eq!(saslname("a,b=c"), "a=2Cb=3Dc");
        assert_eq!(saslname("=,"), "=3D=2C");
        assert_eq!(saslname("plain@example.org"), "plain@example.org");
        let mut ex = exchange("od,d=user@example.com");
        let ir = ex.initial_response().unwrap();
        assert_eq!(
            decode(&ir),
            format!("n,a=od=2Cd=3Duser@example.com,\x01auth=Bearer {TOKEN}\x01\x01").as_bytes()
        );
    }

    #[test]
    fn error_challenge_is_answered_with_0x01() {
        let mut ex = exchange("user@example.com");
        let _ = ex.initial_response();
        let json = r#"{"status":"invalid_token","scope":"example_scope","openid-configuration":"https://example.com/.well-known/openid-configuration"}"#;
        let response = ex.respond(&b64(json.as_bytes())).unwrap();
        assert_eq!(response, b"AQ==".to_vec());
        assert_eq!(decode(&response), b"\x01");
        assert_eq!(ex.error_detail(), Some(json));
    }

    #[test]
    fn second_challenge_cancels() {
        let mut ex = exchange("user@example.com");
        let _ = ex.initial_response();
        assert_eq!(ex.respond(&b64(b"{}")).unwrap(), b"AQ==".to_vec());
        let err = ex.respond(&b64(b"{}")).unwrap_err();
        assert!(matches!(
            &err,
            Error::AuthCancelled { mechanism: Mechanism::OAuthBearer, reason, .. } if *reason == ERROR_CHALLENGE_TWICE
        ));
        assert_no_secret(&err, TOKEN);
    }

    #[test]
    fn password_credentials_are_refused() {
        let creds = Credentials::password("user@example.com", "hunter2");
        let err = AuthExchange::new(Mechanism::OAuthBearer, &creds).unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidInput {
                field: InputField::Secret,
                ..
            }
        ));
        assert_no_secret(&err, "hunter2");
    }
}
