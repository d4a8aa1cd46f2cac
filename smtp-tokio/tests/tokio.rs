//! The tokio backend on tokio's multi-threaded runtime: cancellation, and
//! the client moving between tasks. What every adapter does is in the
//! adapter suite (`tests/tests/adapters`).
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

fn run<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

mod tokio_runtime {
    use super::run;
    cancellation!(smtp_tokio::tokio::Client, run);

    /// The client and its operations' futures go to `tokio::spawn`, from
    /// one task to the next.
    #[test]
    fn operations_run_in_tokio_spawn() {
        let (server, inbox) = common::accepting_server();
        run(async move {
            let addr = server.addr();
            let task = tokio::spawn(async move {
                let mut client = smtp_tokio::tokio::Client::connect_to(addr, config(), options())
                    .await
                    .unwrap();
                client.send(envelope(), b"hi\r\n").await.unwrap();
                client
            });
            let client = task.await.unwrap();
            let client = tokio::spawn(async move {
                let mut client = client;
                client.noop().await.unwrap();
                client
            })
            .await
            .unwrap();
            client.quit().await.unwrap();
            assert_eq!(*inbox.lock().unwrap(), [b"hi\r\n".to_vec()]);
        });
    }
}

/// A pool can hold clients and move them between tasks and threads.
#[test]
fn client_is_send_and_sync() {
    fn assert<T: Send + Sync + 'static>() {}
    assert::<smtp_tokio::tokio::Client>();
    assert::<smtp_tokio::Error>();
    assert::<smtp_tokio::Options>();
}
