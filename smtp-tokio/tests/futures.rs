//! The loopback scenarios on the futures-io backend, under async-std's and
//! smol's executors.
#![cfg(feature = "async-std")]
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

async fn sleep(duration: std::time::Duration) {
    async_io::Timer::after(duration).await;
}

mod async_std_executor {
    use super::sleep;
    use async_std::task::block_on;
    scenarios!(smtp_tokio::futures::Client, block_on, sleep);
}

mod smol_executor {
    use super::sleep;
    use smol::block_on;
    scenarios!(smtp_tokio::futures::Client, block_on, sleep);

    #[test]
    fn any_futures_io_stream_works() {
        let server = common::spawn(|c| common::smtp(c, Script::default()));
        block_on(async move {
            let stream = smol::net::TcpStream::connect(server.addr).await.unwrap();
            let mut client = smtp_tokio::futures::Client::with_stream(stream, config(), options())
                .await
                .unwrap();
            let send = client.send(envelope(&["b@example.org"]), b"hi\r\n");
            common::assert_send(&send);
            send.await.unwrap();
            client.quit().await.unwrap();
            assert_eq!(server.join().messages.len(), 1);
        });
    }

    #[test]
    fn operations_run_in_smol_spawn() {
        let server = common::spawn(|c| common::smtp(c, Script::default()));
        block_on(async move {
            let addr = server.addr;
            let task = smol::spawn(async move {
                let mut client = smtp_tokio::futures::Client::connect_to(addr, config(), options())
                    .await
                    .unwrap();
                client
                    .send(envelope(&["b@example.org"]), b"hi\r\n")
                    .await
                    .unwrap();
                client.quit().await.unwrap();
            });
            task.await;
            assert_eq!(server.join().messages.len(), 1);
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
