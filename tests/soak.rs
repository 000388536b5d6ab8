//! Soak (SPEC §3, §4): many concurrent visitors against a real redis-server
//! for a bounded time, each reading and writing keys of its own, promoting
//! and resetting its session, while an agent deletes sessions. Afterwards:
//! every acknowledged write is in Redis, no deleted session came back, no
//! temporary session outlived its idle TTL by more than a second, the pool
//! held no more connections than configured, and the service's resident
//! memory was flat over the second half.
//!
//! Bounded in time (`SOAK_SECONDS`, default 30) and run on loopback only.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use visitor_session::store::delete_session;

use http::StatusCode;
use support::redis_servers::RedisServer;
use support::*;
use visitor_session::SessionId;
use visitor_session::store::{RedisConfig, RedisStore};

const VISITORS: usize = 48;
const POOL: usize = 2;
const IDLE: Duration = Duration::from_secs(2);

/// One visitor's run of requests on one session: the keys it was told were
/// stored there.
struct Segment {
    id: SessionId,
    acknowledged: Vec<u32>,
    /// The visitor reset this session itself (a temporary one is deleted).
    reset: bool,
    /// The session was seen permanent: it cannot expire.
    permanent: bool,
}

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// Each visitor's current session, for the agent to pick from.
type Current = Arc<Mutex<Vec<Option<SessionId>>>>;

