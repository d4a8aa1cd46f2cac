//! `XOAUTH2` (Google, Microsoft): `user=U\x01auth=Bearer T\x01\x01` in the
//! initial response.
//!
//! On failure the server sends a `334` whose text is base64 JSON such as
//! `{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}`;
//! the client answers with an empty line and the server then sends its final
//! error reply.

use super::{encode, BearerErrorChallenge};
use crate::auth::{Mechanism, Secret};
use crate::error::Error;

/// An XOAUTH2 exchange.
#[derive(Debug)]
pub(super) struct XOAuth2 {
    username: String,
    token: Secret,
    error: BearerErrorChallenge,
}

impl XOAuth2 {
    /// The user name and token are checked by the caller (no control
    /// characters, so `\x01` cannot break the framing).
    pub(super) fn new(username: &str, token: &Secret) -> XOAuth2 {
        XOAuth2 {
            username: username.to_owned(),
            token: token.clone(),
            error: BearerErrorChallenge::default(),
        }
    }

    /// base64 of `user=U\x01auth=Bearer T\x01\x01`.
    pub(super) fn initial_response(&self) -> Vec<u8> {
        let mut message = Vec::new();
        message.extend_from_slice(b"user=");
        message.extend_from_slice(self.username.as_bytes());
        message.extend_from_slice(b"\x01auth=Bearer ");
        message.extend_from_slice(self.token.expose().as_bytes());
        message.extend_from_slice(b"\x01\x01");
        encode(&message)
    }

    /// The first challenge is the error challenge, answered with an empty
    /// response; a second one cancels.
    pub(super) fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, Error> {
        self.error
            .respond(Mechanism::XOAuth2, challenge, Vec::new())
    }

    pub(super) fn error_detail(&self) -> Option<&str> {
        self.error.detail()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_no_secret, b64, decode};
    use super::super::{AuthExchange, ERROR_CHALLENGE_TWICE, NOT_BASE64};
    use crate::auth::{Credentials, Mechanism};
    use crate::error::{Error, InputField};

    const TOKEN: &str = "ya29.a0AfH6SMBx-token_value~+/=";

    fn exchange() -> AuthExchange {
        let creds = Credentials::token("someone@gmail.com", TOKEN);
        AuthExchange::new(Mechanism::XOAuth2, &creds).unwrap()
    }

    #[test]
    fn initial_response_bytes() {
        let mut ex = exchange();
        assert_eq!(ex.mechanism(), &Mechanism::XOAuth2);
        let ir = ex.initial_response().unwrap();
        assert_eq!(
            decode(&ir),
            format!("user=someone@gmail.com\x01auth=Bearer {TOKEN}\x01\x01").as_bytes()
        );
        assert_eq!(ex.initial_response(), None);
        assert_eq!(ex.error_detail(), None);
    }

    #[test]
    fn google_documented_vector() {
        // From Google's XOAUTH2 protocol documentation.
        let creds = Credentials::token(
            "someuser@example.com",
            "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg",
        );
        let mut ex = AuthExchange::new(Mechanism::XOAuth2, &creds).unwrap();
        assert_eq!(
            ex.initial_response().unwrap(),
            b"dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==".to_vec()
        );
    }

    #[test]
    fn error_challenge_is_stored_and_answered_empty() {
        let mut ex = exchange();
        let _ = ex.initial_response();
        let json = r#"{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}"#;
        let response = ex.respond(&b64(json.as_bytes())).unwrap();
        assert_eq!(response, Vec::<u8>::new());
        assert_eq!(ex.error_detail(), Some(json));
    }

    #[test]
    fn error_detail_escapes_control_characters() {
        let mut ex = exchange();
        let response = ex
            .respond(&b64(b"{\"status\":\"401\"}\r\n\x1b[2J"))
            .unwrap();
        assert!(response.is_empty());
        assert_eq!(
            ex.error_detail(),
            Some("{\"status\":\"401\"}\\r\\n\\u{1b}[2J")
        );
    }

    #[test]
    fn empty_error_challenge_has_no_detail() {
        let mut ex = exchange();
        assert_eq!(ex.respond(b"").unwrap(), Vec::<u8>::new());
        assert_eq!(ex.error_detail(), None);
    }

    #[test]
    fn second_challenge_cancels() {
        let mut ex = exchange();
        let _ = ex.initial_response();
        ex.respond(&b64(b"{\"status\":\"400\"}")).unwrap();
        let err = ex.respond(&b64(b"{\"status\":\"500\"}")).unwrap_err();
        match &err {
            Error::AuthCancelled {
                mechanism,
                prompt,
                reason,
            } => {
                assert_eq!(*mechanism, Mechanism::XOAuth2);
                assert_eq!(*reason, ERROR_CHALLENGE_TWICE);
                assert_eq!(prompt, "{\"status\":\"500\"}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            ex.error_detail(),
            Some("{\"status\":\"400\"}"),
            "the first detail is kept"
        );
        assert_no_secret(&err, TOKEN);
    }

    #[test]
    fn invalid_base64_error_challenge_cancels() {
        let mut ex = exchange();
        let err = ex.respond(b"{\"status\":\"400\"}").unwrap_err();
        assert!(matches!(err, Error::AuthCancelled { reason, .. } if reason == NOT_BASE64));
        assert_eq!(ex.error_detail(), None);
        assert_no_secret(&err, TOKEN);
    }

    #[test]
    fn password_credentials_are_refused() {
        let creds = Credentials::password("someone@gmail.com", "hunter2");
        let err = AuthExchange::new(Mechanism::XOAuth2, &creds).unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput { field: InputField::Secret, ref reason } if reason.contains("needs a token"))
        );
        assert_no_secret(&err, "hunter2");
    }

    #[test]
    fn token_with_separator_is_refused() {
        for bad in ["abc\x01def", "abc def", "abc\r\n", ""] {
            let creds = Credentials::token("someone@gmail.com", bad);
            let err = AuthExchange::new(Mechanism::XOAuth2, &creds).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidInput {
                        field: InputField::Secret,
                        ..
                    }
                ),
                "{bad:?}"
            );
            if !bad.is_empty() {
                assert_no_secret(&err, bad);
            }
        }
    }

    #[test]
    fn debug_of_exchange_has_no_token() {
        let debug = format!("{:?}", exchange());
        assert!(!debug.contains(TOKEN), "{debug}");
    }
}
