//! The buffer an adapter reads a body into and feeds the session from, so
//! that the stretches the session lends are written from it: the same
//! bookkeeping for every adapter, sync or async.

use crate::session::ClientSession;

/// What an adapter read of a body, and how much of it the session took.
///
/// The adapter reads into [`space`](Self::space) when the session took
/// everything ([`is_spent`](Self::is_spent)), says how much it read with
/// [`filled`](Self::filled), and calls [`feed`](Self::feed) at each
/// [`Next::Body`](crate::Next::Body); when the session then hands out
/// [`Io::WriteBody { len, .. }`](crate::Io::WriteBody), the bytes to write
/// are [`lent(len)`](Self::lent).
///
/// ```
/// use smtp_proto::BodyChunk;
///
/// let mut chunk = BodyChunk::default();
/// assert!(chunk.is_spent());
/// let space = chunk.space(8);
/// space[..3].copy_from_slice(b"hi\n");
/// chunk.filled(3);
/// assert!(!chunk.is_spent());
/// ```
#[derive(Debug, Default)]
pub struct BodyChunk {
    data: Vec<u8>,
    /// Where the bytes the session has not taken start.
    taken: usize,
    /// Where the bytes read end.
    end: usize,
}

impl BodyChunk {
    /// Forgets what was read (a new batch, or a reader that failed).
    pub fn clear(&mut self) {
        (self.taken, self.end) = (0, 0);
    }

    /// Whether the session took every byte read: time to read more.
    pub fn is_spent(&self) -> bool {
        self.taken >= self.end
    }

    /// `capacity` bytes to read into; forgets what was read before.
    pub fn space(&mut self, capacity: usize) -> &mut [u8] {
        self.clear();
        self.data.resize(capacity, 0);
        &mut self.data
    }

    /// `n` bytes were read into [`space`](Self::space) (at most its
    /// length).
    pub fn filled(&mut self, n: usize) {
        (self.taken, self.end) = (0, n.min(self.data.len()));
    }

    /// Feeds the session what it has not taken
    /// ([`ClientSession::write_body_direct`]): it encodes some, or lends a
    /// clean stretch. A refusal fails the session, whose next step says
    /// why; the rest of the chunk is then dropped.
    pub fn feed(&mut self, session: &mut ClientSession) {
        let rest = self.data.get(self.taken..self.end).unwrap_or_default();
        self.taken = match session.write_body_direct(rest) {
            Ok(n) if n > 0 => self.taken + n.min(rest.len()),
            _ => self.end,
        };
    }

    /// The `len` lent bytes still to write: the last ones the session took
    /// (`None` when it took fewer).
    pub fn lent(&self, len: usize) -> Option<&[u8]> {
        self.data.get(self.taken.checked_sub(len)?..self.taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lent_bytes_are_the_last_taken() {
        let mut chunk = BodyChunk::default();
        chunk.space(4).copy_from_slice(b"abcd");
        chunk.filled(9);
        assert!(!chunk.is_spent());
        chunk.taken = 3;
        assert_eq!(chunk.lent(2), Some(&b"bc"[..]));
        assert_eq!(chunk.lent(4), None);
        chunk.taken = 4;
        assert!(chunk.is_spent());
        chunk.clear();
        assert!(chunk.is_spent());
        assert_eq!(chunk.lent(1), None);
    }
}
