//! The test message `smtp-send` builds when no `--data` is given, as swaks
//! does: the headers a receiving server expects (RFC 5322 §3.6), a
//! one-line body, `--header` and `--body` to change them.

use crate::report::Failure;
use smtp_blocking::Address;
use std::sync::atomic::{AtomicU64, Ordering};
use time::format_description::well_known::Rfc2822;
use time::OffsetDateTime;

/// What the message is built from.
#[derive(Debug)]
pub struct TestMessage<'a> {
    /// The envelope sender (`None`: `<>`).
    pub from: Option<&'a Address>,
    /// The envelope recipients, in order.
    pub to: &'a [Address],
    /// The EHLO name: the domain of `From:` for `<>`, and of the
    /// Message-ID when there is no sender.
    pub helo: &'a str,
    /// `--header "Name: value"`, in order: each replaces the header of that
    /// name (case-insensitively) or is added.
    pub headers: &'a [String],
    /// `--body`: the body instead of the one-line default.
    pub body: Option<&'a [u8]>,
    /// The time in the local offset: `Date:`, the subject and the body.
    pub now: OffsetDateTime,
}

impl TestMessage<'_> {
    /// The message, with CRLF line endings. A `--header` that is not
    /// `Name: value` with a printable name and a value without control
    /// characters is a usage error.
    pub fn build(&self) -> Result<Vec<u8>, Failure> {
        let date = self
            .now
            .format(&Rfc2822)
            .map_err(|err| Failure::usage(format!("formatting the date: {err}")))?;
        let from = match self.from {
            Some(from) => from.as_str().to_owned(),
            None => format!("smtp-send@{}", self.helo),
        };
        let domain = self
            .from
            .and_then(|from| from.as_str().rsplit_once('@'))
            .map_or(self.helo, |(_, domain)| domain);
        let to: Vec<&str> = self.to.iter().map(Address::as_str).collect();
        let mut headers: Vec<(String, String)> = vec![
            ("Date".into(), date.clone()),
            ("Message-ID".into(), message_id(self.now, domain)),
            ("From".into(), from),
            ("To".into(), to.join(", ")),
            ("Subject".into(), format!("smtp-send test {date}")),
            ("MIME-Version".into(), "1.0".into()),
            ("Content-Type".into(), "text/plain; charset=utf-8".into()),
        ];
        for header in self.headers {
            let (name, value) = parse_header(header)?;
            match headers
                .iter_mut()
                .find(|(have, _)| have.eq_ignore_ascii_case(&name))
            {
                Some(slot) => *slot = (name, value),
                None => headers.push((name, value)),
            }
        }
        let mut message = Vec::with_capacity(512);
        for (name, value) in &headers {
            message.extend_from_slice(name.as_bytes());
            message.extend_from_slice(b": ");
            message.extend_from_slice(value.as_bytes());
            message.extend_from_slice(b"\r\n");
        }
        message.extend_from_slice(b"\r\n");
        match self.body {
            Some(body) => message.extend_from_slice(body),
            None => message.extend_from_slice(
                format!(
                    "This is a test message sent by smtp-send {} at {date}.\r\n",
                    env!("CARGO_PKG_VERSION")
                )
                .as_bytes(),
            ),
        }
        Ok(message)
    }
}

