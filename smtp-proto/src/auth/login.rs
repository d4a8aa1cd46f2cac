//! `LOGIN` (draft-murchison-sasl-login): the server asks for the user name,
//! then for the password, each in a base64 `334` challenge.
//!
//! No initial response is sent: strict servers answer `535` to a user name
//! inside the `AUTH LOGIN` line.
//!
//! Every challenge is one deterministic transition:
//!
//! | step            | prompt says user name | prompt says password | unrecognised prompt | not base64 |
//! |-----------------|-----------------------|----------------------|---------------------|------------|
//! | first challenge | send user name        | cancel               | send user name      | cancel     |
//! | second          | cancel                | send password        | send password       | cancel     |
//! | third or later  | cancel                | cancel               | cancel              | cancel     |
//!
//! So the password is only ever sent as the answer to the second challenge,
//! after the user name, and never to a challenge that asked for the user name.

use super::{cancel, decode_challenge, encode, escape, NOT_BASE64};
use crate::auth::{Mechanism, Secret};
use crate::error::Error;

/// What a decoded prompt asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prompt {
    Username,
    Password,
    Unknown,
}

/// Where the exchange is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Waiting for the first challenge (user name).
    Username,
    /// The user name was sent; waiting for the password challenge.
    Password,
    /// The password was sent; any further challenge is refused.
    Sent,
    /// The exchange was cancelled; any further challenge is refused.
    Cancelled,
}

pub(super) const PASSWORD_FIRST: &str = "password requested before the user name";
pub(super) const USERNAME_TWICE: &str = "user name requested a second time";
pub(super) const TOO_MANY: &str = "unexpected challenge after the password was sent";
pub(super) const AFTER_CANCEL: &str = "challenge after the exchange was cancelled";

/// A LOGIN exchange.
#[derive(Debug)]
pub(super) struct Login {
    username: String,
    password: Secret,
    step: Step,
}

impl Login {
    pub(super) fn new(username: &str, password: &Secret) -> Login {
        Login {
            username: username.to_owned(),
            password: password.clone(),
            step: Step::Username,
        }
    }

    /// Answers one `334` challenge; see the module documentation for the table.
    pub(super) fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, Error> {
        let decoded = match decode_challenge(challenge) {
            Some(decoded) => decoded,
            None => return Err(self.cancel(escape(challenge), NOT_BASE64)),
        };
        let prompt = classify(&decoded);
        match (self.step, prompt) {
            (Step::Username, Prompt::Username | Prompt::Unknown) => {
                self.step = Step::Password;
                Ok(encode(self.username.as_bytes()))
            }
            (Step::Username, Prompt::Password) => {
                Err(self.cancel(escape(&decoded), PASSWORD_FIRST))
            }
            (Step::Password, Prompt::Password | Prompt::Unknown) => {
                self.step = Step::Sent;
                Ok(encode(self.password.expose().as_bytes()))
            }
            (Step::Password, Prompt::Username) => {
                Err(self.cancel(escape(&decoded), USERNAME_TWICE))
            }
            (Step::Sent, _) => Err(self.cancel(escape(&decoded), TOO_MANY)),
            (Step::Cancelled, _) => Err(self.cancel(escape(&decoded), AFTER_CANCEL)),
        }
    }

    fn cancel(&mut self, prompt: String, reason: &'static str) -> Error {
        self.step = Step::Cancelled;
        cancel(Mechanism::Login, prompt, reason)
    }
}

