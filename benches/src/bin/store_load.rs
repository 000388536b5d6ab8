//! Store calls without HTTP: `tasks` concurrent callers of one operation
//! on one store for `seconds`, printing calls per second and the process's
//! CPU time per call. For finding where a store's time goes.
//!
//! ```text
//! store_load <sqlite:PATH|sqlite-fsync:PATH|memory> <touch|create> <tasks> <seconds>
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use visitor_session::store::{
    Access, Changes, Durability, SessionStore, SqliteConfig, SqliteStore, StorePolicy,
};
use visitor_session::{MemoryStore, SessionId};

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("a stat line")
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, store, op, tasks, seconds] = args.as_slice() else {
        eprintln!(
            "usage: store_load <sqlite:PATH|sqlite-fsync:PATH|memory> <touch|create> <tasks> <seconds>"
        );
        std::process::exit(2);
    };
    // A memory store answers at once: its callers must yield to let the
    // timer that ends the run fire.
    let memory = store == "memory";
    let store: Arc<dyn SessionStore> = if let Some(path) = store.strip_prefix("sqlite:") {
        Arc::new(SqliteStore::open(SqliteConfig::new(path)).unwrap())
    } else if let Some(path) = store.strip_prefix("sqlite-fsync:") {
        Arc::new(
            SqliteStore::open(SqliteConfig::new(path).durability(Durability::PowerLoss)).unwrap(),
        )
    } else {
        Arc::new(MemoryStore::new())
    };
    let tasks: usize = tasks.parse().unwrap();
    let seconds: u64 = seconds.parse().unwrap();
    let policy = Arc::new(StorePolicy::default());
    let ip = Some("203.0.113.9".parse().unwrap());
    let ids: Vec<SessionId> = (0..tasks).map(|_| SessionId::generate()).collect();
    for id in &ids {
        let access = Access::now(ip, &policy);
        store
            .create(id, &access, &Changes::default().set("n", "1"), None)
            .await
            .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let mut handles = Vec::new();
    for id in ids {
        let (store, policy, stop, calls, op) = (
            store.clone(),
            policy.clone(),
            stop.clone(),
            calls.clone(),
            op.clone(),
        );
        handles.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let access = Access::now(ip, &policy);
                if op == "touch" {
                    store.touch(&id, &access).await.unwrap().expect("alive");
                } else {
                    let changes = Changes::default().set("n", "1");
                    store
                        .create(&SessionId::generate(), &access, &changes, None)
                        .await
                        .unwrap();
                }
                calls.fetch_add(1, Ordering::Relaxed);
                if memory {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let n = calls.load(Ordering::Relaxed) as f64;
    println!(
        "{op}: {:.0} calls/s, {:.1} µs CPU per call",
        n / elapsed,
        (cpu_seconds() - cpu0) * 1e6 / n
    );
}
