//! The transcript the session records: every line written and read,
//! secrets redacted, kept for [`take_transcript`](ClientSession::take_transcript)
//! when [`Config::transcript`](crate::Config::transcript) is on, and handed
//! to the caller's hooks as it is recorded. The lines themselves are
//! [`crate::transcript`]'s.

use super::ClientSession;
use crate::reply::Reply;
use crate::transcript::{Direction, Recorder, TranscriptHook, TranscriptLine};

/// The most transcript lines kept from earlier calls when the caller does not
/// take them ([`ClientSession::take_transcript`]); the lines of the current
/// call are never dropped, and dropped ones are counted in a note.
pub const MAX_TRANSCRIPT_LINES: usize = 1024;

/// What the session records of the dialogue: nothing until the transcript
/// is on ([`Config::transcript`](crate::Config::transcript)) or a hook is
/// added.
pub(super) struct Recording(Option<Recorder>);

impl Recording {
    /// Keeping the lines when `keep` (the configuration's transcript).
    pub(super) fn new(keep: bool) -> Recording {
        Recording(keep.then(Recorder::keeping))
    }

    /// Whether anything is recorded (a note worth formatting).
    pub(super) fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Every line recorded since the last take; none when no line is kept.
    fn take(&mut self) -> Vec<TranscriptLine> {
        self.0.as_mut().map(Recorder::take).unwrap_or_default()
    }

    /// Every line from now on also goes to `hook`.
    fn add_hook(&mut self, hook: TranscriptHook) {
        self.0.get_or_insert_with(Recorder::default).add_hook(hook);
    }

    /// Lines left from earlier calls are capped at [`MAX_TRANSCRIPT_LINES`].
    fn begin_call(&mut self) {
        if let Some(t) = self.0.as_mut() {
            t.begin_call(MAX_TRANSCRIPT_LINES);
        }
    }

    /// Records a line as given (the caller redacts).
    pub(super) fn record(&mut self, direction: Direction, line: &[u8]) {
        if let Some(t) = self.0.as_mut() {
            t.push(direction, line);
        }
    }

    /// Records a command line as written (never a secret).
    pub(super) fn record_sent(&mut self, line: &[u8]) {
        self.record(Direction::Client, line);
    }

    /// Records a reply, one line per line the server sent.
    pub(super) fn record_reply(&mut self, reply: &Reply) {
        if let Some(t) = self.0.as_mut() {
            for line in reply.as_bytes().split_inclusive(|&b| b == b'\n') {
                t.push(Direction::Server, line);
            }
        }
    }
}

impl ClientSession {
    /// The dialogue recorded since the last call (only when
    /// [`Config::transcript`](crate::Config::transcript) is on), secrets
    /// redacted.
    #[must_use]
    pub fn take_transcript(&mut self) -> Vec<TranscriptLine> {
        self.transcript.take()
    }

    /// Hands every line of the dialogue recorded from now on to `hook` as it
    /// is recorded, secrets redacted (an adapter's logger, say). Lines go to
    /// [`take_transcript`](Self::take_transcript) only when
    /// [`Config::transcript`](crate::Config::transcript) is on.
    pub fn add_transcript_hook(&mut self, hook: TranscriptHook) {
        self.transcript.add_hook(hook);
    }

    /// A caller's call starts: the transcript lines it did not take from
    /// earlier calls are capped (never the lines this call records).
    pub(super) fn begin_call(&mut self) {
        self.transcript.begin_call();
    }
}
