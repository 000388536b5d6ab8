//! The in-process cost of one request (criterion, no network): a bare axum
//! handler; our layer on `MemoryStore` for a returning visitor (touch, IP
//! bind, read one key), a new visitor, a returning visitor whose handler
//! writes one key, and a total-privacy visitor without a cookie; and
//! tower-sessions (`MemoryStore`, `Expiry::OnInactivity(30 min)`,
//! `always_save`) on the same handlers.
//!
//! Before criterion runs, it prints the allocations per request of each case
//! (a counting global allocator) and the memory `MemoryStore` holds per idle
//! temporary session. With `VS_BENCH_CASE=<case>` and
//! `VS_BENCH_ITERATIONS=<n>` it only sends that case `n` times, for counting
//! instructions under `valgrind --tool=callgrind` (repeatable, unlike time on
//! a shared machine). With `VS_BENCH_PAIRED=<cycles>` it times the cases side
//! by side instead: each cycle sends every case 200 requests in turn, and the
//! median per case is printed, so a burst of noise on the machine hits every
//! case alike. `bash scripts/bench --in-process` does all of it and prints
//! the table with the ratios.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use criterion::{Criterion, criterion_group};
use http::{Request, header};
use tower::ServiceExt;
use visitor_session::store::{Access, Changes, SessionStore, StorePolicy};
use visitor_session::{MemoryStore, PrivacyMode, SessionId};
use visitor_session_benches::{bare, bare_handle_layered, bare_layered, ours, theirs};

/// Counts allocations and live bytes.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn request(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder()
        .uri(path)
        .header(header::HOST, "app.example.com");
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    let mut req = builder.body(Body::empty()).expect("a valid request");
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([203, 0, 113, 9], 50_000))));
    req
}

/// The cookie a first visit to `router` sets.
async fn first_visit(router: &Router) -> String {
    let res = router.clone().oneshot(request("/", None)).await.unwrap();
    res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// One case: a router and the request it is sent.
struct Case {
    name: &'static str,
    router: Router,
    path: &'static str,
    cookie: Option<String>,
}

impl Case {
    async fn call(&self) {
        let res = self
            .router
            .clone()
            .oneshot(request(self.path, self.cookie.as_deref()))
            .await
            .unwrap();
        assert!(res.status().is_success());
        black_box(res);
    }
}

async fn cases() -> Vec<Case> {
    let ours = ours::router("memory", PrivacyMode::Standard).await;
    let theirs = theirs::router("memory").await;
    let ours_cookie = first_visit(&ours).await;
    let their_cookie = first_visit(&theirs).await;
    vec![
        Case {
            name: "bare",
            router: bare(),
            path: "/",
            cookie: None,
        },
        Case {
            name: "ours returning visitor",
            router: ours.clone(),
            path: "/",
            cookie: Some(ours_cookie.clone()),
        },
        Case {
            name: "ours new visitor",
            router: ours.clone(),
            path: "/",
            cookie: None,
        },
        Case {
            name: "ours returning visitor, handler writes one key",
            router: ours,
            path: "/write",
            cookie: Some(ours_cookie),
        },
        Case {
            name: "ours total-privacy visitor without cookie",
            router: ours::router("memory", PrivacyMode::Total).await,
            path: "/quiet",
            cookie: None,
        },
        Case {
            name: "bare quiet page",
            router: bare(),
            path: "/quiet",
            cookie: None,
        },
        Case {
            name: "bare quiet page behind a no-op layer",
            router: bare_layered(),
            path: "/quiet",
            cookie: None,
        },
        Case {
            name: "bare quiet page behind a layer that only hands out a handle",
            router: bare_handle_layered(),
            path: "/quiet",
            cookie: None,
        },
        Case {
            name: "tower-sessions returning visitor",
            router: theirs.clone(),
            path: "/",
            cookie: Some(their_cookie.clone()),
        },
        Case {
            name: "tower-sessions new visitor",
            router: theirs.clone(),
            path: "/",
            cookie: None,
        },
        Case {
            name: "tower-sessions returning visitor, handler writes one key",
            router: theirs,
            path: "/write",
            cookie: Some(their_cookie),
        },
    ]
}

/// Allocations per request of each case, and bytes per idle session.
fn report_memory(rt: &tokio::runtime::Runtime, cases: &[Case]) {
    const N: usize = 20_000;
    println!("allocations per request:");
    for case in cases {
        rt.block_on(async {
            for _ in 0..100 {
                case.call().await;
            }
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            for _ in 0..N {
                case.call().await;
            }
            let after = ALLOCATIONS.load(Ordering::Relaxed);
            println!("  {}: {:.1}", case.name, (after - before) as f64 / N as f64);
        });
    }
    let bytes = rt.block_on(async {
        let store = MemoryStore::new();
        let policy = StorePolicy::default();
        let access = Access::now(Some("203.0.113.9".parse().unwrap()), &policy);
        let before = LIVE_BYTES.load(Ordering::Relaxed);
        let nothing = Changes::default();
        for _ in 0..N {
            let id = SessionId::generate();
            store.create(&id, &access, &nothing, None).await.unwrap();
        }
        let after = LIVE_BYTES.load(Ordering::Relaxed);
        black_box(&store);
        (after - before) as f64 / N as f64
    });
    println!("MemoryStore bytes per idle temporary session (no data): {bytes:.0}");
}

fn in_process(c: &mut Criterion) {
    let rt = runtime();
    let cases = rt.block_on(cases());
    report_memory(&rt, &cases);
    let mut group = c.benchmark_group("request");
    for case in &cases {
        group.bench_function(case.name, |b| b.to_async(&rt).iter(|| case.call()));
    }
    group.finish();
}

criterion_group!(benches, in_process);

/// The single-threaded runtime every mode runs its requests on.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Times the cases in turn, `cycles` times, and prints each case's median
/// ns per request.
fn paired(cycles: usize) {
    const BATCH: u32 = 200;
    let rt = runtime();
    rt.block_on(async {
        let cases = cases().await;
        let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(cycles); cases.len()];
        for cycle in 0..cycles + 5 {
            for (case, times) in cases.iter().zip(&mut times) {
                let started = std::time::Instant::now();
                for _ in 0..BATCH {
                    case.call().await;
                }
                // The first cycles warm up.
                if cycle >= 5 {
                    times.push(started.elapsed().as_nanos() as f64 / f64::from(BATCH));
                }
            }
        }
        for (case, mut times) in cases.iter().zip(times) {
            times.sort_by(f64::total_cmp);
            println!("paired {}: {:.0}", case.name, times[times.len() / 2]);
        }
    });
}

fn main() {
    if let Some(cycles) = std::env::var("VS_BENCH_PAIRED")
        .ok()
        .and_then(|c| c.parse().ok())
    {
        return paired(cycles);
    }
    if let (Ok(name), Ok(n)) = (
        std::env::var("VS_BENCH_CASE"),
        std::env::var("VS_BENCH_ITERATIONS"),
    ) {
        let n: usize = n.parse().expect("VS_BENCH_ITERATIONS is a number");
        let rt = runtime();
        rt.block_on(async {
            let cases = cases().await;
            let case = cases
                .iter()
                .find(|c| c.name == name)
                .unwrap_or_else(|| panic!("no case named {name:?}"));
            // Warm up outside the count's difference: every run does this.
            for _ in 0..100 {
                case.call().await;
            }
            for _ in 0..n {
                case.call().await;
            }
        });
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
