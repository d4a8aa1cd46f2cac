//! When a pool may send again on a new connection what failed on a reused
//! one: the rule both adapters' pools keep, decided once.

use crate::batch::BatchError;
use crate::outcome::{Delivery, Outcome};

/// Whether a send that failed on a pooled connection may go again, once, on
/// a new one. All of:
/// - the connection was `reused` (a new one that fails says something about
///   the server, not about an idle connection gone stale);
/// - no body was read (`body_read` false): a reader cannot be rewound, and
///   nothing of the message reached the server;
/// - the failure `broke` the connection (a `421`, the server closing it, an
///   I/O error), rather than the server refusing the message;
/// - its `outcome` allows a resend ([`Outcome::may_resend`]): never one whose
///   delivery is unknown (RFC 1047).
pub fn may_retry(reused: bool, body_read: bool, broke: bool, outcome: Outcome) -> bool {
    reused && !body_read && broke && outcome.may_resend()
}

/// `results` of a batch of `n` messages that a failure cut short, each
/// message it never reached [`BatchError::not_sent`]: one result per
/// message.
pub fn not_sent_to_the_end<E: BatchError>(
    mut results: Vec<Result<Delivery, E>>,
    n: usize,
) -> Vec<Result<Delivery, E>> {
    while results.len() < n {
        results.push(Err(E::not_sent()));
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn only_a_stale_reused_connection_with_nothing_sent_is_retried() {
        assert!(may_retry(true, false, true, Outcome::NotSent));
        assert!(may_retry(true, false, true, Outcome::Refused));
        assert!(!may_retry(false, false, true, Outcome::NotSent), "new");
        assert!(!may_retry(true, true, true, Outcome::NotSent), "body read");
        assert!(!may_retry(true, false, false, Outcome::Refused), "refused");
        assert!(!may_retry(true, false, true, Outcome::Unknown), "unknown");
    }

    #[derive(Debug)]
    struct E(bool);

    impl From<Error> for E {
        fn from(_: Error) -> E {
            E(false)
        }
    }

    impl BatchError for E {
        fn not_sent() -> E {
            E(true)
        }
        fn delivery_unknown(cause: E) -> E {
            cause
        }
    }

    #[test]
    fn the_results_are_padded_with_not_sent() {
        let results = not_sent_to_the_end(vec![Err(E(false))], 3);
        let not_sent: Vec<bool> = results.iter().map(|r| matches!(r, Err(E(true)))).collect();
        assert_eq!(not_sent, [false, true, true]);
        assert_eq!(not_sent_to_the_end::<E>(Vec::new(), 0).len(), 0);
    }
}
