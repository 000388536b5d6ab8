//! Hostile and broken input: bad cookies, forged headers, oversized data, a
//! failing store. Each gets a fresh session, a clear error or a 503, never a
//! panic or lost data (SPEC §3.3, §3.4, §4, §5).

mod support;

use std::net::IpAddr;
use std::time::Duration;

use http::{HeaderValue, StatusCode, header};
use support::*;
use visitor_session::{
    FailureMode, LimitAction, MemoryStore, NewSessionLimit, PrivacyMode, SessionError, SessionId,
    TrustedProxies,
};

fn echo_ip() -> (TestStore, TestService, TestService) {
    let store = TestStore::default();
    let handler = |session: visitor_session::Session, _req| async move {
        session
            .client_ip()
            .map_or("none".to_owned(), |ip| ip.to_string())
    };
    let plain = service(store.clone(), config(), handler);
    let proxied = service(
        store.clone(),
        config().trusted_proxies(TrustedProxies::parse("10.0.0.0/8").unwrap()),
        handler,
    );
    (store, plain, proxied)
}

async fn fresh_session_without_store_lookup(cookie: HeaderValue) {
    let store = TestStore::default();
    let svc = service(store.clone(), config(), |_, _| async { String::new() });
    let res = send(&svc, request().header(header::COOKIE, cookie)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        bound_id(&res).is_some(),
        "a fresh session replaces a bad cookie"
    );
    assert_eq!(
        store.calls("touch"),
        0,
        "no store call for a malformed cookie (SPEC §5)"
    );
}

#[tokio::test]
async fn malformed_cookie_value_gets_a_fresh_session_without_a_lookup() {
    fresh_session_without_store_lookup(HeaderValue::from_static(
        "crisp-client%2Fsession%2Ftest=session_../../etc/passwd",
    ))
    .await;
}

#[tokio::test]
async fn uppercase_uuid_is_not_a_session_id() {
    fresh_session_without_store_lookup(HeaderValue::from_static(
        "crisp-client%2Fsession%2Ftest=session_1B4E28BA-2FA1-41D2-883F-0016D3CCA427",
    ))
    .await;
}

#[tokio::test]
async fn oversized_cookie_gets_a_fresh_session() {
    let value = format!(
        "crisp-client%2Fsession%2Ftest=session_{}",
        "a".repeat(16 * 1024)
    );
    fresh_session_without_store_lookup(HeaderValue::try_from(value).unwrap()).await;
}

#[tokio::test]
async fn non_utf8_cookie_header_gets_a_fresh_session() {
    let mut raw = b"crisp-client%2Fsession%2Ftest=session_".to_vec();
    raw.extend_from_slice(&[0xff; 36]);
    fresh_session_without_store_lookup(HeaderValue::from_bytes(&raw).unwrap()).await;
}

#[tokio::test]
async fn garbage_cookie_header_gets_a_fresh_session() {
    fresh_session_without_store_lookup(HeaderValue::from_static(
        ";;;===;; ;crisp-client%2Fsession%2Ftest;=;",
    ))
    .await;
}

#[tokio::test]
async fn conflicting_duplicate_cookies_get_a_fresh_session_and_clear_the_host_only_copy() {
    let store = TestStore::default();
    let svc = service(store.clone(), config(), |_, _| async { String::new() });
    let a = bound_id(&send(&svc, request()).await).unwrap();
    let b = bound_id(&send(&svc, request()).await).unwrap();
    let both = format!("{}; {}", cookie_for(&a), cookie_for(&b));
    let res = send(&svc, with_cookie(&both)).await;
    let fresh = bound_id(&res).expect("a fresh session");
    assert!(fresh != a && fresh != b);
    assert_eq!(store.calls("touch"), 0);
    let cookies = set_cookies(&res);
    assert!(
        cookies
            .iter()
            .any(|c| c.contains("Max-Age=0") && !c.contains("Domain=")),
        "the host-only duplicate is cleared so the conflict does not repeat: {cookies:?}"
    );
}

#[tokio::test]
async fn duplicate_cookies_with_one_value_are_one_session() {
    let store = TestStore::default();
    let svc = service(store.clone(), config(), |_, _| async { String::new() });
    let id = bound_id(&send(&svc, request()).await).unwrap();
    let twice = format!(
        "{}; crisp-client/session/test={}",
        cookie_for(&id),
        id.as_str()
    );
    assert_eq!(bound_id(&send(&svc, with_cookie(&twice)).await), Some(id));
}

