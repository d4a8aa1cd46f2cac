//! The adapter suite: every scenario written once against [`harness::Adapter`]
//! and run through every adapter, one `#[test]` per (adapter, scenario):
//! `blocking::*` (smtp-blocking), `tokio::*` (smtp-tokio's tokio backend),
//! `async_std::*` and `smol::*` (smtp-tokio's futures-io backend under each
//! executor).
//!
//! Each scenario checks on the server side what the client did and did not
//! send: [`smtp_tests::ScriptedServer`] records every byte per connection,
//! split at the TLS boundary; the Exchange-like server and the real servers
//! store what they received.
//!
//! ```sh
//! cargo test -p smtp-tests --test adapters             # everything
//! cargo test -p smtp-tests --test adapters -- smol::    # one adapter
//! cargo test -p smtp-tests --test adapters -- injection # one scenario, every adapter
//! ```
//!
//! The real-server scenarios (`real_*`) need `bash tests/setup.sh` first.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    clippy::needless_range_loop,
    clippy::result_large_err,
    clippy::type_complexity
)]

mod attacks;
mod batch;
mod common;
mod faults;
mod harness;
mod limits;
mod outcomes;
mod real;
mod session;
mod streaming;
mod tls;

use attacks::*;
use batch::*;
use faults::*;
use limits::*;
use outcomes::*;
use real::*;
use session::*;
use streaming::*;
use tls::*;

/// One module per adapter, one test per scenario in it: `all` run through
/// every adapter, `native` only through smtp-blocking and the tokio
/// backend (the 100 MiB body: about 9 s per adapter in a debug build; the
/// futures-io backend streams 4 MiB in `streamed_4_mib` instead).
macro_rules! suite {
    (
        all: [$($all:ident),* $(,)?],
        native: [$($native:ident),* $(,)?] $(,)?
    ) => {
        suite!(@adapter blocking, Blocking, [$($all,)* $($native,)*]);
        suite!(@adapter tokio, Tokio, [$($all,)* $($native,)*]);
        suite!(@adapter async_std, AsyncStd, [$($all,)*]);
        suite!(@adapter smol, Smol, [$($all,)*]);
    };
    (@adapter $module:ident, $adapter:ident, [$($scenario:ident,)*]) => {
        mod $module {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario(&crate::harness::$adapter);
                }
            )*
        }
    };
}

suite! {
    all: [
        // a plain session
        transcript_of_a_plain_session,
        transcript_redacts_auth,
        refused_recipients_leave_the_client_usable,
        connect_by_host_name,
        connect_refused,
        // TLS and AUTH
        implicit_tls,
        starttls_login_exchange,
        auth_plain,
        xoauth2_token,
        auth_mechanism_learnt_after_tls,
        certificate_for_another_name,
        certificate_for_another_name_implicit,
        expired_certificate,
        self_signed_certificate,
        default_roots_refuse_a_private_ca,
        // attacks
        stripping_no_starttls,
        stripping_454,
        stripping_starttls_in_greeting_text,
        stripping_starttls_after_the_last_line,
        injection_same_packet,
        injection_slightly_later,
        injection_without_handshake,
        control_characters_rejected_before_any_write,
        body_smuggling,
        // faults
        malformed_bad_code,
        malformed_mixed_codes,
        malformed_overlong_line,
        malformed_endless_continuation,
        nul_bytes_in_reply_text,
        closed_mid_reply,
        tls_cut_mid_reply_without_close_notify,
        tls_drip_is_bounded_by_the_stage_timeout,
        tls_handshake_drip_is_bounded,
        closed_mid_data,
        stall_greeting,
        stall_mid_reply,
        stall_dripping_reply,
        stall_mail,
        stall_mail_over_tls,
        noop_refused_fails_the_health_check,
        stall_data_end,
        stall_tls_handshake,
        closing_421_greeting,
        closing_421_ehlo,
        closing_421_mail,
        closing_421_rcpt,
        closing_421_data,
        closing_421_data_end,
        idle_check_reads_without_writing,
        // what became of each message
        outcome_unknown_when_closed_right_after_the_final_dot,
        outcome_accepted_when_closed_right_after_the_250,
        outcome_not_sent_when_closed_mid_body,
        outcome_per_message_when_a_batch_breaks,
        outcome_refused_at_the_end_of_data,
        // the time limit
        time_limit_bounds_the_set_up,
        time_limit_counts_per_message,
        time_limit_bounds_a_body_the_server_does_not_take,
        // batches
        batch_pipelined,
        batch_pipelined_bdat,
        batch_send_each_reports_as_it_goes,
        batch_refusals_in_the_middle,
        batch_connection_ends_mid_batch,
        batch_without_pipelining,
        batch_failing_reader,
        batch_exchange_bdat,
        // streaming
        streamed_4_mib,
        streamed_1_mib_of_dotted_lines,
        failing_reader_leaves_the_message_unfinished,
        // real servers
        real_aiosmtpd,
        real_smtp_server_login,
        real_smtp_server_xoauth2,
        real_smtp_sink,
        real_smtp_server_batch,
        real_smtp_sink_batch,
        real_postfix_bdat,
        real_postfix_data,
        real_postfix_batch,
        real_postfix_refused_recipient,
        real_postfix_size_limit_announced,
        real_postfix_size_limit_unannounced,
        real_postfix_size_limit_unannounced_data,
        real_postfix_lettre_and_mail_builder,
    ],
    native: [streamed_100_mib],
}
