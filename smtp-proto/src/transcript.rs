//! The dialogue as `C:`/`S:` lines, with every secret already redacted.
//!
//! Redaction happens here in the core, where the session knows which bytes
//! are credentials, so no adapter can forget it.

use core::fmt;
use std::sync::Arc;

/// A callback that receives every line of the dialogue as the session
/// records it, secrets already redacted
/// ([`ClientSession::add_transcript_hook`](crate::ClientSession::add_transcript_hook),
/// [`Options::transcript`](crate::Options::transcript)).
pub type TranscriptHook = Arc<dyn Fn(&TranscriptLine) + Send + Sync>;

/// Who sent a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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

/// The lines a session recorded and the caller has not taken yet, and the
/// hooks each line goes to as it is recorded.
///
/// Bounded, without losing what an adapter needs: the lines of the current
/// call are never dropped (one `send_mail` to 30,000 recipients writes
/// 30,002 lines, and an adapter that takes the transcript after every call
/// sees each of them). Only lines left over from earlier calls, beyond
/// [`MAX_TRANSCRIPT_LINES`](crate::session::MAX_TRANSCRIPT_LINES), are
/// dropped when the next call starts, and the next
/// [`take`](Recorder::take) begins with a line that says how many. Lines
/// are kept only when [`Config::transcript`](crate::Config::transcript) is
/// on; hooks get every line at once and keep nothing here.
#[derive(Default)]
pub(crate) struct Recorder {
    lines: std::collections::VecDeque<TranscriptLine>,
    dropped: u64,
    keep: bool,
    hooks: Vec<TranscriptHook>,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("lines", &self.lines.len())
            .field("dropped", &self.dropped)
            .field("keep", &self.keep)
            .field("hooks", &self.hooks.len())
            .finish()
    }
}

impl Recorder {
    /// A recorder that keeps its lines for [`take`](Recorder::take).
    pub(crate) fn keeping() -> Recorder {
        Recorder {
            keep: true,
            ..Recorder::default()
        }
    }

    /// Every line also goes to `hook`, as it is recorded.
    pub(crate) fn add_hook(&mut self, hook: TranscriptHook) {
        self.hooks.push(hook);
    }

    /// A new call starts: lines older than it are kept up to `limit`.
    pub(crate) fn begin_call(&mut self, limit: usize) {
        let excess = self.lines.len().saturating_sub(limit);
        self.lines.drain(..excess);
        self.dropped = self.dropped.saturating_add(excess as u64);
    }

    pub(crate) fn push(&mut self, direction: Direction, text: &[u8]) {
        let line = TranscriptLine::new(direction, text);
        for hook in &self.hooks {
            hook(&line);
        }
        if self.keep {
            self.lines.push_back(line);
        }
    }

    /// Every line since the last take, after a note of those dropped.
    pub(crate) fn take(&mut self) -> Vec<TranscriptLine> {
        let mut taken = Vec::with_capacity(self.lines.len() + 1);
        if self.dropped > 0 {
            let note = format!(
                "<{} transcript lines dropped: the transcript was not taken>",
                self.dropped
            );
            taken.push(TranscriptLine::new(Direction::Client, note.as_bytes()));
            self.dropped = 0;
        }
        taken.extend(self.lines.drain(..));
        taken
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lines.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_the_current_call_are_never_dropped() {
        let mut recorder = Recorder::keeping();
        recorder.begin_call(4);
        for i in 0..10 {
            recorder.push(Direction::Client, format!("RCPT {i}").as_bytes());
        }
        assert_eq!(recorder.len(), 10);
        let taken = recorder.take();
        assert_eq!(taken.len(), 10);
        assert_eq!(taken[0].to_string(), "C: RCPT 0");
        assert_eq!(recorder.take(), Vec::new());
    }

    #[test]
    fn lines_left_untaken_are_capped_at_the_next_call_with_a_note() {
        let mut recorder = Recorder::keeping();
        for i in 0..10 {
            recorder.push(Direction::Server, format!("250 {i}").as_bytes());
        }
        recorder.begin_call(4);
        recorder.push(Direction::Client, b"QUIT");
        recorder.begin_call(4);
        let taken: Vec<String> = recorder.take().iter().map(|l| l.to_string()).collect();
        assert_eq!(
            taken,
            [
                "C: <7 transcript lines dropped: the transcript was not taken>",
                "S: 250 7",
                "S: 250 8",
                "S: 250 9",
                "C: QUIT",
            ]
        );
        // The count starts again after a take.
        assert_eq!(recorder.take(), Vec::new());
    }

    #[test]
    fn hooks_get_each_line_at_once_and_nothing_is_kept_without_keep() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let mut recorder = Recorder::default();
        recorder.add_hook(Arc::new(move |line: &TranscriptLine| {
            if let Ok(mut seen) = sink.lock() {
                seen.push(line.to_string());
            }
        }));
        recorder.push(Direction::Client, b"EHLO x\r\n");
        recorder.push(Direction::Server, b"250 ok\r\n");
        assert_eq!(
            seen.lock().map(|s| s.clone()).unwrap_or_default(),
            ["C: EHLO x", "S: 250 ok"]
        );
        assert_eq!(recorder.len(), 0);
        assert_eq!(recorder.take(), Vec::new());
    }

    #[test]
    fn debug_counts_lines_and_hooks_without_their_text() {
        let mut recorder = Recorder::keeping();
        recorder.add_hook(Arc::new(|_: &TranscriptLine| {}));
        recorder.push(Direction::Client, b"AUTH PLAIN c2VjcmV0\r\n");
        let shown = format!("{recorder:?}");
        assert_eq!(
            shown,
            "Recorder { lines: 1, dropped: 0, keep: true, hooks: 1 }"
        );
    }
}
