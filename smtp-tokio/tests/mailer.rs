//! The `AsyncMailer` trait: the same application code over the tokio pool
//! (against the scripted server's small SMTP loop) and the recording double,
//! from many tasks.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use smtp_tests::{Peer, ScriptedServer};
use smtp_tokio::pool::{Connector, Pool, PoolOptions};
use smtp_tokio::{
    Address, AsyncMailer, Config, Envelope, Error, Options, RecordingMailer, Timeouts, TlsPolicy,
};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Inbox = Arc<Mutex<Vec<Vec<u8>>>>;

fn server() -> (ScriptedServer, Inbox) {
    let inbox: Inbox = Arc::default();
    let handler_inbox = Arc::clone(&inbox);
    let server = ScriptedServer::start_fn(move |peer: &mut Peer| {
        peer.serve_messages(&["8BITMIME", "PIPELINING"], |peer, _n, body| {
            handler_inbox.lock().unwrap().push(body);
            peer.reply("250 2.0.0 queued")?;
            Ok(true)
        })
    })
    .unwrap();
    (server, inbox)
}

fn pool(server: &ScriptedServer, max_size: usize) -> Pool {
    let config = Config::new("localhost").tls(TlsPolicy::Disabled);
    let options = Options::new().timeouts(Timeouts::uniform(Duration::from_secs(10)));
    Pool::new(
        Connector::to_addr(server.addr(), config, options),
        PoolOptions::new().max_size(max_size),
    )
}

fn envelope(to: &str) -> Envelope {
    Envelope::new(
        Some(Address::new("shop@example.com").unwrap()),
        [Address::new(to).unwrap()],
    )
    .unwrap()
}

/// Application code: one receipt per order, sent as one batch from a task.
async fn send_receipts<M: AsyncMailer>(mailer: &M, orders: &[String]) -> Result<usize, M::Error> {
    let bodies: Vec<Vec<u8>> = orders
        .iter()
        .map(|order| format!("Subject: receipt {order}\r\n\r\nThanks.\r\n").into_bytes())
        .collect();
    let batch = bodies
        .iter()
        .map(|body| (envelope("customer@example.org"), body.as_slice()))
        .collect();
    let mut sent = 0;
    for result in mailer.send_all(batch).await {
        result?;
        sent += 1;
    }
    Ok(sent)
}

/// Many tasks share one handle (a clone each) and send through the trait.
async fn from_many_tasks<M>(mailer: M) -> BTreeSet<String>
where
    M: AsyncMailer<Error = Error> + Clone + 'static,
{
    let tasks: Vec<_> = (0..20)
        .map(|task| {
            let mailer = mailer.clone();
            tokio::spawn(async move {
                let orders = vec![format!("{task}-a"), format!("{task}-b")];
                let sent = send_receipts(&mailer, &orders).await?;
                let one = format!("Subject: single {task}\r\n\r\nsingle.\r\n");
                mailer
                    .send(envelope("audit@example.org"), one.as_bytes())
                    .await?;
                Ok::<_, Error>(sent + 1)
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap().unwrap();
    }
    assert_eq!(total, 60);
    (0..20)
        .flat_map(|task| {
            [
                format!("Subject: receipt {task}-a\r\n\r\nThanks.\r\n"),
                format!("Subject: receipt {task}-b\r\n\r\nThanks.\r\n"),
                format!("Subject: single {task}\r\n\r\nsingle.\r\n"),
            ]
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_code_runs_over_the_double_and_a_real_pool() {
    let double = RecordingMailer::<Error>::default();
    let want = from_many_tasks(double.clone()).await;
    let recorded: BTreeSet<String> = double.sent().iter().map(|m| m.body_text()).collect();
    assert_eq!(recorded, want);

    let (server, inbox) = server();
    let pool = pool(&server, 3);
    let want = from_many_tasks(pool.clone()).await;
    let received: BTreeSet<String> = inbox
        .lock()
        .unwrap()
        .iter()
        .map(|body| String::from_utf8(body.clone()).unwrap())
        .collect();
    assert_eq!(received, want);
    let connections = server.connections();
    assert!((1..=3).contains(&connections), "{connections}");
    assert_eq!(pool.status().opened, connections as u64);
    pool.close().await;
}

#[tokio::test]
async fn the_double_refuses_when_told() {
    let double = RecordingMailer::new();
    double.refuse(smtp_tokio::smtp_proto::Error::ConnectionClosed {
        stage: smtp_tokio::Stage::Greeting,
    });
    let orders = ["1".to_owned()];
    let err = send_receipts(&double, &orders).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(double.sent().is_empty());
    double.accept();
    assert_eq!(send_receipts(&double, &orders).await.unwrap(), 1);
}

#[test]
fn the_pool_is_a_shared_async_mailer() {
    fn assert_mailer<M: AsyncMailer + Clone + Send + Sync + 'static>() {}
    assert_mailer::<Pool>();
    assert_mailer::<RecordingMailer<Error>>();
    assert_mailer::<Arc<Pool>>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_through_the_trait_against_a_real_postfix() {
    let server = smtp_tests::Postfix::start(&smtp_tests::PostfixOptions::default()).unwrap();
    let config = Config::new("localhost").tls(TlsPolicy::Disabled);
    let options = Options::new().timeouts(Timeouts::uniform(Duration::from_secs(10)));
    let pool = Pool::new(
        Connector::to_addr(server.addr(), config, options),
        PoolOptions::new().max_size(3),
    );
    let want = from_many_tasks(pool.clone()).await;
    let messages = server
        .wait_for_messages(want.len(), Duration::from_secs(10))
        .unwrap();
    assert_eq!(messages.len(), want.len());
    // Postfix adds headers of its own; each message arrived once, whole.
    for body in &want {
        let found = messages
            .iter()
            .filter(|m| String::from_utf8_lossy(&m.data).ends_with(body.as_str()))
            .count();
        assert_eq!(found, 1, "{body:?}");
    }
    assert!((1..=3).contains(&pool.status().opened));
    pool.close().await;
}
