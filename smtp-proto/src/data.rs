//! The `DATA` body encoder: line endings (RFC 5321 §2.3.8) and dot-stuffing
//! (RFC 5321 §4.5.2), plus reference functions that say what a server must
//! reconstruct.
//!
//! The encoder canonicalises every bare `CR` and bare `LF` to `CRLF` before
//! it stuffs dots, so the only `<CRLF>.<CRLF>` in its output is the one
//! [`BodyEncoder::finish`] writes. Servers disagree on what ends a line, and
//! passing a bare `LF` or `CR` through is what let `\n.\n` or `\r.\r\n` end
//! the message early on some of them (SMTP smuggling, 2023).

use bytes::{BufMut, BytesMut};

/// The end-of-data line (RFC 5321 §4.1.1.4).
const TERMINATOR: &[u8] = b".\r\n";

/// Insertion points the vectorised path examines at once.
const BLOCK: usize = 256;

/// What must be written between two adjacent input bytes `a` and `b`: the LF
/// of a bare CR and the CR of a bare LF (RFC 5321 §2.3.8), and when
/// stuffing, a second dot for a line that starts with one (RFC 5321 §4.5.2).
/// Lines start after an LF and after a bare CR.
#[inline]
fn insertion(a: u8, b: u8, stuff: bool) -> &'static [u8] {
    let dot = stuff && b == b'.';
    match (a, b) {
        (b'\r', b'\n') => b"",
        (b'\r', _) if dot => b"\n.",
        (b'\r', _) => b"\n",
        (_, b'\n') => b"\r",
        (b'\n', _) if dot => b".",
        _ => b"",
    }
}

/// 1 where [`insertion`] is non-empty, else 0, with `dots` 1 when stuffing:
/// branch-free, so that loops over fixed-size windows vectorise.
#[inline(always)]
fn flag(a: u8, b: u8, dots: u8) -> u8 {
    u8::from((a == b'\r') != (b == b'\n')) | (dots & u8::from(a == b'\n') & u8::from(b == b'.'))
}

/// Whether [`insertion`] may be non-empty anywhere in `window`. A line that
/// starts with a dot counts even when not stuffing: one operation less per
/// vector on the path every body takes.
#[inline]
fn any_insertion(window: &[u8; BLOCK + 1]) -> bool {
    let mut any = 0;
    for (&a, &b) in window.iter().zip(&window[1..]) {
        any |= flag(a, b, 1);
    }
    any != 0
}

/// The insertion points of `window` as a bit set, bit `i` of word `i / 64`
/// for the point between `window[i]` and `window[i + 1]`.
#[inline]
fn insertion_points(window: &[u8; BLOCK + 1], dots: u8) -> [u64; BLOCK / 64] {
    let mut flags = [0u8; BLOCK];
    for (f, (&a, &b)) in flags.iter_mut().zip(window.iter().zip(&window[1..])) {
        *f = flag(a, b, dots);
    }
    let mut bits = [0u64; BLOCK / 64];
    for (word, flags) in bits.iter_mut().zip(flags.chunks_exact(64)) {
        for (k, eight) in flags.chunks_exact(8).enumerate() {
            let eight = eight.try_into().map_or(0, u64::from_le_bytes);
            // Gathers the low bit of each of the eight bytes into the top
            // byte: the products land on distinct bits, so nothing carries.
            *word |= (eight.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * k);
        }
    }
    bits
}

/// Streaming encoder; correct across any chunk boundary.
///
/// Feed the body with [`BodyEncoder::encode`] in chunks of any size, then call
/// [`BodyEncoder::finish`] once. The output is the same however the body was
/// split.
#[derive(Debug, Clone)]
pub struct BodyEncoder {
    // The input byte before the next one: what decides an insertion across a
    // chunk boundary. A body starts as if after an LF: at the start of a line.
    prev: u8,
    consumed: u64,
    produced: u64,
    framing: Framing,
}

impl Default for BodyEncoder {
    fn default() -> Self {
        BodyEncoder::with_framing(Framing::default())
    }
}

