//! Properties of the whole session: split invariance, no panics on any input,
//! and the security invariants (no credential in plaintext to a remote name,
//! nothing after QUIT, nothing but QUIT after an error). The checks live in
//! `smtp_proto::testing`, shared with the fuzz targets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use smtp_proto::testing::{
    api, check_next_matches_drive, check_split_invariance, clock_options, decode_api, drive,
    encode_api, Mail, Op, Run, Scenario, CHUNKS, CLOCKED, EHLO_REPLIES, REPLIES, SECRET,
};
use smtp_proto::{Config, Credentials, Error, Options, TlsPolicy};
use support::crlf;

fn scenario(config: Config) -> Scenario {
    Scenario {
        config: config.transcript(true),
        recipients: 2,
        messages: 1,
        peer: Some([127, 0, 0, 1].into()),
        options: Options::default(),
    }
}

fn password() -> Credentials {
    Credentials::password("me", SECRET)
}

/// Server scripts that complete a session, for the split-invariance property.
fn scripts() -> Vec<(Scenario, Vec<u8>)> {
    let m365 = crlf(concat!(
        "220 smtp.example.com ESMTP\n",
        "250-smtp.example.com\n250-PIPELINING\n250 STARTTLS\n",
        "220 2.0.0 go ahead",
    ));
    let m365_tls = crlf(concat!(
        "250-smtp.example.com\n250-PIPELINING\n250-ENHANCEDSTATUSCODES\n250 AUTH LOGIN XOAUTH2\n",
        "334 VXNlcm5hbWU6\n334 UGFzc3dvcmQ6\n235 2.7.0 ok\n",
        "250 2.1.0 ok\n250 2.1.5 ok\n550 5.1.1 no\n354 go\n250 2.0.0 queued\n221 bye",
    ));
    let plain_local = crlf(concat!(
        "220 localhost\n250-localhost\n250-AUTH PLAIN\n250 SIZE 1000\n",
        "235 ok\n250 ok\n250 ok\n250 ok\n354 go\n250 queued\n221 bye",
    ));
    let refused = crlf("220 localhost\n250 localhost\n250 ok\n550 no\n550 no\n250 reset\n221 bye");
    vec![
        // STARTTLS bytes arrive in two parts: before and after the handshake.
        (
            scenario(Config::new("smtp.example.com").credentials(password())),
            [m365, m365_tls].concat(),
        ),
        (
            scenario(
                Config::new("localhost")
                    .tls(TlsPolicy::Disabled)
                    .credentials(password()),
            ),
            plain_local,
        ),
        (
            scenario(Config::new("localhost").tls(TlsPolicy::Disabled)),
            refused,
        ),
        // Two messages, the second riding behind the first (RFC 2920 §3.1).
        (
            Scenario {
                messages: 2,
                ..scenario(Config::new("localhost").tls(TlsPolicy::Disabled))
            },
            crlf(concat!(
                "220 localhost\n250-localhost\n250 PIPELINING\n",
                "250 ok\n250 ok\n550 no\n354 go\n250 first\n",
                "250 ok\n250 ok\n250 ok\n354 go\n250 second\n221 bye",
            )),
        ),
    ]
}

#[test]
fn scripts_complete_when_fed_whole() {
    // The M365 script fed whole is an injection (everything after the 220
    // arrives in plaintext); the others complete.
    let runs: Vec<Run> = scripts()
        .into_iter()
        .map(|(c, s)| drive(&c, &s, &[]))
        .collect();
    assert!(matches!(runs[0].error, Some(Error::StartTlsInjection)));
    for run in &runs[1..] {
        assert_eq!(run.error, None, "{run:?}");
        assert!(
            !run.events.iter().any(|e| e.contains("InvalidState")),
            "{run:?}"
        );
        assert_eq!(run.events.last().map(String::as_str), Some("Closed"));
    }
}

