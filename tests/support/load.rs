//! A background load of returning visitors, for tests that break Redis
//! underneath (restart, failover) and then check every request it made.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::task::JoinHandle;
use visitor_session::SessionId;

use super::{TestService, at, bound_id, send};

/// One request of the load: when it ran, what it asked and what it got.
#[derive(Debug)]
pub(crate) struct Visit {
    pub(crate) started: Instant,
    pub(crate) finished: Instant,
    pub(crate) id: SessionId,
    /// The key this visit wrote (`/key/<key>`), if it wrote one.
    pub(crate) key: Option<String>,
    pub(crate) status: StatusCode,
    /// What [`act`](super::act) saw.
    pub(crate) seen: serde_json::Value,
    pub(crate) bound: Option<SessionId>,
}

impl Visit {
    /// Served with its own session, without a store error and with its
    /// write (if any) accepted.
    pub(crate) fn served(&self) -> bool {
        self.status == StatusCode::OK
            && self.seen["store_error"].is_null()
            && self.seen["error"].is_null()
            && self.bound == Some(self.id)
    }
}

/// `workers` visitors, each going round the sessions `ids` (worker `w` visits
/// `ids[(w + workers * n) % len]` on its `n`th request), pausing `pause`
/// between requests. `writes(worker, n)` says which requests write a key of
/// their own. The service must answer with [`act`](super::act).
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    /// Visits finished so far, by all workers.
    done: Arc<AtomicUsize>,
    workers: Vec<JoinHandle<Vec<Visit>>>,
}

impl Load {
    pub(crate) fn start(
        svc: &TestService,
        ids: &[SessionId],
        workers: usize,
        pause: Duration,
        writes: fn(usize, usize) -> bool,
    ) -> Self {
        let ids: Arc<[SessionId]> = ids.into();
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let workers = (0..workers)
            .map(|worker| {
                let (svc, ids, stop, count) = (svc.clone(), ids.clone(), stop.clone(), workers);
                let done = done.clone();
                tokio::spawn(async move {
                    let mut visits = Vec::new();
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let id = ids[(worker + count * n) % ids.len()];
                        let key = writes(worker, n).then(|| format!("w{worker}-{n}"));
                        let path = key.as_ref().map_or("/".to_owned(), |k| format!("/key/{k}"));
                        let started = Instant::now();
                        let res = send(&svc, at(&path, Some(&id))).await;
                        visits.push(Visit {
                            started,
                            finished: Instant::now(),
                            id,
                            key,
                            status: res.status(),
                            seen: serde_json::from_str(res.body())
                                .unwrap_or(serde_json::Value::Null),
                            bound: bound_id(&res),
                        });
                        n += 1;
                        done.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(pause).await;
                    }
                    visits
                })
            })
            .collect();
        Self {
            stop,
            done,
            workers,
        }
    }

    /// Waits until `visits` more visits have finished, or `deadline` has
    /// passed (a busy machine runs the load slower; the test then says so).
    pub(crate) async fn wait_for(&self, visits: usize, deadline: Duration) {
        let target = self.done.load(Ordering::Relaxed) + visits;
        let until = Instant::now() + deadline;
        while self.done.load(Ordering::Relaxed) < target && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the visitors and returns every visit they made.
    pub(crate) async fn stop(self) -> Vec<Visit> {
        self.stop.store(true, Ordering::Relaxed);
        let mut visits = Vec::new();
        for worker in self.workers {
            visits.extend(worker.await.expect("a load worker panicked"));
        }
        visits
    }
}
