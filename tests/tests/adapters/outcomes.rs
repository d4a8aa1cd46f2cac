//! What became of each message when the connection breaks: accepted,
//! refused, not sent, or unknown (the end of data went out and no reply
//! came). An unknown delivery is never called transient: resending it may
//! deliver it twice (RFC 1047).

use std::io;

use proto::Outcome;
use smtp_blocking::smtp_proto as proto;
use smtp_tests::{Peer, ScriptedServer};

use crate::common::*;
use crate::harness::{Adapter, AdapterError};

/// Greeting, EHLO with `extensions`, then `MAIL` and `RCPT` answered.
fn envelope_accepted(peer: &mut Peer, extensions: &[&str]) -> io::Result<()> {
    peer.reply("220 mail.test ESMTP")?;
    ehlo(peer, extensions)?;
    peer.expect("MAIL FROM:")?;
    peer.expect("RCPT TO:")?;
    peer.reply("250 OK\n250 OK")
}

fn assert_unknown(adapter: &dyn Adapter, err: &AdapterError) {
    assert_eq!(err.outcome, Outcome::Unknown, "{}: {err:?}", adapter.name());
    assert!(
        !err.transient,
        "{}: unknown is not transient",
        adapter.name()
    );
    assert!(
        err.message.contains("delivery unknown"),
        "{}: {}",
        adapter.name(),
        err.message
    );
}

/// The server reads the whole message, final dot included, and the
/// connection closes before its reply: delivery unknown, with DATA and
/// with BDAT.
pub fn outcome_unknown_when_closed_right_after_the_final_dot(adapter: &dyn Adapter) {
    for chunking in [false, true] {
        let server = ScriptedServer::start_fn(move |peer| {
            if chunking {
                envelope_accepted(peer, &["PIPELINING", "CHUNKING"])?;
                let bdat = String::from_utf8_lossy(&peer.expect("BDAT ")?).into_owned();
                let size: usize = bdat.split(' ').nth(1).unwrap_or("0").parse().unwrap();
                peer.read_exact_bytes(size)?;
            } else {
                envelope_accepted(peer, &["PIPELINING"])?;
                peer.expect("DATA")?;
                peer.reply("354 go ahead")?;
                peer.read_data()?;
            }
            peer.abort();
            Ok(())
        })
        .unwrap();
        let mut client = connect_ok(adapter, &server, config_plain(), &plain_opts(FAST));
        let err = client
            .send(envelope(), b"Subject: doubt\r\n\r\nhi\r\n")
            .unwrap_err();
        assert_unknown(adapter, &err);
    }
}

/// The server sends its `250` and closes at once: accepted, whatever
/// follows.
pub fn outcome_accepted_when_closed_right_after_the_250(adapter: &dyn Adapter) {
    let server = ScriptedServer::start_fn(|peer| {
        envelope_accepted(peer, &["PIPELINING"])?;
        peer.expect("DATA")?;
        peer.reply("354 go ahead")?;
        peer.read_data()?;
        peer.reply("250 2.0.0 queued")?;
        peer.abort();
        Ok(())
    })
    .unwrap();
    let mut client = connect_ok(adapter, &server, config_plain(), &plain_opts(FAST));
    let delivery = client
        .send(envelope(), b"Subject: ok\r\n\r\nhi\r\n")
        .unwrap();
    assert!(delivery.recipients()[0].accepted(), "{}", adapter.name());
}

/// The server resets the connection while a 32 MiB body streams in: its end
/// was never written, so the message was not sent and may go again.
pub fn outcome_not_sent_when_closed_mid_body(adapter: &dyn Adapter) {
    let server = ScriptedServer::start_fn(|peer| {
        envelope_accepted(peer, &["PIPELINING"])?;
        peer.expect("DATA")?;
        peer.reply("354 go ahead")?;
        peer.read_exact_bytes(64 * 1024)?;
        peer.abort();
        Ok(())
    })
    .unwrap();
    let mut client = connect_ok(adapter, &server, config_plain(), &plain_opts(FAST));
    let line = [b'x'; 1022];
    let mut body = Vec::with_capacity(32 << 20);
    while body.len() < 32 << 20 {
        body.extend_from_slice(&line);
        body.extend_from_slice(b"\r\n");
    }
    let reader = Box::new(std::io::Cursor::new(body));
    let err = client.send_reader(envelope(), reader).unwrap_err();
    assert_eq!(err.outcome, Outcome::NotSent, "{}: {err:?}", adapter.name());
    assert!(err.transient, "{}: {err:?}", adapter.name());
}

/// A batch of four with PIPELINING: the first accepted, the second's end of
/// data read and the connection closed before its reply (the third's
/// commands rode behind it): accepted, unknown, not sent, not sent — one
/// result per message.
pub fn outcome_per_message_when_a_batch_breaks(adapter: &dyn Adapter) {
    let server = ScriptedServer::start_fn(|peer| {
        envelope_accepted(peer, &["PIPELINING"])?;
        peer.expect("DATA")?;
        peer.reply("354 go ahead")?;
        peer.read_data()?;
        peer.reply("250 2.0.0 queued")?;
        peer.expect("MAIL FROM:")?;
        peer.expect("RCPT TO:")?;
        peer.reply("250 OK\n250 OK")?;
        peer.expect("DATA")?;
        peer.reply("354 go ahead")?;
        peer.read_data()?;
        peer.abort();
        Ok(())
    })
    .unwrap();
    let mut client = connect_ok(adapter, &server, config_plain(), &plain_opts(FAST));
    let body: &[u8] = b"Subject: batch\r\n\r\nhi\r\n";
    let results = client.send_all(vec![(envelope(), body); 4]);
    let outcomes: Vec<Outcome> = results
        .iter()
        .map(|r| match r {
            Ok(_) => Outcome::Accepted,
            Err(err) => err.outcome,
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Accepted,
            Outcome::Unknown,
            Outcome::NotSent,
            Outcome::NotSent
        ],
        "{}: {results:?}",
        adapter.name()
    );
    for result in &results[2..] {
        let err = result.as_ref().unwrap_err();
        assert!(err.transient, "{}: {err:?}", adapter.name());
    }
}

/// A refused end of data is refused, not unknown, and leaves the client
/// usable.
pub fn outcome_refused_at_the_end_of_data(adapter: &dyn Adapter) {
    let server = ScriptedServer::start_fn(|peer| {
        envelope_accepted(peer, &["PIPELINING"])?;
        peer.expect("DATA")?;
        peer.reply("354 go ahead")?;
        peer.read_data()?;
        peer.reply("554 5.6.0 content refused")?;
        until_eof(peer, FAST)
    })
    .unwrap();
    let mut client = connect_ok(adapter, &server, config_plain(), &plain_opts(FAST));
    let err = client
        .send(envelope(), b"Subject: no\r\n\r\nhi\r\n")
        .unwrap_err();
    assert_eq!(err.outcome, Outcome::Refused, "{}: {err:?}", adapter.name());
    assert!(!client.is_poisoned(), "{}", adapter.name());
}