#[tokio::test]
async fn forged_forwarded_for_is_ignored_without_a_trusted_proxy() {
    // SPEC §3.3: with no trusted proxy configured, forwarding headers are ignored.
    let (_, plain, _) = echo_ip();
    let res = send(
        &plain,
        request()
            .header("x-forwarded-for", "1.2.3.4")
            .header("forwarded", "for=5.6.7.8"),
    )
    .await;
    assert_eq!(res.body(), PEER);
}

/// The client IP bound for a request from `peer` with `X-Forwarded-For: xff`,
/// behind the trusted proxies 10.0.0.0/8.
async fn bound_ip(peer: &str, xff: &str) -> String {
    let (_, _, proxied) = echo_ip();
    let res = send(
        &proxied,
        from_ip(peer.parse().unwrap()).header("x-forwarded-for", xff),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    res.into_body()
}

#[tokio::test]
async fn trusted_proxy_supplies_the_client_ip() {
    assert_eq!(
        bound_ip("10.0.0.2", "198.51.100.7, 10.0.0.5").await,
        "198.51.100.7"
    );
}

#[tokio::test]
async fn untrusted_peer_cannot_forge_its_ip_even_when_proxies_are_configured() {
    assert_eq!(bound_ip(PEER, "1.2.3.4").await, PEER);
}

#[tokio::test]
async fn client_prepended_hops_do_not_fool_the_right_to_left_walk() {
    // The client sent "X-Forwarded-For: 1.2.3.4"; the proxy appended the real peer.
    assert_eq!(
        bound_ip("10.0.0.2", "1.2.3.4, 198.51.100.7").await,
        "198.51.100.7"
    );
}

/// SPEC §3.3: behind a proxy that appends `X-Forwarded-For` (the default
/// header), the client's own `Forwarded` arrives untouched and is ignored.
#[tokio::test]
async fn a_clients_own_forwarded_header_cannot_choose_its_ip_behind_an_x_forwarded_for_proxy() {
    let store = TestStore::default();
    let handler = |session: visitor_session::Session, _req| async move {
        session
            .client_ip()
            .map_or("none".to_owned(), |ip| ip.to_string())
    };
    let behind_loopback_proxy = service(
        store,
        config().trusted_proxies(TrustedProxies::parse("127.0.0.1").unwrap()),
        handler,
    );
    let res = send(
        &behind_loopback_proxy,
        from_ip("127.0.0.1".parse().unwrap())
            // The client's own header, passed through by the proxy.
            .header("forwarded", "for=6.6.6.6")
            // What the proxy appended: the client's address as it saw it.
            .header("x-forwarded-for", "203.0.113.9"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.body(), "203.0.113.9");
}

#[tokio::test]
async fn malformed_forwarding_header_falls_back_to_the_peer() {
    assert_eq!(bound_ip("10.0.0.2", "not-an-ip, ,,[").await, "10.0.0.2");
}

#[tokio::test]
async fn auto_domain_follows_the_request_host() {
    let store = MemoryStore::new();
    let svc = service(store, config(), |_, _| async { String::new() });
    for (host, domain) in [
        ("a.example.com", Some("example.com")),
        ("b.example.com:8443", Some("example.com")),
        ("foo.github.io", Some("foo.github.io")),
        ("127.0.0.1:3000", None),
        ("localhost:3000", None),
        ("evil\u{0}.com", None),
    ] {
        let Ok(value) = HeaderValue::from_str(host) else {
            continue;
        };
        let req = http::Request::builder()
            .uri("/")
            .header(header::HOST, value);
        let res = send(&svc, req).await;
        let cookie = &set_cookies(&res)[0];
        match domain {
            Some(d) => assert!(cookie.contains(&format!("Domain={d}")), "{host}: {cookie}"),
            None => assert!(!cookie.contains("Domain="), "{host}: {cookie}"),
        }
    }
}

#[tokio::test]
async fn data_over_the_size_limit_is_an_error_for_the_handler() {
    let store = MemoryStore::new();
    let svc = service(
        store,
        config().max_data_bytes(1024),
        |session, _| async move {
            match session.insert("blob", &"x".repeat(4096)) {
                Err(SessionError::TooLarge { .. }) => "refused".to_owned(),
                other => format!("{other:?}"),
            }
        },
    );
    let res = send(&svc, request()).await;
    assert_eq!(res.body(), "refused");
}

#[tokio::test]
async fn too_many_keys_is_an_error_for_the_handler() {
    let store = MemoryStore::new();
    let svc = service(store, config().max_keys(2), |session, _| async move {
        let results: Vec<bool> = (0..3)
            .map(|i| session.insert(&format!("k{i}"), &i).is_ok())
            .collect();
        serde_json::to_string(&results).unwrap()
    });
    assert_eq!(send(&svc, request()).await.body(), "[true,true,false]");
}

/// The kind of the load failure the handler sees, by name.
async fn report_error(session: visitor_session::Session, _: http::Request<String>) -> String {
    session
        .error()
        .map_or("none", |e| e.kind().as_str())
        .to_owned()
}

#[tokio::test]
async fn store_down_fail_open_serves_without_session_and_keeps_the_cookie() {
    let svc = service(TestStore::down(), config(), report_error);
    let id = SessionId::generate();
    let res = send(&svc, with_cookie(&cookie_for(&id))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.body(), "unavailable", "the handler sees the error");
    assert!(
        set_cookies(&res).is_empty(),
        "no cookie change while the store is down"
    );
}

#[tokio::test]
async fn store_down_fail_closed_answers_503_without_calling_the_handler() {
    let svc = service(
        TestStore::down(),
        config().failure_mode(FailureMode::Closed),
        |_, _| async { panic!("the handler must not run") },
    );
    let res = send(&svc, with_cookie(&cookie_for(&SessionId::generate()))).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(set_cookies(&res).is_empty());
}

#[tokio::test]
async fn store_down_new_visitor_fail_open_gets_no_cookie() {
    let svc = service(TestStore::down(), config(), |_, _| async {
        "page".to_owned()
    });
    let res = send(&svc, request()).await;
    assert_eq!(
        (res.status(), res.body().as_str()),
        (StatusCode::OK, "page")
    );
    assert!(set_cookies(&res).is_empty());
}

#[tokio::test]
async fn failed_commit_is_never_reported_as_success() {
    let store = TestStore::default();
    store.set("commit", Behaviour::Fail);
    let svc = service(store.clone(), config(), |session, _| async move {
        session.insert("message", "hi").unwrap();
        "saved".to_owned()
    });
    let id = bound_id(&send(&svc, request()).await).unwrap();
    let res = send(&svc, with_cookie(&cookie_for(&id))).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_ne!(res.body(), "saved");
}

/// A write the store never answers is cut off by `store_timeout`, and the
/// response says it failed: a creation carrying data, then a commit.
#[tokio::test(start_paused = true)]
async fn a_write_the_store_never_answers_times_out_as_a_failure() {
    let store = TestStore::default();
    let svc = service(
        store.clone(),
        config().store_timeout(Duration::from_millis(200)),
        |session, _| async move {
            session.insert("message", "hi").unwrap();
            "saved".to_owned()
        },
    );
    let id = bound_id(&send(&svc, request()).await).unwrap();
    for op in ["commit", "create"] {
        store.set(op, Behaviour::Hang);
    }
    for req in [with_cookie(&cookie_for(&id)), request()] {
        let started = tokio::time::Instant::now();
        let res = send(&svc, req).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_ne!(res.body(), "saved");
        assert_eq!(started.elapsed(), Duration::from_millis(200));
    }
    assert_eq!((store.calls("commit"), store.calls("create")), (1, 2));
}

#[tokio::test]
async fn slow_store_times_out_and_fails_open() {
    tokio::time::pause();
    let svc = service(
        TestStore::hanging(),
        config().store_timeout(Duration::from_millis(200)),
        report_error,
    );
    let res = send(&svc, with_cookie(&cookie_for(&SessionId::generate()))).await;
    assert_eq!(res.body(), "timeout");
}

/// At most `max` new sessions per network per minute.
fn per_minute(max: u32, action: LimitAction) -> NewSessionLimit {
    NewSessionLimit::new(max, Duration::from_secs(60)).action(action)
}

/// A handler answering "page", behind `per_minute(max, action)`.
fn page_behind_limit(max: u32, action: LimitAction) -> TestService {
    service(
        MemoryStore::new(),
        config().new_session_limit(Some(per_minute(max, action))),
        |_, _| async { "page".to_owned() },
    )
}

#[tokio::test(start_paused = true)]
async fn new_session_limit_skip_serves_without_a_session() {
    // SPEC §3.6, action `skip`.
    let svc = page_behind_limit(2, LimitAction::Skip);
    assert!(bound_id(&send(&svc, request()).await).is_some());
    assert!(bound_id(&send(&svc, request()).await).is_some());
    let res = send(&svc, request()).await;
    assert_eq!(
        (res.status(), res.body().as_str()),
        (StatusCode::OK, "page")
    );
    assert!(set_cookies(&res).is_empty(), "over the limit: no session");
    let other: IpAddr = "198.51.100.1".parse().unwrap();
    assert!(
        bound_id(&send(&svc, from_ip(other)).await).is_some(),
        "other networks unaffected"
    );
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(
        bound_id(&send(&svc, request()).await).is_some(),
        "a new window"
    );
}

#[tokio::test(start_paused = true)]
async fn new_session_limit_429_answers_with_retry_after() {
    let svc = page_behind_limit(1, LimitAction::TooManyRequests);
    send(&svc, request()).await;
    let res = send(&svc, request()).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()[header::RETRY_AFTER], "60");
}

#[tokio::test(start_paused = true)]
async fn new_session_limit_groups_ipv6_by_64() {
    let svc = page_behind_limit(1, LimitAction::Skip);
    let a: IpAddr = "2001:db8:0:1::1".parse().unwrap();
    let b: IpAddr = "2001:db8:0:1:ffff::2".parse().unwrap();
    assert!(bound_id(&send(&svc, from_ip(a)).await).is_some());
    assert!(
        bound_id(&send(&svc, from_ip(b)).await).is_none(),
        "same /64"
    );
}

#[tokio::test(start_paused = true)]
async fn write_over_the_new_session_limit_is_refused_not_dropped() {
    let limit = per_minute(1, LimitAction::Skip);
    let svc = service(
        MemoryStore::new(),
        config()
            .privacy(PrivacyMode::Total)
            .new_session_limit(Some(limit)),
        |session, _| async move {
            session.insert("message", "hello").unwrap();
            "stored".to_owned()
        },
    );
    assert_eq!(send(&svc, request()).await.status(), StatusCode::OK);
    let res = send(&svc, request()).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn request_without_peer_address_still_gets_a_session() {
    let svc = service(MemoryStore::new(), config(), |s, _| async move {
        s.client_ip().map_or("none".to_owned(), |ip| ip.to_string())
    });
    let req = http::Request::builder()
        .uri("/")
        .header(header::HOST, "example.com");
    let res = send(&svc, req).await;
    assert_eq!(res.body(), "none");
    assert!(bound_id(&res).is_some());
}

#[tokio::test]
async fn cookie_percent_encoded_twice_gets_a_fresh_session() {
    // `session_` with its `_` encoded twice (`%255F`): decoded once, it is
    // not a session id; the layer decodes exactly once.
    let id = SessionId::generate();
    let twice = id.as_str().replace('_', "%255F");
    let cookie = format!("crisp-client%2Fsession%2Ftest={twice}");
    fresh_session_without_store_lookup(HeaderValue::try_from(cookie).unwrap()).await;
}

#[tokio::test]
async fn quoted_cookie_value_is_the_session_it_quotes() {
    // RFC 6265 allows a cookie value in double quotes; the quotes are not
    // part of the id, and the session is found (never a panic or a 500).
    let store = TestStore::default();
    let svc = service(store.clone(), config(), |_, _| async { String::new() });
    let id = bound_id(&send(&svc, request()).await).unwrap();
    let quoted = format!("crisp-client%2Fsession%2Ftest=\"{}\"", id.as_str());
    let res = send(&svc, with_cookie(&quoted)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(bound_id(&res), Some(id));
}

#[tokio::test]
async fn cookie_of_a_deleted_session_gets_a_fresh_session() {
    let store = MemoryStore::new();
    let svc = service(store.clone(), config(), |_, _| async { String::new() });
    let id = bound_id(&send(&svc, request()).await).unwrap();
    visitor_session::SessionStore::delete(&store, &id)
        .await
        .unwrap();
    let res = send(&svc, with_cookie(&cookie_for(&id))).await;
    let fresh = bound_id(&res).expect("a fresh session");
    assert_ne!(fresh, id);
}

#[tokio::test]
async fn cookie_of_another_site_id_is_not_this_sites_session() {
    let store = TestStore::default();
    let svc = service(store.clone(), config(), |_, _| async { String::new() });
    let id = bound_id(&send(&svc, request()).await).unwrap();
    let other_site = format!("crisp-client%2Fsession%2Fother={}", id.as_str());
    let res = send(&svc, with_cookie(&other_site)).await;
    let fresh = bound_id(&res).expect("this site's own session");
    assert_ne!(fresh, id);
    assert_eq!(
        store.calls("touch"),
        0,
        "the other site's cookie is not read"
    );
}

#[tokio::test]
async fn malformed_enormous_or_repeated_host_headers_never_fail_the_request() {
    let long = "a.".repeat(8 * 1024) + "example.com";
    let cases: Vec<Vec<HeaderValue>> = vec![
        vec![HeaderValue::from_static("exa mple..com:99999")],
        vec![HeaderValue::from_bytes(b"\xff\xfe.example.com").unwrap()],
        vec![HeaderValue::try_from(long).unwrap()],
        vec![
            HeaderValue::from_static("a.example.com"),
            HeaderValue::from_static("b.evil.test"),
        ],
        vec![HeaderValue::from_static("[::1]:8080")],
        vec![HeaderValue::from_static("")],
    ];
    let svc = service(MemoryStore::new(), config(), |_, _| async { String::new() });
    for hosts in cases {
        let mut req = http::Request::builder()
            .uri("/")
            .extension(visitor_session::PeerAddr(
                (PEER.parse::<IpAddr>().unwrap(), 1).into(),
            ));
        for host in &hosts {
            req = req.header(header::HOST, host.clone());
        }
        let res = send(&svc, req).await;
        assert_eq!(res.status(), StatusCode::OK, "{hosts:?}");
        let cookie = &set_cookies(&res)[0];
        assert!(
            !cookie.contains("evil") && !cookie.contains("aaaa"),
            "no Domain from a bad host: {cookie}"
        );
    }
}

#[tokio::test]
async fn enormous_or_repeated_forwarding_headers_fall_back_safely() {
    let (_, _, proxied) = echo_ip();
    let huge_xff = vec!["10.0.0.9"; 10_000].join(", ");
    let huge_forwarded = vec!["for=10.0.0.9"; 10_000].join(", ");
    let peer = "10.0.0.1";
    let with = |name: &'static str, values: Vec<String>| {
        let mut req = from_ip(peer.parse().unwrap());
        for v in values {
            req = req.header(name, v);
        }
        req
    };
    for req in [
        with("x-forwarded-for", vec![huge_xff.clone()]),
        with("forwarded", vec![huge_forwarded.clone()]),
        with(
            "x-forwarded-for",
            vec![
                "198.51.100.1".into(),
                "garbage, , ,".into(),
                "10.0.0.2".into(),
            ],
        ),
        with(
            "forwarded",
            vec!["for=\"[2001:db8::1]:4711\"".into(), "for=;;;".into()],
        ),
    ] {
        let res = send(&proxied, req).await;
        assert_eq!(res.status(), StatusCode::OK);
        let ip: IpAddr = res.body().parse().expect("an IP, never garbage");
        assert!(
            ip.to_string() == peer || ip.to_string().starts_with("10.0.0."),
            "a walk that gives up falls back to a trusted hop or the peer, not a forged client: {ip}"
        );
    }
}

#[tokio::test]
async fn json_values_at_the_size_limit_are_kept_and_over_it_refused() {
    // The limit counts key bytes plus JSON bytes: "k" + "\"x...x\"".
    let limit = 1024;
    let svc = service(
        MemoryStore::new(),
        config().max_data_bytes(limit),
        move |session, req| async move {
            let n: usize = req.uri().path()[1..].parse().unwrap();
            match session.insert("k", &"x".repeat(n)) {
                Ok(()) => "kept".to_owned(),
                Err(SessionError::TooLarge { size, limit }) => format!("refused {size}>{limit}"),
                Err(other) => format!("unexpected: {other}"),
            }
        },
    );
    let at_limit = limit - 1 - 2;
    let res = send(&svc, request().uri(format!("/{at_limit}"))).await;
    assert_eq!(res.body(), "kept");
    let res = send(&svc, request().uri(format!("/{}", at_limit + 1))).await;
    assert_eq!(res.body(), "refused 1025>1024");
}