#[test]
fn microsoft_365_script_completes_when_tls_splits_it() {
    let (scenario, server) = scripts().remove(0);
    let cut = crlf("220 smtp.example.com ESMTP\n250-smtp.example.com\n250-PIPELINING\n250 STARTTLS\n220 2.0.0 go ahead").len();
    let run = drive(&scenario, &server, &[cut]);
    assert_eq!(run.error, None, "{run:?}");
    assert!(run
        .events
        .iter()
        .any(|e| e.contains("TransactionComplete(Ok")));
    assert_eq!(run.events.last().map(String::as_str), Some("Closed"));
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/proptest-regressions/properties.txt"))),
        ..ProptestConfig::default()
    })]

    /// (a) The same server bytes split anywhere give the same outcomes,
    /// errors and lines read, and what is written differs at most in where
    /// it stops (a cut right after the STARTTLS 220 lets the
    /// handshake happen first, so that script is compared only when both
    /// runs stay on one side of it).
    #[test]
    fn any_split_gives_the_same_run(which in 0usize..4, cuts in proptest::collection::vec(any::<usize>(), 0..12)) {
        let (scenario, server) = scripts().remove(which);
        check_split_invariance(&scenario, &server, &cuts);
    }

    /// (d) Arbitrary bytes never panic the session, under any configuration,
    /// however they are split, and the invariants hold throughout.
    #[test]
    fn arbitrary_bytes_never_panic(
        selector in any::<[u8; 4]>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        check_split_invariance(&Scenario::from_selector(selector), &bytes, &cuts);
    }

    /// (d) Reply-shaped noise: valid lines with random codes and separators
    /// reach deeper states than random bytes do.
    #[test]
    fn reply_shaped_noise(
        selector in any::<[u8; 4]>(),
        lines in proptest::collection::vec((prop::sample::select(vec![
            "220", "221", "235", "250", "334", "354", "421", "450", "454", "500", "502", "535", "550", "554",
        ]), prop::sample::select(vec![" ", "-"]), prop::sample::select(vec![
            "", "ok", "STARTTLS", "PIPELINING", "AUTH PLAIN LOGIN", "AUTH=LOGIN", "AUTH XOAUTH2 OAUTHBEARER",
            "SIZE 10", "ENHANCEDSTATUSCODES", "CHUNKING", "BINARYMIME", "VXNlcm5hbWU6", "UGFzc3dvcmQ6", "2.0.0 ok", "!!",
        ])), 0..40),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut bytes = Vec::new();
        for (code, sep, text) in lines {
            bytes.extend_from_slice(format!("{code}{sep}{text}\r\n").as_bytes());
        }
        check_split_invariance(&Scenario::from_selector(selector), &bytes, &cuts);
    }

    /// URL-shaped text: the URL parser's invariants (`testing::url`).
    #[test]
    fn url_invariants(
        scheme in prop::sample::select(vec!["smtp://", "smtps://", "SMTP://", "http://", ""]),
        rest in "[a-zA-Z0-9%:@?&=.\\[\\]/#_ -]{0,60}",
    ) {
        smtp_proto::testing::url(format!("{scheme}{rest}").as_bytes());
    }

    /// The reply parser's and the DATA encoder's fuzz checks, as properties.
    #[test]
    fn reply_parser_and_encoder_checks(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        smtp_proto::testing::reply(&bytes);
        smtp_proto::testing::capabilities(&bytes);
        smtp_proto::testing::data(&bytes);
    }
}

#[test]
fn the_second_message_rides_behind_the_first() {
    let (scenario, server) = scripts().remove(3);
    let run = drive(&scenario, &server, &[]);
    assert_eq!(run.error, None, "{run:?}");
    let out = String::from_utf8_lossy(&run.output);
    // The first body's terminator and the second MAIL went out together,
    // before the first message's final reply was read.
    assert!(
        out.contains(".line\r\n.\r\nMAIL FROM:<me@example.com>"),
        "{out}"
    );
    let done = run
        .events
        .iter()
        .filter(|e| e.starts_with("TransactionComplete(Ok"))
        .count();
    assert_eq!(done, 2, "{run:?}");
}

/// One call of an adversarial caller. Canned replies and chunks are weighted
/// up, the replies a transaction goes on with most: they reach bodies and
/// AUTH in a few calls, where random bytes mostly fail the session at once.
fn op() -> impl Strategy<Value = Op> {
    let replies = u8::try_from(REPLIES.len()).unwrap();
    prop_oneof![
        6 => prop::sample::select(COMMON_REPLIES.to_vec()).prop_map(Op::Reply),
        3 => (0..replies).prop_map(Op::Reply),
        1 => proptest::collection::vec(any::<u8>(), 0..32).prop_map(Op::Input),
        1 => Just(Op::Eof),
        4 => mail().prop_map(Op::SendMail),
        6 => body(),
        3 => Just(Op::FinishBody),
        1 => Just(Op::Noop),
        1 => Just(Op::Quit),
        1 => Just(Op::Abort),
        1 => any::<u8>().prop_map(Op::Tls),
        1 => any::<u8>().prop_map(Op::Peer),
        2 => any::<u8>().prop_map(Op::Advance),
        2 => Just(Op::Take),
        2 => Just(Op::Poll),
        4 => step().prop_map(Op::Next),
        1 => step().prop_map(Op::Timeout),
        1 => step().prop_map(Op::Connect),
        1 => Just(Op::PollTimeout),
        1 => (0u8..72).prop_map(Op::Fill),
    ]
}

