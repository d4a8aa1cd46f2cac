//! Transcript tests: every decision of the session, one dialogue each.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use smtp_proto::Mechanism;
use smtp_proto::ReplyError;
use smtp_proto::{
    Address, BodyType, ClientSession, Config, Credentials, DsnReturn, EhloName, Envelope, Error,
    Event, InputField, Notify, Outcome, Recipient, Stage, TlsPolicy,
};
use support::*;

const HOST: &str = "smtp.example.com";

fn addr(a: &str) -> Address {
    Address::new(a).unwrap()
}

fn envelope(to: &[&str]) -> Envelope {
    Envelope::new(Some(addr("me@example.com")), to.iter().map(|a| addr(a))).unwrap()
}

fn password() -> Credentials {
    Credentials::password("me@example.com", "s3cret-pw")
}

fn token() -> Credentials {
    Credentials::token("me@example.com", "ya29.token-value")
}

/// Greeting, plaintext EHLO offering STARTTLS, STARTTLS, handshake: the
/// session then sends EHLO again over TLS.
fn starttls_prelude(plain_ehlo: &'static str) -> Vec<Step> {
    vec![
        S("220 smtp.example.com ESMTP"),
        C("EHLO localhost"),
        S(plain_ehlo),
        C("STARTTLS"),
        S("220 2.0.0 SMTP server ready"),
        E(Event::StartTls),
        Tls(HOST),
        C("EHLO localhost"),
    ]
}

fn with(mut prelude: Vec<Step>, rest: Vec<Step>) -> Vec<Step> {
    prelude.extend(rest);
    prelude
}

// ---- the four cases from the review, and the Microsoft 365 origin ----------

#[test]
fn plain_is_preferred_when_offered() {
    let session = run(
        Config::new(HOST).credentials(password()),
        with(
            starttls_prelude("250-smtp.example.com\n250 STARTTLS"),
            vec![
                S("250-smtp.example.com\n250 AUTH LOGIN PLAIN"),
                c(&format!(
                    "AUTH PLAIN {}",
                    b64("\0me@example.com\0s3cret-pw")
                )),
                S("235 2.7.0 Authentication successful"),
                E(Event::Ready),
            ],
        ),
    );
    assert_eq!(session.auth_mechanism(), Some(&Mechanism::Plain));
    assert!(session.is_tls());
}

#[test]
fn microsoft_365_login_fallback_after_starttls() {
    // smtp.office365.com:587: AUTH only after STARTTLS, and only LOGIN and XOAUTH2.
    let session = run(
        Config::new(HOST).credentials(password()),
        with(
            starttls_prelude(
                "250-SN4PR0501CA0056.outlook.office365.com Hello [192.0.2.1]\n250-SIZE 157286400\n250-PIPELINING\n250-DSN\n250-ENHANCEDSTATUSCODES\n250-STARTTLS\n250-8BITMIME\n250-BINARYMIME\n250-CHUNKING\n250 SMTPUTF8",
            ),
            vec![
                S("250-SN4PR0501CA0056.outlook.office365.com Hello [192.0.2.1]\n250-SIZE 157286400\n250-PIPELINING\n250-DSN\n250-ENHANCEDSTATUSCODES\n250-AUTH LOGIN XOAUTH2\n250-8BITMIME\n250-BINARYMIME\n250-CHUNKING\n250 SMTPUTF8"),
                C("AUTH LOGIN"),
                S("334 VXNlcm5hbWU6"),
                c(&b64("me@example.com")),
                S("334 UGFzc3dvcmQ6"),
                c(&b64("s3cret-pw")),
                S("235 2.7.0 Authentication successful"),
                E(Event::Ready),
            ],
        ),
    );
    assert_eq!(session.auth_mechanism(), Some(&Mechanism::Login));
}

#[test]
fn no_auth_advertised_tries_plain() {
    run(
        Config::new(HOST).credentials(password()),
        with(
            starttls_prelude("250-smtp.example.com\n250 STARTTLS"),
            vec![
                S("250-smtp.example.com\n250 8BITMIME"),
                c(&format!(
                    "AUTH PLAIN {}",
                    b64("\0me@example.com\0s3cret-pw")
                )),
                S("235 ok"),
                E(Event::Ready),
            ],
        ),
    );
}

#[test]
fn guard_refuses_credentials_without_tls_to_a_remote_name() {
    let session = run(
        Config::new(HOST)
            .tls(TlsPolicy::Disabled)
            .credentials(password()),
        vec![
            S("220 smtp.example.com ESMTP"),
            C("EHLO localhost"),
            S("250-smtp.example.com\n250 AUTH PLAIN LOGIN"),
            Fails(|e| matches!(e, Error::InsecureAuth) && e.is_security()),
            C("QUIT"),
        ],
    );
    assert!(session.is_closed());
}

#[test]
fn guard_refuses_under_opportunistic_tls_when_starttls_is_missing() {
    run(
        Config::new(HOST)
            .tls(TlsPolicy::Opportunistic)
            .credentials(password()),
        vec![
            S("220 smtp.example.com ESMTP"),
            C("EHLO localhost"),
            S("250-smtp.example.com\n250 AUTH LOGIN"),
            Fails(|e| matches!(e, Error::InsecureAuth)),
            C("QUIT"),
        ],
    );
}

#[test]
fn guard_allows_loopback_names_without_tls() {
    for (name, peer) in [
        ("localhost", "127.0.0.1"),
        ("localhost", "::1"),
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.53", "127.0.0.53"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        // An IPv4 loopback peer seen through a dual-stack socket.
        ("localhost", "::ffff:127.0.0.1"),
    ] {
        run(
            Config::new(name)
                .tls(TlsPolicy::Disabled)
                .credentials(password()),
            vec![
                Peer(peer),
                S("220 localhost ESMTP"),
                C("EHLO localhost"),
                S("250-localhost\n250 AUTH PLAIN"),
                c(&format!(
                    "AUTH PLAIN {}",
                    b64("\0me@example.com\0s3cret-pw")
                )),
                S("235 ok"),
                E(Event::Ready),
            ],
        );
    }
}

#[test]
fn guard_allows_plaintext_only_with_explicit_consent() {
    run(
        Config::new(HOST)
            .tls(TlsPolicy::Disabled)
            .allow_insecure_auth(true)
            .credentials(password()),
        vec![
            S("220 smtp.example.com ESMTP"),
            C("EHLO localhost"),
            S("250-smtp.example.com\n250 AUTH LOGIN"),
            C("AUTH LOGIN"),
            S("334 VXNlcm5hbWU6"),
            c(&b64("me@example.com")),
            S("334 UGFzc3dvcmQ6"),
            c(&b64("s3cret-pw")),
            S("235 ok"),
            E(Event::Ready),
        ],
    );
}

// ---- TLS policy ----------------------------------------------------------

#[test]
fn tls_name_mismatch_fails_before_anything_is_sent() {
    run(
        Config::new(HOST).credentials(password()),
        vec![
            S("220 smtp.example.com ESMTP"),
            C("EHLO localhost"),
            S("250-smtp.example.com\n250 STARTTLS"),
            C("STARTTLS"),
            S("220 go ahead"),
            E(Event::StartTls),
            Tls("evil.example.net"),
            Fails(|e| {
                matches!(e, Error::TlsNameMismatch { expected, verified }
                    if expected == HOST && verified == "evil.example.net")
            }),
        ],
    );
}

#[test]
fn tls_name_match_ignores_case_and_trailing_dot() {
    run(
        Config::new(HOST),
        vec![
            S("220 smtp.example.com ESMTP"),
            C("EHLO localhost"),
            S("250-smtp.example.com\n250 STARTTLS"),
            C("STARTTLS"),
            S("220 go ahead"),
            E(Event::StartTls),
            Tls("SMTP.Example.COM."),
            C("EHLO localhost"),
            S("250 smtp.example.com"),
            E(Event::Ready),
        ],
    );
}

#[test]
fn starttls_required_but_not_advertised() {
    run(
        Config::new(HOST).credentials(password()),
        vec![
            S("220 smtp.example.com ESMTP"),
            C("EHLO localhost"),
            S("250-smtp.example.com\n250-AUTH PLAIN LOGIN\n250 PIPELINING"),
            Fails(|e| matches!(e, Error::TlsRequired { reply: None }) && e.is_security()),
            C("QUIT"),
        ],
    );
}

#[test]
fn starttls_required_but_refused() {
    run(
        Config::new(HOST).credentials(password()),
        vec![
            S("220 smtp.example.com ESMTP"),
            C("EHLO localhost"),
            S("250-smtp.example.com\n250 STARTTLS"),
            C("STARTTLS"),
            S("454 4.7.0 TLS not available due to temporary reason"),
            Fails(|e| matches!(e, Error::TlsRequired { reply: Some(r) } if r.code().get() == 454)),
            C("QUIT"),
        ],
    );
}

#[test]
fn starttls_keyword_must_be_exact() {
    run(
        Config::new(HOST),
        vec![
            S("220 smtp.example.com ESMTP"),
            C("EHLO localhost"),
            S("250-smtp.example.com\n250-XSTARTTLS\n250 STARTTLS-LATER"),
            Fails(|e| matches!(e, Error::TlsRequired { reply: None })),
            C("QUIT"),
        ],
    );
}

#[test]
fn opportunistic_continues_in_plaintext_without_starttls() {
    let session = run(
        Config::new(HOST).tls(TlsPolicy::Opportunistic),
        vec![
            S("220 smtp.example.com ESMTP"),
            C("EHLO localhost"),
            S("250 smtp.example.com"),
            E(Event::Ready),
        ],
    );
    assert!(!session.is_tls());
}

#[test]
fn opportunistic_continues_in_plaintext_when_starttls_is_refused() {
    run(
        Config::new(HOST).tls(TlsPolicy::Opportunistic),
        vec![
            S("220 smtp.example.com ESMTP"),
            C("EHLO localhost"),
            S("250-smtp.example.com\n250 STARTTLS"),
            C("STARTTLS"),
            S("454 4.7.0 not now"),
            E(Event::Ready),
        ],
    );
}

#[test]
fn opportunistic_upgrades_when_offered() {
    let session = run(
        Config::new(HOST).tls(TlsPolicy::Opportunistic),
        with(
            starttls_prelude("250-smtp.example.com\n250 STARTTLS"),
            vec![S("250 smtp.example.com"), E(Event::Ready)],
        ),
    );
    assert!(session.is_tls());
}

#[test]
fn disabled_never_sends_starttls() {
    run(
        Config::new(HOST).tls(TlsPolicy::Disabled),
        vec![
            S("220 smtp.example.com ESMTP"),
            C("EHLO localhost"),
            S("250-smtp.example.com\n250 STARTTLS"),
            E(Event::Ready),
        ],
    );
}

#[test]
fn implicit_tls_handshakes_before_the_greeting() {
    let mut session = ClientSession::new(
        Config::new(HOST)
            .tls(TlsPolicy::Implicit)
            .credentials(password()),
    )
    .unwrap();
    assert_eq!(session.stage(), Some(Stage::TlsHandshake));
    assert!(!session.wants_input());
    run_on(
        &mut session,
        vec![
            E(Event::StartTls),
            Tls(HOST),
            S("220 smtp.example.com ESMTP"),
            C("EHLO localhost"),
            S("250-smtp.example.com\n250 AUTH PLAIN"),
            c(&format!(
                "AUTH PLAIN {}",
                b64("\0me@example.com\0s3cret-pw")
            )),
            S("235 ok"),
            E(Event::Ready),
        ],
    );
    assert!(session.is_tls());
}

#[test]
fn plaintext_injected_after_the_starttls_220_is_refused() {
    // The same packet carries the 220 and a forged EHLO reply.
    run(
        Config::new(HOST).credentials(password()),
        vec![
            S("220 smtp.example.com ESMTP"),
            C("EHLO localhost"),
            S("250-smtp.example.com\n250 STARTTLS"),
            C("STARTTLS"),
            S("220 go ahead\n250-evil\n250 AUTH PLAIN"),
            // No StartTls event survives the failure: no handshake with an attacker.
            Fails(|e| matches!(e, Error::StartTlsInjection) && e.is_security()),
        ],
    );
}

#[test]
fn plaintext_arriving_after_the_220_but_before_the_handshake_is_refused() {
    let mut session = run(
        Config::new(HOST),
        vec![
            S("220 smtp.example.com ESMTP"),
            C("EHLO localhost"),
            S("250-smtp.example.com\n250 STARTTLS"),
            C("STARTTLS"),
            S("220 go ahead"),
            E(Event::StartTls),
        ],
    );
    let err = session.handle_input(b"250 OK\r\n").unwrap_err();
    assert!(matches!(err, Error::StartTlsInjection));
    assert!(
        session.pending_output().is_empty(),
        "no QUIT to an attacker"
    );
    // The session stays failed: the handshake may not go on.
    assert!(session.tls_established(HOST).is_err());
}

#[test]
fn pre_tls_capabilities_are_forgotten() {
    // Plaintext EHLO offers PLAIN and PIPELINING; over TLS only LOGIN.
    let session = run(
        Config::new(HOST).credentials(password()),
        with(
            starttls_prelude(
                "250-smtp.example.com\n250-AUTH PLAIN\n250-PIPELINING\n250-SIZE 10\n250 STARTTLS",
            ),
            vec![
                S("250-smtp.example.com\n250 AUTH LOGIN"),
                C("AUTH LOGIN"),
                S("334 VXNlcm5hbWU6"),
                c(&b64("me@example.com")),
                S("334 UGFzc3dvcmQ6"),
                c(&b64("s3cret-pw")),
                S("235 ok"),
                E(Event::Ready),
                // No PIPELINING over TLS: one command at a time, no SIZE limit.
                Mail(envelope(&["a@example.org"]).size(1000)),
                C("MAIL FROM:<me@example.com>"),
                S("250 ok"),
                C("RCPT TO:<a@example.org>"),
                S("250 ok"),
                C("DATA"),
                S("354 go"),
                E(Event::SendBody),
                Body(b"hi"),
                c("hi\n."),
                S("250 queued"),
                Done(|r| r.is_ok()),
                E(Event::Ready),
            ],
        ),
    );
    assert!(!session.capabilities().supports_auth(&Mechanism::Plain));
    assert!(!session.capabilities().starttls());
}

