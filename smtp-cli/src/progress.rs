//! The progress bar of a long run, on stderr: messages sent, rate, time
//! left, refusals so far. Only on a terminal, never with `--json` or
//! `--transcript` (whose lines it would break), only for more than one
//! transaction.

use crate::report::TransactionReport;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use smtp_blocking::Outcome;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

/// A bar over `len` transactions, shared by every session.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    refused: AtomicU64,
}

impl Progress {
    /// A bar for a run of `len` transactions, if one belongs on stderr: a
    /// terminal, more than one transaction, neither `--json` nor
    /// `--transcript`.
    pub fn for_run(len: u32, json: bool, transcript: bool) -> Option<Progress> {
        let wanted = len > 1 && !json && !transcript && std::io::stderr().is_terminal();
        wanted.then(|| Progress::new(len, ProgressDrawTarget::stderr()))
    }

    fn new(len: u32, target: ProgressDrawTarget) -> Progress {
        let style =
            ProgressStyle::with_template("{bar:30} {pos}/{len} sent  {per_sec}  {eta} left  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar = ProgressBar::with_draw_target(Some(u64::from(len)), target).with_style(style);
        bar.set_message("0 refused");
        Progress {
            bar,
            refused: AtomicU64::new(0),
        }
    }

    /// One transaction's result.
    pub fn record(&self, t: &TransactionReport) {
        if t.status != Outcome::Accepted {
            let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
            self.bar.set_message(format!("{refused} refused"));
        }
        self.bar.inc(1);
    }

    /// The run is over: the bar goes, so the report stands alone.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sent_and_refused() {
        let progress = Progress::new(3, ProgressDrawTarget::hidden());
        let accepted = TransactionReport {
            status: Outcome::Accepted,
            ..TransactionReport::default()
        };
        let refused = TransactionReport {
            status: Outcome::Refused,
            ..TransactionReport::default()
        };
        progress.record(&accepted);
        progress.record(&refused);
        assert_eq!(progress.bar.position(), 2);
        assert_eq!(progress.bar.message(), "1 refused");
        assert!(Progress::for_run(1, false, false).is_none());
        assert!(Progress::for_run(10, true, false).is_none());
        assert!(Progress::for_run(10, false, true).is_none());
    }
}
