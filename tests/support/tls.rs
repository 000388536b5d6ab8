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
            // clientAuth too: cluster nodes present it to each other on the bus.
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n",
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
        Self::start_with(certs, free_port(), &["--save", "", "--appendonly", "no"])
    }

    /// A TLS-only server on `port` with extra `redis-server` arguments.
    pub(crate) fn start_with(certs: &Certificates, port: u16, args: &[&str]) -> TlsRedisServer {
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
            .args(["--tls-auth-clients", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = process::spawn(command).expect("start redis-server");
        let mut server = TlsRedisServer { port, child, dir };
        server.wait_until_serving(certs);
        server
    }

    /// `rediss://localhost:<port>`: a name the certificate is for.
    pub(crate) fn url(&self) -> String {
        format!("rediss://localhost:{}", self.port)
    }

    /// `rediss://127.0.0.1:<port>`: the address a cluster or a Sentinel
    /// names the server by (the certificate is for it too).
    pub(crate) fn ip_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
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

/// Three TLS-only primaries joined into a Redis Cluster (`--tls-cluster`:
/// the cluster bus is TLS too), no replicas.
pub(crate) struct TlsCluster {
    pub(crate) nodes: Vec<TlsRedisServer>,
}

impl TlsCluster {
    pub(crate) fn start(certs: &Certificates) -> TlsCluster {
        let args = [
            "--save",
            "",
            "--appendonly",
            "no",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--tls-cluster",
            "yes",
            "--cluster-require-full-coverage",
            "no",
        ];
        let nodes: Vec<TlsRedisServer> = (0..3)
            .map(|_| {
                let port = super::redis_servers::free_cluster_port();
                TlsRedisServer::start_with(certs, port, &args)
            })
            .collect();
        let ca = certs.ca_path().display().to_string();
        // `timeout`: a cluster whose bus cannot connect makes redis-cli wait forever.
        let out = Command::new("timeout")
            .args([
                "60",
                "redis-cli",
                "--tls",
                "--cacert",
                &ca,
                "--cluster",
                "create",
            ])
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create (package redis-tools)");
        assert!(
            out.status.success(),
            "redis-cli --tls --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while !nodes.iter().all(|n| {
            n.conn(certs)
                .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c))
                .is_ok_and(|info| info.contains("cluster_state:ok"))
        }) {
            assert!(
                Instant::now() < deadline,
                "the TLS cluster did not become ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        TlsCluster { nodes }
    }

    pub(crate) fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(TlsRedisServer::ip_url).collect()
    }
}

/// A TLS-only primary and a Sentinel, TLS-only too, that monitors it (over
/// TLS: `tls-replication yes`) as `mymaster`.
pub(crate) struct TlsSentinel {
    pub(crate) primary: TlsRedisServer,
    pub(crate) sentinel_port: u16,
    child: Child,
    dir: PathBuf,
}

impl TlsSentinel {
    pub(crate) fn start(certs: &Certificates) -> TlsSentinel {
        let primary = TlsRedisServer::start(certs);
        let sentinel_port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "vs-sentinel-tls-{}-{sentinel_port}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the Sentinel's directory");
        let file = |name: &str| certs.dir.join(name).display().to_string();
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "bind 127.0.0.1\nport 0\ntls-port {sentinel_port}\ndir {}\n\
                 tls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\n\
                 tls-auth-clients no\ntls-replication yes\n\
                 sentinel monitor mymaster 127.0.0.1 {} 1\n",
                dir.display(),
                file("server.crt"),
                file("server.key"),
                file("ca.crt"),
                primary.port
            ),
        )
        .expect("write sentinel.conf");
        let mut command = Command::new("redis-server");
        command
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = process::spawn(command).expect("start redis-server --sentinel");
        let sentinel = TlsSentinel {
            primary,
            sentinel_port,
            child,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while sentinel.named_primary(certs).is_none() {
            assert!(
                Instant::now() < deadline,
                "the TLS Sentinel did not name the primary"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sentinel
    }

    pub(crate) fn sentinel_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.sentinel_port)
    }

    /// The primary's port as the Sentinel names it, over TLS.
    fn named_primary(&self, certs: &Certificates) -> Option<u16> {
        let tls = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(certs.ca_pem()),
        };
        let mut conn = redis::Client::build_with_tls(self.sentinel_url(), tls)
            .ok()?
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        let (_, port): (String, u16) = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg("mymaster")
            .query(&mut conn)
            .ok()?;
        Some(port)
    }
}

impl Drop for TlsSentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
