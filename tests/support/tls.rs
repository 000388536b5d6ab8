//! Redis over TLS for the tests: certificates made by the `openssl` command
//! (Debian's package `openssl`; `scripts/test` installs it), and a
//! redis-server (Debian's build has TLS) that listens with TLS only
//! (`--port 0 --tls-port <port>`), so nothing reaches it in plain text.
//!
//! The `openssl` command rather than a certificate crate: Debian ships it
//! beside redis-server, and the test build compiles nothing more for it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::demo::free_port;
use super::process;

/// A certificate authority and a server certificate it signed for
/// `localhost` and `127.0.0.1`, as PEM files in a directory of their own.
pub(crate) struct Certificates {
    pub(crate) dir: PathBuf,
}

impl Certificates {
    /// A fresh CA named `name`, and a server certificate it signs.
    pub(crate) fn make(name: &str) -> Certificates {
        let dir = std::env::temp_dir().join(format!("vs-tls-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the certificates' directory");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &dir,
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.crt",
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN=visitor-session test CA {name}"),
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            ]
            .concat(),
        );
        openssl(
            &dir,
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=localhost",
                ],
            ]
            .concat(),
        );
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write server.ext");
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        Certificates { dir }
    }

    /// The CA's certificate, PEM.
    pub(crate) fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.ca_path()).expect("read ca.crt")
    }

    pub(crate) fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run `openssl` (Debian's package `openssl`; `bash scripts/test` installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A redis-server that speaks only TLS, with the server certificate of
/// `certs`; killed on drop.
pub(crate) struct TlsRedisServer {
    pub(crate) port: u16,
    child: Child,
    dir: PathBuf,
}

impl TlsRedisServer {
    pub(crate) fn start(certs: &Certificates) -> TlsRedisServer {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("vs-redis-tls-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the server's directory");
        let file = |name: &str| certs.dir.join(name).display().to_string();
        let mut command = Command::new("redis-server");
        command
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args(["--tls-cert-file", &file("server.crt")])
            .args(["--tls-key-file", &file("server.key")])
            .args(["--tls-ca-cert-file", &file("ca.crt")])
            .args([
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = process::spawn(command).expect("start redis-server");
        let mut server = TlsRedisServer { port, child, dir };
        server.wait_until_serving(certs);
        server
    }

    /// `rediss://localhost:<port>`: the name the certificate is for.
    pub(crate) fn url(&self) -> String {
        format!("rediss://localhost:{}", self.port)
    }

    /// A connection that trusts `certs`' CA, for looking into the server.
    pub(crate) fn conn(&self, certs: &Certificates) -> redis::RedisResult<redis::Connection> {
        let tls = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(certs.ca_pem()),
        };
        redis::Client::build_with_tls(self.url(), tls)?
            .get_connection_with_timeout(Duration::from_secs(2))
    }

    /// Commands the server has run so far (`INFO stats`), the `INFO` that
    /// reads it included.
    pub(crate) fn commands_processed(&self, certs: &Certificates) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query(
                &mut self
                    .conn(certs)
                    .expect("a TLS connection with the right CA"),
            )
            .expect("INFO stats");
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("total_commands_processed in INFO stats")
    }

    fn wait_until_serving(&mut self, certs: &Certificates) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("redis-server with TLS exited at start-up ({status})");
            }
            if self.conn(certs).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server with TLS did not answer within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TlsRedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
