//! The dialogue as `C:`/`S:` lines, with every secret already redacted.
//!
//! Redaction happens here in the core, where the session knows which bytes
//! are credentials, so no adapter can forget it.

use core::fmt;

/// Who sent a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The client (us).
    Client,
    /// The server.
    Server,
}

/// One line of the dialogue, without its line ending.
#[derive(Clone, PartialEq, Eq)]
pub struct TranscriptLine {
    direction: Direction,
    text: Vec<u8>,
}

impl TranscriptLine {
    pub(crate) fn new(direction: Direction, text: &[u8]) -> TranscriptLine {
        let text = text.strip_suffix(b"\n").unwrap_or(text);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        TranscriptLine {
            direction,
            text: text.to_vec(),
        }
    }

    /// Who sent it.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The line's bytes (redacted where it held a secret).
    pub fn text(&self) -> &[u8] {
        &self.text
    }
}

impl fmt::Display for TranscriptLine {
    /// `C: text` or `S: text`, control characters and invalid UTF-8 escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.direction {
            Direction::Client => "C: ",
            Direction::Server => "S: ",
        })?;
        crate::reply::write_escaped(f, &self.text)
    }
}

impl fmt::Debug for TranscriptLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// What a secret line looks like in the transcript.
pub(crate) const REDACTED: &[u8] = b"<redacted>";