async fn visitor(
    svc: TestService,
    v: usize,
    stop: Arc<AtomicBool>,
    shared: Current,
) -> (Vec<Segment>, u64, u64) {
    let mut segments: Vec<Segment> = Vec::new();
    let mut current: Option<SessionId> = None;
    let (mut requests, mut refused) = (0u64, 0u64);
    let mut n: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let path = match n % 100 {
            7 | 57 => "/promote".to_owned(),
            93 => "/reset".to_owned(),
            k if k % 3 == 0 => format!("/key/v{v}-{n}"),
            _ => "/".to_owned(),
        };
        let res = send(&svc, at(&path, current.as_ref())).await;
        requests += 1;
        let ok = res.status() == StatusCode::OK
            && seen(&res)["store_error"].is_null()
            && seen(&res)["error"].is_null();
        if !ok {
            refused += 1;
        }
        let bound = bound_id(&res);
        if bound != current || segments.is_empty() {
            if let Some(id) = bound {
                segments.push(Segment {
                    id,
                    acknowledged: Vec::new(),
                    reset: false,
                    permanent: false,
                });
            }
        }
        if ok && seen(&res)["state"] == "permanent" && bound == current {
            if let Some(last) = segments.last_mut() {
                last.permanent = true;
            }
        }
        if path == "/reset" {
            if let Some(last) = segments.last_mut() {
                last.reset = true;
            }
        }
        if ok && path.starts_with("/key/") && bound.is_some() && bound == current {
            segments.last_mut().unwrap().acknowledged.push(n);
        }
        current = bound;
        shared.lock().unwrap()[v] = current;
        tokio::task::yield_now().await;
    }
    (segments, requests, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_under_load_loses_nothing_acknowledged() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let server = RedisServer::start();
    let store = RedisStore::new(
        RedisConfig::new(server.url())
            .pool_size(POOL)
            .key_prefix("soak:"),
    )
    .unwrap();
    let svc = service(
        store.clone(),
        config()
            .idle_ttl(IDLE)
            .max_keys(100_000)
            .max_data_bytes(1 << 26),
        act,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();

    // Resident memory, once a second.
    let rss = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let (rss, stop) = (rss.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                rss.lock().unwrap().push(resident_kib());
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    // Connections to Redis, sampled during the load (one is ours, asking).
    let clients = Arc::new(Mutex::new(0u64));
    let watcher = {
        let (clients, stop, url) = (clients.clone(), stop.clone(), server.url());
        tokio::task::spawn_blocking(move || {
            let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
            while !stop.load(Ordering::Relaxed) {
                let info: String = redis::cmd("INFO").arg("clients").query(&mut conn).unwrap();
                let connected: u64 = info
                    .lines()
                    .find_map(|l| l.strip_prefix("connected_clients:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap();
                let mut max = clients.lock().unwrap();
                *max = (*max).max(connected - 1);
                drop(max);
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let current: Current = Arc::new(Mutex::new(vec![None; VISITORS]));
    let visitors: Vec<_> = (0..VISITORS)
        .map(|v| tokio::spawn(visitor(svc.clone(), v, stop.clone(), current.clone())))
        .collect();
    // The agent deletes a visitor's session now and then, conversation and all.
    let agent = {
        let (store, stop, current) = (store.clone(), stop.clone(), current.clone());
        tokio::spawn(async move {
            let mut deleted = HashSet::new();
            let mut pick = 0;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                pick = (pick + 7) % VISITORS;
                let id = current.lock().unwrap()[pick];
                if let Some(id) = id {
                    if delete_session(&store, &id).await.unwrap() {
                        deleted.insert(id);
                    }
                }
            }
            deleted
        })
    };
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut segments = Vec::new();
    let (mut requests, mut refused) = (0, 0);
    for v in visitors {
        let (s, r, f) = v.await.unwrap();
        segments.extend(s);
        requests += r;
        refused += f;
    }
    let deleted = agent.await.unwrap();
    sampler.await.unwrap();
    watcher.await.unwrap();
    let elapsed = started.elapsed();

    // Every acknowledged write is there, but in the sessions the agent
    // deleted, or that their visitor reset while temporary.
    // Read straight from Redis, so that checking touches nothing; a
    // temporary session may have expired since its last visit.
    let mut acknowledged = 0;
    for segment in segments.iter().filter(|s| !deleted.contains(&s.id)) {
        if segment.acknowledged.is_empty() {
            continue;
        }
        let key = format!("soak:{{{}}}", segment.id.uuid_str());
        let fields: std::collections::HashMap<String, String> = server.query(&["HGETALL", &key]);
        if fields.is_empty() {
            assert!(
                segment.reset || !segment.permanent,
                "permanent session {} with acknowledged writes is gone",
                segment.id
            );
            continue;
        }
        for n in &segment.acknowledged {
            acknowledged += 1;
            let key = fields.keys().find(|k| k.ends_with(&format!("-{n}")));
            assert!(
                key.is_some(),
                "write {n} acknowledged to {} was lost",
                segment.id
            );
        }
    }
    // No deleted session came back.
    for id in &deleted {
        let key = format!("soak:{{{}}}", id.uuid_str());
        assert_eq!(server.query::<i64>(&["EXISTS", &key]), 0, "{id} came back");
    }
    // No temporary session outlives its idle TTL by more than a second.
    tokio::time::sleep(IDLE + Duration::from_secs(1)).await;
    let keys: Vec<String> = server.query(&["KEYS", "soak:{*}"]);
    for key in &keys {
        let meta: Option<String> = server.query(&["HGET", key, "m"]);
        let meta = meta.expect("a session hash has its metadata");
        assert!(
            meta.starts_with("p,"),
            "a temporary session outlived its TTL: {key}"
        );
    }
    // The pool never held more connections than configured.
    let max_clients = *clients.lock().unwrap();
    assert!(
        max_clients <= POOL as u64,
        "{max_clients} connections for a pool of {POOL}"
    );
    // Resident memory was flat over the second half.
    let rss = rss.lock().unwrap().clone();
    let second_half = &rss[rss.len() / 2..];
    let (low, high) = (
        *second_half.iter().min().unwrap(),
        *second_half.iter().max().unwrap(),
    );
    eprintln!(
        "soak: {requests} requests by {VISITORS} visitors in {elapsed:.1?} ({:.0} req/s), \
         {refused} refused, {acknowledged} acknowledged writes all kept, {} sessions \
         deleted by the agent, at most {max_clients} Redis connections (pool {POOL}), \
         resident memory over the second half {low}..{high} KiB (samples {rss:?})",
        requests as f64 / elapsed.as_secs_f64(),
        deleted.len(),
    );
    assert!(requests > 1000, "the load ran");
    assert!(
        high - low < 8 * 1024,
        "resident memory grew by {} KiB over the second half",
        high - low
    );
}
