//! The operations' futures are `Send` (so they run in `tokio::spawn`) for
//! the bodies a caller passes: borrowed slices, owned readers, a borrowed
//! reader for one message. Checked by the compiler: a regression here fails
//! to build. (Batches of readers that borrow are not provably `Send` with
//! today's compiler; `send_each`'s documentation says so.)
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used)]

use smtp_tokio::smtp_proto::{Address, Envelope};
use smtp_tokio::tokio::Client;

fn envelope() -> Envelope {
    Envelope::new(None, [Address::new("you@example.org").unwrap()]).unwrap()
}

async fn batch_of_local_slices(mut client: Client) {
    let data = [b'x'; 4];
    client.send_all([(envelope(), &data[..])]).await;
}

async fn batch_of_borrowed_slices(client: &mut Client, data: &[u8]) {
    client.send_all([(envelope(), data)]).await;
}

async fn batch_of_owned_readers(mut client: Client) {
    let data = [b'x'; 4];
    client
        .send_each([(envelope(), std::io::Cursor::new(data))], |_| {})
        .await;
    let owned = std::io::Cursor::new(b"y".to_vec());
    client.send_all_readers([(envelope(), owned)]).await;
}

async fn one_borrowed_reader(mut client: Client) {
    let data = [b'x'; 4];
    let _ = client.send_reader(envelope(), &data[..]).await;
}

fn spawnable<T: Send + 'static>(_: T) {}

/// Never run: compiling it is the check.
#[allow(dead_code)]
fn futures_are_send(a: Client, b: &'static mut Client, c: Client, d: Client) {
    spawnable(batch_of_local_slices(a));
    spawnable(batch_of_borrowed_slices(b, b"x"));
    spawnable(batch_of_owned_readers(c));
    spawnable(one_borrowed_reader(d));
}
