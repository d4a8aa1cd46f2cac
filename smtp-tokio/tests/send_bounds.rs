//! The operations' futures are `Send` (so they run in `tokio::spawn`) for
//! the bodies a caller passes: borrowed slices, owned readers, readers that
//! borrow, alone or in batches. Checked by the compiler: a regression here
//! fails to build. (Batches of borrowing readers once were not: an iterator
//! adapter with a closure defeats the compiler's proof.)
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

async fn batch_of_borrowed_readers(mut client: Client) {
    let data = [b'x'; 4];
    client.send_each([(envelope(), &data[..])], |_| {}).await;
    client.send_all_readers([(envelope(), &data[..])]).await;
}

async fn batch_of_borrowed_readers_passed_in(client: &mut Client, data: &[u8]) {
    client.send_each([(envelope(), data)], |_| {}).await;
}

fn spawnable<T: Send + 'static>(_: T) {}

/// Never run: compiling it is the check.
#[allow(dead_code)]
fn futures_are_send(
    a: Client,
    b: &'static mut Client,
    c: Client,
    d: Client,
    e: Client,
    f: &'static mut Client,
) {
    spawnable(batch_of_local_slices(a));
    spawnable(batch_of_borrowed_slices(b, b"x"));
    spawnable(batch_of_owned_readers(c));
    spawnable(one_borrowed_reader(d));
    spawnable(batch_of_borrowed_readers(e));
    spawnable(batch_of_borrowed_readers_passed_in(f, b"x"));
}
