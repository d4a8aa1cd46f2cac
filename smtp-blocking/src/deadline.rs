//! How long a reply may take. Shared with `smtp-tokio`.

use smtp_proto::{Stage, Timeouts};
use std::time::{Duration, Instant};

/// The whole reply, not each read, must arrive within its stage's timeout,
/// so a server that drips one byte at a time still times out.
#[doc(hidden)]
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplyDeadline {
    /// The stage a reply is awaited for and when its time is up (`None`: never).
    current: Option<(Stage, Option<Instant>)>,
}

impl ReplyDeadline {
    /// A command went out (or TLS started): its reply gets a whole timeout.
    pub fn reset(&mut self) {
        self.current = None;
    }

    /// How long the next read may wait at `stage`; `None` when the time is up.
    pub fn remaining(&mut self, stage: Stage, timeouts: &Timeouts) -> Option<Duration> {
        let now = Instant::now();
        let deadline = match self.current {
            Some((awaited, deadline)) if awaited == stage => deadline,
            _ => {
                let deadline = now.checked_add(timeouts.get(stage));
                self.current = Some((stage, deadline));
                deadline
            }
        };
        let remaining = match deadline {
            Some(deadline) => deadline.saturating_duration_since(now),
            None => timeouts.get(stage),
        };
        (!remaining.is_zero()).then_some(remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_spans_reads_and_resets_per_command() {
        let timeouts = Timeouts::uniform(Duration::from_millis(50));
        let mut deadline = ReplyDeadline::default();
        assert!(deadline.remaining(Stage::Mail, &timeouts).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            deadline.remaining(Stage::Mail, &timeouts),
            None,
            "time is up"
        );
        assert!(
            deadline.remaining(Stage::Rcpt, &timeouts).is_some(),
            "a new stage"
        );
        deadline.reset();
        assert!(deadline.remaining(Stage::Rcpt, &timeouts).is_some());
    }
}
