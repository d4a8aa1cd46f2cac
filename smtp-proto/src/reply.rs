//! Server replies (RFC 5321 §4.2) and their incremental parser.

use bytes::{Buf, Bytes, BytesMut};
use core::fmt;

/// A three-digit reply code, `200` to `599`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplyCode(u16);

impl ReplyCode {
    /// `220` service ready.
    pub const SERVICE_READY: ReplyCode = ReplyCode(220);
    /// `221` closing.
    pub const CLOSING: ReplyCode = ReplyCode(221);
    /// `235` authentication succeeded.
    pub const AUTH_SUCCEEDED: ReplyCode = ReplyCode(235);
    /// `250` OK.
    pub const OK: ReplyCode = ReplyCode(250);
    /// `334` authentication challenge.
    pub const AUTH_CHALLENGE: ReplyCode = ReplyCode(334);
    /// `354` start mail input.
    pub const START_MAIL_INPUT: ReplyCode = ReplyCode(354);
    /// `421` service not available, closing the channel.
    pub const SERVICE_UNAVAILABLE: ReplyCode = ReplyCode(421);

    /// A reply code from its value; `None` outside `200..=599`.
    pub fn new(value: u16) -> Option<ReplyCode> {
        (200..=599).contains(&value).then_some(ReplyCode(value))
    }

    /// The numeric value.
    pub fn get(self) -> u16 {
        self.0
    }

    /// The first digit: 2 positive, 3 intermediate, 4 transient, 5 permanent.
    pub fn class(self) -> u8 {
        (self.0 / 100) as u8
    }

    /// `2yz`.
    pub fn is_positive(self) -> bool {
        self.class() == 2
    }

    /// `3yz`.
    pub fn is_intermediate(self) -> bool {
        self.class() == 3
    }

    /// `4yz`: the same command may succeed later.
    pub fn is_transient(self) -> bool {
        self.class() == 4
    }