/// A step of the simulated clock (`testing::clock_step`): mostly short, or
/// to the last deadline handed out, or a nanosecond before it.
fn step() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => 0u8..20,
        1 => any::<u8>(),
        1 => Just(250u8),
        1 => Just(251u8),
    ]
}

/// Indices in `REPLIES`: 250, 354, 334 (empty, Username:, Password:), 235,
/// the STARTTLS 220, 221.
const COMMON_REPLIES: [u8; 8] = [7, 7, 8, 9, 10, 11, 12, 13];

/// A `write_body`: line-break halves and dots, or a canned chunk.
fn body() -> impl Strategy<Value = Op> {
    let chunks = u8::try_from(CHUNKS.len()).unwrap();
    prop_oneof![
        proptest::collection::vec(prop::sample::select(b"ab.\r\n\xff".to_vec()), 0..24)
            .prop_map(Op::WriteBody),
        (0..chunks).prop_map(Op::WriteChunk),
    ]
}

/// Exact sizes mostly small, so bodies run past them, meet them, or fall
/// short of them.
fn mail() -> impl Strategy<Value = Mail> {
    let exact = prop_oneof![
        2 => Just(None),
        6 => (0u64..32).prop_map(Some),
        1 => (256u64..300).prop_map(Some),
        1 => Just(Some(u64::MAX)),
    ];
    (
        1u8..=4,
        exact,
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(recipients, exact, binary, eight_bit, for_body)| Mail {
            recipients,
            exact,
            binary,
            eight_bit,
            for_body,
        })
}

/// A selector and calls. The selector leans to plaintext without
/// credentials, and most calls start with a greeting and an EHLO reply
/// (after the handshake, under implicit TLS), often followed by a message
/// and some of its body: the rest then meets a session with a body open.
fn caller() -> impl Strategy<Value = ([u8; 4], Vec<Op>)> {
    // Always with the clock, and its options (bits 2 to 6) arbitrary.
    let selector = (
        prop_oneof![Just(1u8), Just(2u8), any::<u8>()],
        any::<u8>(),
        any::<u8>(),
        prop_oneof![2 => Just(0u8), 1 => any::<u8>()],
        any::<u8>(),
    )
        .prop_map(|(policy, options, name, credentials, flags)| {
            [
                (policy % 4) | ((options << 2) & 0x7c) | CLOCKED,
                name,
                credentials,
                flags,
            ]
        });
    let (ok, message) = (Op::Reply(7), Op::WriteChunk(7));
    let whole = Mail {
        for_body: true,
        ..Mail::new()
    };
    let opening = prop_oneof![
        3 => (mail(), proptest::collection::vec(body(), 0..3)).prop_map(|(mail, body)| {
            let mut ops = vec![Op::SendMail(mail)];
            ops.extend(body);
            ops
        }),
        // A whole message: BDAT where CHUNKING is offered, else DATA...
        1 => Just(vec![Op::SendMail(whole), message.clone(), Op::FinishBody]),
        // ... and DATA answered, in one pipelined batch or command by command:
        // 354, or refused with its recipients accepted, so that no body may
        // follow what the caller then writes.
        2 => prop::sample::select(vec![8, 8, 15, 16]).prop_map(move |data| vec![
            Op::SendMail(Mail::new()),
            ok.clone(),
            ok.clone(),
            Op::Reply(data),
            message.clone(),
            Op::FinishBody,
        ]),
        2 => Just(Vec::new()),
    ];
    let start = (
        prop::bool::weighted(0.9),
        prop::sample::select(EHLO_REPLIES.to_vec()),
        opening,
    );
    (selector, start, proptest::collection::vec(op(), 0..40)).prop_map(
        |(selector, (greeted, ehlo, opening), rest)| {
            let mut ops = Vec::new();
            if greeted {
                if selector[0] % 4 == 3 {
                    ops.push(Op::Tls(0));
                }
                ops.extend([Op::Reply(0), Op::Reply(ehlo)]);
                ops.extend(opening);
            }
            ops.extend(rest);
            (selector, ops)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 4096,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/proptest-regressions/properties.txt"))),
        ..ProptestConfig::default()
    })]

    /// (e) An adversarial caller — any call at any moment among arbitrary
    /// server replies — never gets a byte written past a declared BDAT
    /// size, anything but its message inside an open chunk or body, a
    /// credential in plaintext to a remote peer, or more than a final QUIT
    /// after an error (`testing::check_api`). Run through the fuzz
    /// encoding, which must round-trip, so a failing case is a fuzz seed.
    #[test]
    fn adversarial_callers_keep_the_wire_sound((selector, ops) in caller()) {
        let input = encode_api(selector, &ops);
        prop_assert_eq!(decode_api(&input), Some((selector, ops)));
        api(&input);
    }
}

