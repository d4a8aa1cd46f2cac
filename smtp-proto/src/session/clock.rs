//! Deadlines from the caller's clock: the session never reads a clock, it
//! is told `now` ([`ClientSession::next`](super::ClientSession::next),
//! [`ClientSession::handle_timeout`](super::ClientSession::handle_timeout))
//! and answers with the instant the current wait ends.

use crate::error::Error;
use crate::options::Options;
use crate::stage::{Stage, Timeouts};
use core::time::Duration;
use std::time::Instant;

/// When something ends; `None` is never (a timeout too long for the clock).
pub(crate) type Deadline = Option<Instant>;

/// The earlier of two deadlines.
fn earlier(a: Deadline, b: Deadline) -> Deadline {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Where the set-up's time limit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// Nothing happened yet: the first call with a `now` starts it.
    NotStarted,
    /// Connecting, greeting, EHLO, TLS, AUTH under way.
    Running,
    /// The session was ready once: units are messages from now on.
    Done,
}

/// The per-stage timeouts (RFC 5321 §4.5.3.2), the time limit of the unit
/// of work under way, and the wait handed out last.
#[derive(Debug, Clone)]
pub(crate) struct Clock {
    timeouts: Timeouts,
    connect: Duration,
    limit: Option<Duration>,
    setup: Setup,
    /// When the unit of work under way (the set-up, one message) must be
    /// done by; `None` when no unit runs, there is no limit, or it is too
    /// far ahead for the clock.
    until: Deadline,
    /// The stage a reply is awaited for and when its time is up: the whole
    /// reply, not each read, must arrive within the stage's timeout, so a
    /// server that drips one byte at a time still times out.
    reply: Option<(Stage, Deadline)>,
    /// The last wait handed out: its stage and deadline.
    wait: Option<(Stage, Deadline)>,
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new(&Options::default())
    }
}

impl Clock {
    pub(crate) fn new(options: &Options) -> Clock {
        Clock {
            timeouts: options.timeouts,
            connect: options.connect_timeout,
            limit: options.time_limit,
            setup: Setup::NotStarted,
            until: None,
            reply: None,
            wait: None,
        }
    }

    /// Connecting begins at `now`: the set-up's time limit counts from here.
    /// By when the connection must be made.
    pub(crate) fn connect(&mut self, now: Instant) -> Deadline {
        self.begin_setup(now);
        earlier(now.checked_add(self.connect), self.until)
    }

    /// The set-up starts at `now` unless it already has.
    pub(crate) fn begin_setup(&mut self, now: Instant) {
        if self.setup == Setup::NotStarted {
            self.setup = Setup::Running;
            self.start(now);
        }
    }

    /// The session became ready: the set-up's time is no longer limited.
    pub(crate) fn setup_done(&mut self) {
        if self.setup == Setup::Running {
            self.stop();
        }
        self.setup = Setup::Done;
    }

    /// A unit of work starts at `now`: it has the whole time limit.
    pub(crate) fn start(&mut self, now: Instant) {
        self.until = self.limit.and_then(|limit| now.checked_add(limit));
    }

    /// The unit of work ended: nothing is limited until the next starts.
    pub(crate) fn stop(&mut self) {
        self.until = None;
    }

    /// A command went out whole, or TLS started: the reply awaited next gets
    /// a whole timeout.
    pub(crate) fn reset_reply(&mut self) {
        self.reply = None;
    }

    /// The deadline of a read at `stage`.
    pub(crate) fn read(&mut self, stage: Stage, now: Instant) -> Deadline {
        let reply = match self.reply {
            Some((awaited, deadline)) if awaited == stage => deadline,
            _ => {
                let deadline = now.checked_add(self.timeouts.get(stage));
                self.reply = Some((stage, deadline));
                deadline
            }
        };
        self.hand_out(stage, earlier(reply, self.until))
    }

    /// The deadline of one write (or of the TLS handshake) at `stage`: each
    /// write must make progress within the stage's timeout (RFC 5321
    /// §4.5.3.2 times each data block), within the time limit.
    pub(crate) fn write(&mut self, stage: Stage, now: Instant) -> Deadline {
        self.hand_out(
            stage,
            earlier(now.checked_add(self.timeouts.get(stage)), self.until),
        )
    }

    /// The deadline of the best-effort write after a failure: QUIT's
    /// timeout, the time limit regardless.
    pub(crate) fn close(&mut self, now: Instant) -> Deadline {
        self.hand_out(Stage::Quit, now.checked_add(self.timeouts.get(Stage::Quit)))
    }

    fn hand_out(&mut self, stage: Stage, deadline: Deadline) -> Deadline {
        self.wait = Some((stage, deadline));
        deadline
    }

    /// The deadline of the wait handed out last.
    pub(crate) fn poll_timeout(&self) -> Deadline {
        self.wait.and_then(|(_, deadline)| deadline)
    }

