//! The futures-io backend under async-std's and smol's executors:
//! cancellation, any futures-io stream, the client in a spawned task. What
//! every adapter does is in the adapter suite (`tests/tests/adapters`).
#![cfg(feature = "async-std")]
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

mod async_std_executor {
    use async_std::task::block_on;
    cancellation!(smtp_tokio::futures::Client, block_on);
}

mod smol_executor {
    use smol::block_on;
    cancellation!(smtp_tokio::futures::Client, block_on);

    /// `with_stream` over a stream the caller connected (smol's), its
    /// futures `Send`.
    #[test]
    fn any_futures_io_stream_works() {
        let (server, inbox) = common::accepting_server();
        block_on(async move {
            let stream = smol::net::TcpStream::connect(server.addr()).await.unwrap();
            let mut client = smtp_tokio::futures::Client::with_stream(stream, config(), options())
                .await
                .unwrap();
            let send = client.send(envelope(), b"hi\r\n");
            common::assert_send(&send);
            send.await.unwrap();
            client.quit().await.unwrap();
            assert_eq!(*inbox.lock().unwrap(), [b"hi\r\n".to_vec()]);
        });
    }

    /// The client and its futures go to `smol::spawn`.
    #[test]
    fn operations_run_in_smol_spawn() {
        let (server, inbox) = common::accepting_server();
        block_on(async move {
            let addr = server.addr();
            let task = smol::spawn(async move {
                let mut client = smtp_tokio::futures::Client::connect_to(addr, config(), options())
                    .await
                    .unwrap();
                client.send(envelope(), b"hi\r\n").await.unwrap();
                client.quit().await.unwrap();
            });
            task.await;
            assert_eq!(*inbox.lock().unwrap(), [b"hi\r\n".to_vec()]);
        });
    }
}

/// A pool can hold clients and move them between tasks and threads.
#[test]
fn client_is_send_and_sync() {
    fn assert<T: Send + Sync + 'static>() {}
    assert::<smtp_tokio::futures::Client>();
    assert::<smtp_tokio::futures::Client<smol::net::TcpStream>>();
    assert::<smtp_tokio::Error>();
}