/// The lines of a reply after the first, as text.
fn keyword_lines(reply: Option<&smtp_proto::Reply>) -> Option<Vec<String>> {
    reply.map(|r| {
        r.lines()
            .skip(1)
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    })
}

#[test]
fn greeting_ehlo_replies_and_auth_reply_are_kept_for_the_caller() {
    // The keyword lines are kept as sent (spacing, case, a repeated AUTH),
    // before and after STARTTLS; the session uses only the ones over TLS.
    let mut session = ClientSession::new(Config::new(HOST).credentials(password())).unwrap();
    assert!(session.greeting().is_none() && session.ehlo_reply().is_none());
    run_on(
        &mut session,
        vec![
            S("220 smtp.example.com ESMTP ready"),
            C("EHLO localhost"),
            S("250-smtp.example.com hi\n250-size  100\n250-AUTH PLAIN\n250 STARTTLS"),
            C("STARTTLS"),
            S("220 2.0.0 go"),
            E(Event::StartTls),
        ],
    );
    assert_eq!(
        keyword_lines(session.ehlo_reply()).unwrap(),
        ["size  100", "AUTH PLAIN", "STARTTLS"]
    );
    assert!(session.ehlo_reply_before_tls().is_none());
    run_on(
        &mut session,
        vec![
            Tls(HOST),
            C("EHLO localhost"),
            S("250-smtp.example.com\n250-AUTH LOGIN\n250 auth=LOGIN XOAUTH2"),
            C("AUTH LOGIN"),
            S("334 VXNlcm5hbWU6"),
            c(&b64("me@example.com")),
            S("334 UGFzc3dvcmQ6"),
            c(&b64("s3cret-pw")),
            S("235 2.7.0 welcome"),
            E(Event::Ready),
        ],
    );
    let greeting = session.greeting().unwrap();
    assert_eq!(greeting.code().get(), 220);
    assert_eq!(greeting.message(), b"smtp.example.com ESMTP ready");
    assert_eq!(
        keyword_lines(session.ehlo_reply_before_tls()).unwrap(),
        ["size  100", "AUTH PLAIN", "STARTTLS"]
    );
    assert_eq!(
        keyword_lines(session.ehlo_reply()).unwrap(),
        ["AUTH LOGIN", "auth=LOGIN XOAUTH2"]
    );
    assert_eq!(
        session.capabilities().auth_mechanisms(),
        [Mechanism::Login, Mechanism::XOAuth2]
    );
    assert_eq!(session.auth_reply().unwrap().code().get(), 235);
}

#[test]
fn kept_replies_with_implicit_tls_helo_and_refusals() {
    // Implicit TLS: the greeting and EHLO over TLS, nothing before TLS;
    // a refused AUTH is kept, a challenge is not.
    let mut session = ClientSession::new(
        Config::new(HOST)
            .tls(TlsPolicy::Implicit)
            .credentials(password()),
    )
    .unwrap();
    run_on(
        &mut session,
        vec![
            E(Event::StartTls),
            Tls(HOST),
            S("220 smtp.example.com ESMTP"),
            C("EHLO localhost"),
            S("250-smtp.example.com\n250 AUTH LOGIN"),
            C("AUTH LOGIN"),
            S("334 VXNlcm5hbWU6"),
            c(&b64("me@example.com")),
            S("334 UGFzc3dvcmQ6"),
            c(&b64("s3cret-pw")),
            S("535 5.7.8 bad credentials"),
            Fails(|e| matches!(e, Error::AuthFailed { .. })),
            C("QUIT"),
        ],
    );
    assert_eq!(session.greeting().unwrap().code().get(), 220);
    assert!(session.ehlo_reply_before_tls().is_none());
    assert_eq!(keyword_lines(session.ehlo_reply()).unwrap(), ["AUTH LOGIN"]);
    assert_eq!(session.auth_reply().unwrap().code().get(), 535);

    // HELO after a refused EHLO advertises nothing: no EHLO reply.
    let session = run(
        Config::new(HOST).tls(TlsPolicy::Disabled),
        vec![
            S("220 old.example.com SMTP"),
            C("EHLO localhost"),
            S("502 no"),
            C("HELO localhost"),
            S("250 old.example.com"),
            E(Event::Ready),
        ],
    );
    assert!(session.ehlo_reply().is_none() && session.ehlo_reply_before_tls().is_none());
    assert!(session.auth_reply().is_none());

    // A refused greeting (421 included) is kept.
    for greeting in ["421 4.3.2 busy", "554 5.7.1 go away"] {
        let mut session = ClientSession::new(Config::new(HOST)).unwrap();
        assert!(session.handle_input(&crlf(greeting)).is_err());
        assert_eq!(
            session.greeting().unwrap().as_bytes(),
            crlf(greeting).as_slice()
        );
        assert!(session.ehlo_reply().is_none());
    }
}

// ---- greeting, EHLO, HELO ----------------------------------------------------

#[test]
fn greeting_rejection_carries_the_reply_and_quits() {
    run(
        Config::new(HOST),
        vec![
            S("554-smtp.example.com no service for you\n554 5.7.1 go away"),
            Fails(|e| {
                matches!(e, Error::Rejected { stage: Stage::Greeting, reply }
                    if reply.code().get() == 554 && reply.lines().count() == 2)
                    && !e.is_transient()
            }),
            C("QUIT"),
        ],
    );
}

#[test]
fn greeting_421_is_transient_without_quit() {
    run(
        Config::new(HOST),
        vec![
            S("421 4.3.2 Service not available"),
            Fails(|e| {
                matches!(
                    e,
                    Error::ServiceClosing {
                        stage: Stage::Greeting,
                        ..
                    }
                ) && e.is_transient()
            }),
        ],
    );
}

#[test]
fn helo_fallback_when_ehlo_is_unknown() {
    for code in ["500 5.5.1 command unrecognized", "502 not implemented"] {
        let session = run(
            Config::new(HOST).tls(TlsPolicy::Disabled),
            vec![
                S("220 old.example.com SMTP"),
                C("EHLO localhost"),
                s(code),
                C("HELO localhost"),
                S("250 old.example.com"),
                E(Event::Ready),
                Mail(envelope(&["a@example.org"])),
                C("MAIL FROM:<me@example.com>"),
                S("250 ok"),
                C("RCPT TO:<a@example.org>"),
                S("250 ok"),
                C("DATA"),
                S("354 go"),
                E(Event::SendBody),
                Body(b"x\r\n"),
                c("x\n."),
                S("250 ok"),
                Done(|r| r.is_ok()),
                E(Event::Ready),
            ],
        );
        assert_eq!(session.capabilities().extensions().count(), 0);
    }
}

#[test]
fn helo_fallback_has_no_starttls_so_required_fails() {
    run(
        Config::new(HOST),
        vec![
            S("220 old.example.com SMTP"),
            C("EHLO localhost"),
            S("502 no"),
            C("HELO localhost"),
            S("250 old.example.com"),
            Fails(|e| matches!(e, Error::TlsRequired { reply: None })),
            C("QUIT"),
        ],
    );
}

#[test]
fn ehlo_refused_otherwise_is_an_error() {
    run(
        Config::new(HOST),
        vec![
            S("220 smtp.example.com"),
            C("EHLO localhost"),
            S("550 5.7.1 go away"),
            Fails(|e| {
                matches!(
                    e,
                    Error::Rejected {
                        stage: Stage::Ehlo,
                        ..
                    }
                )
            }),
            C("QUIT"),
        ],
    );
}

#[test]
fn custom_ehlo_name_is_sent() {
    run(
        Config::new(HOST)
            .tls(TlsPolicy::Disabled)
            .ehlo_name(EhloName::new("client.example.net").unwrap()),
        vec![
            S("220 smtp.example.com"),
            C("EHLO client.example.net"),
            S("250 smtp.example.com"),
            E(Event::Ready),
        ],
    );
}

#[test]
fn invalid_configuration_is_refused_before_anything_is_written() {
    assert!(EhloName::new("host\r\nMAIL FROM:<x>").is_err());
    let err = ClientSession::new(
        Config::new(HOST).credentials(Credentials::password("me\r\nQUIT", "pw")),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidInput {
            field: InputField::Username,
            ..
        }
    ));
    for bad in ["", "smtp.example.com\r\n", "smtp example.com", "a\0b"] {
        let err = ClientSession::new(Config::new(bad)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidInput {
                    field: InputField::ServerName,
                    ..
                }
            ),
            "{bad:?}"
        );
    }
}

// ---- AUTH ------------------------------------------------------------------------

/// A plaintext-to-loopback prelude: greeting and EHLO with the given capabilities.
fn local(ehlo: &'static str) -> Vec<Step> {
    vec![
        Peer("127.0.0.1"),
        S("220 localhost ESMTP"),
        C("EHLO localhost"),
        S(ehlo),
    ]
}

fn local_config(credentials: Credentials) -> Config {
    Config::new("localhost")
        .tls(TlsPolicy::Disabled)
        .credentials(credentials)
}

#[test]
fn login_prompt_variants() {
    let users = [
        "Username:",
        "username",
        "USER NAME",
        "User Name\0",
        "user",
        " username: ",
    ];
    let passwords = [
        "Password:",
        "password",
        "PASS",
        "Password\0",
        "  Password  ",
        "password:\0",
    ];
    for (user, pass) in users.iter().zip(passwords.iter()) {
        run(
            local_config(password()),
            with(
                local("250-localhost\n250 AUTH LOGIN"),
                vec![
                    C("AUTH LOGIN"),
                    s(&format!("334 {}", b64(user))),
                    c(&b64("me@example.com")),
                    s(&format!("334 {}", b64(pass))),
                    c(&b64("s3cret-pw")),
                    S("235 ok"),
                    E(Event::Ready),
                ],
            ),
        );
    }
}

#[test]
fn login_unknown_prompts_fall_back_to_position() {
    run(
        local_config(password()),
        with(
            local("250-localhost\n250 AUTH LOGIN"),
            vec![
                C("AUTH LOGIN"),
                s(&format!("334 {}", b64("Benutzername"))),
                c(&b64("me@example.com")),
                s(&format!("334 {}", b64("Kennwort"))),
                c(&b64("s3cret-pw")),
                S("235 ok"),
                E(Event::Ready),
            ],
        ),
    );
    // An empty challenge is unknown too.
    run(
        local_config(password()),
        with(
            local("250-localhost\n250 AUTH LOGIN"),
            vec![
                C("AUTH LOGIN"),
                S("334 "),
                c(&b64("me@example.com")),
                S("334"),
                c(&b64("s3cret-pw")),
                S("235 ok"),
                E(Event::Ready),
            ],
        ),
    );
}

#[test]
fn login_password_prompt_first_cancels_without_the_secret() {
    run(
        local_config(password()),
        with(
            local("250-localhost\n250 AUTH LOGIN"),
            vec![
                C("AUTH LOGIN"),
                S("334 UGFzc3dvcmQ6"),
                Fails(
                    |e| matches!(e, Error::AuthCancelled { prompt, .. } if prompt == "Password:"),
                ),
                C("*\nQUIT"),
            ],
        ),
    );
}

#[test]
fn login_username_prompt_second_cancels() {
    run(
        local_config(password()),
        with(
            local("250-localhost\n250 AUTH LOGIN"),
            vec![
                C("AUTH LOGIN"),
                S("334 VXNlcm5hbWU6"),
                c(&b64("me@example.com")),
                S("334 VXNlcm5hbWU6"),
                Fails(|e| matches!(e, Error::AuthCancelled { .. })),
                C("*\nQUIT"),
            ],
        ),
    );
}

#[test]
fn login_third_challenge_and_bad_base64_cancel() {
    run(
        local_config(password()),
        with(
            local("250-localhost\n250 AUTH LOGIN"),
            vec![
                C("AUTH LOGIN"),
                S("334 VXNlcm5hbWU6"),
                c(&b64("me@example.com")),
                S("334 UGFzc3dvcmQ6"),
                c(&b64("s3cret-pw")),
                S("334 VXNlcm5hbWU6"),
                Fails(|e| matches!(e, Error::AuthCancelled { .. })),
                C("*\nQUIT"),
            ],
        ),
    );
    run(
        local_config(password()),
        with(
            local("250-localhost\n250 AUTH LOGIN"),
            vec![
                C("AUTH LOGIN"),
                S("334 !!!not base64!!!"),
                Fails(|e| matches!(e, Error::AuthCancelled { .. })),
                C("*\nQUIT"),
            ],
        ),
    );
}

#[test]
fn auth_rejected_credentials() {
    run(
        local_config(password()),
        with(
            local("250-localhost\n250 AUTH PLAIN"),
            vec![
                c(&format!(
                    "AUTH PLAIN {}",
                    b64("\0me@example.com\0s3cret-pw")
                )),
                S("535 5.7.8 Authentication credentials invalid"),
                Fails(|e| {
                    matches!(
                        e,
                        Error::AuthFailed {
                            mechanism: Mechanism::Plain,
                            ..
                        }
                    ) && e.is_auth_rejected()
                        && !e.is_transient()
                }),
                C("QUIT"),
            ],
        ),
    );
}