    /// `5yz`: the same command will fail again.
    pub fn is_permanent(self) -> bool {
        self.class() == 5
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An enhanced status code `class.subject.detail` (RFC 3463), e.g. `5.7.4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    /// 2, 4 or 5.
    pub class: u8,
    /// 0 to 999.
    pub subject: u16,
    /// 0 to 999.
    pub detail: u16,
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One complete server reply, single- or multi-line.
///
/// The raw bytes are kept as received (minus nothing), so non-UTF-8 text
/// survives; [`Reply::lines`] yields each line's text without the code,
/// the separator and the line ending.
#[derive(Clone, PartialEq, Eq)]
pub struct Reply {
    code: ReplyCode,
    enhanced: Option<EnhancedCode>,
    raw: Raw,
}

/// Replies up to this many bytes are kept inline, so that parsing them
/// allocates nothing: the MAIL, RCPT and DATA replies of the servers we know
/// (Gmail's, the longest, some 60 bytes) and short final ones (Postfix's;
/// Gmail's final reply, about 75 bytes, is shared). As large as keeps
/// [`crate::Error`] within 128 bytes.
const INLINE: usize = 70;

/// A reply's bytes: inline when short, else a slice of the parser's buffer.
#[derive(Clone)]
enum Raw {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Bytes),
}

impl Raw {
    fn as_bytes(&self) -> &[u8] {
        match self {
            Raw::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or(bytes),
            Raw::Shared(bytes) => bytes,
        }
    }
}

impl PartialEq for Raw {
    fn eq(&self, other: &Raw) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Raw {}

impl Reply {
    /// Parses exactly one complete reply from `bytes` with default limits, without
    /// enhanced-code recognition; handy for tests and tools.
    pub fn parse(bytes: &[u8]) -> Result<Reply, ReplyError> {
        let mut parser = ReplyParser::new(ReplyLimits::default());
        parser.extend(bytes);
        match parser.next_reply(false)? {
            Some(reply) if parser.buffered() == 0 => Ok(reply),
            Some(_) => Err(ReplyError::TrailingBytes),
            None => Err(ReplyError::Incomplete),
        }
    }

    /// The reply code; every line of a reply carries the same one.
    pub fn code(&self) -> ReplyCode {
        self.code
    }

    /// The enhanced status code at the start of the first line, when the server
    /// advertised ENHANCEDSTATUSCODES (RFC 2034) and the reply carries one whose
    /// class matches the reply code's.
    pub fn enhanced_code(&self) -> Option<EnhancedCode> {
        self.enhanced
    }

    /// Each line's text, without code, separator and line ending.
    pub fn lines(&self) -> Lines<'_> {
        Lines {
            rest: self.raw.as_bytes(),
        }
    }

    /// The first line's text without the enhanced status code.
    pub fn message(&self) -> &[u8] {
        let first = self.lines().next().unwrap_or_default();
        if self.enhanced.is_some() {
            match first.iter().position(|&b| b == b' ') {
                Some(i) => &first[i + 1..],
                None => &[],
            }
        } else {
            first
        }
    }

    /// The reply exactly as received, every line with its ending.
    pub fn as_bytes(&self) -> &[u8] {
        self.raw.as_bytes()
    }

    /// `2yz`.
    pub fn is_positive(&self) -> bool {
        self.code.is_positive()
    }

    /// `4yz`.
    pub fn is_transient(&self) -> bool {
        self.code.is_transient()
    }

    /// `5yz`.
    pub fn is_permanent(&self) -> bool {
        self.code.is_permanent()
    }
}

impl fmt::Display for Reply {
    /// `250 text` for each line, lines joined by ` / `, control characters escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.lines().enumerate() {
            if i > 0 {
                f.write_str(" / ")?;
            }
            write!(f, "{}", self.code)?;
            if !line.is_empty() {
                f.write_str(" ")?;
                write_escaped(f, line)?;
            }
        }
        Ok(())
    }
}

impl Reply {
    /// A one-line `250` reply with `text` (an enhanced code first, when it
    /// has one): what a test double answers, with no server to ask.
    pub(crate) fn made_up_ok(text: &str) -> Reply {
        let raw = Raw::Shared(Bytes::from(format!("250 {text}\r\n")));
        let enhanced = parse_enhanced(ReplyCode::OK, raw.as_bytes());
        Reply {
            code: ReplyCode::OK,
            enhanced,
            raw,
        }
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reply({self})")
    }
}

/// Writes server text as UTF-8 where it is, escaping control characters and
/// invalid bytes so a hostile reply cannot forge terminal output or log lines.
pub(crate) fn write_escaped(f: &mut dyn fmt::Write, bytes: &[u8]) -> fmt::Result {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
        }
        for b in chunk.invalid() {
            write!(f, "\\x{b:02x}")?;
        }
    }
    Ok(())
}

/// Iterator over the text of a reply's lines.
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let end = memchr::memchr(b'\n', self.rest).unwrap_or(self.rest.len());
        let line = &self.rest[..end];
        self.rest = self.rest.get(end + 1..).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        Some(line.get(4..).unwrap_or_default())
    }
}

/// Bounds on what the parser buffers. A reply that breaks one is a protocol
/// error, never unbounded memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Longest line accepted, line ending included. RFC 5321 §4.5.3.1.5 allows 512
    /// octets; real servers send longer EHLO and error lines, so the default is 4096.
    pub max_line_len: usize,
    /// Most lines in one reply. Default 128 (the longest EHLO replies seen have
    /// about 20).
    pub max_lines: usize,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        ReplyLimits {
            max_line_len: 4096,
            max_lines: 128,
        }
    }
}

impl ReplyLimits {
    /// The most bytes the parser ever holds: one maximal reply.
    pub fn max_buffered(&self) -> usize {
        self.max_line_len.saturating_mul(self.max_lines)
    }
}

/// Why bytes from the server are not a valid reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// A line does not start with a three-digit code from 200 to 599.
    #[error("reply line does not start with a valid code (200-599)")]
    InvalidCode,
    /// The code is not followed by a space, `-` or the end of the line.
    #[error("reply code is not followed by a space, '-' or the end of the line")]
    InvalidSeparator,
    /// A line of a multi-line reply carries a different code from the first.
    #[error("a multi-line reply mixes codes {first} and {other}")]
    MixedCodes {
        /// The first line's code.
        first: u16,
        /// The code of the line that differs.
        other: u16,
    },
    /// A line is longer than [`ReplyLimits::max_line_len`].
    #[error("reply line longer than {limit} bytes")]
    LineTooLong {
        /// The limit in force.
        limit: usize,
    },
    /// A reply has more lines than [`ReplyLimits::max_lines`].
    #[error("reply with more than {limit} lines")]
    TooManyLines {
        /// The limit in force.
        limit: usize,
    },
    /// [`Reply::parse`] was given less than one reply.
    #[error("incomplete reply")]
    Incomplete,
    /// [`Reply::parse`] was given more than one reply.
    #[error("bytes after the end of the reply")]
    TrailingBytes,
    /// More bytes arrived than any outstanding command could account for.
    #[error("more than {limit} bytes arrived that no command asked for")]
    Unsolicited {
        /// The limit in force.
        limit: usize,
    },
}

/// Incremental reply parser: bytes go in with [`ReplyParser::extend`] in any
/// split, whole replies come out of [`ReplyParser::next_reply`].
///
/// Line endings: CRLF, and also a bare LF (some servers and test tools send
/// it; accepting it cannot smuggle anything into what the client sends). A CR
/// that is not followed by LF is part of the text.
#[derive(Debug, Clone)]
pub struct ReplyParser {
    buf: BytesMut,
    limits: ReplyLimits,
    /// Offset of the first line of the reply being assembled that is not yet checked.
    scan: usize,
    /// Lines checked so far in the reply being assembled.
    lines: usize,
    /// The code of the reply being assembled, once its first line is checked.
    code: Option<ReplyCode>,
}

impl ReplyParser {
    /// A parser with the given limits.
    pub fn new(limits: ReplyLimits) -> ReplyParser {
        ReplyParser {
            buf: BytesMut::new(),
            limits,
            scan: 0,
            lines: 0,
            code: None,
        }
    }

    /// Appends bytes received from the server.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as part of a reply.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Drops every buffered byte (used when the connection is abandoned).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.scan = 0;
        self.lines = 0;
        self.code = None;
    }

    /// The next complete reply, `Ok(None)` when more bytes are needed.
    ///
    /// `enhanced` turns on recognition of RFC 3463 codes (the server advertised
    /// ENHANCEDSTATUSCODES).
    pub fn next_reply(&mut self, enhanced: bool) -> Result<Option<Reply>, ReplyError> {
        loop {
            let Some(nl) = memchr::memchr(b'\n', &self.buf[self.scan..]) else {
                if self.buf.len() - self.scan > self.limits.max_line_len {
                    return Err(ReplyError::LineTooLong {
                        limit: self.limits.max_line_len,
                    });
                }
                return Ok(None);
            };
            let end = self.scan + nl + 1;
            if end - self.scan > self.limits.max_line_len {
                return Err(ReplyError::LineTooLong {
                    limit: self.limits.max_line_len,
                });
            }
            let line = &self.buf[self.scan..end];
            let (code, last) = parse_line_head(line)?;
            if let Some(first) = self.code {
                if first != code {
                    return Err(ReplyError::MixedCodes {
                        first: first.get(),
                        other: code.get(),
                    });
                }
            }
            self.lines += 1;
            if self.lines > self.limits.max_lines {
                return Err(ReplyError::TooManyLines {
                    limit: self.limits.max_lines,
                });
            }
            self.code = Some(code);
            self.scan = end;
            if last {
                let raw = match u8::try_from(end) {
                    Ok(len) if end <= INLINE => {
                        let mut bytes = [0; INLINE];
                        bytes[..end].copy_from_slice(&self.buf[..end]);
                        self.buf.advance(end);
                        Raw::Inline { len, bytes }
                    }
                    _ => Raw::Shared(self.buf.split_to(end).freeze()),
                };
                self.scan = 0;
                self.lines = 0;
                self.code = None;
                let enhanced = if enhanced {
                    parse_enhanced(code, raw.as_bytes())
                } else {
                    None
                };
                return Ok(Some(Reply {
                    code,
                    enhanced,
                    raw,
                }));
            }
        }
    }
}

/// Checks a line's code and separator; returns the code and whether the line ends the reply.
fn parse_line_head(line: &[u8]) -> Result<(ReplyCode, bool), ReplyError> {
    let digits = line.get(..3).ok_or(ReplyError::InvalidCode)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(ReplyError::InvalidCode);
    }
    let value = digits
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    let code = ReplyCode::new(value).ok_or(ReplyError::InvalidCode)?;
    match line.get(3) {
        Some(b' ') | Some(b'\r') | Some(b'\n') => {
            // "250\r\n" is a valid final line; "250\rx" is not.
            if line[3] == b'\r' && line.get(4) != Some(&b'\n') {
                return Err(ReplyError::InvalidSeparator);
            }
            Ok((code, true))
        }
        Some(b'-') => Ok((code, false)),
        _ => Err(ReplyError::InvalidSeparator),
    }
}

/// Recognises `class.subject.detail` at the start of the first line (RFC 3463 §2).
fn parse_enhanced(code: ReplyCode, raw: &[u8]) -> Option<EnhancedCode> {
    let first = Lines { rest: raw }.next()?;
    let token_end = first.iter().position(|&b| b == b' ').unwrap_or(first.len());
    let mut parts = first[..token_end].split(|&b| b == b'.');
    let mut number = |max_len: usize| -> Option<u16> {
        let part = parts.next()?;
        if part.is_empty() || part.len() > max_len || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            part.iter()
                .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0')),
        )
    };
    let class = number(1)?;
    let subject = number(3)?;
    let detail = number(3)?;
    if parts.next().is_some() || class != u16::from(code.class()) {
        return None;
    }
    Some(EnhancedCode {
        class: code.class(),
        subject,
        detail,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn limits_are_inclusive() {
        let limits = ReplyLimits {
            max_line_len: 16,
            max_lines: 3,
        };
        // 16 octets with CRLF: the longest line allowed.
        let mut parser = ReplyParser::new(limits);
        parser.extend(b"250 abcdefghij\r\n");
        assert!(parser.next_reply(false).unwrap().is_some());
        parser.extend(b"250 abcdefghijk\r\n");
        assert_eq!(
            parser.next_reply(false),
            Err(ReplyError::LineTooLong { limit: 16 })
        );
        // Three lines: the most allowed; a fourth is refused.
        let mut parser = ReplyParser::new(limits);
        parser.extend(b"250-a\r\n250-b\r\n250 c\r\n");
        assert_eq!(
            parser.next_reply(false).unwrap().unwrap().lines().count(),
            3
        );
        parser.extend(b"250-a\r\n250-b\r\n250-c\r\n250 d\r\n");
        assert_eq!(
            parser.next_reply(false),
            Err(ReplyError::TooManyLines { limit: 3 })
        );
    }

    #[test]
    fn clear_forgets_everything_buffered() {
        let mut parser = ReplyParser::new(ReplyLimits::default());
        parser.extend(b"250-first line\r\n250-second");
        assert_eq!(parser.next_reply(false), Ok(None));
        parser.clear();
        assert_eq!(parser.buffered(), 0);
        parser.extend(b"221 bye\r\n");
        let reply = parser.next_reply(false).unwrap().unwrap();
        assert_eq!(reply.to_string(), "221 bye");
    }

    #[test]
    fn multi_line_replies_display_and_debug_every_line() {
        let reply =
            Reply::parse(b"250-mail.example.com\r\n250-PIPELINING\r\n250 SIZE 10\r\n").unwrap();
        assert_eq!(
            reply.to_string(),
            "250 mail.example.com / 250 PIPELINING / 250 SIZE 10"
        );
        assert_eq!(format!("{reply:?}"), format!("Reply({reply})"));
    }

    #[test]
    fn enhanced_codes_with_several_digits() {
        let mut parser = ReplyParser::new(ReplyLimits::default());
        parser.extend(b"535 5.7.139 Authentication unsuccessful\r\n");
        let reply = parser.next_reply(true).unwrap().unwrap();
        assert_eq!(
            reply.enhanced_code(),
            Some(EnhancedCode {
                class: 5,
                subject: 7,
                detail: 139
            })
        );
    }

    #[test]
    fn parse_takes_exactly_one_whole_reply() {
        assert_eq!(Reply::parse(b"250 ok\r\n").unwrap().code().get(), 250);
        assert_eq!(
            Reply::parse(b"250 ok\r\n250 again\r\n"),
            Err(ReplyError::TrailingBytes)
        );
        assert_eq!(Reply::parse(b"250 ok\r\nx"), Err(ReplyError::TrailingBytes));
        assert_eq!(Reply::parse(b"250 ok"), Err(ReplyError::Incomplete));
    }

    use super::*;

    fn parse_all(input: &[u8], enhanced: bool) -> Result<Vec<Reply>, ReplyError> {
        let mut p = ReplyParser::new(ReplyLimits::default());
        p.extend(input);
        let mut out = Vec::new();
        while let Some(r) = p.next_reply(enhanced)? {
            out.push(r);
        }
        Ok(out)
    }

    #[test]
    fn single_line() {
        let r = Reply::parse(b"250 OK\r\n").unwrap();
        assert_eq!(r.code().get(), 250);
        assert_eq!(r.lines().collect::<Vec<_>>(), vec![&b"OK"[..]]);
    }

    #[test]
    fn code_without_text_is_valid() {
        let r = Reply::parse(b"250\r\n").unwrap();
        assert_eq!(r.code(), ReplyCode::OK);
        assert_eq!(r.lines().collect::<Vec<_>>(), vec![&b""[..]]);
    }

    #[test]
    fn multi_line() {
        let r = Reply::parse(b"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n").unwrap();
        let lines: Vec<_> = r.lines().collect();
        assert_eq!(lines, vec![&b"mx.example"[..], b"PIPELINING", b"SIZE 100"]);
    }

    #[test]
    fn bare_lf_ends_a_line() {
        let r = Reply::parse(b"250-a\n250 b\n").unwrap();
        assert_eq!(r.lines().collect::<Vec<_>>(), vec![&b"a"[..], b"b"]);
    }

    #[test]
    fn incomplete_then_complete() {
        let mut p = ReplyParser::new(ReplyLimits::default());
        p.extend(b"250-a\r\n25");
        assert_eq!(p.next_reply(false).unwrap(), None);
        p.extend(b"0 b\r\n354 go");
        let r = p.next_reply(false).unwrap().unwrap();
        assert_eq!(r.lines().count(), 2);
        assert_eq!(p.next_reply(false).unwrap(), None);
        assert_eq!(p.buffered(), 6);
    }

    #[test]
    fn rejects_bad_codes() {
        for bad in [
            &b"199 x\r\n"[..],
            b"600 x\r\n",
            b"25a x\r\n",
            b"2\r\n",
            b"abc\r\n",
            b"\r\n",
        ] {
            assert_eq!(
                parse_all(bad, false),
                Err(ReplyError::InvalidCode),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_all(b"250x\r\n", false),
            Err(ReplyError::InvalidSeparator)
        );
        assert_eq!(
            parse_all(b"250\rx\r\n", false),
            Err(ReplyError::InvalidSeparator)
        );
    }

    #[test]
    fn rejects_mixed_codes() {
        assert_eq!(
            parse_all(b"250-a\r\n550 b\r\n", false),
            Err(ReplyError::MixedCodes {
                first: 250,
                other: 550
            })
        );
    }

    #[test]
    fn line_limit_applies_before_the_newline_arrives() {
        let mut p = ReplyParser::new(ReplyLimits {
            max_line_len: 16,
            max_lines: 4,
        });
        p.extend(b"250 0123456789ab");
        assert_eq!(p.next_reply(false), Ok(None));
        p.extend(b"c");
        assert_eq!(
            p.next_reply(false),
            Err(ReplyError::LineTooLong { limit: 16 })
        );
    }

    #[test]
    fn line_count_limit() {
        let mut p = ReplyParser::new(ReplyLimits {
            max_line_len: 16,
            max_lines: 3,
        });
        p.extend(b"250-a\r\n250-a\r\n250-a\r\n250-a\r\n");
        assert_eq!(
            p.next_reply(false),
            Err(ReplyError::TooManyLines { limit: 3 })
        );
    }

    #[test]
    fn short_replies_are_inline_and_long_ones_shared_with_the_same_behaviour() {
        for len in [INLINE - 1, INLINE, INLINE + 1, 300] {
            // `250 2.1.5 ` + x... + CRLF, `len` bytes in all.
            let mut raw = b"250 2.1.5 ".to_vec();
            raw.resize(len - 2, b'x');
            raw.extend_from_slice(b"\r\n");
            let mut p = ReplyParser::new(ReplyLimits::default());
            // Two copies in one read, then a third on its own.
            p.extend(&raw);
            p.extend(&raw);
            let first = p.next_reply(true).unwrap().unwrap();
            let second = p.next_reply(true).unwrap().unwrap();
            p.extend(&raw);
            let third = p.next_reply(true).unwrap().unwrap();
            assert_eq!(p.buffered(), 0);
            assert_eq!(matches!(first.raw, Raw::Inline { .. }), len <= INLINE);
            for reply in [&first, &second, &third] {
                assert_eq!(reply.as_bytes(), &raw[..], "{len}");
                assert_eq!(reply.code().get(), 250);
                assert_eq!(
                    reply.enhanced_code().map(|c| c.to_string()),
                    Some("2.1.5".into())
                );
                assert_eq!(reply.message(), &raw[10..len - 2]);
                assert_eq!(reply, &first);
            }
        }
        let short = Reply::parse(b"250 ok\r\n").unwrap();
        let long = Reply::parse(&[&b"250 "[..], &[b'y'; 100], b"\r\n"].concat()).unwrap();
        assert_ne!(short, long);
    }

    #[test]
    fn non_utf8_text_is_kept() {
        let r = Reply::parse(b"550 caf\xe9 \x00 nope\r\n").unwrap();
        assert_eq!(r.lines().next().unwrap(), b"caf\xe9 \x00 nope");
        assert_eq!(r.to_string(), "550 caf\\xe9 \\u{0} nope");
    }

    #[test]
    fn enhanced_codes_only_when_enabled_and_matching() {
        let r = &parse_all(b"550 5.7.4 Unrecognized authentication type\r\n", true).unwrap()[0];
        assert_eq!(
            r.enhanced_code(),
            Some(EnhancedCode {
                class: 5,
                subject: 7,
                detail: 4
            })
        );
        assert_eq!(r.message(), b"Unrecognized authentication type");
        let r = &parse_all(b"550 5.7.4 x\r\n", false).unwrap()[0];
        assert_eq!(r.enhanced_code(), None);
        assert_eq!(r.message(), b"5.7.4 x");
        let r = &parse_all(b"250 5.7.4 x\r\n", true).unwrap()[0];
        assert_eq!(r.enhanced_code(), None, "class must match the code");
        let r = &parse_all(b"250 2.1.0.1 x\r\n", true).unwrap()[0];
        assert_eq!(r.enhanced_code(), None);
        let r = &parse_all(b"250 2.1234.0 x\r\n", true).unwrap()[0];
        assert_eq!(r.enhanced_code(), None);
        let r = &parse_all(b"250 2.0.0\r\n", true).unwrap()[0];
        assert_eq!(
            r.enhanced_code(),
            Some(EnhancedCode {
                class: 2,
                subject: 0,
                detail: 0
            })
        );
    }
}
