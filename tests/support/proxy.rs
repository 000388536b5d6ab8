//! A TCP proxy in front of a Redis server that can lose a reply: it drops
//! the next answer the server sends and closes the connection, so the client
//! sees its connection break after its command was applied.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub(crate) struct ReplyLosingProxy {
    pub(crate) port: u16,
    lose_next: Arc<AtomicBool>,
}

impl ReplyLosingProxy {
    /// Listens on a free loopback port and forwards to `target_port`.
    pub(crate) fn start(target_port: u16) -> ReplyLosingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let port = listener.local_addr().unwrap().port();
        let lose_next = Arc::new(AtomicBool::new(false));
        let armed = lose_next.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                pump(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    None,
                );
                pump(server, client, Some(armed.clone()));
            }
        });
        ReplyLosingProxy { port, lose_next }
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The next reply any connection receives is lost, and its connection closed.
    pub(crate) fn lose_next_reply(&self) {
        self.lose_next.store(true, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` on a thread; with `lose`, a chunk read while it is
/// set is dropped instead, and both ends are closed.
fn pump(mut from: TcpStream, mut to: TcpStream, lose: Option<Arc<AtomicBool>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if lose
                .as_ref()
                .is_some_and(|l| l.swap(false, Ordering::SeqCst))
            {
                break;
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}