#[test]
fn auth_temporary_failure_is_transient() {
    run(
        local_config(password()),
        with(
            local("250-localhost\n250 AUTH PLAIN"),
            vec![
                c(&format!(
                    "AUTH PLAIN {}",
                    b64("\0me@example.com\0s3cret-pw")
                )),
                S("454 4.7.0 Temporary authentication failure"),
                Fails(|e| e.is_transient() && !e.is_auth_rejected()),
                C("QUIT"),
            ],
        ),
    );
}

#[test]
fn no_usable_mechanism_lists_the_offer() {
    run(
        local_config(password()),
        with(
            local("250-localhost\n250 AUTH XPLAIN LOGIN-MD5"),
            vec![
                Fails(|e| {
                    matches!(e, Error::AuthUnavailable { offered } if offered.len() == 2)
                        && e.to_string().contains("XPLAIN LOGIN-MD5")
                }),
                C("QUIT"),
            ],
        ),
    );
}

#[test]
fn explicit_mechanism_is_used() {
    run(
        local_config(password()).mechanism(Mechanism::Login),
        with(
            local("250-localhost\n250 AUTH PLAIN LOGIN"),
            vec![
                C("AUTH LOGIN"),
                S("334 VXNlcm5hbWU6"),
                c(&b64("me@example.com")),
                S("334 UGFzc3dvcmQ6"),
                c(&b64("s3cret-pw")),
                S("235 ok"),
                E(Event::Ready),
            ],
        ),
    );
}

#[test]
fn xoauth2_with_a_token() {
    let session = run(
        local_config(token()),
        with(
            local("250-localhost\n250 AUTH LOGIN XOAUTH2"),
            vec![
                c(&format!(
                    "AUTH XOAUTH2 {}",
                    b64("user=me@example.com\x01auth=Bearer ya29.token-value\x01\x01")
                )),
                S("235 2.7.0 Accepted"),
                E(Event::Ready),
            ],
        ),
    );
    assert_eq!(session.auth_mechanism(), Some(&Mechanism::XOAuth2));
}

#[test]
fn xoauth2_error_challenge_is_answered_empty_and_reported() {
    let detail = r#"{"status":"401","schemes":"Bearer","scope":"https://mail.google.com/"}"#;
    run(
        local_config(token()),
        with(
            local("250-localhost\n250 AUTH XOAUTH2"),
            vec![
                c(&format!(
                    "AUTH XOAUTH2 {}",
                    b64("user=me@example.com\x01auth=Bearer ya29.token-value\x01\x01")
                )),
                s(&format!("334 {}", b64(detail))),
                CRaw(b"\r\n".to_vec()),
                S("535 5.7.8 Username and Password not accepted"),
                Fails(
                    |e| matches!(e, Error::AuthFailed { detail: Some(d), .. } if d.contains("\"status\":\"401\"")),
                ),
                C("QUIT"),
            ],
        ),
    );
}

#[test]
fn oauthbearer_when_xoauth2_is_not_offered() {
    run(
        local_config(token()),
        with(
            local("250-localhost\n250 AUTH OAUTHBEARER"),
            vec![
                c(&format!(
                    "AUTH OAUTHBEARER {}",
                    b64("n,a=me@example.com,\x01auth=Bearer ya29.token-value\x01\x01")
                )),
                s(&format!("334 {}", b64(r#"{"status":"invalid_token"}"#))),
                c("AQ=="),
                S("535 5.7.8 nope"),
                Fails(|e| {
                    matches!(
                        e,
                        Error::AuthFailed {
                            mechanism: Mechanism::OAuthBearer,
                            detail: Some(_),
                            ..
                        }
                    )
                }),
                C("QUIT"),
            ],
        ),
    );
}

// ---- the transcript and secrets -------------------------------------------------

#[test]
fn transcript_redacts_every_auth_payload() {
    let mut session = run(
        Config::new(HOST).credentials(password()).transcript(true),
        with(
            starttls_prelude("250-smtp.example.com\n250 STARTTLS"),
            vec![
                S("250-smtp.example.com\n250 AUTH LOGIN"),
                C("AUTH LOGIN"),
                S("334 VXNlcm5hbWU6"),
                c(&b64("me@example.com")),
                S("334 UGFzc3dvcmQ6"),
                c(&b64("s3cret-pw")),
                S("235 ok"),
                E(Event::Ready),
            ],
        ),
    );
    let lines: Vec<String> = session
        .take_transcript()
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert_eq!(
        lines,
        [
            "S: 220 smtp.example.com ESMTP",
            "C: EHLO localhost",
            "S: 250-smtp.example.com",
            "S: 250 STARTTLS",
            "C: STARTTLS",
            "S: 220 2.0.0 SMTP server ready",
            "C: EHLO localhost",
            "S: 250-smtp.example.com",
            "S: 250 AUTH LOGIN",
            "C: AUTH LOGIN",
            "S: 334 VXNlcm5hbWU6",
            "C: <redacted>",
            "S: 334 UGFzc3dvcmQ6",
            "C: <redacted>",
            "S: 235 ok",
        ]
    );
    let all = format!("{session:?} {:?}", session.config());
    assert!(
        !all.contains("s3cret-pw") && !all.contains(&b64("s3cret-pw")),
        "{all}"
    );
}

#[test]
fn transcript_redacts_initial_responses() {
    let mut session = run(
        local_config(password()).transcript(true),
        with(
            local("250-localhost\n250 AUTH PLAIN"),
            vec![
                c(&format!(
                    "AUTH PLAIN {}",
                    b64("\0me@example.com\0s3cret-pw")
                )),
                S("235 ok"),
                E(Event::Ready),
            ],
        ),
    );
    let text: String = session
        .take_transcript()
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(text.contains("C: AUTH PLAIN <redacted>\n"), "{text}");
    assert!(!text.contains(&b64("\0me@example.com\0s3cret-pw")));
}

// ---- envelopes -----------------------------------------------------------------

fn ready_local(ehlo: &'static str) -> ClientSession {
    run(
        Config::new("localhost").tls(TlsPolicy::Disabled),
        vec![
            S("220 localhost ESMTP"),
            C("EHLO localhost"),
            S(ehlo),
            E(Event::Ready),
        ],
    )
}

#[test]
fn address_injection_is_impossible_to_build() {
    for bad in ["a@b>\r\nRCPT TO:<c@d", "a@b\nx", "a\0@b", "a@b\x7f"] {
        assert!(matches!(
            Address::new(bad),
            Err(smtp_proto::InvalidInput {
                field: InputField::Address,
                ..
            })
        ));
    }
    assert!(Envelope::new(None, Vec::<Address>::new()).is_err());
    assert!(Envelope::new(None, [addr("a@b")])
        .unwrap()
        .envelope_id("x\r\ny")
        .is_err());
    assert!(Recipient::new(addr("a@b"))
        .original_recipient("a@b\r\n")
        .is_err());
}

#[test]
fn null_reverse_path() {
    let mut session = ready_local("250-localhost\n250 PIPELINING");
    run_on(
        &mut session,
        vec![
            Mail(Envelope::new(None, [addr("a@example.org")]).unwrap()),
            C("MAIL FROM:<>\nRCPT TO:<a@example.org>\nDATA"),
        ],
    );
}

#[test]
fn smtputf8_is_sent_when_advertised_and_required_otherwise() {
    let mut session = ready_local("250-localhost\n250 SMTPUTF8");
    run_on(
        &mut session,
        vec![
            Mail(
                Envelope::new(Some(addr("jörg@bücher.example")), [addr("a@example.org")]).unwrap(),
            ),
            c("MAIL FROM:<jörg@bücher.example> SMTPUTF8"),
        ],
    );
    let mut session = ready_local("250 localhost");
    let err = session
        .send_mail(Envelope::new(None, [addr("jörg@bücher.example")]).unwrap())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ExtensionRequired {
                extension: "SMTPUTF8",
                ..
            }
        ) && err.is_input()
    );
    assert!(session.pending_output().is_empty());
    assert!(
        session.is_ready(),
        "a refused envelope leaves the session usable"
    );
}

#[test]
fn size_is_declared_and_enforced() {
    let mut session = ready_local("250-localhost\n250 SIZE 1000");
    let err = session
        .send_mail(envelope(&["a@example.org"]).size(1001))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::MessageTooLarge {
            size: 1001,
            limit: 1000
        }
    ));
    assert!(session.pending_output().is_empty());
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"]).size(1000)),
            C("MAIL FROM:<me@example.com> SIZE=1000"),
        ],
    );
    // SIZE without a limit: declared, never refused.
    let mut session = ready_local("250-localhost\n250 SIZE");
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"]).size(1 << 40)),
            C("MAIL FROM:<me@example.com> SIZE=1099511627776"),
        ],
    );
    // No SIZE: nothing declared.
    let mut session = ready_local("250 localhost");
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"]).size(5)),
            C("MAIL FROM:<me@example.com>"),
        ],
    );
}

#[test]
fn eight_bit_body_and_dsn_parameters() {
    let mut session = ready_local("250-localhost\n250-8BITMIME\n250-DSN\n250 PIPELINING");
    let to = Recipient::new(addr("a@example.org"))
        .notify(Notify {
            success: true,
            failure: true,
            delay: false,
        })
        .original_recipient("a+b=c@example.org")
        .unwrap();
    let never = Recipient::new(addr("b@example.org")).notify(Notify::NEVER);
    let env = Envelope::new(Some(addr("me@example.com")), [to, never])
        .unwrap()
        .body(BodyType::EightBitMime)
        .dsn_return(DsnReturn::Headers)
        .envelope_id("id 1")
        .unwrap();
    run_on(
        &mut session,
        vec![
            Mail(env),
            C("MAIL FROM:<me@example.com> BODY=8BITMIME RET=HDRS ENVID=id+201\nRCPT TO:<a@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+2Bb+3Dc@example.org\nRCPT TO:<b@example.org> NOTIFY=NEVER\nDATA"),
        ],
    );
    let mut session = ready_local("250 localhost");
    let err = session
        .send_mail(envelope(&["a@example.org"]).body(BodyType::EightBitMime))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::ExtensionRequired {
            extension: "8BITMIME",
            ..
        }
    ));
    let err = session
        .send_mail(envelope(&["a@example.org"]).dsn_return(DsnReturn::Full))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::ExtensionRequired {
            extension: "DSN",
            ..
        }
    ));
    assert!(session.pending_output().is_empty());
}

// ---- transactions ----------------------------------------------------------------

#[test]
fn some_recipients_refused_the_rest_still_get_it() {
    let mut session = ready_local("250 localhost");
    run_on(
        &mut session,
        vec![
            Mail(envelope(&[
                "a@example.org",
                "b@example.org",
                "c@example.org",
            ])),
            C("MAIL FROM:<me@example.com>"),
            S("250 2.1.0 ok"),
            C("RCPT TO:<a@example.org>"),
            S("550 5.1.1 no such user"),
            C("RCPT TO:<b@example.org>"),
            S("250 2.1.5 ok"),
            C("RCPT TO:<c@example.org>"),
            S("451 4.7.1 greylisted"),
            C("DATA"),
            S("354 go"),
            E(Event::SendBody),
            Body(b"hello"),
            c("hello\n."),
            S("250 2.0.0 Ok: queued as 4F2A1"),
            Done(|r| {
                let d = r.as_ref().unwrap();
                let accepted: Vec<bool> = d.recipients().iter().map(|r| r.accepted()).collect();
                accepted == [false, true, false]
                    && d.rejected().count() == 2
                    && d.reply().message().ends_with(b"4F2A1")
            }),
            E(Event::Ready),
        ],
    );
}

#[test]
fn every_recipient_refused_means_no_data_and_rset() {
    let mut session = ready_local("250 localhost");
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org", "b@example.org"])),
            C("MAIL FROM:<me@example.com>"),
            S("250 ok"),
            C("RCPT TO:<a@example.org>"),
            S("550 no"),
            C("RCPT TO:<b@example.org>"),
            S("450 later"),
            C("RSET"),
            S("250 reset"),
            // One transient refusal and one permanent: not transient as a whole.
            Done(|r| {
                matches!(r, Err(e @ Error::RecipientsRejected { recipients })
                    if recipients.len() == 2
                        && !recipients[0].accepted()
                        && !recipients[1].accepted()
                        && !e.is_transient())
            }),
            E(Event::Ready),
        ],
    );
    // Every refusal transient: transient as a whole, and still no DATA.
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org", "b@example.org"])),
            C("MAIL FROM:<me@example.com>"),
            S("250 ok"),
            C("RCPT TO:<a@example.org>"),
            S("451 later"),
            C("RCPT TO:<b@example.org>"),
            S("450 later"),
            C("RSET"),
            S("250 reset"),
            Done(|r| {
                matches!(r, Err(e @ Error::RecipientsRejected { recipients })
                    if recipients.len() == 2 && e.is_transient())
            }),
            E(Event::Ready),
        ],
    );
}

#[test]
fn mail_refused_then_rset() {
    let mut session = ready_local("250 localhost");
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"])),
            C("MAIL FROM:<me@example.com>"),
            S("553 5.7.1 sender rejected"),
            C("RSET"),
            S("250 ok"),
            Done(|r| {
                matches!(
                    r,
                    Err(Error::Rejected {
                        stage: Stage::Mail,
                        ..
                    })
                )
            }),
            E(Event::Ready),
        ],
    );
}

#[test]
fn pipelined_batch_and_replies_in_order() {
    let mut session = ready_local("250-localhost\n250 PIPELINING");
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org", "b@example.org"])),
            C("MAIL FROM:<me@example.com>\nRCPT TO:<a@example.org>\nRCPT TO:<b@example.org>\nDATA"),
            S("250 ok\n250 ok\n550 no such user\n354 go"),
            E(Event::SendBody),
            Body(b".leading dot\n"),
            c("..leading dot\n."),
            S("250 queued"),
            Done(|r| r.as_ref().is_ok_and(|d| d.rejected().count() == 1)),
            E(Event::Ready),
        ],
    );
}

