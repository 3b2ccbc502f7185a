//! [`SwitchProxy`]: a loopback TCP forwarder standing in for the reverse proxy in front of
//! several replicas. New connections go to the current backend, which a test switches (as a
//! proxy's health check fails over); client-to-server bytes may be throttled so an upload
//! is reliably caught half-way. Connections to a backend that died end with it.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Bytes copied per read.
const CHUNK: usize = 16 * 1024;

#[derive(Debug)]
struct Shared {
    backend: Mutex<SocketAddr>,
    /// Client-to-server bytes per second; 0 = unthrottled.
    upload_rate: AtomicU64,
    /// Client-to-server bytes forwarded so far, over all connections.
    uploaded: AtomicU64,
    stop: AtomicBool,
}

/// See the module docs. Dropping it stops accepting (open connections end with their ends).
#[derive(Debug)]
pub struct SwitchProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl SwitchProxy {
    /// Listen on `127.0.0.1:0`, forwarding to `backend` (`http://127.0.0.1:PORT` or an
    /// address).
    #[must_use]
    pub fn start(backend: &str) -> SwitchProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            backend: Mutex::new(parse(backend)),
            upload_rate: AtomicU64::new(0),
            uploaded: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let accept_shared = shared.clone();
        let acceptor = std::thread::spawn(move || {
            for client in listener.incoming() {
                if accept_shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let backend = *accept_shared.backend.lock().unwrap_or_else(PoisonError::into_inner);
                let Ok(server) = TcpStream::connect(backend) else {
                    // Like a proxy with no healthy backend: the client sees the connection
                    // end and retries.
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                forward(client, server, accept_shared.clone());
            }
        });
        SwitchProxy { addr, shared, acceptor: Some(acceptor) }
    }

    /// The URL devices use: `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Send new connections to `backend` from now on.
    pub fn switch_to(&self, backend: &str) {
        *self.shared.backend.lock().unwrap_or_else(PoisonError::into_inner) = parse(backend);
    }

    /// Client-to-server bytes forwarded so far (all connections).
    #[must_use]
    pub fn bytes_up(&self) -> u64 {
        self.shared.uploaded.load(Ordering::SeqCst)
    }

    /// Throttle client-to-server bytes of every connection to `bytes_per_sec` (0: off).
    pub fn throttle_uploads(&self, bytes_per_sec: u64) {
        self.shared.upload_rate.store(bytes_per_sec, Ordering::SeqCst);
    }
}

impl Drop for SwitchProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the acceptor
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn parse(backend: &str) -> SocketAddr {
    backend
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("backend {backend:?}: {e}"))
}

/// Copy both ways on two threads; when either side ends, end both.
fn forward(client: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    let (client2, server2) = match (client.try_clone(), server.try_clone()) {
        (Ok(c), Ok(s)) => (c, s),
        _ => return,
    };
    let up_shared = shared;
    std::thread::spawn(move || {
        copy(client, server, Some((&up_shared.upload_rate, &up_shared.uploaded)));
    });
    std::thread::spawn(move || copy(server2, client2, None));
}

/// Copy `from` to `to` until either ends; given `(rate, counter)`, at most `rate` bytes per
/// second, counting what was forwarded.
fn copy(mut from: TcpStream, mut to: TcpStream, upload: Option<(&AtomicU64, &AtomicU64)>) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        let Some((rate, counter)) = upload else { continue };
        counter.fetch_add(n as u64, Ordering::SeqCst);
        let limit = rate.load(Ordering::SeqCst);
        if limit > 0 {
            // Pacing (not waiting for a condition): each chunk takes its share of a second.
            std::thread::sleep(Duration::from_secs_f64(n as f64 / limit as f64));
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
