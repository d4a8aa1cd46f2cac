//! A TCP proxy that delays every read by a fixed time each way and counts
//! round trips, to measure (and check) what pipelining saves on a WAN link
//! from loopback.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// A proxy on `127.0.0.1` to one upstream, for any number of connections;
/// each byte is forwarded `delay` after it arrived, in both directions (a
/// round-trip time of twice `delay`).
///
/// A *round trip* is counted, per connection, each time the client writes
/// again after the server has sent something: the turns of the dialogue as
/// the client lives them, so `round_trips() / messages` is what a message
/// costs in latency. The greeting is not one; the first command is.
///
/// ```no_run
/// use smtp_tests::proxy::DelayProxy;
/// use std::time::Duration;
///
/// # fn example(upstream: std::net::SocketAddr) -> std::io::Result<()> {
/// let proxy = DelayProxy::start(upstream, Duration::from_millis(5))?;
/// // ... connect a client to proxy.addr() and send ...
/// println!("{} round trips", proxy.round_trips());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct DelayProxy {
    addr: SocketAddr,
    turns: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl DelayProxy {
    /// Listens on an ephemeral port and forwards each connection to
    /// `upstream`, until dropped.
    pub fn start(upstream: SocketAddr, delay: Duration) -> io::Result<DelayProxy> {
        DelayProxy::bind(
            "127.0.0.1:0".parse().map_err(io::Error::other)?,
            upstream,
            delay,
        )
    }

    /// [`DelayProxy::start`] listening on `listen`.
    pub fn bind(
        listen: SocketAddr,
        upstream: SocketAddr,
        delay: Duration,
    ) -> io::Result<DelayProxy> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let turns = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (counted, stopped) = (Arc::clone(&turns), Arc::clone(&stop));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let turns = Arc::clone(&counted);
                std::thread::spawn(move || {
                    let _ = relay(client, upstream, delay, turns);
                });
            }
        });
        Ok(DelayProxy { addr, turns, stop })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Round trips so far, over every connection.
    pub fn round_trips(&self) -> usize {
        self.turns.load(Ordering::SeqCst)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// One connection: a thread per direction, sharing whether the server
/// spoke since the client last wrote.
fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    delay: Duration,
    turns: Arc<AtomicUsize>,
) -> io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let answered = Arc::new(AtomicBool::new(false));
    let (client2, server2) = (client.try_clone()?, server.try_clone()?);
    let up = {
        let answered = Arc::clone(&answered);
        std::thread::spawn(move || {
            pump(client, server, delay, |_| {
                if answered.swap(false, Ordering::SeqCst) {
                    turns.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
    };
    pump(server2, client2, delay, |_| {
        answered.store(true, Ordering::SeqCst)
    });
    let _ = up.join();
    Ok(())
}

/// Forwards `from` to `to`, each read delivered `delay` after it arrived;
/// `on_read` sees each read as it arrives.
fn pump(mut from: TcpStream, mut to: TcpStream, delay: Duration, on_read: impl Fn(usize)) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = std::thread::spawn(move || {
        for (due, bytes) in rx {
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if to.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    let mut buf = vec![0; 64 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        on_read(n);
        let bytes = buf.get(..n).unwrap_or_default().to_vec();
        if tx.send((Instant::now() + delay, bytes)).is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.join();
}