#[test]
fn pipelined_every_recipient_refused_but_data_accepted() {
    // RFC 2920: DATA went out with the batch; 354 must be answered with the
    // terminator, and nothing is delivered.
    let mut session = ready_local("250-localhost\n250 PIPELINING");
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"])),
            C("MAIL FROM:<me@example.com>\nRCPT TO:<a@example.org>\nDATA"),
            S("250 ok\n550 no such user\n354 go"),
            C("."),
            S("554 5.5.1 no valid recipients"),
            Done(|r| matches!(r, Err(Error::RecipientsRejected { .. }))),
            E(Event::Ready),
        ],
    );
}

#[test]
fn pipelined_data_refused_then_rset() {
    let mut session = ready_local("250-localhost\n250 PIPELINING");
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"])),
            C("MAIL FROM:<me@example.com>\nRCPT TO:<a@example.org>\nDATA"),
            S("250 ok\n550 no\n554 5.5.1 no valid recipients"),
            C("RSET"),
            S("250 ok"),
            Done(|r| matches!(r, Err(Error::RecipientsRejected { .. }))),
            E(Event::Ready),
            Mail(envelope(&["a@example.org"])),
            C("MAIL FROM:<me@example.com>\nRCPT TO:<a@example.org>\nDATA"),
            S("250 ok\n250 ok\n451 4.3.0 try later"),
            C("RSET"),
            S("250 ok"),
            Done(
                |r| matches!(r, Err(e @ Error::MessageRejected { stage: Stage::Data, recipients, .. }) if e.is_transient() && recipients.len() == 1),
            ),
            E(Event::Ready),
        ],
    );
}

#[test]
fn message_refused_after_data_needs_no_rset() {
    let mut session = ready_local("250 localhost");
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"])),
            C("MAIL FROM:<me@example.com>"),
            S("250 ok"),
            C("RCPT TO:<a@example.org>"),
            S("250 ok"),
            C("DATA"),
            S("354 go"),
            E(Event::SendBody),
            Body(b"spam"),
            c("spam\n."),
            S("554 5.7.1 looks like spam"),
            Done(|r| {
                matches!(
                    r,
                    Err(Error::MessageRejected {
                        stage: Stage::DataEnd,
                        recipients,
                        ..
                    }) if recipients.len() == 1 && recipients[0].accepted()
                )
            }),
            E(Event::Ready),
        ],
    );
}

#[test]
fn many_transactions_then_quit() {
    let mut session = ready_local("250-localhost\n250 PIPELINING");
    let mut steps = Vec::new();
    for _ in 0..3 {
        steps.extend([
            Mail(envelope(&["a@example.org"])),
            C("MAIL FROM:<me@example.com>\nRCPT TO:<a@example.org>\nDATA"),
            S("250 ok\n250 ok\n354 go"),
            E(Event::SendBody),
            Body(b"x"),
            c("x\n."),
            S("250 ok"),
            Done(|r| r.is_ok()),
            E(Event::Ready),
        ]);
    }
    steps.extend([Quit, C("QUIT"), S("221 bye"), E(Event::Closed)]);
    run_on(&mut session, steps);
    assert!(session.is_closed());
    assert!(session.send_mail(envelope(&["a@example.org"])).is_err());
}

#[test]
fn noop_health_check() {
    let mut session = ready_local("250 localhost");
    run_on(
        &mut session,
        vec![Noop, C("NOOP"), S("250 ok"), E(Event::Ready)],
    );
}

#[test]
fn service_closing_at_every_stage_is_transient_and_final() {
    fn mail_data() -> Vec<Step> {
        vec![
            Mail(envelope(&["a@example.org"])),
            C("MAIL FROM:<me@example.com>"),
            S("250 ok"),
            C("RCPT TO:<a@example.org>"),
            S("250 ok"),
            C("DATA"),
        ]
    }
    let plain = || ClientSession::new(Config::new("localhost").tls(TlsPolicy::Disabled)).unwrap();
    let starttls = || ClientSession::new(Config::new(HOST)).unwrap();
    let auth = || {
        let mut s = ClientSession::new(local_config(password())).unwrap();
        s.set_peer_addr([127, 0, 0, 1].into());
        s
    };
    type Case = (Stage, fn() -> ClientSession, Vec<Step>);
    let cases: Vec<Case> = vec![
        (Stage::Greeting, plain, vec![]),
        (
            Stage::Ehlo,
            plain,
            vec![S("220 localhost"), C("EHLO localhost")],
        ),
        (
            Stage::StartTls,
            starttls,
            vec![
                S("220 smtp.example.com"),
                C("EHLO localhost"),
                S("250-smtp.example.com\n250 STARTTLS"),
                C("STARTTLS"),
            ],
        ),
        (
            Stage::Auth,
            auth,
            with(
                local("250-localhost\n250 AUTH LOGIN"),
                vec![C("AUTH LOGIN")],
            ),
        ),
        (
            Stage::Auth,
            auth,
            with(
                local("250-localhost\n250 AUTH LOGIN"),
                vec![
                    C("AUTH LOGIN"),
                    S("334 VXNlcm5hbWU6"),
                    c(&b64("me@example.com")),
                ],
            ),
        ),
        (
            Stage::Mail,
            plain,
            vec![
                S("220 localhost"),
                C("EHLO localhost"),
                S("250 localhost"),
                E(Event::Ready),
                Mail(envelope(&["a@example.org"])),
                C("MAIL FROM:<me@example.com>"),
            ],
        ),
        (
            Stage::Rcpt,
            plain,
            vec![
                S("220 localhost"),
                C("EHLO localhost"),
                S("250 localhost"),
                E(Event::Ready),
                Mail(envelope(&["a@example.org"])),
                C("MAIL FROM:<me@example.com>"),
                S("250 ok"),
                C("RCPT TO:<a@example.org>"),
            ],
        ),
        (Stage::Data, plain, mail_data()),
        (
            Stage::Body,
            plain,
            with(mail_data(), vec![S("354 go"), E(Event::SendBody)]),
        ),
        (
            Stage::DataEnd,
            plain,
            with(
                mail_data(),
                vec![S("354 go"), E(Event::SendBody), Body(b"x"), c("x\n.")],
            ),
        ),
        (
            Stage::Rset,
            plain,
            vec![
                Mail(envelope(&["a@example.org"])),
                C("MAIL FROM:<me@example.com>"),
                S("550 no"),
                C("RSET"),
            ],
        ),
        (Stage::Noop, plain, vec![Noop, C("NOOP")]),
        (Stage::Idle, plain, vec![]),
    ];
    for (stage, session, mut steps) in cases {
        let mut session = session();
        // Every case past EHLO starts from a ready plaintext session.
        let needs_ready = matches!(stage, Stage::Rset | Stage::Noop | Stage::Idle)
            || matches!(stage, Stage::Data | Stage::Body | Stage::DataEnd);
        if needs_ready {
            run_on(
                &mut session,
                vec![
                    S("220 localhost"),
                    C("EHLO localhost"),
                    S("250 localhost"),
                    E(Event::Ready),
                ],
            );
        }
        steps.push(S("421 4.4.2 closing, idle too long"));
        steps.push(Fails(|e| matches!(e, Error::ServiceClosing { .. })));
        run_on(&mut session, steps);
        let err = session.error().cloned().unwrap();
        assert!(
            matches!(&err, Error::ServiceClosing { stage: s, .. } if *s == stage),
            "{stage:?}: {err:?}"
        );
        assert!(err.is_transient());
        assert!(session.pending_output().is_empty(), "no QUIT after 421");
        assert!(session.is_closed() && !session.is_ready());
        assert_eq!(
            session.poll_event(),
            None,
            "{stage:?}: no event invites more"
        );
    }
}

// ---- malformed and closed --------------------------------------------------------

#[test]
fn malformed_replies_are_typed_errors_without_quit() {
    type Case = (&'static [u8], fn(&ReplyError) -> bool);
    let cases: Vec<Case> = vec![
        (b"2x0 hi\r\n", |e| matches!(e, ReplyError::InvalidCode)),
        (b"250-a\r\n220 b\r\n", |e| {
            matches!(e, ReplyError::MixedCodes { .. })
        }),
        (b"220\x00hi\r\n", |e| {
            matches!(e, ReplyError::InvalidSeparator)
        }),
    ];
    for (bytes, check) in cases {
        let mut session = ClientSession::new(Config::new(HOST)).unwrap();
        let err = session.handle_input(bytes).unwrap_err();
        assert!(
            matches!(&err, Error::MalformedReply { stage: Stage::Greeting, source } if check(source)),
            "{err:?}"
        );
        assert!(session.pending_output().is_empty());
    }
    // An overlong line fails before its end arrives; so do endless continuations.
    let mut session = ClientSession::new(Config::new(HOST)).unwrap();
    let err = session.handle_input(&[b'2'; 5000]).unwrap_err();
    assert!(matches!(
        err,
        Error::MalformedReply {
            source: ReplyError::LineTooLong { limit: 4096 },
            ..
        }
    ));
    let mut session = ClientSession::new(Config::new(HOST)).unwrap();
    let mut endless = Vec::new();
    for _ in 0..200 {
        endless.extend_from_slice(b"220-more\r\n");
    }
    let err = session.handle_input(&endless).unwrap_err();
    assert!(matches!(
        err,
        Error::MalformedReply {
            source: ReplyError::TooManyLines { limit: 128 },
            ..
        }
    ));
}

#[test]
fn unexpected_reply_classes() {
    let mut session = ready_local("250 localhost");
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"])),
            C("MAIL FROM:<me@example.com>"),
            S("354 what"),
            Fails(|e| {
                matches!(
                    e,
                    Error::UnexpectedReply {
                        stage: Stage::Mail,
                        ..
                    }
                )
            }),
            C("QUIT"),
        ],
    );
    let mut session = ready_local("250 localhost");
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"])),
            C("MAIL FROM:<me@example.com>"),
            S("250 ok"),
            C("RCPT TO:<a@example.org>"),
            S("250 ok"),
            C("DATA"),
            S("250 ok?"),
            Fails(|e| {
                matches!(
                    e,
                    Error::UnexpectedReply {
                        stage: Stage::Data,
                        ..
                    }
                )
            }),
            C("QUIT"),
        ],
    );
}

#[test]
fn connection_closed_mid_reply_and_after_quit() {
    let mut session = ClientSession::new(Config::new(HOST)).unwrap();
    session.handle_input(b"220 smtp.exa").unwrap();
    let err = session.handle_eof().unwrap_err();
    assert!(
        matches!(
            err,
            Error::ConnectionClosed {
                stage: Stage::Greeting
            }
        ) && err.is_transient()
    );

    let mut session = ready_local("250 localhost");
    run_on(&mut session, vec![Quit, C("QUIT"), Eof, E(Event::Closed)]);
}

#[test]
fn calls_in_the_wrong_state_are_refused_without_output() {
    let mut session = ClientSession::new(Config::new(HOST)).unwrap();
    assert!(matches!(
        session.send_mail(envelope(&["a@b"])),
        Err(Error::InvalidState { .. })
    ));
    assert!(matches!(
        session.write_body(b"x"),
        Err(Error::InvalidState { .. })
    ));
    assert!(matches!(
        session.tls_established(HOST),
        Err(Error::InvalidState { .. })
    ));
    assert!(session.pending_output().is_empty());
    assert_eq!(session.stage(), Some(Stage::Greeting));
    assert!(session.wants_input());
}

#[test]
fn enhanced_codes_are_read_when_advertised() {
    let mut session = ready_local("250-localhost\n250 ENHANCEDSTATUSCODES");
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"])),
            C("MAIL FROM:<me@example.com>"),
            S("550 5.7.1 relay denied"),
            C("RSET"),
            S("250 2.0.0 ok"),
            Done(|r| {
                matches!(r, Err(Error::Rejected { reply, .. })
                    if reply.enhanced_code().map(|c| c.to_string()) == Some("5.7.1".into()))
            }),
            E(Event::Ready),
        ],
    );
}

#[test]
fn stages_follow_the_dialogue_for_timeouts() {
    let mut session = ready_local("250 localhost");
    assert_eq!(session.stage(), None);
    session.send_mail(envelope(&["a@example.org"])).unwrap();
    assert_eq!(session.stage(), Some(Stage::Mail));
    assert_eq!(Stage::Mail.default_timeout().as_secs(), 300);
    assert_eq!(Stage::Data.default_timeout().as_secs(), 120);
    assert_eq!(Stage::Body.default_timeout().as_secs(), 180);
    assert_eq!(Stage::DataEnd.default_timeout().as_secs(), 600);
}

#[test]
fn abort_mid_body_writes_nothing_more() {
    let mut session = ready_local("250 localhost");
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"])),
            C("MAIL FROM:<me@example.com>"),
            S("250 ok"),
            C("RCPT TO:<a@example.org>"),
            S("250 ok"),
            C("DATA"),
            S("354 go"),
            E(Event::SendBody),
        ],
    );
    session.write_body(b"half a mess").unwrap();
    session.abort();
    assert!(session.pending_output().is_empty(), "no final dot, no QUIT");
    assert_eq!(session.error(), Some(&Error::Aborted));
    assert!(session.is_closed());
    assert!(session.write_body(b"more").is_err());
    assert!(session.finish_body().is_err());
    assert!(session.quit().is_ok() && session.pending_output().is_empty());
}

// ---- CHUNKING / BDAT (RFC 3030) ----------------------------------------------------

const BODY: &[u8] = b"Subject: hi\n\n.dot\n";

