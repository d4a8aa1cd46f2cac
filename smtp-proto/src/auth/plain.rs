//! `PLAIN` (RFC 4616): `\0user\0password` in the initial response.

use super::{cancel, encode, prompt_text};
use crate::auth::{Mechanism, Secret};
use crate::error::{Error, InputField};

/// A PLAIN exchange: everything goes in the initial response, so any
/// challenge at all is refused.
#[derive(Debug)]
pub(super) struct Plain {
    username: String,
    password: Secret,
}

impl Plain {
    /// Checks the password: RFC 4616 `passwd = 1*SAFE`, SAFE being any UTF-8
    /// except NUL, which separates the fields. (The user name is checked by
    /// the caller.)
    pub(super) fn new(username: &str, password: &Secret) -> Result<Plain, Error> {
        if password.expose().as_bytes().contains(&0) {
            return Err(Error::invalid(
                InputField::Secret,
                "the password contains a NUL byte, which PLAIN cannot carry",
            ));
        }
        Ok(Plain {
            username: username.to_owned(),
            password: password.clone(),
        })
    }

    /// base64 of `\0user\0password` (empty authorization identity).
    pub(super) fn initial_response(&self) -> Vec<u8> {
        let user = self.username.as_bytes();
        let pass = self.password.expose().as_bytes();
        let mut message = Vec::with_capacity(2 + user.len() + pass.len());
        message.push(0);
        message.extend_from_slice(user);
        message.push(0);
        message.extend_from_slice(pass);
        encode(&message)
    }

    /// PLAIN is strict: the credentials went in the initial response, so a
    /// `334` (even an empty one) is not answered again; the exchange is cancelled.
    pub(super) fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, Error> {
        Err(cancel(
            Mechanism::Plain,
            prompt_text(challenge),
            "unexpected challenge",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_no_secret, decode};
    use super::super::AuthExchange;
    use crate::auth::{Credentials, Mechanism};
    use crate::error::{Error, InputField};

    #[test]
    fn initial_response_bytes() {
        let creds = Credentials::password("jörg@example.org", "s3cr3t pw");
        let mut ex = AuthExchange::new(Mechanism::Plain, &creds).unwrap();
        let ir = ex.initial_response().unwrap();
        assert_eq!(decode(&ir), "\0jörg@example.org\0s3cr3t pw".as_bytes());
        assert_eq!(
            ex.initial_response(),
            None,
            "the initial response is handed out once"
        );
    }

    #[test]
    fn known_vector() {
        // RFC 4616 style: "\0tim\0tanstaaftanstaaf".
        let creds = Credentials::password("tim", "tanstaaftanstaaf");
        let mut ex = AuthExchange::new(Mechanism::Plain, &creds).unwrap();
        assert_eq!(
            ex.initial_response().unwrap(),
            b"AHRpbQB0YW5zdGFhZnRhbnN0YWFm".to_vec()
        );
    }

    #[test]
    fn any_challenge_cancels() {
        let creds = Credentials::password("tim", "tanstaaftanstaaf");
        for challenge in [&b""[..], b"   ", b"VXNlcm5hbWU6", b"not base64!"] {
            let mut ex = AuthExchange::new(Mechanism::Plain, &creds).unwrap();
            let _ = ex.initial_response();
            let err = ex.respond(challenge).unwrap_err();
            match &err {
                Error::AuthCancelled {
                    mechanism, reason, ..
                } => {
                    assert_eq!(*mechanism, Mechanism::Plain);
                    assert_eq!(*reason, "unexpected challenge");
                }
                other => panic!("{other:?}"),
            }
            assert_no_secret(&err, "tanstaaftanstaaf");
        }
    }

    #[test]
    fn cancel_prompt_is_the_decoded_challenge() {
        let creds = Credentials::password("tim", "pw");
        let mut ex = AuthExchange::new(Mechanism::Plain, &creds).unwrap();
        let err = ex.respond(b"VXNlcm5hbWU6").unwrap_err();
        assert!(matches!(err, Error::AuthCancelled { ref prompt, .. } if prompt == "Username:"));
    }

    #[test]
    fn nul_in_password_is_refused() {
        let creds = Credentials::password("tim", "bad\0s3cr3t");
        let err = AuthExchange::new(Mechanism::Plain, &creds).unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidInput {
                field: InputField::Secret,
                ..
            }
        ));
        assert_no_secret(&err, "bad\0s3cr3t");
        assert_no_secret(&err, "s3cr3t");
    }

    #[test]
    fn other_controls_in_password_are_allowed() {
        // RFC 4616 SAFE excludes only NUL.
        let creds = Credentials::password("tim", "tab\there");
        let mut ex = AuthExchange::new(Mechanism::Plain, &creds).unwrap();
        assert_eq!(decode(&ex.initial_response().unwrap()), b"\0tim\0tab\there");
    }
}
