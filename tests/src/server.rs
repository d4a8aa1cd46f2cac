//! A scripted loopback SMTP server with real TLS.
//!
//! [`ScriptedServer::start`] binds `127.0.0.1:0` and runs a handler on a
//! thread per connection. The handler drives a [`Peer`]: it writes replies,
//! reads lines, data and chunks, and upgrades to TLS when it decides to. Every
//! byte the client sends is recorded per connection, split at the TLS
//! boundary ([`Received`]).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// What a connection handler is: run once per accepted connection.
pub type Handler = Arc<dyn Fn(&mut Peer) -> io::Result<()> + Send + Sync>;

/// The longest line [`Peer::line`] accepts (without CRLF).
pub const MAX_LINE: usize = 64 * 1024;
/// The largest body [`Peer::read_data`] accepts.
pub const MAX_DATA: usize = 64 * 1024 * 1024;
/// The read timeout a [`Peer`] starts with, so that a hung test fails.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server keeps reading after the handler returned, to record
/// bytes the client sent that the handler never read.
const DRAIN_TIME: Duration = Duration::from_millis(50);

/// Every byte one connection's client sent, split at the TLS boundary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Bytes received before the TLS handshake (including any bytes the
    /// client sent after STARTTLS but before its ClientHello was read).
    pub plain: Vec<u8>,
    /// Decrypted bytes received over TLS.
    pub tls: Vec<u8>,
}

impl Received {
    /// The plaintext phase as (lossy) text, for assertions and messages.
    pub fn plain_text(&self) -> String {
        String::from_utf8_lossy(&self.plain).into_owned()
    }

    /// The TLS phase as (lossy) text.
    pub fn tls_text(&self) -> String {
        String::from_utf8_lossy(&self.tls).into_owned()
    }
}

#[derive(Debug, Default)]
struct ConnRecord {
    received: Received,
    finished: bool,
    error: Option<String>,
}

type Shared<T> = Arc<Mutex<T>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a handler thread panicked; the data is
    // still the best record there is.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A loopback server running a [`Handler`] per connection; shuts down on drop.
pub struct ScriptedServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    conns: Shared<Vec<Shared<ConnRecord>>>,
    sockets: Shared<Vec<TcpStream>>,
    accept: Option<JoinHandle<()>>,
}

impl fmt::Debug for ScriptedServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptedServer")
            .field("addr", &self.addr)
            .field("connections", &self.connections())
            .finish_non_exhaustive()
    }
}

impl ScriptedServer {
    /// Binds `127.0.0.1:0` and accepts connections on a background thread,
    /// running `handler` on a new thread for each.
    pub fn start(handler: Handler) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Shared<Vec<Shared<ConnRecord>>> = Arc::default();
        let sockets: Shared<Vec<TcpStream>> = Arc::default();
        let accept = {
            let (stop, conns, sockets) = (stop.clone(), conns.clone(), sockets.clone());
            thread::Builder::new()
                .name(format!("smtp-tests accept {addr}"))
                .spawn(move || accept_loop(listener, handler, stop, conns, sockets))?
        };
        Ok(Self {
            addr,
            stop,
            conns,
            sockets,
            accept: Some(accept),
        })
    }

    /// Like [`start`](Self::start), for a closure.
    pub fn start_fn<F>(handler: F) -> io::Result<Self>
    where
        F: Fn(&mut Peer) -> io::Result<()> + Send + Sync + 'static,
    {
        Self::start(Arc::new(handler))
    }

    /// The address to connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        lock(&self.conns).len()
    }

    /// What the client of connection `i` (0-based, in accept order) sent so far.
    pub fn transcript(&self, i: usize) -> Option<Received> {
        lock(&self.conns).get(i).map(|c| lock(c).received.clone())
    }

    /// What every connection's client sent so far, in accept order.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.conns)
            .iter()
            .map(|c| lock(c).received.clone())
            .collect()
    }

    /// The error each finished handler returned (`None` for success or
    /// still running), in accept order.
    pub fn errors(&self) -> Vec<Option<String>> {
        lock(&self.conns)
            .iter()
            .map(|c| lock(c).error.clone())
            .collect()
    }

    /// Waits until `n` connections were accepted and their handlers have
    /// returned (and the leftover input was recorded). False on timeout.
    pub fn wait_finished(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let done = {
                let conns = lock(&self.conns);
                conns.len() >= n && conns.iter().take(n).all(|c| lock(c).finished)
            };
            if done {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Unblock accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        // Unblock handlers waiting for input; they are not joined (one may be
        // stalling on purpose).
        for s in lock(&self.sockets).iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    handler: Handler,
    stop: Arc<AtomicBool>,
    conns: Shared<Vec<Shared<ConnRecord>>>,
    sockets: Shared<Vec<TcpStream>>,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let record: Shared<ConnRecord> = Arc::default();
        let index = {
            let mut conns = lock(&conns);
            conns.push(record.clone());
            conns.len() - 1
        };
        if let Ok(clone) = stream.try_clone() {
            lock(&sockets).push(clone);
        }
        let handler = handler.clone();
        let spawned = thread::Builder::new()
            .name(format!("smtp-tests conn {index}"))
            .spawn(move || serve(stream, index, handler, record));
        if spawned.is_err() {
            // Nothing to do: the client sees the connection closed.
            continue;
        }
    }
}