#[test]
fn bdat_pipelined_costs_one_round_trip() {
    let mut session = ready_local("250-localhost\n250-PIPELINING\n250 CHUNKING");
    let env = envelope(&["a@example.org", "b@example.org"]).for_body(BODY);
    run_on(
        &mut session,
        vec![
            Mail(env),
            // MAIL, every RCPT and BDAT go out before any reply; the body
            // follows at once, not dot-stuffed, line endings made CRLF.
            C("MAIL FROM:<me@example.com>\nRCPT TO:<a@example.org>\nRCPT TO:<b@example.org>\nBDAT 21 LAST"),
            E(Event::SendBody),
            Body(BODY),
            CRaw(b"Subject: hi\r\n\r\n.dot\r\n".to_vec()),
            S("250 ok\n550 no\n250 ok\n250 2.0.0 queued"),
            Done(|r| r.as_ref().is_ok_and(|d| d.rejected().count() == 1)),
            E(Event::Ready),
        ],
    );
}

#[test]
fn bdat_body_in_pieces_split_inside_a_line_break_matches_its_declared_size() {
    // A CR ending one piece waits for the next byte: the LF that follows is
    // its own, the `b` after the second CR makes that one bare.
    let body = b"a\r\nb\rc\r";
    let mut session = ready_local("250-localhost\n250-PIPELINING\n250 CHUNKING");
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"]).for_body(body)),
            C("MAIL FROM:<me@example.com>\nRCPT TO:<a@example.org>\nBDAT 9 LAST"),
            E(Event::SendBody),
        ],
    );
    for piece in [&b"a\r"[..], b"\nb\r", b"c\r"] {
        session.write_body(piece).unwrap();
    }
    session.finish_body().unwrap();
    assert_eq!(&session.take_output()[..], b"a\r\nb\r\nc\r\n");
    run_on(
        &mut session,
        vec![
            S("250 ok\n250 ok\n250 2.0.0 queued"),
            Done(|r| r.is_ok()),
            E(Event::Ready),
        ],
    );
}

#[test]
fn bdat_without_pipelining_skips_the_354_round_trip() {
    let mut session = ready_local("250-localhost\n250 CHUNKING");
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"]).for_body(b"x")),
            C("MAIL FROM:<me@example.com>"),
            S("250 ok"),
            C("RCPT TO:<a@example.org>"),
            S("250 ok"),
            C("BDAT 3 LAST"),
            E(Event::SendBody),
            Body(b"x"),
            c("x"),
            S("250 ok"),
            Done(|r| r.is_ok()),
            E(Event::Ready),
        ],
    );
}

#[test]
fn chunking_without_a_known_size_uses_data() {
    let mut session = ready_local("250-localhost\n250-PIPELINING\n250 CHUNKING");
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"])),
            C("MAIL FROM:<me@example.com>\nRCPT TO:<a@example.org>\nDATA"),
        ],
    );
}

#[test]
fn bdat_with_every_recipient_refused_reports_them() {
    let mut session = ready_local("250-localhost\n250-PIPELINING\n250 CHUNKING");
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"]).for_body(b"x\r\n")),
            C("MAIL FROM:<me@example.com>\nRCPT TO:<a@example.org>\nBDAT 3 LAST"),
            E(Event::SendBody),
            Body(b"x\r\n"),
            c("x"),
            S("250 ok\n550 no such user\n554 5.5.1 no valid recipients"),
            // RFC 3030: a refused BDAT leaves the transaction failed, not
            // ended: RSET, as after a refused DATA.
            C("RSET"),
            S("250 2.0.0 Ok"),
            Done(
                |r| matches!(r, Err(Error::RecipientsRejected { recipients }) if recipients.len() == 1),
            ),
            E(Event::Ready),
        ],
    );
}

#[test]
fn bdat_body_of_the_wrong_length_fails_without_more_output() {
    let mut session = ready_local("250-localhost\n250-PIPELINING\n250 CHUNKING");
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"]).exact_size(10)),
            C("MAIL FROM:<me@example.com>\nRCPT TO:<a@example.org>\nBDAT 10 LAST"),
            E(Event::SendBody),
            Body(b"short"),
            Fails(|e| {
                matches!(
                    e,
                    Error::BodySizeMismatch {
                        declared: 10,
                        actual: 7
                    }
                )
            }),
            // The body went out; no QUIT after it, since the server is still counting.
            CRaw(b"short".to_vec()),
        ],
    );
    assert!(session.is_closed());
}

#[test]
fn binarymime_goes_as_it_is() {
    let mut session = ready_local("250-localhost\n250-PIPELINING\n250-CHUNKING\n250 BINARYMIME");
    let body: &[u8] = b"\x00\x01\n.\r";
    let env = envelope(&["a@example.org"])
        .body(BodyType::BinaryMime)
        .for_body(body);
    run_on(
        &mut session,
        vec![
            Mail(env),
            C("MAIL FROM:<me@example.com> BODY=BINARYMIME\nRCPT TO:<a@example.org>\nBDAT 5 LAST"),
            E(Event::SendBody),
            Body(b"\x00\x01\n.\r"),
            CRaw(body.to_vec()),
            S("250 ok\n250 ok\n250 ok"),
            Done(|r| r.is_ok()),
            E(Event::Ready),
        ],
    );
    // Without CHUNKING and BINARYMIME, or without the exact size: refused before MAIL.
    let mut session = ready_local("250-localhost\n250 CHUNKING");
    let err = session
        .send_mail(
            envelope(&["a@example.org"])
                .body(BodyType::BinaryMime)
                .for_body(body),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        Error::ExtensionRequired {
            extension: "BINARYMIME",
            ..
        }
    ));
    let mut session = ready_local("250-localhost\n250-CHUNKING\n250 BINARYMIME");
    let err = session
        .send_mail(envelope(&["a@example.org"]).body(BodyType::BinaryMime))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidInput {
            field: InputField::Envelope,
            ..
        }
    ));
    assert!(session.pending_output().is_empty());
}

// ---- the next message rides behind the previous one (RFC 2920 §3.1) -------------

#[test]
fn next_message_rides_with_the_previous_end_of_data() {
    let mut session = ready_local("250-localhost\n250 PIPELINING");
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"])),
            C("MAIL FROM:<me@example.com>\nRCPT TO:<a@example.org>\nDATA"),
            S("250 ok\n250 ok\n354 go"),
            E(Event::SendBody),
        ],
    );
    assert!(
        !session.can_send_mail(),
        "not while the body is being written"
    );
    session.write_body(b"one").unwrap();
    session.finish_body().unwrap();
    assert!(
        session.can_send_mail(),
        "the first message is written whole"
    );
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["b@example.org"])),
            // One write: the end of the first message and the second's commands.
            C("one\n.\nMAIL FROM:<me@example.com>\nRCPT TO:<b@example.org>\nDATA"),
        ],
    );
    assert!(
        !session.can_send_mail(),
        "at most two transactions in flight"
    );
    run_on(
        &mut session,
        vec![
            S("250 first queued\n250 ok\n250 ok\n354 go"),
            Done(|r| {
                r.as_ref()
                    .is_ok_and(|d| d.reply().message() == b"first queued")
            }),
            E(Event::SendBody),
            Body(b"two"),
            c("two\n."),
            S("250 second queued"),
            Done(|r| {
                r.as_ref()
                    .is_ok_and(|d| d.reply().message() == b"second queued")
            }),
            E(Event::Ready),
        ],
    );
}

#[test]
fn bdat_messages_overlap_too() {
    let mut session = ready_local("250-localhost\n250-PIPELINING\n250 CHUNKING");
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"]).for_body(b"1")),
            C("MAIL FROM:<me@example.com>\nRCPT TO:<a@example.org>\nBDAT 3 LAST"),
            E(Event::SendBody),
            Body(b"1"),
            Mail(envelope(&["b@example.org"]).for_body(b"2")),
            C("1\nMAIL FROM:<me@example.com>\nRCPT TO:<b@example.org>\nBDAT 3 LAST"),
            E(Event::SendBody),
            Body(b"2"),
            c("2"),
            S("250 ok\n250 ok\n250 one\n250 ok\n550 no\n554 no valid recipients"),
            Done(|r| r.as_ref().is_ok_and(|d| d.reply().message() == b"one")),
            C("RSET"),
            S("250 ok"),
            Done(|r| matches!(r, Err(Error::RecipientsRejected { .. }))),
            E(Event::Ready),
        ],
    );
}

#[test]
fn without_pipelining_the_next_message_waits() {
    let mut session = ready_local("250 localhost");
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"])),
            C("MAIL FROM:<me@example.com>"),
            S("250 ok"),
            C("RCPT TO:<a@example.org>"),
            S("250 ok"),
            C("DATA"),
            S("354 go"),
            E(Event::SendBody),
            Body(b"one"),
            c("one\n."),
        ],
    );
    assert!(!session.can_send_mail());
    assert!(matches!(
        session.send_mail(envelope(&["b@example.org"])),
        Err(Error::InvalidState { .. })
    ));
    assert!(session.pending_output().is_empty());
}

// ---- defects an independent review found -----------------------------------------

/// A ready session to a pipelining, chunking loopback server.
fn chunking_local() -> ClientSession {
    ready_local("250-localhost\n250-PIPELINING\n250 CHUNKING")
}

#[test]
fn bdat_body_past_its_declared_size_is_never_written() {
    // The body would smuggle commands behind a 7-octet chunk (RFC 3030 §2:
    // the server reads exactly 7 octets as the message).
    let smuggler: &[u8] = b"hello\r\nRSET\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\nDATA\r\n";
    let mut session = chunking_local();
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"]).exact_size(7)),
            C("MAIL FROM:<me@example.com>\nRCPT TO:<a@example.org>\nBDAT 7 LAST"),
            E(Event::SendBody),
            Write(smuggler.to_vec()),
            Fails(|e| {
                matches!(
                    e,
                    Error::BodySizeMismatch {
                        declared: 7,
                        actual: 59
                    }
                )
            }),
        ],
    );
    assert!(session.is_closed());
    assert_eq!(
        session.write_body(b"x"),
        Err(session.error().cloned().unwrap())
    );
}

#[test]
fn bdat_chunk_that_crosses_the_size_is_refused_whole() {
    let mut session = chunking_local();
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"]).exact_size(9)),
            C("MAIL FROM:<me@example.com>\nRCPT TO:<a@example.org>\nBDAT 9 LAST"),
            E(Event::SendBody),
            // Within the size: written as it comes.
            Write(b"hello\r\n".to_vec()),
            CRaw(b"hello\r\n".to_vec()),
            // 7 + 3 > 9: none of it goes, not even the two octets that fit.
            Write(b"abc".to_vec()),
            Fails(|e| {
                matches!(
                    e,
                    Error::BodySizeMismatch {
                        declared: 9,
                        actual: 10
                    }
                )
            }),
        ],
    );
}

#[test]
fn bdat_line_break_added_at_the_end_must_fit_too() {
    // "hello" takes 5 octets; the CRLF the encoder adds at the end makes 7.
    // Neither the CRLF nor a lone LF after a trailing CR crosses the size,
    // and the chunk is never complete on the wire: its last octet waits for
    // finish_body, which refuses the body, so the server never reads a whole
    // message the client reports as failed.
    for (body, declared, written) in [
        (&b"hello"[..], 5, &b"hell"[..]),
        (&b"hello\r"[..], 6, &b"hello"[..]),
        // Raw length declared for a body that is 8 octets normalized.
        (&b"ab\r\ncd"[..], 6, &b"ab\r\nc"[..]),
    ] {
        let mut session = chunking_local();
        run_on(
            &mut session,
            vec![
                Mail(envelope(&["a@example.org"]).exact_size(declared)),
                C(if declared == 5 {
                    "MAIL FROM:<me@example.com>\nRCPT TO:<a@example.org>\nBDAT 5 LAST"
                } else {
                    "MAIL FROM:<me@example.com>\nRCPT TO:<a@example.org>\nBDAT 6 LAST"
                }),
                E(Event::SendBody),
                Write(body.to_vec()),
                CRaw(written.to_vec()),
                Finish,
                Fails(|e| matches!(e, Error::BodySizeMismatch { .. })),
            ],
        );
        assert!(session.is_closed());
        assert!(
            session.pending_output().is_empty(),
            "the last octet never goes"
        );
    }
}

#[test]
fn bdat_chunk_completes_only_when_finished() {
    let mut session = chunking_local();
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"]).exact_size(8)),
            C("MAIL FROM:<me@example.com>\nRCPT TO:<a@example.org>\nBDAT 8 LAST"),
            E(Event::SendBody),
            Write(b"ab\r".to_vec()),
            CRaw(b"ab\r".to_vec()),
            Write(b"\ncd\r\n".to_vec()),
            // Full: everything but the last octet.
            CRaw(b"\ncd\r".to_vec()),
            Write(Vec::new()),
            Finish,
            CRaw(b"\n".to_vec()),
            S("250 ok\n250 ok\n250 queued"),
            Done(|r| r.is_ok()),
            E(Event::Ready),
        ],
    );
}

#[test]
fn binary_bdat_body_past_its_size_is_never_written() {
    let mut session = ready_local("250-localhost\n250-PIPELINING\n250-CHUNKING\n250 BINARYMIME");
    run_on(
        &mut session,
        vec![
            Mail(
                envelope(&["a@example.org"])
                    .body(BodyType::BinaryMime)
                    .exact_size(4),
            ),
            C("MAIL FROM:<me@example.com> BODY=BINARYMIME\nRCPT TO:<a@example.org>\nBDAT 4 LAST"),
            E(Event::SendBody),
            Write(b"\x00\x01".to_vec()),
            CRaw(b"\x00\x01".to_vec()),
            Write(b"\x02\x03QUIT\r\n".to_vec()),
            Fails(|e| {
                matches!(
                    e,
                    Error::BodySizeMismatch {
                        declared: 4,
                        actual: 10
                    }
                )
            }),
        ],
    );
}