/// How the body is framed on the wire, which decides what the encoder does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// `DATA` (RFC 5321 §4.1.1.4): line endings made CRLF, dot-stuffing,
    /// and the `.` terminator line.
    #[default]
    Data,
    /// `BDAT` (RFC 3030) for 7-bit and 8-bit bodies: line endings made CRLF
    /// and a final CRLF added, no dot-stuffing, no terminator.
    Chunked,
    /// `BDAT` with `BODY=BINARYMIME` (RFC 3030 §3): the bytes as they are.
    Binary,
}

impl BodyEncoder {
    /// A fresh encoder for `DATA`, at the start of a line.
    pub fn new() -> BodyEncoder {
        BodyEncoder::default()
    }

    /// A fresh encoder for the given framing.
    pub fn with_framing(framing: Framing) -> BodyEncoder {
        BodyEncoder {
            prev: b'\n',
            consumed: 0,
            produced: 0,
            framing,
        }
    }

    /// The framing this encoder writes.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Bytes written to the output since creation or the last
    /// [`finish`](BodyEncoder::finish).
    pub fn produced(&self) -> u64 {
        self.produced
    }

    /// Bytes of input consumed since creation or the last
    /// [`finish`](BodyEncoder::finish).
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Appends the encoded form of `input` to `out`.
    ///
    /// Bare `LF` and bare `CR` become `CRLF`, `CRLF` is kept, and a line that
    /// begins with `.` gets a second `.` in front. A `CR` that ends `input`
    /// gets its `LF` (if it is bare) with the next chunk or at
    /// [`finish`](BodyEncoder::finish).
    pub fn encode(&mut self, input: &[u8], out: &mut BytesMut) {
        let before = out.len();
        self.encode_inner(input, out);
        self.produced = self.produced.saturating_add((out.len() - before) as u64);
    }

    fn encode_inner(&mut self, input: &[u8], out: &mut BytesMut) {
        self.consumed = self.consumed.saturating_add(input.len() as u64);
        if self.framing == Framing::Binary {
            out.extend_from_slice(input);
            return;
        }
        let (Some(&first), Some(&last)) = (input.first(), input.last()) else {
            return;
        };
        let stuff = self.framing == Framing::Data;
        // Most bodies grow by a few bytes at most; one reservation avoids
        // repeated reallocation inside the loop.
        out.reserve(input.len() + input.len() / 32 + 3);
        out.extend_from_slice(insertion(self.prev, first, stuff));
        self.prev = last;

        // Output is written in runs: `input[start..at]` is pending verbatim
        // output, flushed only where something is inserted before `at`.
        let mut start = 0;
        let mut insert = |at: usize, out: &mut BytesMut| {
            out.extend_from_slice(&input[start..at]);
            match insertion(input[at - 1], input[at], stuff) {
                &[byte] => out.put_u8(byte),
                bytes => out.extend_from_slice(bytes),
            }
            start = at;
        };
        // Insertion points `at` are 1..len, each deciding between
        // `input[at - 1]` and `input[at]`. Vectorised a block at a time: on
        // ordinary CRLF text one branch-free pass per block is much cheaper
        // than a search per line, and dirty blocks go to the flagged points
        // directly.
        let mut at = 1;
        let dots = u8::from(stuff);
        // After a dirty block the next is likely dirty too (bare-LF text is
        // dirty everywhere): skip the cheap check and find the points.
        let mut dirty = false;
        while let Some(window) = input
            .get(at - 1..at + BLOCK)
            .and_then(|w| <&[u8; BLOCK + 1]>::try_from(w).ok())
        {
            dirty = dirty || any_insertion(window);
            if dirty {
                dirty = false;
                for (word_at, mut bits) in (at..).step_by(64).zip(insertion_points(window, dots)) {
                    dirty |= bits != 0;
                    while bits != 0 {
                        insert(word_at + bits.trailing_zeros() as usize, out);
                        bits &= bits - 1;
                    }
                }
            }
            at += BLOCK;
        }
        for at in at..input.len() {
            if !insertion(input[at - 1], input[at], stuff).is_empty() {
                insert(at, out);
            }
        }
        out.extend_from_slice(&input[start..]);
    }