/// Normalises a decoded prompt and says what it asks for: trim ASCII
/// whitespace and NUL from both ends, drop one trailing colon, trim again,
/// then compare case-insensitively.
fn classify(decoded: &[u8]) -> Prompt {
    let mut text = trim(decoded);
    if let Some(rest) = text.strip_suffix(b":") {
        text = trim(rest);
    }
    let is = |word: &str| text.eq_ignore_ascii_case(word.as_bytes());
    if is("username") || is("user name") || is("user") {
        Prompt::Username
    } else if is("password") || is("pass") {
        Prompt::Password
    } else {
        Prompt::Unknown
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let junk = |b: &u8| b.is_ascii_whitespace() || *b == 0;
    let start = bytes.iter().position(|b| !junk(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !junk(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_no_secret, b64, decode};
    use super::super::AuthExchange;
    use super::*;
    use crate::auth::Credentials;
    use proptest::prelude::*;

    const USER: &str = "alice@example.org";
    const PASS: &str = "correct horse battery staple";

    fn exchange() -> AuthExchange {
        let creds = Credentials::password(USER, PASS);
        AuthExchange::new(Mechanism::Login, &creds).unwrap()
    }

    /// Runs the exchange, returning each decoded response or the error.
    fn run(challenges: &[&[u8]]) -> Vec<Result<Vec<u8>, Error>> {
        let mut ex = exchange();
        assert_eq!(ex.initial_response(), None);
        challenges
            .iter()
            .map(|c| ex.respond(&b64(c)).map(|r| decode(&r)))
            .collect()
    }

    fn cancelled(result: &Result<Vec<u8>, Error>, want_reason: &str, want_prompt: &str) {
        match result {
            Err(
                err @ Error::AuthCancelled {
                    mechanism,
                    prompt,
                    reason,
                },
            ) => {
                assert_eq!(*mechanism, Mechanism::Login);
                assert_eq!(*reason, want_reason);
                assert_eq!(prompt, want_prompt);
                assert_no_secret(err, PASS);
            }
            other => panic!("expected a cancel, got {other:?}"),
        }
    }

    #[test]
    fn no_initial_response() {
        assert_eq!(exchange().initial_response(), None);
        assert_eq!(exchange().mechanism(), &Mechanism::Login);
    }

    #[test]
    fn classify_username_variants() {
        for prompt in [
            &b"Username:"[..],
            b"username",
            b"USER NAME",
            b"User Name\0",
            b"user",
            b"username:",
            b"  Username:  ",
            b"User Name:\0",
            b"\0user\0",
        ] {
            assert_eq!(classify(prompt), Prompt::Username, "{prompt:?}");
        }
    }

    #[test]
    fn classify_password_variants() {
        for prompt in [
            &b"Password:"[..],
            b"pass",
            b"  Password  ",
            b"password:\0",
            b"Password\0",
            b"  PASSWORD  ",
            b"PASS:",
        ] {
            assert_eq!(classify(prompt), Prompt::Password, "{prompt:?}");
        }
    }

    #[test]
    fn classify_unknown() {
        for prompt in [
            &b""[..],
            b":",
            b"Login:",
            b"Benutzername:",
            b"passwort",
            b"user::",
            b"username please",
            b"user-name",
            b"passphrase",
        ] {
            assert_eq!(classify(prompt), Prompt::Unknown, "{prompt:?}");
        }
    }

    #[test]
    fn each_username_prompt_then_password_prompt() {
        let users: [&[u8]; 5] = [
            b"Username:",
            b"username",
            b"USER NAME",
            b"User Name\0",
            b"user",
        ];
        let passes: [&[u8]; 5] = [
            b"Password:",
            b"pass",
            b"  Password  ",
            b"password:\0",
            b"Password\0",
        ];
        for user in users {
            for pass in passes {
                let out = run(&[user, pass]);
                assert_eq!(out[0], Ok(USER.as_bytes().to_vec()), "{user:?}");
                assert_eq!(out[1], Ok(PASS.as_bytes().to_vec()), "{pass:?}");
            }
        }
    }

    #[test]
    fn exchange_server_prompts() {
        // Microsoft Exchange: base64 of "Username:" and "Password:".
        let mut ex = exchange();
        assert_eq!(
            decode(&ex.respond(b"VXNlcm5hbWU6").unwrap()),
            USER.as_bytes()
        );
        assert_eq!(
            decode(&ex.respond(b"UGFzc3dvcmQ6").unwrap()),
            PASS.as_bytes()
        );
    }

    #[test]
    fn aiosmtpd_prompts() {
        let out = run(&[b"User Name\0", b"Password\0"]);
        assert_eq!(out[0], Ok(USER.as_bytes().to_vec()));
        assert_eq!(out[1], Ok(PASS.as_bytes().to_vec()));
    }

    #[test]
    fn unknown_prompts_fall_back_to_position() {
        let out = run(&[b"Login:", b"Secret:"]);
        assert_eq!(out[0], Ok(USER.as_bytes().to_vec()));
        assert_eq!(out[1], Ok(PASS.as_bytes().to_vec()));
    }

    #[test]
    fn unknown_first_then_password() {
        let out = run(&[b"", b"Password:"]);
        assert_eq!(out[0], Ok(USER.as_bytes().to_vec()));
        assert_eq!(out[1], Ok(PASS.as_bytes().to_vec()));
    }

    #[test]
    fn username_then_unknown_second() {
        let out = run(&[b"Username:", b"Kennwort:"]);
        assert_eq!(out[0], Ok(USER.as_bytes().to_vec()));
        assert_eq!(out[1], Ok(PASS.as_bytes().to_vec()));
    }

    #[test]
    fn password_prompt_first_cancels() {
        let out = run(&[b"Password:"]);
        cancelled(&out[0], PASSWORD_FIRST, "Password:");
    }

    #[test]
    fn password_prompt_first_with_nul_cancels() {
        let out = run(&[b"password:\0"]);
        cancelled(&out[0], PASSWORD_FIRST, "password:\\u{0}");
    }

    #[test]
    fn username_prompt_second_cancels() {
        let out = run(&[b"Username:", b"Username:"]);
        assert_eq!(out[0], Ok(USER.as_bytes().to_vec()));
        cancelled(&out[1], USERNAME_TWICE, "Username:");
    }

    #[test]
    fn third_challenge_cancels() {
        let out = run(&[b"Username:", b"Password:", b"Password:"]);
        assert!(out[0].is_ok() && out[1].is_ok());
        cancelled(&out[2], TOO_MANY, "Password:");
    }

    #[test]
    fn third_unknown_challenge_cancels() {
        let out = run(&[b"a", b"b", b""]);
        assert!(out[0].is_ok() && out[1].is_ok());
        cancelled(&out[2], TOO_MANY, "");
    }

    #[test]
    fn invalid_base64_cancels() {
        let mut ex = exchange();
        let result = ex.respond(b"not*base64\x07");
        cancelled(&result, NOT_BASE64, "not*base64\\u{7}");
    }

    #[test]
    fn invalid_base64_second_cancels_without_password() {
        let mut ex = exchange();
        assert!(ex.respond(b"VXNlcm5hbWU6").is_ok());
        let result = ex.respond(b"UGFzc3dvcmQ6!");
        cancelled(&result, NOT_BASE64, "UGFzc3dvcmQ6!");
    }

    #[test]
    fn challenge_after_cancel_still_cancels() {
        let mut ex = exchange();
        assert!(ex.respond(b"UGFzc3dvcmQ6").is_err());
        let result = ex.respond(b"VXNlcm5hbWU6");
        cancelled(&result, AFTER_CANCEL, "Username:");
        let result = ex.respond(b"UGFzc3dvcmQ6");
        cancelled(&result, AFTER_CANCEL, "Password:");
    }

    #[test]
    fn surrounding_whitespace_in_challenge_text_is_tolerated() {
        let mut ex = exchange();
        assert_eq!(
            decode(&ex.respond(b"  VXNlcm5hbWU6 \t").unwrap()),
            USER.as_bytes()
        );
        assert_eq!(
            decode(&ex.respond(b"UGFzc3dvcmQ6\r\n").unwrap()),
            PASS.as_bytes()
        );
    }

    #[test]
    fn unpadded_challenge_is_accepted() {
        // "User" is "VXNlcg==" padded.
        let mut ex = exchange();
        assert_eq!(decode(&ex.respond(b"VXNlcg").unwrap()), USER.as_bytes());
    }

    #[test]
    fn prompt_escapes_control_characters() {
        let out = run(&[b"\tPassword:\r\n"]);
        cancelled(&out[0], PASSWORD_FIRST, "\\tPassword:\\r\\n");
        // Escape sequences are not trimmed: an unknown prompt, answered by position.
        let out = run(&[b"\x1b[31mPassword:"]);
        assert_eq!(out[0], Ok(USER.as_bytes().to_vec()));
        let out = run(&[b"Username:", b"\x1b[2JUsername:", b"\x1b[2J"]);
        cancelled(&out[2], TOO_MANY, "\\u{1b}[2J");
    }

    #[test]
    fn debug_of_exchange_has_no_secret() {
        let ex = exchange();
        let debug = format!("{ex:?}");
        assert!(!debug.contains(PASS), "{debug}");
    }

    proptest! {
        /// Whatever the server sends, the password goes out at most once, only
        /// as the answer to the second challenge after the user name was sent,
        /// and never appears in an error.
        #[test]
        fn password_only_after_username(challenges in proptest::collection::vec(
            prop_oneof![
                Just(b"Username:".to_vec()),
                Just(b"Password:".to_vec()),
                Just(b"User Name\0".to_vec()),
                Just(b"pass".to_vec()),
                proptest::collection::vec(any::<u8>(), 0..12),
            ],
            0..5,
        ), raw in any::<bool>()) {
            let mut ex = exchange();
            let mut sent = Vec::new();
            let mut prompts = Vec::new();
            for (i, c) in challenges.iter().enumerate() {
                let text = if raw && i == 1 { c.clone() } else { b64(c) };
                prompts.push(decode_challenge(&text));
                match ex.respond(&text) {
                    Ok(r) => sent.push(decode(&r)),
                    Err(err) => {
                        assert_no_secret(&err, PASS);
                        sent.push(b"<cancel>".to_vec());
                    }
                }
            }
            for (i, s) in sent.iter().enumerate() {
                if s == PASS.as_bytes() {
                    prop_assert_eq!(i, 1);
                    prop_assert_eq!(&sent[0], USER.as_bytes());
                    let prompt = prompts[1].as_deref().map(classify);
                    prop_assert!(matches!(prompt, Some(Prompt::Password | Prompt::Unknown)));
                }
                if i >= 2 {
                    prop_assert_eq!(s, b"<cancel>");
                }
            }
        }
    }
}
