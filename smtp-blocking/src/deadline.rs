//! How long a reply, a write or a whole message may take. Shared with
//! `smtp-tokio`.

use crate::Error;
use smtp_proto::{Stage, Timeouts};
use std::time::{Duration, Instant};

/// The clocks an adapter waits against: the stage's timeout (RFC 5321
/// §4.5.3.2) and, when [`Options::time_limit`](crate::Options::time_limit) is
/// set, the time limit of the unit of work under way (setting up the session,
/// or one message).
///
/// The whole reply, not each read, must arrive within its stage's timeout, so
/// a server that drips one byte at a time still times out. The time limit
/// caps what the per-stage timeouts cannot: a server that takes every data
/// block just in time keeps a large body going for hours.
#[doc(hidden)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Deadlines {
    /// The stage a reply is awaited for and when its time is up (`None`: never).
    reply: Option<(Stage, Option<Instant>)>,
    /// The time limit, and when the current unit of work must be done by
    /// (`None`: no unit under way, or too far ahead for the clock).
    limit: Option<(Duration, Option<Instant>)>,
}

impl Deadlines {
    /// No reply awaited yet; each unit of work gets `limit`, if any.
    pub fn new(limit: Option<Duration>) -> Deadlines {
        Deadlines {
            reply: None,
            limit: limit.map(|limit| (limit, None)),
        }
    }

    /// A command went out (or TLS started): its reply gets a whole timeout.
    pub fn reset(&mut self) {
        self.reply = None;
    }

    /// A unit of work (the session's set-up, a message) starts at `now`: it
    /// has the whole time limit from here.
    pub fn start(&mut self, now: Instant) {
        if let Some((limit, until)) = &mut self.limit {
            *until = now.checked_add(*limit);
        }
    }

    /// The unit of work ended: nothing is limited until the next starts.
    pub fn stop(&mut self) {
        if let Some((_, until)) = &mut self.limit {
            *until = None;
        }
    }

    /// How long the next read may wait at `stage`: what is left of the
    /// reply's timeout, and of the time limit.
    pub fn read(&mut self, stage: Stage, timeouts: &Timeouts) -> Result<Duration, Error> {
        let now = Instant::now();
        let deadline = match self.reply {
            Some((awaited, deadline)) if awaited == stage => deadline,
            _ => {
                let deadline = now.checked_add(timeouts.get(stage));
                self.reply = Some((stage, deadline));
                deadline
            }
        };
        let remaining = match deadline {
            Some(deadline) => deadline.saturating_duration_since(now),
            None => timeouts.get(stage),
        };
        if remaining.is_zero() {
            return Err(Error::Timeout { stage });
        }
        self.limited(remaining, stage, now)
    }

    /// How long one write (or the TLS handshake) at `stage` may take: the
    /// stage's timeout, within what is left of the time limit.
    pub fn write(&self, stage: Stage, timeouts: &Timeouts) -> Result<Duration, Error> {
        self.limited(timeouts.get(stage), stage, Instant::now())
    }

    /// `wait`, cut to what is left of the time limit (zero once it is up):
    /// for waits that have no stage, such as connecting.
    pub fn within(&self, wait: Duration) -> Duration {
        match self.limit {
            Some((_, Some(until))) => wait.min(until.saturating_duration_since(Instant::now())),
            _ => wait,
        }
    }

    /// What a wait at `stage` that ran out of time means: the time limit
    /// when that is what was reached, else the stage's timeout.
    pub fn expired(&self, stage: Stage) -> Error {
        match self.limit {
            Some((limit, Some(until))) if Instant::now() >= until => {
                Error::TimeLimit { stage, limit }
            }
            _ => Error::Timeout { stage },
        }
    }