    /// How many bytes at the start of `input` go on the wire exactly as
    /// they are when they are the next input: nothing is inserted before any
    /// of them (the bytes an insertion at the end would go after are
    /// decided with the next input, as [`encode`](Self::encode) does).
    /// Every byte with [`Framing::Binary`].
    pub(crate) fn clean_prefix(&self, input: &[u8]) -> usize {
        if self.framing == Framing::Binary {
            return input.len();
        }
        let Some(&first) = input.first() else {
            return 0;
        };
        let stuff = self.framing == Framing::Data;
        if !insertion(self.prev, first, stuff).is_empty() {
            return 0;
        }
        let dots = u8::from(stuff);
        // The block search of `encode_inner`, stopping at the first point.
        let mut at = 1;
        while let Some(window) = input
            .get(at - 1..at + BLOCK)
            .and_then(|w| <&[u8; BLOCK + 1]>::try_from(w).ok())
        {
            if any_insertion(window) {
                for (word_at, bits) in (at..).step_by(64).zip(insertion_points(window, dots)) {
                    if bits != 0 {
                        return word_at + bits.trailing_zeros() as usize;
                    }
                }
            }
            at += BLOCK;
        }
        (at..input.len())
            .find(|&at| !insertion(input[at - 1], input[at], stuff).is_empty())
            .unwrap_or(input.len())
    }

    /// Counts `input` as encoded, without writing it: the caller writes it
    /// itself, and it must be a [`clean_prefix`](Self::clean_prefix), whose
    /// encoding is `input` as it is.
    pub(crate) fn pass(&mut self, input: &[u8]) {
        let Some(&last) = input.last() else {
            return;
        };
        debug_assert_eq!(self.clean_prefix(input), input.len());
        self.prev = last;
        self.consumed = self.consumed.saturating_add(input.len() as u64);
        self.produced = self.produced.saturating_add(input.len() as u64);
    }

    /// Ends the body and returns how many bytes it took on the wire: for
    /// `DATA`, CRLF if the body did not end with a line break, then `.\r\n`
    /// (an empty body is the terminator line alone); for chunked 7-bit and
    /// 8-bit bodies the CRLF only; for binary bodies nothing. Resets the
    /// encoder for reuse with the same framing.
    pub fn finish(&mut self, out: &mut BytesMut) -> u64 {
        let before = out.len();
        if self.framing != Framing::Binary {
            // RFC 5321 §4.1.1.4: the terminator must start a line of its own;
            // chunked bodies end with a line break too, as DATA bodies do.
            out.extend_from_slice(match self.prev {
                b'\n' => b"",
                b'\r' => b"\n",
                _ => b"\r\n",
            });
        }
        if self.framing == Framing::Data {
            out.extend_from_slice(TERMINATOR);
        }
        let total = self.produced.saturating_add((out.len() - before) as u64);
        *self = BodyEncoder::with_framing(self.framing);
        total
    }
}

/// The length of [`normalize`]`(input)` without building it: what a 7-bit or
/// 8-bit body takes on the wire in a `BDAT` chunk.
pub fn normalized_len(input: &[u8]) -> u64 {
    let mut counter = NormalizedLen::default();
    counter.update(input);
    counter.total()
}

/// [`normalized_len`] for a body read in pieces of any split, e.g. a file
/// measured before it is streamed.
#[derive(Debug, Clone, Default)]
pub struct NormalizedLen {
    len: u64,
    mid_line: bool,
    after_cr: bool,
}