    /// Forgets the wait handed out last (nothing is awaited any more).
    pub(crate) fn clear_wait(&mut self) {
        self.wait = None;
    }

    /// What the wait handed out last means at `now`, if its time is up: the
    /// time limit when that is what was reached, else the stage's timeout.
    pub(crate) fn expired(&self, now: Instant) -> Option<Error> {
        let (stage, Some(deadline)) = self.wait? else {
            return None;
        };
        if now < deadline {
            return None;
        }
        match (self.limit, self.until) {
            (Some(limit), Some(until)) if now >= until => Some(Error::TimeLimit { stage, limit }),
            _ => Some(Error::Timeout { stage }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn clock(timeout: u64, limit: Option<u64>) -> Clock {
        let mut options =
            Options::default().timeouts(Timeouts::uniform(Duration::from_millis(timeout)));
        options.time_limit = limit.map(Duration::from_millis);
        Clock::new(&options)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_reply_deadline_spans_reads_and_resets_per_command() {
        let t0 = Instant::now();
        let mut clock = clock(50, None);
        assert_eq!(clock.read(Stage::Mail, t0), Some(t0 + ms(50)));
        // A later read for the same reply keeps the deadline.
        assert_eq!(clock.read(Stage::Mail, t0 + ms(30)), Some(t0 + ms(50)));
        assert_eq!(clock.expired(t0 + ms(49)), None);
        assert_eq!(
            clock.expired(t0 + ms(50)),
            Some(Error::Timeout { stage: Stage::Mail })
        );
        // A new stage, or a command written since, gets a whole timeout.
        assert_eq!(clock.read(Stage::Rcpt, t0 + ms(60)), Some(t0 + ms(110)));
        clock.reset_reply();
        assert_eq!(clock.read(Stage::Rcpt, t0 + ms(70)), Some(t0 + ms(120)));
        assert_eq!(clock.poll_timeout(), Some(t0 + ms(120)));
    }

    #[test]
    fn each_write_gets_the_stage_timeout_within_the_limit() {
        let t0 = Instant::now();
        let mut clock = clock(60_000, Some(50));
        // No unit under way: the stage's timeout alone.
        assert_eq!(clock.write(Stage::Data, t0), Some(t0 + ms(60_000)));
        clock.start(t0);
        assert_eq!(clock.write(Stage::Data, t0 + ms(10)), Some(t0 + ms(50)));
        assert_eq!(clock.read(Stage::DataEnd, t0 + ms(10)), Some(t0 + ms(50)));
        assert_eq!(
            clock.expired(t0 + ms(50)),
            Some(Error::TimeLimit {
                stage: Stage::DataEnd,
                limit: ms(50)
            })
        );
        // The next unit gets the whole limit again; stopped, none.
        clock.start(t0 + ms(100));
        assert_eq!(clock.write(Stage::Data, t0 + ms(100)), Some(t0 + ms(150)));
        clock.stop();
        assert_eq!(
            clock.write(Stage::Data, t0 + ms(100)),
            Some(t0 + ms(60_100))
        );
    }

    #[test]
    fn a_stage_timeout_shorter_than_what_is_left_of_the_limit_wins() {
        let t0 = Instant::now();
        let mut clock = clock(20, Some(60_000));
        clock.start(t0);
        assert_eq!(clock.write(Stage::Rcpt, t0), Some(t0 + ms(20)));
        assert_eq!(
            clock.expired(t0 + ms(20)),
            Some(Error::Timeout { stage: Stage::Rcpt })
        );
    }

    #[test]
    fn the_set_up_is_limited_from_connecting_until_ready() {
        let t0 = Instant::now();
        let mut clock = clock(60_000, Some(50));
        clock.connect = ms(10);
        assert_eq!(clock.connect(t0), Some(t0 + ms(10)));
        // A second call does not restart the set-up.
        clock.begin_setup(t0 + ms(20));
        assert_eq!(clock.read(Stage::Greeting, t0 + ms(20)), Some(t0 + ms(50)));
        clock.setup_done();
        assert_eq!(clock.read(Stage::Ehlo, t0 + ms(20)), Some(t0 + ms(60_020)));
        // Once done, the set-up never starts again.
        clock.begin_setup(t0 + ms(30));
        assert_eq!(clock.write(Stage::Mail, t0 + ms(30)), Some(t0 + ms(60_030)));
    }

    #[test]
    fn a_timeout_too_long_for_the_clock_never_expires() {
        let t0 = Instant::now();
        let mut clock = clock(0, None);
        clock.timeouts = Timeouts::uniform(Duration::MAX);
        assert_eq!(clock.read(Stage::DataEnd, t0), None);
        assert_eq!(clock.expired(t0 + ms(1_000_000)), None);
        assert_eq!(clock.poll_timeout(), None);
        // The close after a failure waits QUIT's timeout.
        assert_eq!(clock.close(t0), None);
    }
}
