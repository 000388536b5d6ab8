//! The chatbox demo in Debian's headless Chromium (SPEC §2, §3, §6): what a
//! visitor's browser really does with the session cookie and the widget.
//!
//! Driven through chromedriver with fantoccini. WebDriver is the W3C
//! standard for this; Debian ships `chromium-driver` in the same version as
//! `chromium`; fantoccini is a small async WebDriver client on hyper and
//! tokio, which this workspace builds anyway. A DevTools client
//! (chromiumoxide) would compile the whole generated protocol for the few
//! commands used here. `scripts/test` installs `chromium` and
//! `chromium-driver` when they are missing.
//!
//! `*.chat.test` is mapped to loopback with Chromium's host-resolver rules,
//! so the demo is reached as `www.chat.test` and `help.chat.test` and its
//! automatic cookie domain is `chat.test`. One browser runs at a time (the
//! machine has two cores).

mod support;

use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fantoccini::cookies::Cookie;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use support::demo::{Demo, free_port};
use support::redis_servers::RedisServer;

const COOKIE_NAME: &str = "crisp-client%2Fsession";
const UNAVAILABLE: &str = "Chat is unavailable right now, your conversation is safe.";
/// SPEC §2: 6 months.
const MAX_AGE: u64 = 15_768_000;

/// chromedriver, started once for the test binary.
fn chromedriver() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let port = free_port();
        let mut command = std::process::Command::new("chromedriver");
        command
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let child = support::process::spawn(command).unwrap_or_else(|e| {
            panic!(
                "cannot start chromedriver ({e}): install `chromium` and `chromium-driver`, \
                 or run `bash scripts/test`, which installs them"
            )
        });
        // Lives as long as the test binary (and dies with it).
        std::mem::forget(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        format!("http://127.0.0.1:{port}")
    })
    .clone()
}

/// One browser at a time (each test runs on a runtime of its own, so the
/// lock is tokio's, which any runtime can wait on).
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ONE.lock().await
}

/// A fresh headless Chromium: its own profile, an empty cookie jar.
async fn browser() -> Client {
    let caps = json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1100,760",
                "--host-resolver-rules=MAP *.chat.test 127.0.0.1, MAP chat.test 127.0.0.1",
            ],
        }
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&chromedriver())
        .await
        .expect("a Chromium session through chromedriver")
}

/// `http://<host>.chat.test:<port><path>` of `demo`.
fn url(demo: &Demo, host: &str, path: &str) -> String {
    format!("http://{host}.chat.test:{}{path}", demo.addr.port())
}

