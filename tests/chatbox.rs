//! The chatbox demo (SPEC §6) as a black box: the core scenarios run on each
//! store (the default SQLite file, `SESSION_STORE=memory`, and a real
//! redis-server with `REDIS_URL`); a restart and a `kill -9` on the same
//! SQLite file lose nothing.

mod support;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use support::demo::{Client, Demo, raw_request, start_fails};
use support::redis_servers::RedisServer;
use support::temp::TempDir;

/// The demo's admin token in these tests: at least 16 characters, or it
/// refuses to start (SPEC §5).
const ADMIN_TOKEN: &str = "let-me-in-agent-007";

/// The demo on its default store, a SQLite file (of its own, see `Demo::start`).
fn demo() -> Demo {
    Demo::start(&[("ADMIN_TOKEN", ADMIN_TOKEN)])
}

/// The demo on the memory store.
fn demo_in_memory() -> Demo {
    Demo::start(&[("ADMIN_TOKEN", ADMIN_TOKEN), ("SESSION_STORE", "memory")])
}

/// The demo on the test binary's shared redis-server.
fn demo_on_redis() -> Demo {
    Demo::start(&[
        ("ADMIN_TOKEN", ADMIN_TOKEN),
        ("REDIS_URL", &RedisServer::shared().url()),
    ])
}

/// One test per store for each scenario.
macro_rules! on_every_store {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $scenario() { super::$scenario(&super::demo()); })*
        }
        mod memory {
            $(#[test] fn $scenario() { super::$scenario(&super::demo_in_memory()); })*
        }
        mod redis {
            $(#[test] fn $scenario() { super::$scenario(&super::demo_on_redis()); })*
        }
    };
}

on_every_store!(
    page_is_a_visit_that_sets_the_session_cookie,
    session_route_reports_id_state_and_ip,
    posting_a_message_stores_it_and_promotes_the_session,
    bad_message_body_is_400,
    concurrent_posts_of_one_visitor_are_all_kept,
    reset_unbinds_the_browser_and_binds_a_fresh_session,
    a_retried_message_is_stored_once,
    a_conversation_outgrows_the_session_data_limits,
    the_help_page_carries_the_widget,
    admin_routes_need_the_bearer_token,
    admin_sees_the_ip_log_and_deletes_the_session,
    admin_rejects_a_malformed_id,
    admin_reads_a_networks_statistics_with_the_token_only,
    the_first_message_gets_one_acknowledgement_from_the_team,
    reads_are_paged_newest_page_first_oldest_first_within,
    a_conversation_holds_at_most_4_mib_of_text,
);

fn admin(token: &str) -> Vec<(String, String)> {
    vec![("authorization".into(), format!("Bearer {token}"))]
}

fn page_is_a_visit_that_sets_the_session_cookie(d: &Demo) {
    let mut c = Client::new(d.addr);
    let page = c.get("/");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        page.body.contains("id=\"chat\""),
        "the widget is on the page"
    );
    let cookie = page.set_cookies()[0];
    assert!(
        cookie.starts_with("crisp-client%2Fsession=session_"),
        "{cookie}"
    );
    assert!(cookie.contains("Max-Age=15768000") && cookie.contains("HttpOnly"));
}

fn session_route_reports_id_state_and_ip(d: &Demo) {
    let mut c = Client::new(d.addr);
    let none_yet = c.get("/api/session").json();
    // First request creates the session (standard mode) and reports it.
    assert_eq!(none_yet["state"], "temporary");
    let info = c.get("/api/session").json();
    assert_eq!(info["id"].as_str(), c.session_cookie());
    assert_eq!(info["ip"], "127.0.0.1");
}