impl NormalizedLen {
    /// Counts the next piece of the body.
    pub fn update(&mut self, input: &[u8]) {
        let mut pos = 0;
        if self.after_cr && !input.is_empty() {
            self.after_cr = false;
            if input[0] == b'\n' {
                // The LF of a CRLF already counted as two bytes.
                pos = 1;
            }
        }
        while let Some(offset) = memchr::memchr2(b'\r', b'\n', &input[pos..]) {
            let at = pos + offset;
            // The text before the line break, then CRLF for any line break.
            self.len += (at - pos) as u64 + 2;
            self.mid_line = false;
            if input[at] == b'\r' && input.get(at + 1) == Some(&b'\n') {
                pos = at + 2;
            } else {
                pos = at + 1;
                self.after_cr = input[at] == b'\r' && pos == input.len();
            }
        }
        if pos < input.len() {
            self.len += (input.len() - pos) as u64;
            self.mid_line = true;
        }
    }

    /// The wire length so far, counting the CRLF a body that does not end
    /// with a line break gets.
    pub fn total(&self) -> u64 {
        self.len + if self.mid_line { 2 } else { 0 }
    }
}

#[cfg(any(test, feature = "testing"))]
/// Reference: what the server should reconstruct from the encoding of
/// `input`.
///
/// Bare `LF` and bare `CR` become `CRLF`, `CRLF` stays, and a final `CRLF` is
/// added if missing. Empty input stays empty (it encodes to `.\r\n` alone).
pub fn normalize(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + 2);
    let mut bytes = input.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        match b {
            b'\r' => {
                bytes.next_if_eq(&b'\n');
                out.extend_from_slice(b"\r\n");
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            _ => out.push(b),
        }
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(any(test, feature = "testing"))]
/// Reference decoder of an encoded DATA stream as a server does it.
///
/// Splits lines on `CRLF`, stops at the first line that is exactly `.`, and
/// removes one leading `.` from other lines that start with `.`; returns
/// `None` if there is no terminator line or if there are bytes after it.
pub fn unstuff(encoded: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(encoded.len());
    let mut rest = encoded;
    loop {
        let end = memchr::memmem::find(rest, b"\r\n")?;
        let (line, after) = (&rest[..end], &rest[end + 2..]);
        if line == b"." {
            return after.is_empty().then_some(out);
        }
        // RFC 5321 §4.5.2: the receiver deletes the first of leading dots.
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        out.extend_from_slice(b"\r\n");
        rest = after;
    }
}