fn serve(stream: TcpStream, index: usize, handler: Handler, record: Shared<ConnRecord>) {
    let mut peer = match Peer::new(stream, index, record.clone()) {
        Ok(peer) => peer,
        Err(e) => {
            let mut r = lock(&record);
            r.error = Some(e.to_string());
            r.finished = true;
            return;
        }
    };
    let result = handler(&mut peer);
    peer.drain();
    peer.close();
    let mut r = lock(&record);
    if let Err(e) = result {
        r.error = Some(format!("{:?}: {e}", e.kind()));
    }
    r.finished = true;
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
    Closed,
}

/// One connection, seen from the server: plaintext or TLS, with a read buffer.
pub struct Peer {
    stream: Stream,
    buf: Vec<u8>,
    index: usize,
    record: Shared<ConnRecord>,
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("index", &self.index)
            .field("tls", &self.is_tls())
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "connection closed by the server side",
    )
}

impl Peer {
    fn new(stream: TcpStream, index: usize, record: Shared<ConnRecord>) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(DEFAULT_READ_TIMEOUT))?;
        Ok(Self {
            stream: Stream::Plain(stream),
            buf: Vec::new(),
            index,
            record,
        })
    }

    /// This connection's index in accept order.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Whether TLS is established.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// Bytes already read from the client but not consumed by the handler.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    fn tcp(&self) -> Option<&TcpStream> {
        match &self.stream {
            Stream::Plain(s) => Some(s),
            Stream::Tls(s) => Some(s.get_ref()),
            Stream::Closed => None,
        }
    }

    /// Sets the read timeout of the socket (`None`: block forever).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp().ok_or_else(closed)?.set_read_timeout(timeout)
    }

    /// Writes raw bytes in one write (and flushes). Writing a reply and
    /// more bytes in one call puts them in the same packet.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.stream {
            Stream::Plain(s) => {
                s.write_all(bytes)?;
                s.flush()
            }
            Stream::Tls(s) => {
                s.write_all(bytes)?;
                s.flush()
            }
            Stream::Closed => Err(closed()),
        }
    }

    /// Writes a reply: each `\n`-separated line of `text` followed by CRLF,
    /// in one write. `reply("250-a\n250 b")` sends `250-a\r\n250 b\r\n`.
    pub fn reply(&mut self, text: &str) -> io::Result<()> {
        let mut out = Vec::with_capacity(text.len() + 8);
        for line in text.split('\n') {
            out.extend_from_slice(line.strip_suffix('\r').unwrap_or(line).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.send(&out)
    }

    /// Reads more bytes into the buffer, recording them. Ok(0) on EOF.
    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let (n, tls) = match &mut self.stream {
            Stream::Plain(s) => (s.read(&mut chunk)?, false),
            Stream::Tls(s) => (s.read(&mut chunk)?, true),
            Stream::Closed => return Err(closed()),
        };
        if n > 0 {
            let data = &chunk[..n];
            self.buf.extend_from_slice(data);
            let mut r = lock(&self.record);
            if tls {
                r.received.tls.extend_from_slice(data);
            } else {
                r.received.plain.extend_from_slice(data);
            }
        }
        Ok(n)
    }

    fn eof() -> io::Error {
        io::Error::new(io::ErrorKind::UnexpectedEof, "client closed the connection")
    }

    /// One CRLF-terminated line, without the CRLF. Only CRLF ends a line (a
    /// bare LF is part of it). Errors: `UnexpectedEof` on EOF, `InvalidData`
    /// past [`MAX_LINE`] bytes.
    pub fn line(&mut self) -> io::Result<Vec<u8>> {
        let mut searched = 0;
        loop {
            if let Some(pos) = find_crlf(&self.buf[searched..]) {
                let end = searched + pos;
                let line = self.buf[..end].to_vec();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            searched = self.buf.len().saturating_sub(1);
            if self.buf.len() > MAX_LINE + 1 {
                return Err(invalid(format!("line longer than {MAX_LINE} bytes")));
            }
            if self.fill()? == 0 {
                return Err(Self::eof());
            }
        }
    }

    /// One line that must start with `prefix` (ASCII case-insensitively).
    pub fn expect(&mut self, prefix: &str) -> io::Result<Vec<u8>> {
        let line = self.line()?;
        let p = prefix.as_bytes();
        if line.len() >= p.len() && line[..p.len()].eq_ignore_ascii_case(p) {
            Ok(line)
        } else {
            Err(invalid(format!(
                "expected a line starting with {prefix:?}, got {:?}",
                String::from_utf8_lossy(&line)
            )))
        }
    }

    /// A DATA body: lines up to the one that is exactly `.`, dot-stuffing
    /// undone, every line ending in CRLF (as a server stores it). At most
    /// [`MAX_DATA`] bytes.
    pub fn read_data(&mut self) -> io::Result<Vec<u8>> {
        self.read_data_limited(MAX_DATA)
    }

    /// [`read_data`](Self::read_data) with a custom bound (an error past it).
    pub fn read_data_limited(&mut self, max: usize) -> io::Result<Vec<u8>> {
        self.read_data_within(max)?
            .ok_or_else(|| invalid(format!("DATA body larger than {max} bytes")))
    }

    /// A DATA body like [`read_data`](Self::read_data), read to its end
    /// whatever its size; `None` if it was larger than `max` bytes (what
    /// was read past the bound is discarded).
    pub fn read_data_within(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        let mut body = Vec::new();
        let mut over = false;
        loop {
            let line = self.line()?;
            if line == b"." {
                return Ok(if over { None } else { Some(body) });
            }
            if over {
                continue;
            }
            let line = line.strip_prefix(b".").unwrap_or(&line);
            if body.len() + line.len() + 2 > max {
                over = true;
                body = Vec::new();
                continue;
            }
            body.extend_from_slice(line);
            body.extend_from_slice(b"\r\n");
        }
    }

    /// Exactly `n` bytes (a BDAT chunk).
    pub fn read_exact_bytes(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Err(Self::eof());
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Reads and throws away exactly `n` bytes (an oversized BDAT chunk).
    pub fn discard_bytes(&mut self, mut n: u64) -> io::Result<()> {
        loop {
            let take = usize::try_from(n).unwrap_or(usize::MAX).min(self.buf.len());
            self.buf.drain(..take);
            n -= take as u64;
            if n == 0 {
                return Ok(());
            }
            if self.fill()? == 0 {
                return Err(Self::eof());
            }
        }
    }

    /// The client's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().ok_or_else(closed)?.peer_addr()
    }

    /// Sleeps without reading or writing.
    pub fn stall(&mut self, duration: Duration) {
        thread::sleep(duration);
    }

    /// Server-side TLS handshake on this socket (after a `220` to STARTTLS).
    /// Bytes the client sent before the handshake and the handler has not
    /// consumed are not discarded: they stay recorded in [`Received::plain`]
    /// and are fed to the handshake first, as they would be by a server that
    /// keeps no plaintext buffer (a client that pipelined a command after
    /// STARTTLS thus fails the handshake). Check [`buffered`](Self::buffered)
    /// before calling this to detect such bytes.
    pub fn start_tls(&mut self, config: Arc<ServerConfig>) -> io::Result<()> {
        let mut sock = match std::mem::replace(&mut self.stream, Stream::Closed) {
            Stream::Plain(s) => s,
            other => {
                self.stream = other;
                return Err(io::Error::other("start_tls: not a plaintext connection"));
            }
        };
        let mut conn =
            ServerConnection::new(config).map_err(|e| io::Error::other(format!("rustls: {e}")))?;
        let pending = std::mem::take(&mut self.buf);
        let mut rd = &pending[..];
        while !rd.is_empty() {
            conn.read_tls(&mut rd)?;
            if let Err(e) = conn.process_new_packets() {
                let _ = conn.write_tls(&mut sock);
                return Err(invalid(format!("TLS handshake: {e}")));
            }
        }
        while conn.is_handshaking() {
            match conn.complete_io(&mut sock) {
                Ok((0, 0)) if conn.is_handshaking() => return Err(Self::eof()),
                Ok(_) => {}
                Err(e) => {
                    self.stream = Stream::Closed;
                    let _ = sock.shutdown(Shutdown::Both);
                    return Err(e);
                }
            }
        }
        self.stream = Stream::Tls(Box::new(StreamOwned::new(conn, sock)));
        Ok(())
    }

    /// Implicit TLS (port 465 style): the handshake before anything else.
    pub fn implicit_tls(&mut self, config: Arc<ServerConfig>) -> io::Result<()> {
        self.start_tls(config)
    }

    /// Implicit TLS whose server flight (ServerHello to Finished) is
    /// written one octet every `every`: a handshake that never completes in
    /// time. Stops quietly when the client is gone; the connection is then
    /// unusable.
    pub fn implicit_tls_dripped(
        &mut self,
        config: Arc<ServerConfig>,
        every: Duration,
    ) -> io::Result<()> {
        let Stream::Plain(sock) = &mut self.stream else {
            return Err(io::Error::other(
                "implicit_tls_dripped: not a plaintext connection",
            ));
        };
        let mut conn =
            ServerConnection::new(config).map_err(|e| io::Error::other(format!("rustls: {e}")))?;
        // The ClientHello, until the server has its flight to send.
        while !conn.wants_write() {
            if conn.read_tls(sock)? == 0 {
                return Err(Self::eof());
            }
            conn.process_new_packets()
                .map_err(|e| invalid(format!("TLS handshake: {e}")))?;
        }
        let mut flight = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut flight)?;
        }
        for byte in flight {
            if sock.write_all(&[byte]).is_err() {
                break;
            }
            thread::sleep(every);
        }
        Ok(())
    }

    /// Sends `bytes` over TLS as records written to the socket one octet
    /// every `every`: a peer that keeps the client reading without ever
    /// completing a record in time. Stops quietly when the client is gone.
    pub fn drip_tls(&mut self, bytes: &[u8], every: Duration) -> io::Result<()> {
        let Stream::Tls(s) = &mut self.stream else {
            return Err(io::Error::other("drip_tls: not a TLS connection"));
        };
        s.conn.writer().write_all(bytes)?;
        let mut records = Vec::new();
        while s.conn.wants_write() {
            s.conn.write_tls(&mut records)?;
        }
        for byte in records {
            if s.sock.write_all(&[byte]).is_err() {
                break;
            }
            thread::sleep(every);
        }
        Ok(())
    }

    /// Cuts the connection at once: TLS without close_notify, as a peer
    /// that crashed or a middlebox that dropped it would. Idempotent.
    pub fn abort(&mut self) {
        match std::mem::replace(&mut self.stream, Stream::Closed) {
            Stream::Plain(s) => {
                let _ = s.shutdown(Shutdown::Both);
            }
            Stream::Tls(mut s) => {
                let _ = s.flush();
                let _ = s.sock.shutdown(Shutdown::Both);
            }
            Stream::Closed => {}
        }
    }

    /// Closes the connection (TLS: close_notify first). Idempotent.
    pub fn close(&mut self) {
        match std::mem::replace(&mut self.stream, Stream::Closed) {
            Stream::Plain(s) => {
                let _ = s.shutdown(Shutdown::Both);
            }
            Stream::Tls(mut s) => {
                s.conn.send_close_notify();
                let _ = s.conn.complete_io(&mut s.sock);
                let _ = s.sock.shutdown(Shutdown::Both);
            }
            Stream::Closed => {}
        }
    }

    /// Reads (and records) whatever the client sends until it closes the
    /// connection: `Ok` at EOF (a reset, or TLS without close_notify, count
    /// as closed too), the read timeout's error if the client keeps the
    /// connection open, so a handler can tell a client that hung up from
    /// one that is still there.
    pub fn read_until_closed(&mut self) -> io::Result<()> {
        loop {
            self.buf.clear();
            match self.fill() {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::UnexpectedEof
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    return Ok(())
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A small, well-behaved SMTP server on this connection, for tests about
    /// what a client does around messages (pools, cancellation, tasks)
    /// rather than about the dialogue, which scenarios script line by line.
    ///
    /// Greets as `mail.test`; answers EHLO with `250-mail.test` and one line
    /// per entry of `extensions`; MAIL, RCPT, NOOP and RSET with `250`; DATA
    /// with `354`, then reads the body and hands it to `on_message(peer, n,
    /// body)` (`n`: the message's 0-based number on this connection; `body`:
    /// as [`read_data`](Self::read_data) gives it), which replies (or not)
    /// and says whether to go on; QUIT with `221`, then returns; anything
    /// else with `500`. Commands are answered one by one as they are read,
    /// so a client that pipelines gets its replies in order. `Ok` when the
    /// client closes the connection between commands.
    pub fn serve_messages<F>(&mut self, extensions: &[&str], mut on_message: F) -> io::Result<()>
    where
        F: FnMut(&mut Peer, usize, Vec<u8>) -> io::Result<bool>,
    {
        let mut ehlo = vec!["mail.test"];
        ehlo.extend_from_slice(extensions);
        let last = ehlo.len() - 1;
        let ehlo: Vec<String> = ehlo
            .iter()
            .enumerate()
            .map(|(i, line)| format!("250{}{line}", if i == last { ' ' } else { '-' }))
            .collect();
        let ehlo = ehlo.join("\n");
        self.reply("220 mail.test ESMTP")?;
        let mut n = 0;
        loop {
            let line = match self.line() {
                Ok(line) => line,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            };
            let verb = line.split(|&b| b == b' ').next().unwrap_or_default();
            match verb.to_ascii_uppercase().as_slice() {
                b"EHLO" => self.reply(&ehlo)?,
                b"MAIL" | b"RCPT" | b"NOOP" | b"RSET" => self.reply("250 2.0.0 OK")?,
                b"DATA" => {
                    self.reply("354 go ahead")?;
                    let body = self.read_data()?;
                    let go_on = on_message(self, n, body)?;
                    n += 1;
                    if !go_on {
                        return Ok(());
                    }
                }
                b"QUIT" => return self.reply("221 2.0.0 bye"),
                _ => self.reply("500 5.5.1 unknown command")?,
            }
        }
    }

    /// After the handler: record what the client sent that was never read.
    fn drain(&mut self) {
        if matches!(self.stream, Stream::Closed) {
            return;
        }
        if self.set_read_timeout(Some(DRAIN_TIME)).is_err() {
            return;
        }
        let deadline = Instant::now() + DRAIN_TIME * 4;
        let mut total = 0usize;
        while Instant::now() < deadline && total < MAX_DATA {
            match self.fill() {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
            self.buf.clear();
        }
    }
}

fn find_crlf(hay: &[u8]) -> Option<usize> {
    hay.windows(2).position(|w| w == b"\r\n")
}