    /// `wait`, cut to what is left of the time limit at `now`.
    fn limited(&self, wait: Duration, stage: Stage, now: Instant) -> Result<Duration, Error> {
        let Some((limit, Some(until))) = self.limit else {
            return Ok(wait);
        };
        let left = until.saturating_duration_since(now);
        if left.is_zero() {
            return Err(Error::TimeLimit { stage, limit });
        }
        Ok(wait.min(left))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_reply_deadline_spans_reads_and_resets_per_command() {
        let timeouts = Timeouts::uniform(Duration::from_millis(50));
        let mut deadlines = Deadlines::default();
        assert!(deadlines.read(Stage::Mail, &timeouts).is_ok());
        std::thread::sleep(Duration::from_millis(60));
        assert!(matches!(
            deadlines.read(Stage::Mail, &timeouts),
            Err(Error::Timeout { stage: Stage::Mail })
        ));
        assert!(
            deadlines.read(Stage::Rcpt, &timeouts).is_ok(),
            "a new stage"
        );
        deadlines.reset();
        assert!(deadlines.read(Stage::Rcpt, &timeouts).is_ok());
    }

    #[test]
    fn the_time_limit_caps_reads_and_writes_while_a_unit_runs() {
        let timeouts = Timeouts::uniform(Duration::from_secs(60));
        let limit = Duration::from_millis(50);
        let mut deadlines = Deadlines::new(Some(limit));
        // Not started: the stage's timeout alone.
        assert_eq!(
            deadlines.write(Stage::Data, &timeouts).unwrap(),
            Duration::from_secs(60)
        );
        deadlines.start(Instant::now());
        assert!(deadlines.write(Stage::Data, &timeouts).unwrap() <= limit);
        assert!(deadlines.read(Stage::DataEnd, &timeouts).unwrap() <= limit);
        assert!(matches!(
            deadlines.expired(Stage::DataEnd),
            Error::Timeout { .. }
        ));
        std::thread::sleep(Duration::from_millis(60));
        for result in [
            deadlines.write(Stage::Data, &timeouts),
            deadlines.read(Stage::DataEnd, &timeouts),
        ] {
            assert!(
                matches!(result, Err(Error::TimeLimit { limit: l, .. }) if l == limit),
                "{result:?}"
            );
        }
        assert!(matches!(
            deadlines.expired(Stage::Data),
            Error::TimeLimit {
                stage: Stage::Data,
                ..
            }
        ));
        // The next unit gets the whole limit again; stopped, none.
        deadlines.start(Instant::now());
        assert!(deadlines.read(Stage::DataEnd, &timeouts).is_ok());
        deadlines.stop();
        assert_eq!(
            deadlines.write(Stage::Data, &timeouts).unwrap(),
            Duration::from_secs(60)
        );
        assert!(matches!(
            deadlines.expired(Stage::Data),
            Error::Timeout { .. }
        ));
    }

    #[test]
    fn a_new_command_at_the_same_stage_gets_a_whole_timeout() {
        let timeouts = Timeouts::uniform(Duration::from_millis(50));
        let mut deadlines = Deadlines::default();
        assert!(deadlines.read(Stage::Rcpt, &timeouts).is_ok());
        std::thread::sleep(Duration::from_millis(60));
        deadlines.reset();
        let left = deadlines.read(Stage::Rcpt, &timeouts).unwrap();
        assert!(left > Duration::from_millis(40), "{left:?}");
    }

    #[test]
    fn waits_without_a_stage_are_cut_to_the_limit() {
        let wait = Duration::from_secs(60);
        let mut deadlines = Deadlines::new(Some(Duration::from_millis(50)));
        assert_eq!(deadlines.within(wait), wait, "no unit under way");
        deadlines.start(Instant::now());
        let cut = deadlines.within(wait);
        assert!(
            cut <= Duration::from_millis(50) && cut > Duration::ZERO,
            "{cut:?}"
        );
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(deadlines.within(wait), Duration::ZERO);
        assert_eq!(Deadlines::default().within(wait), wait, "no limit");
    }

    #[test]
    fn a_stage_timeout_shorter_than_what_is_left_of_the_limit_wins() {
        let timeouts = Timeouts::uniform(Duration::from_millis(20));
        let mut deadlines = Deadlines::new(Some(Duration::from_secs(60)));
        deadlines.start(Instant::now());
        assert_eq!(
            deadlines.write(Stage::Rcpt, &timeouts).unwrap(),
            Duration::from_millis(20)
        );
        assert!(deadlines.read(Stage::Rcpt, &timeouts).unwrap() <= Duration::from_millis(20));
        assert!(matches!(
            deadlines.expired(Stage::Rcpt),
            Error::Timeout { .. }
        ));
    }
}