#[cfg(any(test, feature = "testing"))]
/// Convenience: encode a whole body including the terminator.
pub fn encode(input: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(input.len() + input.len() / 32 + 8);
    let mut stuffer = BodyEncoder::new();
    stuffer.encode(input, &mut out);
    stuffer.finish(&mut out);
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Encodes `chunks` one after another through a single encoder.
    fn encode_chunks(chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = BytesMut::new();
        let mut stuffer = BodyEncoder::new();
        for chunk in chunks {
            stuffer.encode(chunk, &mut out);
        }
        stuffer.finish(&mut out);
        out.to_vec()
    }

    /// Encodes `input` split at the given (sorted, possibly repeated) points.
    fn encode_split(input: &[u8], points: &[usize]) -> Vec<u8> {
        let mut chunks = Vec::new();
        let mut prev = 0;
        for &p in points {
            chunks.push(&input[prev..p]);
            prev = p;
        }
        chunks.push(&input[prev..]);
        encode_chunks(&chunks)
    }

    /// The encoding spelled out naively: normalise, stuff each line, end.
    fn reference_encode(input: &[u8]) -> Vec<u8> {
        let normal = normalize(input);
        let mut out = Vec::new();
        for line in normal.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b".") {
                out.push(b'.');
            }
            out.extend_from_slice(line);
        }
        out.extend_from_slice(b".\r\n");
        out
    }

    /// Long CRLF text with occasional changes, to exercise the block fast
    /// path and its edges.
    fn long_body() -> impl Strategy<Value = Vec<u8>> {
        let token = prop_oneof![
            8 => prop::collection::vec(Just(b'x'), 1..140),
            6 => Just(b"\r\n".to_vec()),
            1 => Just(b".".to_vec()),
            1 => Just(b"\r".to_vec()),
            1 => Just(b"\n".to_vec()),
        ];
        prop::collection::vec(token, 0..40).prop_map(|t| t.concat())
    }

    /// Where `<CRLF>.<CRLF>` (or a leading `.<CRLF>`) would end the message.
    fn terminator_positions(encoded: &[u8]) -> Vec<usize> {
        let mut found: Vec<usize> = memchr::memmem::find_iter(encoded, b"\r\n.\r\n")
            .map(|i| i + 2)
            .collect();
        if encoded.starts_with(b".\r\n") {
            found.insert(0, 0);
        }
        found
    }

    /// The message ends only at the terminator `finish` wrote.
    fn assert_single_terminator(encoded: &[u8]) {
        assert!(encoded.ends_with(b".\r\n"), "{encoded:?}");
        assert_eq!(
            terminator_positions(encoded),
            vec![encoded.len() - 3],
            "{encoded:?}"
        );
    }

    const SMUGGLING: &[&[u8]] = &[
        b"\n.\n",
        b"\n.\r\n",
        b"\r\n.\n",
        b"\r.\r\n",
        b"\r.\r",
        b"\n.\r",
        b".\n",
        b".\r",
        b".\r\n",
        b"a\r\n.\r\nMAIL FROM:<x>\r\n",
        b"a\n.\nMAIL FROM:<x>\r\n",
        b"a\r.\rMAIL FROM:<x>\r\n",
        b"a\r\n.\nMAIL FROM:<x>\r\n",
        b"a\n.\r\nMAIL FROM:<x>\r\n",
    ];

    #[test]
    fn empty_body_is_terminator_alone() {
        assert_eq!(encode(b""), b".\r\n");
        assert_eq!(normalize(b""), b"");
        assert_eq!(unstuff(b".\r\n"), Some(Vec::new()));
    }

    #[test]
    fn crlf_is_kept() {
        assert_eq!(encode(b"a\r\nb\r\n"), b"a\r\nb\r\n.\r\n");
    }

    #[test]
    fn bare_lf_becomes_crlf() {
        assert_eq!(encode(b"a\nb\n"), b"a\r\nb\r\n.\r\n");
        assert_eq!(encode(b"\n\n"), b"\r\n\r\n.\r\n");
    }

    #[test]
    fn bare_cr_becomes_crlf() {
        assert_eq!(encode(b"a\rb\r"), b"a\r\nb\r\n.\r\n");
        assert_eq!(encode(b"\r\r\n"), b"\r\n\r\n.\r\n");
        assert_eq!(encode(b"\n\r"), b"\r\n\r\n.\r\n");
    }

    #[test]
    fn missing_final_line_break_is_added() {
        assert_eq!(encode(b"a"), b"a\r\n.\r\n");
        assert_eq!(encode(b"a\r\nb"), b"a\r\nb\r\n.\r\n");
    }

    #[test]
    fn body_of_one_line_break() {
        assert_eq!(encode(b"\r\n"), b"\r\n.\r\n");
        assert_eq!(encode(b"\n"), b"\r\n.\r\n");
        assert_eq!(encode(b"\r"), b"\r\n.\r\n");
    }

    #[test]
    fn leading_dot_is_doubled() {
        assert_eq!(encode(b".a"), b"..a\r\n.\r\n");
        assert_eq!(encode(b"."), b"..\r\n.\r\n");
        assert_eq!(encode(b"..\r\n"), b"...\r\n.\r\n");
        assert_eq!(
            encode(b"a\r\n.b\n.c\r.d"),
            b"a\r\n..b\r\n..c\r\n..d\r\n.\r\n"
        );
    }

    #[test]
    fn dot_inside_a_line_is_not_doubled() {
        assert_eq!(encode(b"a.b\r\nc."), b"a.b\r\nc.\r\n.\r\n");
    }

    #[test]
    fn smuggling_sequences_cannot_end_the_message() {
        for input in SMUGGLING {
            let encoded = encode(input);
            assert_single_terminator(&encoded);
            assert_eq!(unstuff(&encoded), Some(normalize(input)), "{input:?}");
        }
        assert_eq!(encode(b"\n.\n"), b"\r\n..\r\n.\r\n");
        assert_eq!(encode(b"\r.\r\n"), b"\r\n..\r\n.\r\n");
        assert_eq!(
            encode(b"a\r\n.\r\nMAIL FROM:<x>\r\n"),
            b"a\r\n..\r\nMAIL FROM:<x>\r\n.\r\n"
        );
    }

    #[test]
    fn smuggling_sequences_split_anywhere() {
        for input in SMUGGLING {
            let whole = encode(input);
            for i in 0..=input.len() {
                for j in i..=input.len() {
                    let encoded = encode_split(input, &[i, j]);
                    assert_eq!(encoded, whole, "{input:?} split at {i}, {j}");
                    assert_single_terminator(&encoded);
                }
            }
        }
    }

    #[test]
    fn every_split_point_gives_the_same_output() {
        let inputs: &[&[u8]] = &[
            b"hello\r\nworld\r\n",
            b".start\n.middle\r.end",
            b"\r\r\n\n\r\n\r",
            b"..\r\n..\n..\r..",
            b"a\rb\nc\r\nd.e\r\n.",
            b"Subject: x\r\n\r\n.\r\n..\r\nbody",
        ];
        for input in inputs {
            let whole = encode(input);
            for i in 0..=input.len() {
                assert_eq!(encode_split(input, &[i]), whole, "{input:?} at {i}");
            }
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            assert_eq!(encode_chunks(&bytes), whole, "{input:?} byte by byte");
        }
    }

    #[test]
    fn cr_at_chunk_end_then_non_lf() {
        assert_eq!(encode_chunks(&[b"a\r", b"b"]), b"a\r\nb\r\n.\r\n");
        assert_eq!(encode_chunks(&[b"a\r", b".b"]), b"a\r\n..b\r\n.\r\n");
        assert_eq!(encode_chunks(&[b"a\r", b"\r", b"\n"]), b"a\r\n\r\n.\r\n");
    }

    #[test]
    fn cr_at_chunk_end_waits_for_the_next_byte() {
        let mut out = BytesMut::new();
        let mut stuffer = BodyEncoder::new();
        stuffer.encode(b"a\r", &mut out);
        assert_eq!(&out[..], b"a\r");
        stuffer.encode(b"\n", &mut out);
        assert_eq!(&out[..], b"a\r\n");
        stuffer.encode(b"b\r", &mut out);
        assert_eq!(stuffer.finish(&mut out), 9);
        assert_eq!(&out[..], b"a\r\nb\r\n.\r\n");
    }

    #[test]
    fn cr_at_chunk_end_survives_empty_chunks() {
        assert_eq!(
            encode_chunks(&[b"a\r", b"", b"", b"\nb"]),
            b"a\r\nb\r\n.\r\n"
        );
        assert_eq!(encode_chunks(&[b"\r", b"", b"."]), b"\r\n..\r\n.\r\n");
    }

    #[test]
    fn finish_resets_for_reuse() {
        let mut out = BytesMut::new();
        let mut stuffer = BodyEncoder::new();
        stuffer.encode(b"a\r", &mut out);
        assert_eq!(stuffer.consumed(), 2);
        stuffer.finish(&mut out);
        assert_eq!(stuffer.consumed(), 0);
        // The CR of the first body must not swallow the second body's LF.
        stuffer.encode(b"\n.", &mut out);
        stuffer.finish(&mut out);
        assert_eq!(&out[..], b"a\r\n.\r\n\r\n..\r\n.\r\n");
    }

    #[test]
    fn consumed_counts_input_bytes() {
        let mut out = BytesMut::new();
        let mut stuffer = BodyEncoder::default();
        stuffer.encode(b".\n", &mut out);
        stuffer.encode(b"", &mut out);
        stuffer.encode(b"abc\r", &mut out);
        assert_eq!(stuffer.consumed(), 6);
    }

    #[test]
    fn unstuff_requires_exactly_one_terminator_at_the_end() {
        assert_eq!(unstuff(b""), None);
        assert_eq!(unstuff(b"a\r\n"), None);
        assert_eq!(unstuff(b"a\r\n.\r"), None);
        assert_eq!(unstuff(b"a\r\n.\r\nb"), None);
        assert_eq!(unstuff(b"a\r\n.\r\n.\r\n"), None);
        assert_eq!(unstuff(b"..a\r\n.\r\n"), Some(b".a\r\n".to_vec()));
        assert_eq!(unstuff(b"a\nb\r\n.\r\n"), Some(b"a\nb\r\n".to_vec()));
    }

    #[test]
    fn normalize_rules() {
        assert_eq!(normalize(b"a"), b"a\r\n");
        assert_eq!(normalize(b"a\rb\nc\r\n"), b"a\r\nb\r\nc\r\n");
        assert_eq!(normalize(b"\r\r\n\n"), b"\r\n\r\n\r\n");
        assert_eq!(normalize(b"\r"), b"\r\n");
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            4 => Just(b'.'),
            4 => Just(b'\r'),
            4 => Just(b'\n'),
            3 => Just(b'a'),
            1 => any::<u8>(),
        ];
        prop::collection::vec(byte, 0..96)
    }

    fn split_points() -> impl Strategy<Value = Vec<prop::sample::Index>> {
        prop::collection::vec(any::<prop::sample::Index>(), 0..8)
    }

    #[test]
    fn long_bodies_match_the_reference_at_every_block_edge() {
        // Lines of every length around the block size put CR, LF and line
        // starting dots on and next to each block edge.
        for line_len in BLOCK - 3..BLOCK + 4 {
            for ending in [&b"\r\n"[..], b"\n", b"\r"] {
                let mut input = Vec::new();
                for i in 0..12 {
                    if i % 3 == 0 {
                        input.push(b'.');
                    }
                    input.extend(core::iter::repeat_n(b'y', line_len - i % 5));
                    input.extend_from_slice(ending);
                }
                let whole = encode(&input);
                assert_eq!(whole, reference_encode(&input), "{line_len} {ending:?}");
                for split in 0..=input.len() {
                    assert_eq!(encode_split(&input, &[split]), whole, "split at {split}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn encode_matches_the_reference(input in body()) {
            prop_assert_eq!(encode(&input), reference_encode(&input));
        }

        #[test]
        fn long_bodies_match_the_reference(input in long_body(), splits in split_points()) {
            let expected = reference_encode(&input);
            prop_assert_eq!(&encode(&input), &expected);
            let mut points: Vec<usize> = splits.iter().map(|s| s.index(input.len() + 1)).collect();
            points.sort_unstable();
            let chunked = encode_split(&input, &points);
            prop_assert_eq!(&chunked, &expected);
            prop_assert_eq!(unstuff(&chunked), Some(normalize(&input)));
            prop_assert_eq!(terminator_positions(&chunked), vec![chunked.len() - 3]);
        }

        #[test]
        fn clean_prefix_is_the_longest_that_encodes_to_itself(
            before in body(),
            input in long_body(),
            framing in prop::sample::select(vec![Framing::Data, Framing::Chunked, Framing::Binary]),
        ) {
            let mut encoder = BodyEncoder::with_framing(framing);
            encoder.encode(&before, &mut BytesMut::new());
            let n = encoder.clean_prefix(&input);
            let as_is = |k: usize| {
                let mut out = BytesMut::new();
                encoder.clone().encode(&input[..k], &mut out);
                out[..] == input[..k]
            };
            prop_assert!(as_is(n), "{n} bytes are not clean");
            prop_assert!(n == input.len() || !as_is(n + 1), "{n} is not the longest");
            // Passing it leaves the encoder as encoding it does.
            let (mut passed, mut encoded) = (encoder.clone(), encoder.clone());
            passed.pass(&input[..n]);
            encoded.encode(&input[..n], &mut BytesMut::new());
            let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
            passed.encode(&input[n..], &mut a);
            encoded.encode(&input[n..], &mut b);
            prop_assert_eq!(passed.finish(&mut a), encoded.finish(&mut b));
            prop_assert_eq!(a, b);
        }

        #[test]
        fn chunked_encode_equals_whole_encode(input in body(), splits in split_points()) {
            let mut points: Vec<usize> = splits.iter().map(|s| s.index(input.len() + 1)).collect();
            points.sort_unstable();
            prop_assert_eq!(encode_split(&input, &points), encode(&input));
        }

        #[test]
        fn unstuff_inverts_encode(input in body()) {
            prop_assert_eq!(unstuff(&encode(&input)), Some(normalize(&input)));
        }

        #[test]
        fn terminator_only_at_the_end(input in body()) {
            let encoded = encode(&input);
            prop_assert_eq!(terminator_positions(&encoded), vec![encoded.len() - 3]);
            if input.is_empty() {
                prop_assert_eq!(&encoded[..], b".\r\n");
            } else {
                prop_assert!(encoded.len() >= 5);
                prop_assert!(encoded.ends_with(b"\r\n.\r\n"));
                prop_assert!(!encoded.starts_with(b".\r\n"));
            }
        }

        #[test]
        fn output_has_no_bare_cr_or_lf(input in body()) {
            let encoded = encode(&input);
            for (i, &b) in encoded.iter().enumerate() {
                match b {
                    b'\r' => prop_assert_eq!(encoded.get(i + 1), Some(&b'\n')),
                    b'\n' => prop_assert!(i > 0 && encoded[i - 1] == b'\r'),
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod framing_tests {
    use super::*;
    use proptest::prelude::*;

    fn encode_with(framing: Framing, input: &[u8], chunk: usize) -> (Vec<u8>, u64) {
        let mut out = BytesMut::new();
        let mut encoder = BodyEncoder::with_framing(framing);
        for piece in input.chunks(chunk.max(1)) {
            encoder.encode(piece, &mut out);
        }
        let total = encoder.finish(&mut out);
        (out.to_vec(), total)
    }

    #[test]
    fn encoders_report_their_framing() {
        assert_eq!(BodyEncoder::new().framing(), Framing::Data);
        for framing in [Framing::Data, Framing::Chunked, Framing::Binary] {
            let mut encoder = BodyEncoder::with_framing(framing);
            assert_eq!(encoder.framing(), framing);
            // finish() resets the encoder with the same framing.
            encoder.finish(&mut BytesMut::new());
            assert_eq!(encoder.framing(), framing);
        }
    }

    #[test]
    fn chunked_bodies_are_normalized_but_not_stuffed() {
        let (out, total) = encode_with(Framing::Chunked, b".a\n.\r\nb", 3);
        assert_eq!(out, b".a\r\n.\r\nb\r\n");
        assert_eq!(total, out.len() as u64);
        assert_eq!(normalized_len(b".a\n.\r\nb"), out.len() as u64);
        assert_eq!(encode_with(Framing::Chunked, b"", 1).0, b"");
    }

    #[test]
    fn binary_bodies_go_as_they_are() {
        let body = b"\0\r\x01.\n\xff";
        let (out, total) = encode_with(Framing::Binary, body, 2);
        assert_eq!(out, body);
        assert_eq!(total, 6);
    }

    #[test]
    fn data_total_counts_the_terminator() {
        let (out, total) = encode_with(Framing::Data, b"x", 1);
        assert_eq!(out, b"x\r\n.\r\n");
        assert_eq!(total, 6);
    }

    proptest! {
        #[test]
        fn normalized_len_and_chunked_encoding_match_normalize(
            input in proptest::collection::vec(prop::sample::select(vec![b'.', b'\r', b'\n', b'a', 0xff]), 0..1200),
            // Pieces both shorter and longer than a vectorised block.
            chunk in prop_oneof![1usize..40, BLOCK..1200],
        ) {
            let (out, total) = encode_with(Framing::Chunked, &input, chunk);
            prop_assert_eq!(&out, &normalize(&input));
            prop_assert_eq!(total, out.len() as u64);
            prop_assert_eq!(normalized_len(&input), out.len() as u64);
            let mut counter = NormalizedLen::default();
            for piece in input.chunks(chunk) {
                counter.update(piece);
            }
            prop_assert_eq!(counter.total(), out.len() as u64);
        }
    }
}