#[test]
fn failure_inside_an_open_chunk_writes_nothing() {
    // A `354` to a pipelined MAIL while the chunk is open: QUIT would be the
    // chunk's last six octets, and the server would deliver a truncated message.
    let mut session = chunking_local();
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"]).exact_size(10)),
            C("MAIL FROM:<me@example.com>\nRCPT TO:<a@example.org>\nBDAT 10 LAST"),
            E(Event::SendBody),
            Write(b"abcd".to_vec()),
            CRaw(b"abcd".to_vec()),
            S("354 what"),
            Fails(|e| {
                matches!(
                    e,
                    Error::UnexpectedReply {
                        stage: Stage::Mail,
                        ..
                    }
                )
            }),
        ],
    );
    assert!(session.is_closed());
    session.quit().unwrap();
    assert!(session.pending_output().is_empty(), "no QUIT, ever");
}

#[test]
fn failure_inside_a_data_body_writes_nothing() {
    // A reply while the caller streams a DATA body: QUIT would be message text.
    let mut session = ready_local("250 localhost");
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"])),
            C("MAIL FROM:<me@example.com>"),
            S("250 ok"),
            C("RCPT TO:<a@example.org>"),
            S("250 ok"),
            C("DATA"),
            S("354 go"),
            E(Event::SendBody),
            Write(b"line one\n".to_vec()),
            CRaw(b"line one\r\n".to_vec()),
            S("554 5.3.4 message too big for system"),
            Fails(|e| {
                matches!(
                    e,
                    Error::UnexpectedReply {
                        stage: Stage::Body,
                        ..
                    }
                )
            }),
        ],
    );
    assert!(session.is_closed());
}

#[test]
fn guard_checks_the_connected_peer_not_only_the_name() {
    let steps = |peer: Option<&'static str>| {
        let mut steps = Vec::new();
        if let Some(peer) = peer {
            steps.push(Peer(peer));
        }
        steps.extend([
            S("220 mail.example.net ESMTP"),
            C("EHLO localhost"),
            S("250-mail.example.net\n250 AUTH PLAIN LOGIN"),
            Fails(|e| matches!(e, Error::InsecureAuth)),
            C("QUIT"),
        ]);
        steps
    };
    // `localhost` (or a loopback literal) connected to a remote address, or
    // to an address the adapter never reported: no exemption.
    for name in ["localhost", "127.0.0.1", "[::1]"] {
        for peer in [
            Some("192.0.2.7"),
            Some("2001:db8::7"),
            Some("::ffff:192.0.2.7"),
            None,
        ] {
            let config = Config::new(name)
                .tls(TlsPolicy::Disabled)
                .credentials(password());
            run(config, steps(peer));
        }
    }
    // A remote name is never exempt, whatever the peer.
    run(
        Config::new(HOST)
            .tls(TlsPolicy::Disabled)
            .credentials(token()),
        steps(Some("127.0.0.1")),
    );
}

/// A token whose XOAUTH2 initial response is far over the AUTH line limit.
fn long_token() -> String {
    "t".repeat(12_000)
}

#[test]
fn initial_response_over_the_line_limit_waits_for_the_empty_challenge() {
    let token = long_token();
    let response = b64(&format!(
        "user=me@example.com\x01auth=Bearer {token}\x01\x01"
    ));
    assert!("AUTH XOAUTH2 ".len() + response.len() + 2 > 12_288);
    let session = run(
        local_config(Credentials::token("me@example.com", token.clone())),
        with(
            local("250-localhost\n250 AUTH XOAUTH2"),
            vec![
                // RFC 4954 §4: the response does not go on the AUTH line.
                C("AUTH XOAUTH2"),
                S("334 "),
                c(&response),
                S("235 2.7.0 ok"),
                E(Event::Ready),
            ],
        ),
    );
    assert_eq!(session.auth_mechanism(), Some(&Mechanism::XOAuth2));
}

#[test]
fn long_initial_response_then_error_challenge() {
    let token = long_token();
    let response = b64(&format!(
        "user=me@example.com\x01auth=Bearer {token}\x01\x01"
    ));
    let json = r#"{"status":"401","schemes":"bearer"}"#;
    run(
        local_config(Credentials::token("me@example.com", token)),
        with(
            local("250-localhost\n250 AUTH XOAUTH2"),
            vec![
                C("AUTH XOAUTH2"),
                S("334 "),
                c(&response),
                s(&format!("334 {}", b64(json))),
                C(""),
                S("535 5.7.8 bad token"),
                Fails(
                    |e| matches!(e, Error::AuthFailed { detail: Some(d), .. } if d.contains("401")),
                ),
                C("QUIT"),
            ],
        ),
    );
}

#[test]
fn long_initial_responses_for_plain_and_oauthbearer() {
    let long = long_token();
    let plain = b64(&format!("\0me@example.com\0{long}"));
    run(
        local_config(Credentials::password("me@example.com", long.clone())),
        with(
            local("250-localhost\n250 AUTH PLAIN"),
            vec![
                C("AUTH PLAIN"),
                S("334"),
                c(&plain),
                S("235 ok"),
                E(Event::Ready),
            ],
        ),
    );
    let mut session = local_session(
        local_config(Credentials::token("me@example.com", long.clone()))
            .mechanism(Mechanism::OAuthBearer),
        "250-localhost\n250 AUTH OAUTHBEARER",
    );
    assert_eq!(&session.take_output()[..], b"AUTH OAUTHBEARER\r\n");
    session.handle_input(b"334 \r\n").unwrap();
    let sent = session.take_output();
    assert!(sent.len() > 12_288 && sent.ends_with(b"\r\n"));
    let decoded = base64_decode(&sent[..sent.len() - 2]);
    assert!(decoded.starts_with(b"n,a=me@example.com,\x01"));
    assert!(decoded.ends_with(format!("auth=Bearer {long}\x01\x01").as_bytes()));
    session.handle_input(b"235 ok\r\n").unwrap();
    assert_eq!(session.poll_event(), Some(Event::Ready));
}

/// A session to a loopback peer that has read the greeting and this EHLO
/// reply; what it wrote after EHLO is left to read.
fn local_session(config: Config, ehlo: &str) -> ClientSession {
    let mut session = ClientSession::new(config).unwrap();
    session.set_peer_addr([127, 0, 0, 1].into());
    session.handle_input(b"220 localhost ESMTP\r\n").unwrap();
    assert_eq!(&session.take_output()[..], b"EHLO localhost\r\n");
    session.handle_input(&crlf(ehlo)).unwrap();
    session
}

fn base64_decode(text: &[u8]) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

#[test]
fn initial_response_exactly_at_the_line_limit_goes_on_the_line() {
    // "AUTH PLAIN " (11) + response + CRLF (2) up to 12,288: inline. One
    // octet more of password makes the base64 grow past it: deferred.
    let fits = |password: &str| {
        let response = b64(&format!("\0me\0{password}"));
        11 + response.len() + 2 <= 12_288
    };
    let mut len = 9_000;
    while fits(&"p".repeat(len + 1)) {
        len += 1;
    }
    let at_limit = "p".repeat(len);
    let response = b64(&format!("\0me\0{at_limit}"));
    // base64 grows 4 octets at a time: the longest line that fits ends
    // within 3 octets of the limit.
    assert!(11 + response.len() + 2 <= 12_288 && 11 + response.len() + 2 > 12_284);
    run(
        local_config(Credentials::password("me", at_limit)),
        with(
            local("250-localhost\n250 AUTH PLAIN"),
            vec![
                c(&format!("AUTH PLAIN {response}")),
                S("235 ok"),
                E(Event::Ready),
            ],
        ),
    );
    run(
        local_config(Credentials::password("me", "p".repeat(len + 1))),
        with(
            local("250-localhost\n250 AUTH PLAIN"),
            vec![
                C("AUTH PLAIN"),
                S("334 "),
                c(&b64(&format!("\0me\0{}", "p".repeat(len + 1)))),
                S("235 ok"),
                E(Event::Ready),
            ],
        ),
    );
}

#[test]
fn deferred_initial_response_is_not_sent_to_a_challenge_with_data() {
    let token = long_token();
    let mut session = run(
        local_config(Credentials::token("me@example.com", token.clone())).transcript(true),
        with(
            local("250-localhost\n250 AUTH XOAUTH2"),
            vec![
                C("AUTH XOAUTH2"),
                s(&format!("334 {}", b64("Username:"))),
                Fails(|e| matches!(e, Error::AuthCancelled { .. })),
                C("*\nQUIT"),
            ],
        ),
    );
    let text: Vec<String> = session
        .take_transcript()
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert!(text.iter().all(|l| !l.contains(&token)), "{text:?}");
}

#[test]
fn unsolicited_421_while_idle_fails_at_once() {
    let mut session = ready_local("250 localhost");
    run_on(
        &mut session,
        vec![
            S("421 4.4.2 localhost Error: timeout exceeded"),
            Fails(|e| {
                matches!(
                    e,
                    Error::ServiceClosing {
                        stage: Stage::Idle,
                        ..
                    }
                )
            }),
        ],
    );
    assert!(!session.is_ready() && session.is_closed());
    assert!(!session.can_send_mail());
    assert!(session.send_mail(envelope(&["a@example.org"])).is_err());
    assert!(session.noop().is_err());
    assert!(
        session.pending_output().is_empty(),
        "nothing written to a closing server"
    );
}

#[test]
fn unsolicited_421_split_across_reads_while_idle() {
    let mut session = ready_local("250 localhost");
    session.handle_input(b"421 4.4.2 idle ").unwrap();
    assert!(session.is_ready(), "not a whole reply yet");
    let err = session.handle_input(b"timeout\r\n").unwrap_err();
    assert!(matches!(
        err,
        Error::ServiceClosing {
            stage: Stage::Idle,
            ..
        }
    ));
}

#[test]
fn unsolicited_421_after_auth_and_after_a_transaction() {
    // After AUTH.
    run(
        local_config(password()),
        with(
            local("250-localhost\n250 AUTH PLAIN"),
            vec![
                c(&format!(
                    "AUTH PLAIN {}",
                    b64("\0me@example.com\0s3cret-pw")
                )),
                S("235 ok"),
                E(Event::Ready),
                S("421 4.4.2 bye"),
                Fails(|e| {
                    matches!(
                        e,
                        Error::ServiceClosing {
                            stage: Stage::Idle,
                            ..
                        }
                    )
                }),
            ],
        ),
    );
    // Between transactions.
    let mut session = ready_local("250 localhost");
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"])),
            C("MAIL FROM:<me@example.com>"),
            S("250 ok"),
            C("RCPT TO:<a@example.org>"),
            S("250 ok"),
            C("DATA"),
            S("354 go"),
            E(Event::SendBody),
            Body(b"x"),
            c("x\n."),
            S("250 queued"),
            Done(|r| r.is_ok()),
            E(Event::Ready),
            S("421 4.4.2 idle timeout"),
            Fails(|e| {
                matches!(
                    e,
                    Error::ServiceClosing {
                        stage: Stage::Idle,
                        ..
                    }
                )
            }),
        ],
    );
}

#[test]
fn any_other_reply_while_idle_is_out_of_step() {
    let mut session = ready_local("250 localhost");
    run_on(
        &mut session,
        vec![
            S("250 surprise"),
            Fails(|e| {
                matches!(
                    e,
                    Error::UnexpectedReply {
                        stage: Stage::Idle,
                        ..
                    }
                )
            }),
            C("QUIT"),
        ],
    );
}

#[test]
fn eof_while_idle_fails() {
    let mut session = ready_local("250 localhost");
    run_on(
        &mut session,
        vec![
            Eof,
            Fails(|e| matches!(e, Error::ConnectionClosed { stage: Stage::Idle })),
        ],
    );
    assert!(session.is_closed() && !session.is_ready());
}