/// The options of a clocked scenario (`testing::clock_options`) in which an
/// honest adapter only sees a time-out when a deadline passed: no zero
/// timeout (RSET's among the per-stage exceptions), no zero time limit.
fn honest_options(bits: u8) -> u8 {
    let bits = bits & 0b1_1011;
    if bits >> 3 == 3 {
        bits & !0b1_0000
    } else {
        bits
    }
}

/// Steps of the clock for a driving adapter: often none, often short, or
/// to a deadline or a nanosecond before it.
fn drive_steps() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            4 => Just(255u8),
            3 => 0u8..20,
            1 => Just(250u8),
            1 => Just(251u8),
            1 => any::<u8>(),
        ],
        1..24,
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1024,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/proptest-regressions/properties.txt"))),
        ..ProptestConfig::default()
    })]

    /// (f) An adapter driving the session with `next`, its clock moving on
    /// before every I/O, writes what the event-driven run writes and gets
    /// the same outcomes and error, until a deadline passes: then the run
    /// so far is where the timeless one begins, and the error is the
    /// stalled stage's time-out or the time limit
    /// (`testing::check_next_matches_drive`). Scripts that complete whole
    /// sessions, under every timeout and time limit the clock offers.
    #[test]
    fn next_drives_as_events_do_until_a_deadline_passes(
        which in 0usize..4,
        options in any::<u8>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        steps in drive_steps(),
    ) {
        let (mut scenario, server) = scripts().remove(which);
        scenario.options = clock_options(honest_options(options));
        check_next_matches_drive(&scenario, &server, &cuts, &steps);
    }

    /// (f) The same with reply-shaped noise, under any configuration.
    #[test]
    fn next_drives_reply_shaped_noise_as_events_do(
        selector in any::<[u8; 4]>(),
        options in any::<u8>(),
        lines in proptest::collection::vec((prop::sample::select(vec![
            "220", "221", "235", "250", "334", "354", "421", "450", "500", "502", "535", "550", "554",
        ]), prop::sample::select(vec![" ", "-"]), prop::sample::select(vec![
            "", "ok", "STARTTLS", "PIPELINING", "AUTH PLAIN LOGIN", "SIZE 10", "CHUNKING",
            "BINARYMIME", "VXNlcm5hbWU6", "UGFzc3dvcmQ6", "!!",
        ])), 0..30),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        steps in drive_steps(),
    ) {
        let mut bytes = Vec::new();
        for (code, sep, text) in lines {
            bytes.extend_from_slice(format!("{code}{sep}{text}\r\n").as_bytes());
        }
        let scenario = Scenario::from_selector([
            (selector[0] & 3) | (honest_options(options) << 2) | CLOCKED,
            selector[1],
            selector[2],
            selector[3],
        ]);
        check_next_matches_drive(&scenario, &bytes, &cuts, &steps);
    }
}

/// The honest driver against the clock reaches a delivery, and a stall at
/// any of its waits ends it with that stage's time-out.
#[test]
fn next_drives_a_delivery_and_each_stall_times_out_its_stage() {
    let (mut scenario, server) = scripts().remove(3);
    scenario.options = clock_options(0);
    // A reply per read, as a server answers a command at a time.
    let cuts: Vec<usize> = (1..server.len())
        .filter(|&i| server[i - 1] == b'\n')
        .collect();
    let run = check_next_matches_drive(&scenario, &server, &cuts, &[255]);
    assert_eq!(run.error, None, "{run:?}");
    assert_eq!(
        run.events
            .iter()
            .filter(|e| e.starts_with("TransactionComplete(Ok"))
            .count(),
        2,
        "{run:?}"
    );
    // Stall the n-th I/O (the clock jumps to its deadline), all others in
    // time: every stage of the dialogue times out in turn.
    let mut stalled = Vec::new();
    for n in 0..40 {
        let mut steps = vec![255u8; n];
        steps.push(250);
        let run = check_next_matches_drive(&scenario, &server, &cuts, &steps);
        if let Some(Error::Timeout { stage }) = run.error {
            if !stalled.contains(&stage) {
                stalled.push(stage);
            }
        }
    }
    use smtp_proto::Stage;
    for stage in [
        Stage::Greeting,
        Stage::Ehlo,
        Stage::Mail,
        Stage::Rcpt,
        Stage::Data,
        Stage::DataEnd,
        Stage::Quit,
    ] {
        assert!(
            stalled.contains(&stage),
            "{stage:?} never timed out: {stalled:?}"
        );
    }
}