/// `<time.pid.count@domain>`: unique across runs and within one.
fn message_id(now: OffsetDateTime, domain: &str) -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    format!(
        "<{:x}.{}.{}.smtp-send@{domain}>",
        now.unix_timestamp_nanos(),
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `Name: value`: a field name of printable ASCII without `:` (RFC 5322
/// §3.6.8), a value without control characters (no header injection).
fn parse_header(header: &str) -> Result<(String, String), Failure> {
    let bad = |why: &str| Failure::usage(format!("--header {header:?}: {why}"));
    let (name, value) = header
        .split_once(':')
        .ok_or_else(|| bad("not \"Name: value\""))?;
    if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b)) {
        return Err(bad("the name must be printable ASCII without spaces"));
    }
    let value = value.trim();
    if value.chars().any(|c| c.is_control()) {
        return Err(bad("the value must not contain control characters"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use time::macros::datetime;

    fn addr(a: &str) -> Address {
        Address::new(a).unwrap()
    }

    fn text(m: &TestMessage<'_>) -> String {
        String::from_utf8(m.build().unwrap()).unwrap()
    }

    #[test]
    fn the_default_message_has_every_header_and_a_body() {
        let from = addr("me@example.com");
        let to = [addr("a@example.org"), addr("b@example.net")];
        let m = TestMessage {
            from: Some(&from),
            to: &to,
            helo: "client.test",
            headers: &[],
            body: None,
            now: datetime!(2026-12-03 22:30:05 +01:00),
        };
        let text = text(&m);
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let lines: Vec<&str> = head.split("\r\n").collect();
        assert_eq!(lines[0], "Date: Thu, 03 Dec 2026 22:30:05 +0100");
        assert!(lines[1].starts_with("Message-ID: <") && lines[1].ends_with("@example.com>"));
        assert_eq!(lines[2], "From: me@example.com");
        assert_eq!(lines[3], "To: a@example.org, b@example.net");
        assert_eq!(
            lines[4],
            "Subject: smtp-send test Thu, 03 Dec 2026 22:30:05 +0100"
        );
        assert_eq!(lines[5], "MIME-Version: 1.0");
        assert_eq!(lines[6], "Content-Type: text/plain; charset=utf-8");
        assert_eq!(lines.len(), 7);
        assert!(
            body.contains("smtp-send") && body.contains("22:30:05"),
            "{body}"
        );
        assert!(body.ends_with("\r\n") && !body.trim_end().contains('\n'));
    }

    #[test]
    fn an_empty_sender_is_smtp_send_at_the_helo_name() {
        let to = [addr("a@example.org")];
        let m = TestMessage {
            from: None,
            to: &to,
            helo: "client.test",
            headers: &[],
            body: None,
            now: datetime!(2026-12-03 22:30:05 UTC),
        };
        let text = text(&m);
        assert!(
            text.contains("\r\nFrom: smtp-send@client.test\r\n"),
            "{text}"
        );
        assert!(text.contains("@client.test>\r\n"), "{text}");
        assert!(text.starts_with("Date: Thu, 03 Dec 2026 22:30:05 +0000\r\n"));
    }

    #[test]
    fn headers_replace_or_add_and_the_body_is_replaced() {
        let to = [addr("a@example.org")];
        let headers = [
            "subject: mine".to_owned(),
            "X-Test: 1".to_owned(),
            "X-Empty:".to_owned(),
        ];
        let m = TestMessage {
            from: None,
            to: &to,
            helo: "h.test",
            headers: &headers,
            body: Some(b"custom\r\n"),
            now: datetime!(2026-12-03 22:30:05 UTC),
        };
        let text = text(&m);
        assert!(text.contains("\r\nsubject: mine\r\n"), "{text}");
        assert!(!text.contains("Subject: smtp-send test"), "{text}");
        assert!(
            text.contains("\r\nX-Test: 1\r\nX-Empty: \r\n\r\ncustom\r\n"),
            "{text}"
        );
        // Two messages built in one run get different Message-IDs.
        let ids: Vec<String> = (0..2)
            .map(|_| {
                let t = String::from_utf8(m.build().unwrap()).unwrap();
                t.lines()
                    .find(|l| l.starts_with("Message-ID"))
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_ne!(ids[0], ids[1]);
    }

    #[test]
    fn bad_headers_are_usage_errors() {
        let to = [addr("a@example.org")];
        for bad in [
            "no colon",
            ": empty name",
            "Sp ace: x",
            "X: a\r\nBcc: evil",
            "X: tab\there",
        ] {
            let headers = [bad.to_owned()];
            let m = TestMessage {
                from: None,
                to: &to,
                helo: "h.test",
                headers: &headers,
                body: None,
                now: datetime!(2026-12-03 22:30:05 UTC),
            };
            let err = m.build().unwrap_err();
            assert_eq!(err.kind, crate::report::Kind::Usage, "{bad}");
        }
    }
}