fn posting_a_message_stores_it_and_promotes_the_session(d: &Demo) {
    let mut c = Client::new(d.addr);
    c.get("/");
    assert_eq!(
        c.post_json("/api/messages", r#"{"text":"hello"}"#).status,
        201
    );
    let messages = c.get("/api/messages").json();
    assert_eq!(messages[0]["text"], "hello");
    assert_eq!(c.get("/api/session").json()["state"], "permanent");
}

fn bad_message_body_is_400(d: &Demo) {
    let mut c = Client::new(d.addr);
    for body in [
        "",
        "not json",
        r#"{"text":""}"#,
        r#"{"txt":"x"}"#,
        r#"{"text":5}"#,
    ] {
        assert_eq!(c.post_json("/api/messages", body).status, 400, "{body:?}");
    }
    let long = format!(r#"{{"text":"{}"}}"#, "x".repeat(2001));
    assert_eq!(c.post_json("/api/messages", &long).status, 400);
}

fn concurrent_posts_of_one_visitor_are_all_kept(d: &Demo) {
    let mut c = Client::new(d.addr);
    c.get("/");
    let posts: Vec<_> = (0..20)
        .map(|i| {
            let mut c = c.clone();
            thread::spawn(move || {
                c.post_json("/api/messages", &format!(r#"{{"text":"m{i}"}}"#))
                    .status
            })
        })
        .collect();
    for p in posts {
        assert_eq!(p.join().unwrap(), 201);
    }
    let mut texts = visitor_texts(&c.get("/api/messages").json());
    texts.sort();
    let mut expected: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    expected.sort();
    assert_eq!(texts, expected);
}

/// SPEC §6: in standard mode the reset response already binds the fresh
/// session, so the widget's next requests do not race to create one.
fn reset_unbinds_the_browser_and_binds_a_fresh_session(d: &Demo) {
    let mut c = Client::new(d.addr);
    c.get("/");
    let before = c.session_cookie().unwrap().to_owned();
    let reply = c.send("POST", "/api/session/reset", None);
    assert_eq!(reply.status, 204);
    let fresh = c
        .session_cookie()
        .expect("a fresh session in the same response")
        .to_owned();
    assert_ne!(fresh, before);
    assert_eq!(
        c.get("/api/session").json()["id"].as_str(),
        Some(fresh.as_str())
    );
    assert_eq!(
        c.get("/api/messages").json().as_array().map(Vec::len),
        Some(0)
    );
}

/// SPEC §6: a repeated client message id is stored once (safe retries).
fn a_retried_message_is_stored_once(d: &Demo) {
    let mut c = Client::new(d.addr);
    let body = r#"{"id":"m-0001","text":"did this arrive?"}"#;
    assert_eq!(c.post_json("/api/messages", body).status, 201);
    assert_eq!(
        c.post_json("/api/messages", body).status,
        200,
        "already stored"
    );
    let messages = c.get("/api/messages").json();
    assert_eq!(visitor_texts(&messages).len(), 1, "stored once");
    assert_eq!(messages[0]["id"], "m-0001");
    for bad in [
        r#"{"id":"","text":"x"}"#,
        r#"{"id":"no spaces","text":"x"}"#,
    ] {
        assert_eq!(c.post_json("/api/messages", bad).status, 400, "{bad}");
    }
}

/// SPEC §6: messages live in the conversation store, not in the session, so
/// a conversation is not held to the session's data limits.
fn a_conversation_outgrows_the_session_data_limits(d: &Demo) {
    let mut c = Client::new(d.addr);
    for i in 0..600 {
        let body = format!(r#"{{"id":"m{i}","text":"message {i}"}}"#);
        assert_eq!(
            c.post_json("/api/messages", &body).status,
            201,
            "message {i}"
        );
    }
    let messages = c.get("/api/messages?limit=1000").json();
    let texts = visitor_texts(&messages);
    assert_eq!(texts.len(), 600);
    assert_eq!(texts[599], "message 599", "oldest first");
}

/// The texts of the visitor's messages in a list of messages, in order.
fn visitor_texts(messages: &serde_json::Value) -> Vec<String> {
    messages
        .as_array()
        .expect("a JSON array of messages")
        .iter()
        .filter(|m| m["from"] == "visitor")
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

fn the_help_page_carries_the_widget(d: &Demo) {
    let mut c = Client::new(d.addr);
    let page = c.get("/help");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"chat\"") && page.body.contains("Help centre"));
}

fn admin_routes_need_the_bearer_token(d: &Demo) {
    let id = "session_1b4e28ba-2fa1-41d2-883f-0016d3cca427";
    for (method, path) in [
        ("DELETE", format!("/admin/sessions/{id}")),
        ("GET", format!("/admin/sessions/{id}/ips")),
        ("GET", "/admin/networks/127.0.0.1".to_owned()),
    ] {
        assert_eq!(raw_request(d.addr, method, &path, &[], None).status, 401);
        assert_eq!(
            raw_request(d.addr, method, &path, &admin("wrong"), None).status,
            401
        );
    }
}

fn admin_sees_the_ip_log_and_deletes_the_session(d: &Demo) {
    let mut c = Client::new(d.addr);
    c.post_json("/api/messages", r#"{"text":"please call me back"}"#);
    let id = c.session_cookie().unwrap().to_owned();
    let ips = raw_request(
        d.addr,
        "GET",
        &format!("/admin/sessions/{id}/ips"),
        &admin(ADMIN_TOKEN),
        None,
    );
    assert_eq!(ips.status, 200);
    assert_eq!(ips.json()["entries"][0]["ip"], "127.0.0.1");
    assert_eq!(ips.json()["dropped"], 0, "no address gave way");
    let del = raw_request(
        d.addr,
        "DELETE",
        &format!("/admin/sessions/{id}"),
        &admin(ADMIN_TOKEN),
        None,
    );
    assert_eq!(del.status, 204);
    let next = c.get("/api/session").json();
    assert_ne!(
        next["id"].as_str(),
        Some(id.as_str()),
        "a fresh session after agent deletion"
    );
    assert_eq!(c.get("/api/messages").json().as_array().unwrap().len(), 0);
    let gone = raw_request(
        d.addr,
        "GET",
        &format!("/admin/sessions/{id}/ips"),
        &admin(ADMIN_TOKEN),
        None,
    );
    assert_eq!(gone.status, 404);
}

/// SPEC §3.6 and §6: what is left of the demo's visitors from 127.0.0.1.
fn admin_reads_a_networks_statistics_with_the_token_only(d: &Demo) {
    let stats = |auth: &[(String, String)]| {
        raw_request(d.addr, "GET", "/admin/networks/127.0.0.1", auth, None)
    };
    let counts = || {
        let reply = stats(&admin(ADMIN_TOKEN));
        assert_eq!(reply.status, 200);
        let json = reply.json();
        assert_eq!(json["network"], "127.0.0.1");
        assert!(json["first_seen_ms"].as_u64() <= json["last_seen_ms"].as_u64());
        (
            json["sessions_created"].as_u64().unwrap(),
            json["conversations_started"].as_u64().unwrap(),
        )
    };
    Client::new(d.addr).get("/");
    let (created, conversations) = counts();
    let mut visitor = Client::new(d.addr);
    visitor.get("/");
    visitor.post_json("/api/messages", r#"{"text":"count me"}"#);
    let (created_after, conversations_after) = counts();
    // Other tests share this demo: counts only grow, at least by this visitor.
    assert!(created_after > created, "{created} -> {created_after}");
    assert!(
        conversations_after > conversations,
        "{conversations} -> {conversations_after}"
    );
    let lower_case = vec![("authorization".into(), format!("bearer {ADMIN_TOKEN}"))];
    assert_eq!(
        stats(&lower_case).status,
        200,
        "the scheme is case-insensitive"
    );
    assert_eq!(stats(&[]).status, 401);
    assert_eq!(stats(&admin("let-me-out")).status, 401);
    let unseen = raw_request(
        d.addr,
        "GET",
        "/admin/networks/203.0.113.250",
        &admin(ADMIN_TOKEN),
        None,
    );
    assert_eq!(unseen.status, 404);
    let bad = raw_request(
        d.addr,
        "GET",
        "/admin/networks/not-an-ip",
        &admin(ADMIN_TOKEN),
        None,
    );
    assert_eq!(bad.status, 400);
}

fn admin_rejects_a_malformed_id(d: &Demo) {
    let r = raw_request(
        d.addr,
        "DELETE",
        "/admin/sessions/..%2F..%2Fetc",
        &admin(ADMIN_TOKEN),
        None,
    );
    assert_eq!(r.status, 400);
}

#[test]
fn privacy_mode_sets_no_cookie_until_the_visitor_writes() {
    let d = Demo::start(&[("SESSION_PRIVACY", "total")]);
    let mut c = Client::new(d.addr);
    let page = c.get("/");
    assert!(page.set_cookies().is_empty());
    assert_eq!(c.get("/api/session").json()["id"], serde_json::Value::Null);
    assert_eq!(c.post_json("/api/messages", r#"{"text":"hi"}"#).status, 201);
    assert!(c.session_cookie().is_some());
    assert_eq!(c.get("/api/session").json()["state"], "permanent");
}

#[test]
fn environment_configures_cookie_and_domain() {
    let d = Demo::start(&[
        ("SESSION_COOKIE_EXPIRE", "3600"),
        ("SESSION_COOKIE_DOMAIN", "example.com"),
        ("SESSION_SECURE", "true"),
    ]);
    let cookie = Client::new(d.addr).get("/").set_cookies()[0].to_owned();
    assert!(cookie.contains("Max-Age=3600"), "{cookie}");
    assert!(cookie.contains("Domain=example.com"), "{cookie}");
    assert!(cookie.contains("Secure"), "{cookie}");
}

#[test]
fn site_id_names_the_cookie() {
    let d = Demo::start(&[("SESSION_SITE_ID", "8c842203-7ed8")]);
    let cookie = Client::new(d.addr).get("/").set_cookies()[0].to_owned();
    assert!(
        cookie.starts_with("crisp-client%2Fsession%2F8c842203-7ed8=session_"),
        "{cookie}"
    );
}

/// SPEC §3.7 and §6: with `SESSION_TOKEN_SECRET`, the `X-Visitor-Token`
/// header gives a logged-in user one conversation on every browser.
#[test]
fn a_visitor_token_carries_the_conversation_to_another_browser() {
    let d = Demo::start(&[("SESSION_TOKEN_SECRET", "a demo secret of 32 bytes or more")]);
    let token = (
        "x-visitor-token".to_owned(),
        "user-1234-abcdefgh".to_owned(),
    );
    let mut laptop = Client::new(d.addr);
    laptop.extra_headers.push(token.clone());
    assert_eq!(
        laptop
            .post_json("/api/messages", r#"{"text":"started on the laptop"}"#)
            .status,
        201
    );
    let mut phone = Client::new(d.addr);
    phone.extra_headers.push(token);
    let messages = phone.get("/api/messages").json();
    assert_eq!(messages[0]["text"], "started on the laptop");
    assert_eq!(phone.session_cookie(), laptop.session_cookie());
    // Without the token, a browser has a session of its own.
    let stranger = Client::new(d.addr).get("/api/messages").json();
    assert_eq!(stranger.as_array().map(Vec::len), Some(0));
}

/// The demo with continuity tokens, on each store.
fn demos_with_tokens() -> [Demo; 2] {
    let secret = ("SESSION_TOKEN_SECRET", "k3v9-Qz7#pL2!wX8@rT5$mN1^bH6&cJ4");
    [
        Demo::start(&[secret]),
        Demo::start(&[secret, ("REDIS_URL", &RedisServer::shared().url())]),
    ]
}

fn session_id(c: &mut Client) -> String {
    c.get("/api/session").json()["id"]
        .as_str()
        .expect("a session")
        .to_owned()
}

/// SPEC §3.7, §5: a cookie planted in the victim's browser before the login
/// (e.g. from a sibling subdomain) reaches nothing after it: the token
/// adopts the browser's session under a new id, and the conversation the
/// visitor started before logging in follows it.
#[test]
fn a_cookie_planted_before_the_login_reaches_nothing_after_it() {
    for d in demos_with_tokens() {
        let mut attacker = Client::new(d.addr);
        let planted = session_id(&mut attacker);
        let mut victim = Client::new(d.addr);
        victim.jar = attacker.jar.clone();
        let before = victim.post_json("/api/messages", r#"{"text":"before the login"}"#);
        assert_eq!(before.status, 201);
        victim
            .extra_headers
            .push(("x-visitor-token".into(), "victim-7f3a9c1e5b2d8f40".into()));
        let adopted = session_id(&mut victim);
        assert_ne!(adopted, planted, "the login rotates the id");
        let sent = victim.post_json("/api/messages", r#"{"text":"my secret"}"#);
        assert_eq!(sent.status, 201);
        let mine = victim.get("/api/messages").json();
        let texts: Vec<&str> = mine
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["from"] != "agent")
            .map(|m| m["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            texts,
            ["before the login", "my secret"],
            "the conversation followed"
        );
        // The attacker, still holding the planted cookie.
        let seen = attacker.get("/api/messages").json();
        assert_eq!(seen.as_array().map(Vec::len), Some(0), "reaches nothing");
        assert_ne!(session_id(&mut attacker), adopted);
    }
}

/// SPEC §3.7: after the site stops sending the token (logout, or the next
/// person at a shared computer), the browser no longer shows the user's
/// conversation; with the token it is back.
#[test]
fn logging_out_closes_the_users_conversation_on_that_browser() {
    for d in demos_with_tokens() {
        let mut browser = Client::new(d.addr);
        let token = (
            "x-visitor-token".to_owned(),
            "user-5e8d2a7c9b1f3e60".to_owned(),
        );
        browser.extra_headers.push(token.clone());
        let sent = browser.post_json("/api/messages", r#"{"text":"logged in"}"#);
        assert_eq!(sent.status, 201);
        browser.extra_headers.clear();
        let seen = browser.get("/api/messages").json();
        assert_eq!(
            seen.as_array().map(Vec::len),
            Some(0),
            "logged out: nothing"
        );
        browser.extra_headers.push(token);
        let seen = browser.get("/api/messages").json();
        assert_eq!(seen[0]["text"], "logged in");
    }
}

#[test]
fn new_session_limit_from_environment_answers_429() {
    let d = Demo::start(&[
        ("SESSION_NEW_PER_IP", "2/60"),
        ("SESSION_LIMIT_ACTION", "429"),
    ]);
    assert_eq!(Client::new(d.addr).get("/").status, 200);
    assert_eq!(Client::new(d.addr).get("/").status, 200);
    let third = Client::new(d.addr).get("/");
    assert_eq!(third.status, 429);
    assert!(third.header("retry-after").is_some());
}

#[test]
fn trusted_proxy_from_environment_supplies_the_ip() {
    let d = Demo::start(&[("TRUSTED_PROXIES", "127.0.0.1/32")]);
    let mut c = Client::new(d.addr);
    c.extra_headers
        .push(("x-forwarded-for".into(), "198.51.100.23".into()));
    assert_eq!(c.get("/api/session").json()["ip"], "198.51.100.23");
    let d2 = demo();
    let mut forged = Client::new(d2.addr);
    forged
        .extra_headers
        .push(("x-forwarded-for".into(), "198.51.100.23".into()));
    assert_eq!(forged.get("/api/session").json()["ip"], "127.0.0.1");
}

/// SPEC §3.3: behind a proxy appending `X-Forwarded-For` (the default
/// header), the client's own `Forwarded` is passed through and ignored.
#[test]
fn a_clients_forwarded_header_cannot_choose_its_ip_behind_the_proxy() {
    let d = Demo::start(&[("TRUSTED_PROXIES", "127.0.0.1/32")]);
    let mut c = Client::new(d.addr);
    c.extra_headers
        .push(("forwarded".into(), "for=6.6.6.6".into()));
    c.extra_headers
        .push(("x-forwarded-for".into(), "203.0.113.9".into()));
    assert_eq!(c.get("/api/session").json()["ip"], "203.0.113.9");
}

/// SPEC §3.3 and §6: `TRUSTED_PROXY_HEADER` names the one header read.
#[test]
fn trusted_proxy_header_from_environment_is_the_only_header_read() {
    let d = Demo::start(&[
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
        ("TRUSTED_PROXY_HEADER", "x-real-ip"),
    ]);
    let mut c = Client::new(d.addr);
    c.extra_headers
        .push(("x-forwarded-for".into(), "6.6.6.6".into()));
    c.extra_headers
        .push(("forwarded".into(), "for=6.6.6.7".into()));
    c.extra_headers
        .push(("x-real-ip".into(), "203.0.113.10".into()));
    assert_eq!(c.get("/api/session").json()["ip"], "203.0.113.10");
}

/// SPEC §5: an admin token shorter than 16 characters is refused at start-up.
#[test]
fn a_short_admin_token_stops_the_demo() {
    for short in ["let-me-in", "fifteen-chars!!"] {
        let stderr = start_fails(&[("ADMIN_TOKEN", short)]);
        assert!(stderr.contains("ADMIN_TOKEN"), "{short}: {stderr}");
        assert!(
            stderr.contains("at least 16 characters"),
            "{short}: {stderr}"
        );
    }
    let sixteen = Demo::start(&[("ADMIN_TOKEN", "sixteen-chars!!!")]);
    let reply = raw_request(
        sixteen.addr,
        "GET",
        "/admin/networks/127.0.0.1",
        &admin("sixteen-chars!!!"),
        None,
    );
    assert_eq!(reply.status, 404, "authorized, nothing counted yet");
}

/// SPEC §5: configuration that cannot be safe stops the demo, naming the variable.
#[test]
fn unsafe_configuration_stops_the_demo_naming_the_variable() {
    for (var, value) in [
        ("SESSION_COOKIE_DOMAIN", "co.uk"),
        ("SESSION_COOKIE_DOMAIN", "github.io"),
        ("SESSION_TOKEN_SECRET", "a demo secret under 32 bytes"),
        ("SESSION_TOKEN_SECRET", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        ("SESSION_LIMIT_ACTION", "429"),
    ] {
        let stderr = start_fails(&[(var, value)]);
        assert!(stderr.contains(var), "{var}={value}: {stderr}");
    }
}

#[test]
fn bad_environment_value_stops_the_demo_naming_the_variable() {
    for (var, value) in [
        ("SESSION_IDLE_TTL", "soon"),
        ("SESSION_COOKIE_EXPIRE", "0"),
        ("SESSION_PRIVACY", "maybe"),
        ("SESSION_SECURE", "perhaps"),
        ("TRUSTED_PROXIES", "10.0.0.0/40"),
        ("TRUSTED_PROXY_HEADER", "x real ip"),
        ("SESSION_NEW_PER_IP", "lots"),
        ("SESSION_LIMIT_ACTION", "ban"),
        ("SESSION_COOKIE_DOMAIN", "not a domain"),
        ("SESSION_SITE_ID", "no spaces please"),
        ("SESSION_TOKEN_SECRET", "too short"),
        ("BIND", "nowhere"),
        ("ADMIN_TOKEN", " "),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("REDIS_URL", "redis://[bad"),
        ("REDIS_TLS_CA", "/nonexistent/ca.pem"),
        ("REDIS_CLUSTER_NODES", "http://127.0.0.1:7000"),
        ("REDIS_SENTINEL_NODES", "redis://127.0.0.1:26379"),
        ("SESSION_STORE", "disk"),
        ("SESSION_DB", "/no/such/directory/chatbox.db"),
        ("SESSION_DB", ""),
    ] {
        let stderr = start_fails(&[(var, value)]);
        assert!(stderr.contains(var), "{var}={value}: {stderr}");
    }
    // Two stores named at once: which one was meant is not guessed.
    let stderr = start_fails(&[
        ("SESSION_STORE", "memory"),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
    ]);
    assert!(stderr.contains("SESSION_STORE"), "{stderr}");
}

/// SPEC §4, §6: `REDIS_URL=rediss://…` with `REDIS_TLS_CA`: sessions and
/// conversations over TLS, to a server that speaks nothing else.
#[cfg(feature = "tls")]
#[test]
fn the_demo_keeps_a_conversation_in_redis_over_tls() {
    use support::tls::{Certificates, TlsRedisServer};
    let certs = Certificates::make("demo");
    let server = TlsRedisServer::start(&certs);
    let ca = certs.ca_path().display().to_string();
    let d = Demo::start(&[
        ("ADMIN_TOKEN", ADMIN_TOKEN),
        ("REDIS_URL", &server.url()),
        ("REDIS_TLS_CA", &ca),
    ]);
    posting_a_message_stores_it_and_promotes_the_session(&d);
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("chatbox:chat:*")
        .query(&mut server.conn(&certs).unwrap())
        .unwrap();
    assert_eq!(
        keys.len(),
        2,
        "the conversation and its ids, in Redis: {keys:?}"
    );
    // A CA without a `rediss://` URL would send everything in plain text.
    let stderr = start_fails(&[
        ("REDIS_URL", "redis://127.0.0.1:6379"),
        ("REDIS_TLS_CA", &ca),
    ]);
    assert!(stderr.contains("REDIS_TLS_CA"), "{stderr}");
    assert!(stderr.contains("plain text"), "{stderr}");
}

#[test]
fn demo_with_redis_down_at_start_up_serves_pages_without_a_session() {
    let port = support::demo::free_port();
    let d = Demo::start(&[("REDIS_URL", &format!("redis://127.0.0.1:{port}"))]);
    let mut c = Client::new(d.addr);
    let page = c.get("/");
    assert_eq!(page.status, 200, "fail-open: the page is served");
    assert!(page.set_cookies().is_empty());
    let post = c.post_json("/api/messages", r#"{"text":"hi"}"#);
    assert_eq!(post.status, 503, "the write is not faked");
    let list = c.get("/api/messages");
    assert_eq!(list.status, 503);
    for reply in [post, list] {
        assert_eq!(
            reply.json()["error"],
            "chat is unavailable right now, your conversation is safe"
        );
        assert!(!reply.body.contains("refused") && !reply.body.contains("os error"));
    }
}

/// SPEC §6: during a Redis outage a returning visitor is told plainly, sees
/// no internal text, and finds the conversation again afterwards.
#[test]
fn a_redis_outage_mid_conversation_loses_nothing() {
    let mut redis = RedisServer::start_durable();
    let d = Demo::start(&[("REDIS_URL", &redis.url())]);
    let mut c = Client::new(d.addr);
    let body = r#"{"id":"before-outage","text":"are you there?"}"#;
    assert_eq!(c.post_json("/api/messages", body).status, 201);
    redis.stop();
    let list = c.get("/api/messages");
    assert_eq!(list.status, 503);
    assert_eq!(
        list.json()["error"],
        "chat is unavailable right now, your conversation is safe"
    );
    assert_eq!(c.get("/api/session").json()["available"], false);
    redis.start_again();
    // Served again once Redis answers; on a loaded machine the first call
    // may still meet the store's timeout while Redis loads its file.
    let deadline = Instant::now() + Duration::from_secs(10);
    let reply = loop {
        let reply = c.get("/api/messages");
        if reply.status == 200 || Instant::now() > deadline {
            break reply;
        }
        thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(reply.status, 200, "{}", reply.body);
    let messages = reply.json();
    assert_eq!(messages[0]["text"], "are you there?");
    assert_eq!(c.get("/api/session").json()["state"], "permanent");
}

/// SPEC §7: the demo serves the layer's counters and histograms in the
/// Prometheus format (built with `--features metrics`, as the tests are).
#[test]
fn the_demo_serves_its_metrics_for_prometheus() {
    let d = demo();
    let mut c = Client::new(d.addr);
    c.get("/");
    c.post_json("/api/messages", r#"{"text":"count me"}"#);
    c.get("/");
    c.send("POST", "/api/session/reset", None);
    assert_eq!(
        c.get("/metrics").status,
        401,
        "metrics are for the team only"
    );
    c.extra_headers = admin(ADMIN_TOKEN);
    let text = c.get("/metrics").body;
    for line in [
        "visitor_session_sessions_created_total",
        "visitor_session_sessions_promoted_total",
        "visitor_session_sessions_reset_total",
        r#"visitor_session_store_calls_total{op="touch",outcome="ok"}"#,
        r#"visitor_session_store_calls_total{op="create",outcome="ok"}"#,
        r#"visitor_session_store_call_seconds{op="touch""#,
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}

/// Sends `raw` as it is on a new connection and reads until the server
/// closes it or `wait` passes; the reply, if any came.
fn raw_exchange(d: &Demo, raw: &str, wait: Duration) -> Option<support::demo::Reply> {
    let mut stream = TcpStream::connect(d.addr).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    stream.write_all(raw.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => return None, // still open after `wait`
        }
    }
    // Closed without a reply (or with one cut short): status 0.
    Some(
        support::demo::parse_reply(&got).unwrap_or(support::demo::Reply {
            status: 0,
            headers: vec![],
            body: String::new(),
        }),
    )
}

/// SPEC §6: a client that never finishes its headers is closed (here after
/// the 500 ms the test sets instead of 10 s).
#[test]
fn a_client_that_never_finishes_its_headers_is_closed() {
    let d = Demo::start(&[("CHATBOX_HEADER_TIMEOUT_MS", "500")]);
    let started = Instant::now();
    let reply = raw_exchange(
        &d,
        "GET / HTTP/1.1\r\nhost: x\r\nx-slow: ",
        Duration::from_secs(10),
    );
    assert!(reply.is_some(), "the connection was closed");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "within the timeout, not at once after 10 s"
    );
}

/// SPEC §6: a body that never completes is refused and its connection
/// closed (500 ms here instead of 30 s).
#[test]
fn a_body_that_never_completes_is_refused() {
    let d = Demo::start(&[("CHATBOX_BODY_TIMEOUT_MS", "500")]);
    let head = format!(
        "POST /api/messages HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         content-length: 100\r\n\r\n{{\"text\":",
        d.addr
    );
    let reply = raw_exchange(&d, &head, Duration::from_secs(10)).expect("closed, not held");
    assert!(
        reply.status >= 400 && reply.status < 500,
        "refused: {}",
        reply.status
    );
}

/// SPEC §6: connections past the cap wait; one served once a slot frees.
#[test]
fn connections_past_the_cap_wait_for_a_free_slot() {
    let d = Demo::start(&[
        ("CHATBOX_MAX_CONNECTIONS", "2"),
        ("CHATBOX_HEADER_TIMEOUT_MS", "60000"),
    ]);
    let stall = || {
        let mut s = TcpStream::connect(d.addr).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").unwrap();
        s
    };
    let (first, _second) = (stall(), stall());
    thread::sleep(Duration::from_millis(200));
    let waiting = format!(
        "GET /api/session HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
        d.addr
    );
    assert!(
        raw_exchange(&d, &waiting, Duration::from_millis(700)).is_none(),
        "a third connection is not served while two hold the slots"
    );
    drop(first);
    let reply =
        raw_exchange(&d, &waiting, Duration::from_secs(10)).expect("served once a slot is free");
    assert_eq!(reply.status, 200);
}

/// SPEC §6: state-changing routes take JSON only; a form's content type is 415.
#[test]
fn writes_that_are_not_json_are_refused() {
    let d = demo();
    let mut c = Client::new(d.addr);
    c.get("/");
    let cookie = c
        .jar
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    for kind in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let body = r#"{"text":"sneaky"}"#;
        let raw = format!(
            "POST /api/messages HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncookie: {cookie}\r\n\
             content-type: {kind}\r\ncontent-length: {}\r\n\r\n{body}",
            d.addr,
            body.len()
        );
        let reply = raw_exchange(&d, &raw, Duration::from_secs(10)).unwrap();
        assert_eq!(reply.status, 415, "{kind}");
    }
    let messages = c.get("/api/messages").json();
    assert_eq!(
        messages.as_array().map(Vec::len),
        Some(0),
        "nothing was stored"
    );
}

/// SPEC §6: a write from another site is refused (403): by its `Origin`, or
/// by `Sec-Fetch-Site: cross-site`; the site's own origin is accepted.
#[test]
fn cross_site_writes_are_refused_and_same_origin_ones_accepted() {
    let d = demo();
    let mut c = Client::new(d.addr);
    c.get("/");
    for (name, value) in [
        ("origin", "http://evil.example".to_owned()),
        ("origin", "null".to_owned()),
        ("sec-fetch-site", "cross-site".to_owned()),
    ] {
        c.extra_headers = vec![(name.into(), value.clone())];
        let reply = c.post_json("/api/messages", r#"{"text":"forged"}"#);
        assert_eq!(reply.status, 403, "{name}: {value}");
        let reset = c.send("POST", "/api/session/reset", None);
        assert_eq!(reset.status, 403, "reset, {name}: {value}");
    }
    c.extra_headers = vec![
        ("origin".into(), format!("http://{}", d.addr)),
        ("sec-fetch-site".into(), "same-origin".into()),
    ];
    assert_eq!(
        c.post_json("/api/messages", r#"{"text":"mine"}"#).status,
        201
    );
    c.extra_headers.clear();
    let messages = c.get("/api/messages").json();
    let texts: Vec<&str> = messages
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["from"] != "agent")
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["mine"], "only the same-origin message was stored");
}

/// SPEC §6: bodies over 64 KiB are refused with 413.
#[test]
fn bodies_over_64_kib_are_refused() {
    let d = demo();
    let mut c = Client::new(d.addr);
    let text = "x".repeat(64 * 1024);
    let reply = c.post_json("/api/messages", &format!(r#"{{"text":"{text}"}}"#));
    assert_eq!(reply.status, 413);
}

/// SPEC §6: pages carry a Content-Security-Policy with `frame-ancestors`
/// and `X-Frame-Options`; the widget's script and styles are files of the
/// site (no inline script to allow), served without a session.
#[test]
fn pages_carry_a_content_security_policy_and_a_framing_policy() {
    let d = demo();
    let mut c = Client::new(d.addr);
    let page = c.get("/");
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'self'"), "{csp}");
    assert_eq!(page.header("x-frame-options"), Some("SAMEORIGIN"));
    assert!(page.body.contains(r#"<script src="/assets/widget.js""#));
    assert!(!page.body.contains("<script>"), "no inline script");
    let mut fresh = Client::new(d.addr);
    let js = fresh.get("/assets/widget.js");
    assert_eq!(js.status, 200);
    assert!(
        js.header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(js.set_cookies().is_empty(), "an asset is not a visit");
    assert_eq!(fresh.get("/assets/widget.css").status, 200);
}

/// SPEC §6: the default store is a file: the demo stopped and started again
/// on the same `SESSION_DB` still has the visitor's session, its
/// conversation and its IP log.
#[test]
fn the_demo_restarted_on_the_same_database_has_the_session_and_its_conversation() {
    let dir = TempDir::new("restart");
    let db = dir.file("chatbox.db");
    let env = [("ADMIN_TOKEN", ADMIN_TOKEN), ("SESSION_DB", db.as_str())];
    let first = Demo::start(&env);
    let mut browser = Client::new(first.addr);
    browser.get("/");
    let body = r#"{"id":"m-1","text":"still there after the restart?"}"#;
    assert_eq!(browser.post_json("/api/messages", body).status, 201);
    let id = session_id(&mut browser);
    first.stop();

    let second = Demo::start(&env);
    browser.addr = second.addr;
    let info = browser.get("/api/session").json();
    assert_eq!(info["id"].as_str(), Some(id.as_str()), "the same session");
    assert_eq!(info["state"], "permanent");
    let messages = browser.get("/api/messages").json();
    assert_eq!(messages[0]["text"], "still there after the restart?");
    let ips = raw_request(
        second.addr,
        "GET",
        &format!("/admin/sessions/{id}/ips"),
        &admin(ADMIN_TOKEN),
        None,
    );
    assert_eq!(ips.json()["entries"][0]["ip"], "127.0.0.1");
}

/// SPEC §4: a write the demo acknowledged is on disk. Eight visitors post
/// messages at once and the demo is killed (`kill -9`) while they do:
/// started again on the same file, it has every message it answered `201`
/// to, in a session made permanent, whatever it was doing when it died.
#[test]
fn a_kill_9_under_concurrent_writes_loses_no_acknowledged_write() {
    let dir = TempDir::new("crash");
    let db = dir.file("chatbox.db");
    let env = [("ADMIN_TOKEN", ADMIN_TOKEN), ("SESSION_DB", db.as_str())];
    let demo = Demo::start(&env);
    let addr = demo.addr;
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let acknowledged = acknowledged.clone();
            thread::spawn(move || {
                let mut visitor = Client::new(addr);
                let mut kept = Vec::new();
                // Bounded: the demo is killed long before.
                for n in 0..100_000 {
                    let id = format!("w{writer}-m{n}");
                    let body = format!(r#"{{"id":"{id}","text":"message {n}"}}"#);
                    match visitor.try_send("POST", "/api/messages", Some(&body)) {
                        Ok(reply) if reply.status == 201 => {
                            kept.push(id);
                            acknowledged.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(reply) => panic!("{id} answered {}: {}", reply.status, reply.body),
                        // The demo is gone: the answer never came.
                        Err(_) => break,
                    }
                }
                (visitor, kept)
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while acknowledged.load(Ordering::Relaxed) < 400 {
        assert!(Instant::now() < deadline, "the writers did not get going");
        thread::sleep(Duration::from_millis(5));
    }
    demo.kill();
    let results: Vec<(Client, Vec<String>)> =
        writers.into_iter().map(|w| w.join().unwrap()).collect();

    let demo = Demo::start(&env);
    let mut total = 0;
    for (mut visitor, kept) in results {
        visitor.addr = demo.addr;
        let messages = visitor.get("/api/messages").json();
        let stored: HashSet<&str> = messages
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["id"].as_str())
            .collect();
        let lost: Vec<&String> = kept
            .iter()
            .filter(|id| !stored.contains(id.as_str()))
            .collect();
        assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
        assert_eq!(visitor.get("/api/session").json()["state"], "permanent");
        total += kept.len();
    }
    println!("{total} acknowledged writes, all there after kill -9 and a restart");
}

/// SPEC §6: the team acknowledges a conversation's first visitor message,
/// once: a message `from` the agent, right after it.
fn the_first_message_gets_one_acknowledgement_from_the_team(d: &Demo) {
    let mut c = Client::new(d.addr);
    for text in ["hello", "are you there?"] {
        assert_eq!(
            c.post_json("/api/messages", &format!(r#"{{"text":"{text}"}}"#))
                .status,
            201
        );
    }
    let messages = c.get("/api/messages").json();
    let from: Vec<&str> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["from"].as_str().unwrap())
        .collect();
    assert_eq!(from, ["visitor", "agent", "visitor"]);
    assert!(messages[1]["text"].as_str().unwrap().contains("our team"));
    assert!(messages[1]["at_ms"].as_u64().unwrap() > 0);
}

/// SPEC §6: `GET /api/messages` returns the latest page (200 by default, at
/// most 1 000), oldest first; `before=<id>` pages back; never the whole
/// conversation in one read.
fn reads_are_paged_newest_page_first_oldest_first_within(d: &Demo) {
    let mut c = Client::new(d.addr);
    for i in 0..250 {
        let body = format!(r#"{{"id":"p{i}","text":"page me {i}"}}"#);
        assert_eq!(c.post_json("/api/messages", &body).status, 201);
    }
    // 251 messages: the 250 of the visitor and the acknowledgement.
    let latest = c.get("/api/messages").json();
    assert_eq!(latest.as_array().unwrap().len(), 200, "the default page");
    assert_eq!(latest[199]["id"], "p249", "ends with the newest");
    assert_eq!(latest[0]["id"], "p50", "oldest first within the page");
    let earlier = c.get("/api/messages?limit=100&before=p50").json();
    let ids: Vec<&str> = earlier
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 51, "what is left before p50");
    assert_eq!((ids[0], ids[1], ids[50]), ("p0", "agent:ack", "p49"));
    let small = c.get("/api/messages?limit=3&before=p10").json();
    let ids: Vec<&str> = small
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["p7", "p8", "p9"]);
    assert_eq!(
        c.get("/api/messages?limit=1001").status,
        400,
        "at most 1 000"
    );
    assert_eq!(c.get("/api/messages?limit=0").status, 400);
    let unknown = c.get("/api/messages?before=nope").json();
    assert_eq!(unknown.as_array().map(Vec::len), Some(0));
}

/// SPEC §6: a conversation holds at most 4 MiB of text: past it, 413 and
/// nothing stored.
fn a_conversation_holds_at_most_4_mib_of_text(d: &Demo) {
    let mut c = Client::new(d.addr);
    let text = "x".repeat(2000);
    let mut stored = 0usize;
    let refused = loop {
        let reply = c.post_json("/api/messages", &format!(r#"{{"text":"{text}"}}"#));
        if reply.status != 201 {
            break reply;
        }
        stored += 1;
        assert!(stored <= 2200, "still accepted past 4 MiB");
    };
    assert_eq!(refused.status, 413);
    assert!(stored * 2000 <= 4 * 1024 * 1024 && (stored + 1) * 2000 > 4 * 1024 * 1024 - 100);
    let latest = c.get("/api/messages?limit=1").json();
    assert_eq!(latest[0]["text"].as_str().map(str::len), Some(2000));
}

/// SPEC §6: a conversation holds at most 10 000 messages: the next is 413
/// (on the embedded store: 10 000 requests are quick there).
#[test]
fn a_conversation_holds_at_most_10_000_messages() {
    let d = demo_in_memory();
    let mut c = Client::new(d.addr);
    // 9 999 of the visitor and the acknowledgement.
    for i in 0..9_999 {
        let body = format!(r#"{{"id":"n{i}","text":"{i}"}}"#);
        assert_eq!(
            c.post_json("/api/messages", &body).status,
            201,
            "message {i}"
        );
    }
    let reply = c.post_json("/api/messages", r#"{"id":"over","text":"one too many"}"#);
    assert_eq!(reply.status, 413);
    let latest = c.get("/api/messages?limit=1").json();
    assert_eq!(latest[0]["id"], "n9998", "nothing stored past the cap");
}