/// Waits until the JavaScript expression `condition` is true on the page.
async fn wait_until(client: &Client, condition: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = client
            .execute(&format!("return Boolean({condition});"), vec![])
            .await
            .unwrap_or(Value::Bool(false));
        if ready == Value::Bool(true) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The visitor's messages the widget shows as sent (the team's replies are
/// `li.agent`).
const VISITOR_SENT: &str = "#messages li.visitor:not(.pending)";

/// Waits until the widget finished loading (its session line, shown only
/// with `?debug`, is filled), then opens the chat as a visitor would, with
/// the launcher.
async fn widget_ready(client: &Client) {
    wait_until(
        client,
        "document.getElementById('session').dataset.state !== undefined",
        "the widget to load",
    )
    .await;
    if client
        .execute("return document.getElementById('chat').hidden;", vec![])
        .await
        .unwrap()
        == Value::Bool(true)
    {
        click(client, "launcher").await;
    }
    wait_until(
        client,
        "!document.getElementById('chat').hidden && document.activeElement.id === 'text'",
        "the chat to open with the input focused",
    )
    .await;
}

async fn click(client: &Client, id: &str) {
    client
        .find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// How many of the visitor's messages the widget shows as sent.
fn visitor_count_is(n: usize) -> String {
    format!("document.querySelectorAll('{VISITOR_SENT}').length === {n}")
}

/// The visitor's messages the widget shows as sent, oldest first.
async fn shown(client: &Client) -> Vec<String> {
    let texts = client
        .execute(
            &format!(
                "return [...document.querySelectorAll('{VISITOR_SENT} .text')]\
                 .map((t) => t.textContent);"
            ),
            vec![],
        )
        .await
        .expect("read the message list");
    serde_json::from_value(texts).expect("a list of texts")
}

/// Types `text` into the widget and sends it.
async fn type_and_send(client: &Client, text: &str) {
    client
        .find(Locator::Id("text"))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
    client
        .find(Locator::Id("send-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Sends `text` and waits until the widget shows it as sent.
async fn send(client: &Client, text: &str) {
    type_and_send(client, text).await;
    let shown = format!(
        "[...document.querySelectorAll('{VISITOR_SENT} .text')]\
         .some((t) => t.textContent === {})",
        json!(text)
    );
    wait_until(client, &shown, "the message to be sent").await;
}

/// The session cookies the browser holds.
async fn session_cookies(client: &Client) -> Vec<Cookie<'static>> {
    client
        .get_all_cookies()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.name().starts_with(COOKIE_NAME))
        .collect()
}

async fn session_id(client: &Client) -> Option<String> {
    session_cookies(client)
        .await
        .first()
        .map(|c| c.value().to_owned())
}

fn expiry_secs(cookie: &Cookie<'_>) -> u64 {
    cookie
        .expires_datetime()
        .expect("a persistent cookie")
        .unix_timestamp() as u64
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The demo on each store: its default, a SQLite file (of its own, see
/// `Demo::start`), and Redis.
fn demos(extra: &[(&str, &str)]) -> Vec<(&'static str, Demo)> {
    let redis = RedisServer::shared().url();
    let mut on_redis = extra.to_vec();
    on_redis.push(("REDIS_URL", &redis));
    vec![
        ("sqlite", Demo::start(extra)),
        ("redis", Demo::start(&on_redis)),
    ]
}

/// SPEC §2: the first visit sets exactly one cookie, named and shaped as
/// specified, for the registrable domain; each visit renews it.
#[tokio::test]
async fn the_first_visit_sets_one_cookie_that_each_visit_renews() {
    let _one = one_at_a_time().await;
    for (store, demo) in demos(&[]) {
        let client = browser().await;
        client.goto(&url(&demo, "www", "/")).await.unwrap();
        widget_ready(&client).await;
        let all = client.get_all_cookies().await.unwrap();
        assert_eq!(all.len(), 1, "{store}: exactly one cookie: {all:?}");
        let cookie = &all[0];
        assert_eq!(cookie.name(), COOKIE_NAME, "{store}");
        let id = cookie.value();
        assert!(
            id.starts_with("session_") && id.len() == "session_".len() + 36,
            "{store}: {id}"
        );
        assert_eq!(
            cookie.domain().map(|d| d.trim_start_matches('.')),
            Some("chat.test"),
            "{store}: shared by the subdomains"
        );
        assert_eq!(cookie.http_only(), Some(true), "{store}");
        assert_eq!(cookie.path(), Some("/"), "{store}");
        assert_eq!(cookie.same_site(), Some(cookie::SameSite::Lax), "{store}");
        let first = expiry_secs(cookie);
        assert!(
            first.abs_diff(now_secs() + MAX_AGE) < 60,
            "{store}: expires 6 months from now"
        );
        // A second later, another visit renews it for the same session.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        client.goto(&url(&demo, "help", "/help")).await.unwrap();
        widget_ready(&client).await;
        let renewed = session_cookies(&client).await;
        assert_eq!(renewed.len(), 1, "{store}");
        assert_eq!(renewed[0].value(), id, "{store}: the same session");
        assert!(
            expiry_secs(&renewed[0]) > first,
            "{store}: the expiry moved forward"
        );
        client.close().await.unwrap();
    }
}

/// SPEC §2, §6: a message sent on `www` is there on `/help`, on `help.`,
/// and after the browser is closed and opened again with its cookie jar.
#[tokio::test]
async fn a_conversation_follows_the_visitor_across_pages_subdomains_and_restarts() {
    let _one = one_at_a_time().await;
    for (store, demo) in demos(&[]) {
        let client = browser().await;
        client.goto(&url(&demo, "www", "/")).await.unwrap();
        widget_ready(&client).await;
        send(&client, "Hello, do you ship to Norway?").await;
        // The team's acknowledgement, once, with its time.
        wait_until(
            &client,
            "document.querySelectorAll('#messages li.agent').length === 1 && \
             document.querySelector('#messages li.agent time') !== null",
            "the team's acknowledgement",
        )
        .await;
        let id = session_id(&client).await.expect("a session");
        // The session line is for developers (`?debug`), not visitors.
        let line = client.find(Locator::Id("session")).await.unwrap();
        assert!(
            !line.is_displayed().await.unwrap(),
            "no session line without ?debug"
        );
        // Another page of the site.
        client
            .find(Locator::Id("nav"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_until(&client, "location.pathname === '/help'", "the help page").await;
        wait_until(&client, &visitor_count_is(1), "the conversation on /help").await;
        assert_eq!(shown(&client).await, ["Hello, do you ship to Norway?"]);
        // Another subdomain.
        client.goto(&url(&demo, "help", "/")).await.unwrap();
        widget_ready(&client).await;
        wait_until(
            &client,
            &visitor_count_is(1),
            "the conversation on help.chat.test",
        )
        .await;
        assert_eq!(session_id(&client).await.as_deref(), Some(id.as_str()));
        if store == "sqlite" {
            send(&client, "Great, thanks!").await;
            let png = client.screenshot().await.unwrap();
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("chatbox.png"), png).unwrap();
        }
        let jar = session_cookies(&client).await;
        let expected = shown(&client).await;
        client.close().await.unwrap();

        // The browser comes back with its cookie jar: the same session.
        let client = browser().await;
        // A page outside the session layer, to be on the site before the
        // cookie is put back.
        client
            .goto(&url(&demo, "www", "/admin/networks/127.0.0.1"))
            .await
            .unwrap();
        for cookie in jar {
            client.add_cookie(cookie).await.unwrap();
        }
        client.goto(&url(&demo, "www", "/")).await.unwrap();
        widget_ready(&client).await;
        wait_until(
            &client,
            &visitor_count_is(expected.len()),
            "the conversation after the restart",
        )
        .await;
        assert_eq!(shown(&client).await, expected, "{store}");
        assert_eq!(session_id(&client).await.as_deref(), Some(id.as_str()));
        client.close().await.unwrap();
    }
}

/// SPEC §3.2: in total privacy mode no cookie is set by visits, only by the
/// first message.
#[tokio::test]
async fn total_privacy_mode_sets_no_cookie_until_the_visitor_writes() {
    let _one = one_at_a_time().await;
    for (store, demo) in demos(&[("SESSION_PRIVACY", "total")]) {
        let client = browser().await;
        client.goto(&url(&demo, "www", "/")).await.unwrap();
        widget_ready(&client).await;
        client.goto(&url(&demo, "www", "/help")).await.unwrap();
        widget_ready(&client).await;
        assert!(
            client.get_all_cookies().await.unwrap().is_empty(),
            "{store}: no cookie from visits"
        );
        send(&client, "Now you may remember me").await;
        assert_eq!(session_cookies(&client).await.len(), 1, "{store}");
        client.close().await.unwrap();
    }
}

/// SPEC §3.5, §6: "Start over" unbinds the browser; exactly one new session
/// exists afterwards (the old one, with its conversation, stays for the
/// agents).
#[tokio::test]
async fn start_over_unbinds_the_browser_and_leaves_exactly_one_new_session() {
    let _one = one_at_a_time().await;
    let redis = RedisServer::start();
    let demo = Demo::start(&[("REDIS_URL", &redis.url())]);
    let sessions = || {
        let keys: Vec<String> = redis.query(&["KEYS", "vs:{*}"]);
        let mut ids: Vec<String> = keys.into_iter().filter(|k| k.ends_with('}')).collect();
        ids.sort();
        ids
    };
    let client = browser().await;
    client.goto(&url(&demo, "www", "/")).await.unwrap();
    widget_ready(&client).await;
    send(&client, "Please forget me after this").await;
    let before = session_id(&client).await.unwrap();
    assert_eq!(sessions().len(), 1);
    // "Start over" asks first; "Cancel" keeps everything.
    click(&client, "reset").await;
    wait_until(
        &client,
        "!document.getElementById('confirm-reset').hidden",
        "the confirmation",
    )
    .await;
    click(&client, "confirm-no").await;
    assert_eq!(shown(&client).await, ["Please forget me after this"]);
    assert_eq!(session_id(&client).await.as_deref(), Some(before.as_str()));
    click(&client, "reset").await;
    wait_until(
        &client,
        "!document.getElementById('confirm-reset').hidden",
        "the confirmation",
    )
    .await;
    click(&client, "confirm-yes").await;
    wait_until(
        &client,
        "document.querySelector('#messages li.empty') !== null",
        "the emptied conversation",
    )
    .await;
    let after = session_id(&client).await.expect("a fresh session");
    assert_ne!(after, before);
    // Browsing on creates nothing more.
    client.goto(&url(&demo, "www", "/help")).await.unwrap();
    widget_ready(&client).await;
    client.goto(&url(&demo, "www", "/")).await.unwrap();
    widget_ready(&client).await;
    assert_eq!(session_id(&client).await.as_deref(), Some(after.as_str()));
    assert_eq!(
        sessions().len(),
        2,
        "the kept conversation and one new session"
    );
    assert!(shown(&client).await.is_empty());
    client.close().await.unwrap();
}

/// SPEC §3.1: a temporary session gone after its idle TTL gives a fresh one,
/// and the widget shows no error.
#[tokio::test]
async fn an_expired_session_gives_a_fresh_one_without_an_error() {
    let _one = one_at_a_time().await;
    let demo = Demo::start(&[("SESSION_IDLE_TTL", "1")]);
    let client = browser().await;
    client.goto(&url(&demo, "www", "/")).await.unwrap();
    widget_ready(&client).await;
    let first = session_id(&client).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    client.refresh().await.unwrap();
    widget_ready(&client).await;
    let second = session_id(&client).await.unwrap();
    assert_ne!(second, first, "a fresh session");
    let status = client.find(Locator::Id("status")).await.unwrap();
    assert_eq!(status.text().await.unwrap(), "", "no error shown");
    client.close().await.unwrap();
}

/// SPEC §4, §6: with Redis stopped mid-conversation the widget says so
/// plainly, shows no internal text and keeps what it showed; once Redis is
/// back the message sent meanwhile arrives, once, and the conversation is
/// whole.
#[tokio::test]
async fn a_redis_outage_is_told_plainly_and_loses_nothing() {
    let _one = one_at_a_time().await;
    let mut redis = RedisServer::start_durable();
    let demo = Demo::start(&[("REDIS_URL", &redis.url())]);
    let client = browser().await;
    client.goto(&url(&demo, "www", "/")).await.unwrap();
    widget_ready(&client).await;
    send(&client, "Before the outage").await;
    redis.stop();
    type_and_send(&client, "During the outage").await;
    wait_until(
        &client,
        &format!(
            "document.getElementById('status').textContent === {}",
            json!(UNAVAILABLE)
        ),
        "the outage message",
    )
    .await;
    let page = client.source().await.unwrap();
    for internal in ["os error", "refused", "Connection", "Redis"] {
        assert!(!page.contains(internal), "the page shows {internal:?}");
    }
    assert_eq!(
        shown(&client).await,
        ["Before the outage"],
        "kept on screen"
    );
    let disabled = client
        .find(Locator::Id("send-button"))
        .await
        .unwrap()
        .prop("disabled")
        .await
        .unwrap();
    assert_eq!(disabled.as_deref(), Some("true"), "one send at a time");
    let started = tokio::task::spawn_blocking(move || {
        redis.start_again();
        redis
    })
    .await
    .unwrap();
    // The widget retries the pending message with the same id.
    wait_until(
        &client,
        &format!(
            "[...document.querySelectorAll('{VISITOR_SENT} .text')]\
             .some((t) => t.textContent === 'During the outage')"
        ),
        "the retried message",
    )
    .await;
    client.refresh().await.unwrap();
    widget_ready(&client).await;
    wait_until(
        &client,
        &format!("document.querySelectorAll('{VISITOR_SENT}').length >= 2"),
        "the conversation after the outage",
    )
    .await;
    assert_eq!(
        shown(&client).await,
        ["Before the outage", "During the outage"],
        "whole, and the retried message once"
    );
    client.close().await.unwrap();
    drop(started);
}

/// SPEC §6: the widget loads the latest page of a long conversation and the
/// earlier messages on demand, each with its time.
#[tokio::test]
async fn the_widget_shows_the_latest_page_and_earlier_messages_on_demand() {
    let _one = one_at_a_time().await;
    let demo = Demo::start(&[("SESSION_STORE", "memory")]);
    let client = browser().await;
    client.goto(&url(&demo, "www", "/")).await.unwrap();
    widget_ready(&client).await;
    // Sixty messages from this page, as the widget would send them.
    client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             (async () => {
               for (let i = 0; i < 60; i++) {
                 await fetch('/api/messages', {
                   method: 'POST',
                   headers: { 'content-type': 'application/json' },
                   body: JSON.stringify({ id: 'h' + i, text: 'history ' + i }),
                 });
               }
             })().then(() => done(true));",
            vec![],
        )
        .await
        .unwrap();
    client.refresh().await.unwrap();
    widget_ready(&client).await;
    // The latest page: 50 messages, the newest last, and the way back.
    wait_until(&client, &visitor_count_is(50), "the latest page").await;
    let latest = shown(&client).await;
    assert_eq!(
        (latest[0].as_str(), latest[49].as_str()),
        ("history 10", "history 59")
    );
    wait_until(
        &client,
        "!document.getElementById('earlier').hidden",
        "the earlier-messages button",
    )
    .await;
    click(&client, "earlier").await;
    wait_until(&client, &visitor_count_is(60), "the earlier page").await;
    let all = shown(&client).await;
    assert_eq!(all[0], "history 0");
    assert_eq!(all.len(), 60);
    let untimed = client
        .execute(
            "return document.querySelectorAll('#messages li:not(.empty):not(:has(time))').length;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(untimed, json!(0), "every message shows its time");
    wait_until(
        &client,
        "document.getElementById('earlier').hidden",
        "no more earlier messages",
    )
    .await;
    // A phone: the panel takes the width of the screen, and the input's
    // 16 px text keeps iOS from zooming into it.
    client.set_window_size(390, 844).await.unwrap();
    wait_until(
        &client,
        "(() => { const r = document.getElementById('chat').getBoundingClientRect(); \
           return r.left >= 0 && r.right <= innerWidth && r.width >= innerWidth - 24; })()",
        "a full-width panel on a small screen",
    )
    .await;
    let size = client
        .execute(
            "return getComputedStyle(document.getElementById('text')).fontSize;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(size, json!("16px"));
    client.close().await.unwrap();
}