#[test]
fn both_secrets_choose_from_the_offer() {
    let both =
        || Credentials::password_and_token("me@example.com", "s3cret-pw", "ya29.token-value");
    let xoauth2 = b64("user=me@example.com\x01auth=Bearer ya29.token-value\x01\x01");
    let plain = b64("\0me@example.com\0s3cret-pw");
    type Case = (&'static str, Mechanism);
    let cases: Vec<Case> = vec![
        ("250-localhost\n250 AUTH XOAUTH2", Mechanism::XOAuth2),
        (
            "250-localhost\n250 AUTH OAUTHBEARER",
            Mechanism::OAuthBearer,
        ),
        ("250-localhost\n250 AUTH XOAUTH2 PLAIN", Mechanism::Plain),
        ("250-localhost\n250 AUTH LOGIN XOAUTH2", Mechanism::Login),
        (
            "250-localhost\n250 AUTH OAUTHBEARER XOAUTH2",
            Mechanism::XOAuth2,
        ),
        // No AUTH advertised: the legacy guess is PLAIN with the password.
        ("250 localhost", Mechanism::Plain),
    ];
    for (ehlo, mechanism) in cases {
        let mut session = local_session(local_config(both()), ehlo);
        let line = session.take_output();
        let line = String::from_utf8_lossy(&line);
        assert!(
            line.starts_with(&format!("AUTH {}", mechanism.as_str())),
            "{ehlo}: {line}"
        );
        match mechanism {
            Mechanism::XOAuth2 => assert_eq!(line, format!("AUTH XOAUTH2 {xoauth2}\r\n")),
            Mechanism::Plain => assert_eq!(line, format!("AUTH PLAIN {plain}\r\n")),
            _ => {}
        }
        session.handle_input(b"235 ok\r\n").unwrap();
        assert_eq!(session.auth_mechanism(), Some(&mechanism));
    }
    // An explicit mechanism of either kind fits.
    for mechanism in [Mechanism::Login, Mechanism::XOAuth2] {
        let mut session = local_session(
            local_config(both()).mechanism(mechanism.clone()),
            "250-localhost\n250 AUTH PLAIN LOGIN XOAUTH2",
        );
        let line = session.take_output();
        assert!(line.starts_with(format!("AUTH {}", mechanism.as_str()).as_bytes()));
    }
    let shown = format!("{:?}", both());
    assert!(
        !shown.contains("s3cret") && !shown.contains("ya29"),
        "{shown}"
    );
}

#[test]
fn ehlo_fallback_to_helo_on_every_not_supported_code() {
    for code in ["500", "501", "502", "504"] {
        run(
            Config::new("localhost").tls(TlsPolicy::Disabled),
            vec![
                S("220 localhost"),
                C("EHLO localhost"),
                s(&format!("{code} 5.5.1 EHLO not understood")),
                C("HELO localhost"),
                S("250 localhost"),
                E(Event::Ready),
            ],
        );
    }
    for code in ["450", "550", "554"] {
        run(
            Config::new("localhost").tls(TlsPolicy::Disabled),
            vec![
                S("220 localhost"),
                C("EHLO localhost"),
                s(&format!("{code} go away")),
                Fails(|e| {
                    matches!(
                        e,
                        Error::Rejected {
                            stage: Stage::Ehlo,
                            ..
                        }
                    )
                }),
                C("QUIT"),
            ],
        );
    }
    // A HELO that is refused too is a refusal, not another fallback.
    run(
        Config::new("localhost").tls(TlsPolicy::Disabled),
        vec![
            S("220 localhost"),
            C("EHLO localhost"),
            S("502 no"),
            C("HELO localhost"),
            S("502 no"),
            Fails(|e| {
                matches!(
                    e,
                    Error::Rejected {
                        stage: Stage::Ehlo,
                        ..
                    }
                )
            }),
            C("QUIT"),
        ],
    );
}

#[test]
fn transcript_keeps_every_line_of_a_huge_envelope() {
    // 3,000 recipients pipelined: one read of 1,101 replies makes the session
    // record them and write 1,100 more RCPTs, 2,201 lines in one call, all
    // kept.
    let mut session = run(
        Config::new("localhost")
            .tls(TlsPolicy::Disabled)
            .transcript(true),
        vec![
            S("220 localhost ESMTP"),
            C("EHLO localhost"),
            S("250-localhost\n250 PIPELINING"),
            E(Event::Ready),
        ],
    );
    let _ = session.take_transcript();
    let to: Vec<String> = (0..3000).map(|i| format!("r{i}@example.org")).collect();
    let to: Vec<&str> = to.iter().map(String::as_str).collect();
    session.send_mail(envelope(&to)).unwrap();
    let lines = session.take_transcript();
    assert_eq!(lines.len(), 1 + smtp_proto::MAX_RCPT_AHEAD);
    assert_eq!(lines[0].to_string(), "C: MAIL FROM:<me@example.com>");
    let _ = session.take_output();
    session
        .handle_input("250 ok\r\n".repeat(1 + 1100).as_bytes())
        .unwrap();
    let lines: Vec<String> = session
        .take_transcript()
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert_eq!(lines.len(), 2 * 1100 + 1);
    assert_eq!(lines[0], "S: 250 ok");
    assert_eq!(lines[2], "C: RCPT TO:<r100@example.org>");
    assert_eq!(lines[2200], "C: RCPT TO:<r1199@example.org>");
    // Left untaken, lines are capped when the next call starts, with a note
    // that says how many went.
    session
        .handle_input("250 ok\r\n".repeat(1100).as_bytes())
        .unwrap();
    session.handle_input(b"250 ok\r\n").unwrap();
    let lines: Vec<String> = session
        .take_transcript()
        .iter()
        .map(|l| l.to_string())
        .collect();
    // 2,200 lines before the last reply; 1,024 kept, then its 2 lines.
    assert_eq!(lines.len(), 1 + 1024 + 2);
    assert_eq!(
        lines[0],
        "C: <1176 transcript lines dropped: the transcript was not taken>"
    );
    assert_eq!(lines[1025], "S: 250 ok");
}

#[test]
fn huge_envelopes_keep_at_most_100_rcpts_ahead_of_their_replies() {
    // RFC 2920 §3.1: writing a whole envelope before reading can deadlock
    // once the replies fill the socket buffers. The session writes at most
    // 100 RCPTs ahead, one more per reply, and DATA after the last one.
    let mut session = ready_local("250-localhost\n250 PIPELINING");
    let to: Vec<String> = (0..250).map(|i| format!("r{i}@example.org")).collect();
    let to: Vec<&str> = to.iter().map(String::as_str).collect();
    session.send_mail(envelope(&to)).unwrap();
    let mut written = String::from_utf8(session.take_output().to_vec()).unwrap();
    assert_eq!(written.matches("RCPT TO:").count(), 100);
    assert!(!written.contains("DATA"));
    // The MAIL reply frees nothing; each RCPT reply frees one.
    session.handle_input(b"250 ok\r\n").unwrap();
    assert!(session.pending_output().is_empty());
    let mut answered = 0;
    while answered < 250 {
        session.handle_input(b"250 ok\r\n").unwrap();
        answered += 1;
        let new = String::from_utf8(session.take_output().to_vec()).unwrap();
        written.push_str(&new);
        let ahead = written.matches("RCPT TO:").count() - answered;
        assert!(ahead <= 100, "{ahead} ahead after {answered} replies");
        if answered == 150 {
            assert_eq!(new, "RCPT TO:<r249@example.org>\r\nDATA\r\n");
        }
    }
    assert_eq!(written.matches("RCPT TO:").count(), 250);
    session.handle_input(b"354 go\r\n").unwrap();
    assert_eq!(session.poll_event(), Some(Event::SendBody));
    session.write_body(b"x").unwrap();
    session.finish_body().unwrap();
    session.handle_input(b"250 queued\r\n").unwrap();
    match session.poll_event() {
        Some(Event::TransactionComplete(Ok(delivery))) => {
            assert_eq!(delivery.recipients().len(), 250);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn eof_after_a_failure_or_a_close_is_quiet() {
    let mut session = ready_local("250 localhost");
    run_on(
        &mut session,
        vec![
            S("421 4.4.2 bye"),
            Fails(|e| matches!(e, Error::ServiceClosing { .. })),
        ],
    );
    // The server then closes: that is no second error.
    assert_eq!(session.handle_eof(), Ok(()));
    let mut session = ready_local("250 localhost");
    run_on(
        &mut session,
        vec![Quit, C("QUIT"), S("221 bye"), E(Event::Closed)],
    );
    assert_eq!(session.handle_eof(), Ok(()));
    assert_eq!(session.poll_event(), None);
}

#[test]
fn debug_shows_the_state_and_no_secret() {
    let mut session = ClientSession::new(local_config(password())).unwrap();
    session.set_peer_addr([127, 0, 0, 1].into());
    session.handle_input(b"220 localhost\r\n").unwrap();
    session
        .handle_input(b"250-localhost\r\n250 AUTH PLAIN\r\n")
        .unwrap();
    // The AUTH line with the password is pending.
    let shown = format!("{session:?}");
    assert!(shown.starts_with("ClientSession {"), "{shown}");
    assert!(shown.contains("server_name: \"localhost\""), "{shown}");
    assert!(shown.contains("phase: Busy"), "{shown}");
    assert!(shown.contains("pending_output: "), "{shown}");
    assert!(!shown.contains("s3cret-pw") && !shown.contains(&b64("\0me@example.com\0s3cret-pw")));
}

#[test]
fn quit_twice_or_after_the_end_writes_nothing_more() {
    // QUIT already sent, its reply not yet in: a second quit is a no-op.
    let mut session = ready_local("250 localhost");
    run_on(&mut session, vec![Quit, C("QUIT")]);
    assert_eq!(session.quit(), Ok(()));
    assert!(session.pending_output().is_empty());
    run_on(&mut session, vec![S("221 bye"), E(Event::Closed)]);
    // Closed: still a no-op, not an error.
    assert_eq!(session.quit(), Ok(()));
    assert!(session.pending_output().is_empty());
    // Failed without a QUIT (a 421): no QUIT now either.
    let mut session = ready_local("250 localhost");
    run_on(
        &mut session,
        vec![
            S("421 4.4.2 bye"),
            Fails(|e| matches!(e, Error::ServiceClosing { .. })),
        ],
    );
    assert_eq!(session.quit(), Ok(()));
    assert!(session.pending_output().is_empty());
}

#[test]
fn calls_after_a_close_say_it_is_closed() {
    let mut session = ready_local("250 localhost");
    run_on(
        &mut session,
        vec![Quit, C("QUIT"), S("221 bye"), E(Event::Closed)],
    );
    let closed = |call: &'static str| Error::InvalidState {
        call,
        reason: "the session is closed",
    };
    assert_eq!(
        session.handle_input(b"250 late\r\n"),
        Err(closed("handle_input"))
    );
    assert_eq!(
        session.send_mail(envelope(&["a@example.org"])),
        Err(closed("send_mail"))
    );
    assert_eq!(session.noop(), Err(closed("noop")));
    assert!(session.pending_output().is_empty());
}

#[test]
fn no_reading_while_the_caller_writes_a_body() {
    // Pipelined BDAT: MAIL and RCPT replies are awaited while the caller
    // writes the chunk; the caller is asked to read only once it has ended.
    let mut session = chunking_local();
    assert!(session.capabilities().chunking() && session.capabilities().pipelining());
    run_on(
        &mut session,
        vec![
            Mail(envelope(&["a@example.org"]).exact_size(3)),
            C("MAIL FROM:<me@example.com>\nRCPT TO:<a@example.org>\nBDAT 3 LAST"),
            E(Event::SendBody),
        ],
    );
    assert!(!session.wants_input());
    session.write_body(b"x\r\n").unwrap();
    assert!(!session.wants_input());
    session.finish_body().unwrap();
    assert!(session.wants_input());
    assert!(!ready_local("250 localhost").wants_input());
}

#[test]
fn bytes_past_the_awaited_replies_are_bounded_inclusively() {
    // Limits of 16 octets x 2 lines: 32 octets may wait unsolicited, 33 not.
    let limits = smtp_proto::ReplyLimits {
        max_line_len: 16,
        max_lines: 2,
    };
    for (extra, fails) in [(32, false), (33, true)] {
        let mut session = run(
            Config::new("localhost")
                .tls(TlsPolicy::Disabled)
                .reply_limits(limits),
            vec![
                S("220 localhost"),
                C("EHLO localhost"),
                S("250 localhost"),
                E(Event::Ready),
                Noop,
                C("NOOP"),
            ],
        );
        // The NOOP reply, then complete lines nobody asked for.
        let mut bytes = b"250 ok\r\n".to_vec();
        while bytes.len() - 8 < extra {
            bytes.extend_from_slice(b"250 x\r\n");
        }
        bytes.truncate(8 + extra);
        let result = session.handle_input(&bytes);
        assert_eq!(result.is_err(), fails, "{extra}: {result:?}");
        if fails {
            assert!(matches!(
                result,
                Err(Error::MalformedReply {
                    source: ReplyError::Unsolicited { limit: 32 },
                    ..
                })
            ));
        }
    }
}

#[test]
fn any_single_dsn_option_needs_dsn() {
    let one =
        |recipient: Recipient| Envelope::new(Some(addr("me@example.com")), [recipient]).unwrap();
    let plain = || Recipient::new(addr("a@example.org"));
    let cases = [
        one(plain().notify(Notify::NEVER)),
        one(plain().original_recipient("rfc822;a@example.org").unwrap()),
        one(plain()).dsn_return(DsnReturn::Full),
        one(plain()).envelope_id("id-1").unwrap(),
    ];
    for envelope in cases {
        let mut session = ready_local("250 localhost");
        let err = session.send_mail(envelope.clone()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::ExtensionRequired {
                    extension: "DSN",
                    ..
                }
            ),
            "{envelope:?}: {err:?}"
        );
        assert!(session.pending_output().is_empty());
        // With DSN offered it goes.
        let mut session = ready_local("250-localhost\n250 DSN");
        session.send_mail(envelope).unwrap();
        assert!(!session.pending_output().is_empty());
    }
    // Without any, no DSN needed.
    let mut session = ready_local("250 localhost");
    session.send_mail(one(plain())).unwrap();
}

#[test]
fn envelopes_report_what_they_declare() {
    let envelope = envelope(&["a@example.org"]);
    assert_eq!(envelope.from(), Some(&addr("me@example.com")));
    assert_eq!(envelope.declared_size(), None);
    assert_eq!(envelope.clone().size(1234).declared_size(), Some(1234));
    assert_eq!(envelope.for_body(b"x\n").declared_size(), Some(2));
    let null = Envelope::new(None, [addr("a@example.org")]).unwrap();
    assert_eq!(null.from(), None);
    assert_eq!(BodyType::detect(b"plain ascii\r\n"), BodyType::SevenBit);
    assert_eq!(
        BodyType::detect("8-bit: \u{e9}\r\n".as_bytes()),
        BodyType::EightBitMime
    );
}

#[test]
fn transcript_lines_give_their_text_and_direction() {
    let mut session = run(
        Config::new("localhost")
            .tls(TlsPolicy::Disabled)
            .transcript(true),
        vec![
            S("220 localhost ESMTP"),
            C("EHLO localhost"),
            S("250 localhost"),
            E(Event::Ready),
        ],
    );
    let lines = session.take_transcript();
    assert_eq!(lines[0].text(), b"220 localhost ESMTP");
    assert_eq!(lines[0].direction(), smtp_proto::Direction::Server);
    assert_eq!(lines[1].text(), b"EHLO localhost");
    assert_eq!(lines[1].direction(), smtp_proto::Direction::Client);
    assert_eq!(format!("{:?}", lines[1]), "C: EHLO localhost");
}

/// A `421` in the same read as a transaction's final reply: the delivery is
/// reported; the `421` waits, and `check_idle` (what an adapter calls before
/// reusing an idle connection) or the close that follows fails the session
/// with it, before any next command is written.
#[test]
fn a_421_behind_the_last_awaited_reply_is_found_by_check_idle() {
    fn delivered_then_421() -> ClientSession {
        let mut session = ready_local("250 localhost");
        session.send_mail(envelope(&["a@example.org"])).unwrap();
        let _ = session.take_output();
        session
            .handle_input(b"250 ok\r\n250 ok\r\n354 go\r\n")
            .unwrap();
        assert_eq!(session.poll_event(), Some(Event::SendBody));
        session.write_body(b"x\r\n").unwrap();
        session.finish_body().unwrap();
        let _ = session.take_output();
        session
            .handle_input(b"250 queued\r\n421 4.4.2 idle timeout\r\n")
            .unwrap();
        assert!(matches!(
            session.poll_event(),
            Some(Event::TransactionComplete(Ok(_)))
        ));
        session
    }
    let closing = |e: &Error| {
        matches!(
            e,
            Error::ServiceClosing {
                stage: Stage::Idle,
                ..
            }
        )
    };

    let mut session = delivered_then_421();
    let err = session.check_idle().unwrap_err();
    assert!(closing(&err), "{err:?}");
    assert!(session.is_closed() && !session.can_send_mail());
    assert!(session.send_mail(envelope(&["b@example.org"])).is_err());
    assert!(session.pending_output().is_empty(), "no QUIT after a 421");
    assert!(
        closing(&session.check_idle().unwrap_err()),
        "it stays failed"
    );

    let mut session = delivered_then_421();
    let err = session.handle_eof().unwrap_err();
    assert!(closing(&err), "the close says why: {err:?}");

    // Half of it: the session waits for the rest while idle.
    let mut session = ready_local("250 localhost");
    session.noop().unwrap();
    let _ = session.take_output();
    session.handle_input(b"250 ok\r\n421 4.4.2 idle").unwrap();
    session.check_idle().unwrap();
    assert!(session.is_ready());
    let err = session.handle_input(b" timeout\r\n").unwrap_err();
    assert!(closing(&err), "{err:?}");

    // Nothing buffered: nothing to say.
    let mut session = ready_local("250 localhost");
    session.check_idle().unwrap();
    assert!(session.is_ready());
}

// ---- outcomes: what became of each message --------------------------------

/// A session past `354` with a body written and its end queued (not yet
/// taken): `ehlo` decides PIPELINING and CHUNKING.
fn ended_not_taken(ehlo: &'static str) -> ClientSession {
    let mut session = ready_local(ehlo);
    session.send_mail(envelope(&["a@example.org"])).unwrap();
    let _ = session.take_output();
    session
        .handle_input(b"250 ok\r\n250 ok\r\n354 go\r\n")
        .unwrap();
    assert_eq!(session.poll_event(), Some(Event::SendBody));
    session.write_body(b"hello\r\n").unwrap();
    let _ = session.take_output();
    session.finish_body().unwrap();
    session
}

#[test]
fn end_of_data_taken_then_the_connection_closes_is_unknown() {
    let mut session = ended_not_taken("250 localhost");
    assert_eq!(session.take_output().as_ref(), b".\r\n");
    let err = session.handle_eof().unwrap_err();
    assert!(matches!(
        err,
        Error::ConnectionClosed {
            stage: Stage::DataEnd
        }
    ));
    assert_eq!(
        err.outcome(),
        Outcome::NotSent,
        "the error alone says nothing"
    );
    assert_eq!(session.unfinished(), [Outcome::Unknown]);
    assert_eq!(session.poll_event(), None);
}

#[test]
fn end_of_data_never_taken_is_not_sent() {
    let mut session = ended_not_taken("250 localhost");
    // The adapter failed before writing it: it aborts the session.
    session.abort();
    assert_eq!(session.unfinished(), [Outcome::NotSent]);
    assert!(session.pending_output().is_empty());
}

#[test]
fn a_partly_taken_end_of_data_is_unknown() {
    // Taken up to, not into, the end of data: not sent.
    let mut session = ready_local("250-localhost\n250 PIPELINING");
    session.send_mail(envelope(&["a@example.org"])).unwrap();
    let _ = session.take_output();
    session
        .handle_input(b"250 ok\r\n250 ok\r\n354 go\r\n")
        .unwrap();
    assert_eq!(session.poll_event(), Some(Event::SendBody));
    session.write_body(b"hello\r\n").unwrap();
    session.finish_body().unwrap();
    assert_eq!(session.pending_output(), b"hello\r\n.\r\n");
    session.advance_output(7);
    session.abort();
    assert_eq!(session.unfinished(), [Outcome::NotSent]);

    // One byte of the final dot taken: unknown.
    let mut session = ended_not_taken("250 localhost");
    session.advance_output(1);
    let err = session.handle_input(b"garbage\r\n").unwrap_err();
    assert!(matches!(
        err,
        Error::MalformedReply {
            stage: Stage::DataEnd,
            ..
        }
    ));
    assert_eq!(session.unfinished(), [Outcome::Unknown]);
}

/// A BDAT message whose chunk went out but for its last octet, which
/// `finish_body` released.
fn bdat_finished() -> ClientSession {
    let mut session = ready_local("250-localhost\n250-PIPELINING\n250 CHUNKING");
    session
        .send_mail(envelope(&["a@example.org"]).exact_size(7))
        .unwrap();
    assert_eq!(session.poll_event(), Some(Event::SendBody));
    session.write_body(b"hello\r\n").unwrap();
    let before = session.take_output();
    assert!(before.ends_with(b"hello\r"), "{before:?}");
    session.finish_body().unwrap();
    session
}

#[test]
fn bdat_end_of_data_is_the_last_octet_of_the_chunk() {
    // Everything but the last octet taken: not sent.
    let mut session = bdat_finished();
    session.abort();
    assert_eq!(session.unfinished(), [Outcome::NotSent]);
    // The last octet taken: the server may have the whole message.
    let mut session = bdat_finished();
    assert_eq!(session.take_output().as_ref(), b"\n");
    session.handle_input(b"250 ok\r\n250 ok\r\n").unwrap();
    assert!(session.handle_eof().is_err());
    assert_eq!(session.unfinished(), [Outcome::Unknown]);
}

/// With PIPELINING the next message rides behind the previous end of data:
/// a close then leaves the first unknown and the second not sent; a
/// message whose final reply came is reported, not unfinished.
#[test]
fn a_close_mid_batch_leaves_one_unknown_and_the_next_not_sent() {
    let mut session = ended_not_taken("250-localhost\n250 PIPELINING");
    session.send_mail(envelope(&["b@example.org"])).unwrap();
    let _ = session.take_output();
    assert!(session.handle_eof().is_err());
    assert_eq!(session.unfinished(), [Outcome::Unknown, Outcome::NotSent]);

    let mut session = ended_not_taken("250-localhost\n250 PIPELINING");
    session.send_mail(envelope(&["b@example.org"])).unwrap();
    let _ = session.take_output();
    session.handle_input(b"250 queued\r\n").unwrap();
    assert!(matches!(
        session.poll_event(),
        Some(Event::TransactionComplete(Ok(_)))
    ));
    assert!(session.handle_eof().is_err());
    assert_eq!(session.unfinished(), [Outcome::NotSent]);
}

#[test]
fn errors_say_refused_or_not_sent() {
    let reply = |text: &str| smtp_proto::Reply::parse(text.as_bytes()).unwrap();
    let refused = [
        Error::Rejected {
            stage: Stage::Mail,
            reply: reply("550 5.7.1 no\r\n"),
        },
        Error::Rejected {
            stage: Stage::DataEnd,
            reply: reply("451 4.3.0 later\r\n"),
        },
        Error::ServiceClosing {
            stage: Stage::Mail,
            reply: reply("421 4.4.2 bye\r\n"),
        },
        Error::RecipientsRejected {
            recipients: Vec::new(),
        },
    ];
    for err in refused {
        assert_eq!(err.outcome(), Outcome::Refused, "{err:?}");
        assert!(err.outcome().may_resend());
    }
    let not_sent = [
        Error::Rejected {
            stage: Stage::Ehlo,
            reply: reply("554 no\r\n"),
        },
        Error::ServiceClosing {
            stage: Stage::Idle,
            reply: reply("421 bye\r\n"),
        },
        Error::ConnectionClosed {
            stage: Stage::DataEnd,
        },
        Error::MessageTooLarge { size: 2, limit: 1 },
        Error::Aborted,
    ];
    for err in not_sent {
        assert_eq!(err.outcome(), Outcome::NotSent, "{err:?}");
    }
    assert!(!Outcome::Unknown.may_resend() && !Outcome::Accepted.may_resend());
    assert_eq!(
        [
            Outcome::Accepted,
            Outcome::Refused,
            Outcome::NotSent,
            Outcome::Unknown
        ]
        .map(Outcome::as_str),
        ["accepted", "rejected", "not_sent", "unknown"]
    );
}

/// A `421` in answer to the final dot may come from a middlebox while the
/// server kept the message: once the dot went out, unknown; a `421` to MAIL
/// before anything of the message went out leaves it not sent.
#[test]
fn a_421_after_the_final_dot_leaves_the_delivery_unknown() {
    let mut session = ended_not_taken("250 localhost");
    let _ = session.take_output();
    let err = session.handle_input(b"421 4.4.2 closing\r\n").unwrap_err();
    assert!(matches!(
        err,
        Error::ServiceClosing {
            stage: Stage::DataEnd,
            ..
        }
    ));
    assert_eq!(session.unfinished(), [Outcome::Unknown]);

    let mut session = ready_local("250 localhost");
    session.send_mail(envelope(&["a@example.org"])).unwrap();
    let _ = session.take_output();
    let err = session.handle_input(b"421 4.4.2 closing\r\n").unwrap_err();
    assert_eq!(err.outcome(), Outcome::Refused);
    assert_eq!(session.unfinished(), [Outcome::NotSent]);
}

/// An empty BDAT message: `BDAT 0 LAST` itself ends it, so once it is
/// taken the delivery is unknown; before, not sent.
#[test]
fn an_empty_bdat_message_ends_with_its_command() {
    let start = || {
        let mut session = ready_local("250-localhost\n250-PIPELINING\n250 CHUNKING");
        session
            .send_mail(envelope(&["a@example.org"]).exact_size(0))
            .unwrap();
        assert_eq!(session.poll_event(), Some(Event::SendBody));
        session.finish_body().unwrap();
        session
    };
    let mut session = start();
    let all = session.take_output();
    assert!(all.ends_with(b"BDAT 0 LAST\r\n"), "{all:?}");
    assert!(session.handle_eof().is_err());
    assert_eq!(session.unfinished(), [Outcome::Unknown]);

    let mut session = start();
    let all = session.pending_output().len();
    session.advance_output(all - 1);
    session.abort();
    assert_eq!(session.unfinished(), [Outcome::NotSent]);
}

#[test]
fn outcomes_print_as_smtp_send_names_them() {
    let names: Vec<String> = [
        Outcome::Accepted,
        Outcome::Refused,
        Outcome::NotSent,
        Outcome::Unknown,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(names, ["accepted", "rejected", "not_sent", "unknown"]);
}

/// A documented refusal at AUTH (Microsoft's 5.7.139) and at MAIL (5.7.57)
/// ends the error's Display with a line of advice; `hint()` has it.
#[test]
fn documented_refusals_carry_a_hint() {
    let reply = |text: &str| smtp_proto::Reply::parse(text.as_bytes()).unwrap();
    let err = Error::AuthFailed {
        mechanism: smtp_proto::Mechanism::Login,
        reply: Box::new(reply(
            "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.\r\n",
        )),
        detail: None,
    };
    let text = err.to_string();
    let (first, second) = text.split_once('\n').unwrap();
    assert!(
        first.starts_with("LOGIN authentication failed: 535"),
        "{text}"
    );
    assert!(second.starts_with("hint: SMTP AUTH is disabled"), "{text}");
    assert_eq!(err.hint().map(|h| h.contains("Set-CASMailbox")), Some(true));

    let err = Error::Rejected {
        stage: Stage::Mail,
        reply: reply("530 5.7.57 Client not authenticated to send mail.\r\n"),
    };
    assert!(err
        .to_string()
        .contains("\nhint: the server accepts mail only from authenticated clients"));
    let err = Error::Rejected {
        stage: Stage::Mail,
        reply: reply("550 5.1.0 Sender denied\r\n"),
    };
    assert!(err.hint().is_none() && !err.to_string().contains('\n'));
}

/// `auth_reply()` keeps the final reply to AUTH, never a `334` challenge:
/// a connection that closes after a challenge leaves it empty.
#[test]
fn a_challenge_is_not_the_auth_reply() {
    let mut session = run(
        local_config(password()),
        with(
            local("250-localhost\n250 AUTH LOGIN"),
            vec![
                C("AUTH LOGIN"),
                s(&format!("334 {}", b64("Username:"))),
                C("bWVAZXhhbXBsZS5jb20="),
                Eof,
                Fails(|e| matches!(e, Error::ConnectionClosed { .. })),
            ],
        ),
    );
    assert!(session.auth_reply().is_none());
    let _ = session.take_transcript();
}
