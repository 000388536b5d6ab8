//! [`SessionConfig`]: every setting of the layer, validated once when the
//! layer is built (SPEC §2, §3).
//!
//! This file holds the settings, their builder methods and [`validate`]
//! (errors name the builder method); `env.rs` reads SPEC §6's environment
//! variables on top of them (errors name the variable).
//!
//! [`validate`]: SessionConfig::validate

mod env;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::client_ip::TrustedProxies;
use crate::domain::{is_dns_name, is_public_suffix};
use crate::error::ConfigError;
use crate::store::{DataLimits, StorePolicy};
use crate::token::{ContinuityTokens, MIN_SECRET_LEN};

/// Cookie `Max-Age` by default: 182.5 days, "6 months" (SPEC §2).
pub const DEFAULT_COOKIE_MAX_AGE: Duration = Duration::from_secs(15_768_000);
/// Idle lifetime of a temporary session by default: 30 minutes (SPEC §3.1).
pub const DEFAULT_IDLE_TTL: Duration = Duration::from_secs(30 * 60);
/// Longest cookie `Max-Age` accepted: 400 days, the cap browsers apply anyway.
pub const MAX_COOKIE_MAX_AGE: Duration = Duration::from_secs(400 * 24 * 3600);
/// Longest duration accepted for any TTL, retention or window: 100 years.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// The legal minimum for keeping IPs, the default
/// [`retention_floor`](SessionConfig::retention_floor): one year, for legal
/// requests (SPEC §3.3, §3.6).
pub const MIN_IP_LOG_RETENTION: Duration = Duration::from_secs(365 * 24 * 3600);
/// The most addresses one IP log holds by default (SPEC §3.3).
pub const DEFAULT_IP_LOG_MAX_ENTRIES: u32 = 1_000;
/// The highest [`SessionConfig::ip_log_max_entries`] accepted.
const MAX_IP_LOG_ENTRIES: u32 = 100_000;
/// How long per-network statistics are kept after their latest event by
/// default: one year (SPEC §3.6).
pub const DEFAULT_NETWORK_RETENTION: Duration = MIN_IP_LOG_RETENTION;

/// Where the session cookie applies (SPEC §2, `Domain`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CookieDomain {
    /// The registrable domain of the request host (public-suffix list), so
    /// `a.example.com` and `b.example.com` share one session. No `Domain`
    /// attribute for IP addresses, `localhost` and single-label hosts.
    #[default]
    Auto,
    /// Always this domain.
    Fixed(String),
    /// No `Domain` attribute: the cookie stays on the exact host.
    HostOnly,
}

/// Whether a visit creates a session by itself (SPEC §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PrivacyMode {
    /// A request without a valid session creates a temporary one and sets the cookie.
    #[default]
    Standard,
    /// Nothing is created, no cookie set and the store not called until the
    /// handler calls [`Session::start`](crate::Session::start) or writes.
    Total,
}

/// What the layer does when the store fails while loading a session (SPEC §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailureMode {
    /// Serve the request without a session; the handler sees
    /// [`Session::error`](crate::Session::error). No cookie change.
    #[default]
    Open,
    /// Answer `503 Service Unavailable` without calling the handler.
    Closed,
}

/// What happens to a visitor over the new-session limit (SPEC §3.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LimitAction {
    /// Serve the request without creating a session (privacy-mode behaviour).
    #[default]
    Skip,
    /// Answer `429 Too Many Requests` with `Retry-After`.
    TooManyRequests,
}

/// At most `max` new sessions per client network (an IPv4 address or an IPv6
/// /64) per `window` (SPEC §3.6).
///
/// ```
/// use std::time::Duration;
/// use visitor_session::{LimitAction, NewSessionLimit, SessionConfig};
///
/// let limit = NewSessionLimit::new(20, Duration::from_secs(60))
///     .action(LimitAction::TooManyRequests);
/// let config = SessionConfig::new().new_session_limit(Some(limit));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct NewSessionLimit {
    /// Sessions allowed per window.
    pub max: u32,
    /// Length of the window.
    pub window: Duration,
    /// What to do with a request over the limit.
    pub action: LimitAction,
}

impl NewSessionLimit {
    /// At most `max` new sessions per network per `window`; a request over the
    /// limit is served without a session ([`LimitAction::Skip`]).
    pub const fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            action: LimitAction::Skip,
        }
    }

    /// What to do with a request over the limit (default [`LimitAction::Skip`]).
    pub const fn action(mut self, action: LimitAction) -> Self {
        self.action = action;
        self
    }
}

type ConsentFn = dyn Fn(&http::request::Parts) -> bool + Send + Sync;

/// The configuration of a [`SessionLayer`](crate::SessionLayer).
///
/// Built with chained methods that take and return `Self`; checked once by
/// [`SessionLayer::new`](crate::SessionLayer::new), which returns a
/// [`ConfigError`] naming the bad setting.
///
/// ```
/// use std::time::Duration;
/// use visitor_session::{SessionConfig, PrivacyMode};
///
/// let config = SessionConfig::new()
///     .site_id("8c842203-7ed8-4e29-a608-7cf78a7d2fcc")
///     .idle_ttl(Duration::from_secs(30 * 60))
///     .privacy(PrivacyMode::Total);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone)]
#[must_use]
pub struct SessionConfig {
    pub(crate) cookie_prefix: String,
    pub(crate) site_id: Option<String>,
    pub(crate) cookie_max_age: Duration,
    pub(crate) domain: CookieDomain,
    pub(crate) domain_allow_list: Vec<String>,
    pub(crate) cross_origin: bool,
    pub(crate) partitioned: bool,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
    pub(crate) idle_ttl: Duration,
    pub(crate) permanent_retention: Option<Duration>,
    pub(crate) ip_log_retention: Option<Duration>,
    pub(crate) ip_log_max_entries: u32,
    pub(crate) network_retention: Duration,
    pub(crate) network_statistics: bool,
    pub(crate) retention_floor: Duration,
    pub(crate) privacy: PrivacyMode,
    pub(crate) consent: Option<Arc<ConsentFn>>,
    pub(crate) trusted_proxies: TrustedProxies,
    pub(crate) store_timeout: Duration,
    pub(crate) failure_mode: FailureMode,
    pub(crate) limits: DataLimits,
    pub(crate) new_session_limit: Option<NewSessionLimit>,
    pub(crate) continuity: Option<ContinuityTokens>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("cookie_name", &self.cookie_name())
            .field("cookie_max_age", &self.cookie_max_age)
            .field("domain", &self.domain)
            .field("domain_allow_list", &self.domain_allow_list)
            .field("cross_origin", &self.cross_origin)
            .field("partitioned", &self.partitioned)
            .field("secure", &self.secure)
            .field("http_only", &self.http_only)
            .field("idle_ttl", &self.idle_ttl)
            .field("permanent_retention", &self.permanent_retention)
            .field("ip_log_retention", &self.ip_log_retention)
            .field("ip_log_max_entries", &self.ip_log_max_entries)
            .field("network_retention", &self.network_retention)
            .field("network_statistics", &self.network_statistics)
            .field("retention_floor", &self.retention_floor)
            .field("privacy", &self.privacy)
            .field("consent", &self.consent.as_ref().map(|_| "<fn>"))
            .field("trusted_proxies", &self.trusted_proxies)
            .field("store_timeout", &self.store_timeout)
            .field("failure_mode", &self.failure_mode)
            .field("limits", &self.limits)
            .field("new_session_limit", &self.new_session_limit)
            .field("continuity", &self.continuity)
            .finish()
    }
}

impl SessionConfig {
    /// The defaults of SPEC §2 and §3: cookie `crisp-client/session`, 6 months,
    /// auto domain, `SameSite=Lax; Secure; HttpOnly`, 30-minute idle TTL,
    /// standard mode, fail-open, no trusted proxy, 1 s store timeout.
    pub fn new() -> Self {
        Self {
            cookie_prefix: "crisp-client/".to_owned(),
            site_id: None,
            cookie_max_age: DEFAULT_COOKIE_MAX_AGE,
            domain: CookieDomain::Auto,
            domain_allow_list: Vec::new(),
            cross_origin: false,
            partitioned: false,
            secure: true,
            http_only: true,
            idle_ttl: DEFAULT_IDLE_TTL,
            permanent_retention: None,
            ip_log_retention: None,
            ip_log_max_entries: DEFAULT_IP_LOG_MAX_ENTRIES,
            network_retention: DEFAULT_NETWORK_RETENTION,
            network_statistics: true,
            retention_floor: MIN_IP_LOG_RETENTION,
            privacy: PrivacyMode::Standard,
            consent: None,
            trusted_proxies: TrustedProxies::none(),
            store_timeout: Duration::from_secs(1),
            failure_mode: FailureMode::Open,
            limits: DataLimits::default(),
            new_session_limit: None,
            continuity: None,
        }
    }

    /// The lifetimes and data limits the store applies, from this configuration.
    pub fn store_policy(&self) -> StorePolicy {
        StorePolicy {
            idle_ttl: self.idle_ttl,
            permanent_retention: self.permanent_retention,
            ip_log_retention: self.ip_log_retention,
            ip_log_max_entries: self.ip_log_max_entries,
            network_retention: self.network_retention,
            count_networks: self.network_statistics,
            limits: self.limits,
            token_required: self
                .continuity
                .as_ref()
                .is_none_or(ContinuityTokens::token_required),
        }
    }

    /// The site id appended to the cookie name (`crisp-client/session/<site_id>`).
    pub fn site_id(mut self, site_id: impl Into<String>) -> Self {
        self.site_id = Some(site_id.into());
        self
    }

    /// The cookie-name prefix (default `crisp-client/`).
    pub fn cookie_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.cookie_prefix = prefix.into();
        self
    }

    /// The cookie `Max-Age` (whole seconds, above 0; default 15 768 000 s).
    pub fn cookie_max_age(mut self, max_age: Duration) -> Self {
        self.cookie_max_age = max_age;
        self
    }

    /// The cookie `Domain` policy (default [`CookieDomain::Auto`]).
    pub fn domain(mut self, domain: CookieDomain) -> Self {
        self.domain = domain;
        self
    }

    /// Registrable domains an auto `Domain` may be used for; other hosts get a host-only cookie.
    pub fn domain_allow_list<I, D>(mut self, domains: I) -> Self
    where
        I: IntoIterator<Item = D>,
        D: Into<String>,
    {
        self.domain_allow_list = domains
            .into_iter()
            .map(|d| d.into().trim().trim_end_matches('.').to_ascii_lowercase())
            .collect();
        self
    }

    /// Cross-origin mode: `SameSite=None; Secure` for widgets in third-party iframes.
    pub fn cross_origin(mut self, on: bool) -> Self {
        self.cross_origin = on;
        self
    }

    /// Adds `Partitioned` (CHIPS) in cross-origin mode.
    pub fn partitioned(mut self, on: bool) -> Self {
        self.partitioned = on;
        self
    }

    /// The `Secure` attribute (default on; turn off for plain-http development only).
    pub fn secure(mut self, on: bool) -> Self {
        self.secure = on;
        self
    }

    /// The `HttpOnly` attribute (default on).
    pub fn http_only(mut self, on: bool) -> Self {
        self.http_only = on;
        self
    }

    /// How long a temporary session lives after its last access (default 30 min).
    pub fn idle_ttl(mut self, ttl: Duration) -> Self {
        self.idle_ttl = ttl;
        self
    }

    /// Optional lifetime of a permanent session after its last access (default: none, kept until deleted).
    pub fn permanent_retention(mut self, retention: Option<Duration>) -> Self {
        self.permanent_retention = retention;
        self
    }

    /// How long IP-log entries of permanent sessions are kept after last
    /// seen (default: kept; at least the [`retention_floor`](Self::retention_floor)).
    pub fn ip_log_retention(mut self, retention: Option<Duration>) -> Self {
        self.ip_log_retention = retention;
        self
    }

    /// The most addresses one permanent session's IP log holds (default
    /// 1 000, at most 100 000); past it the least recently seen address gives
    /// way and the log counts how many did (SPEC §3.3). One session seen
    /// from more addresses than that is not one visitor.
    pub fn ip_log_max_entries(mut self, max: u32) -> Self {
        self.ip_log_max_entries = max;
        self
    }

    /// How long a client network's statistics
    /// ([`NetworkStats`](crate::store::NetworkStats)) are kept after the
    /// latest session created or conversation started from it (default one
    /// year; at least the [`retention_floor`](Self::retention_floor)).
    pub fn network_retention(mut self, retention: Duration) -> Self {
        self.network_retention = retention;
        self
    }

    /// Whether the per-network statistics of SPEC §3.6 are kept (default
    /// on). On Redis Cluster they cost one more call per creation and per
    /// conversation started (their key is in another slot than the
    /// session's); turning them off there makes every request cost what it
    /// costs on one server.
    pub fn network_statistics(mut self, on: bool) -> Self {
        self.network_statistics = on;
        self
    }

    /// The shortest IP retention the other settings may ask for (default
    /// [`MIN_IP_LOG_RETENTION`], one year, the legal minimum this crate
    /// assumes). Lower it only where the law that applies to the site allows,
    /// or in tests.
    pub fn retention_floor(mut self, floor: Duration) -> Self {
        self.retention_floor = floor;
        self
    }

    /// Standard or total privacy mode (default standard).
    pub fn privacy(mut self, mode: PrivacyMode) -> Self {
        self.privacy = mode;
        self
    }

    /// A consent gate: while it returns false for a request, creation behaves as in total privacy mode.
    pub fn consent<F>(mut self, gate: F) -> Self
    where
        F: Fn(&http::request::Parts) -> bool + Send + Sync + 'static,
    {
        self.consent = Some(Arc::new(gate));
        self
    }

    /// Proxies whose forwarding headers are believed (default none).
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// Upper bound on every store call made by the layer (default 1 s).
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// Fail-open or fail-closed when loading fails (default open).
    pub fn failure_mode(mut self, mode: FailureMode) -> Self {
        self.failure_mode = mode;
        self
    }

    /// Most data keys one session may hold (default 64).
    pub fn max_keys(mut self, max: usize) -> Self {
        self.limits = DataLimits::new(max, self.limits.max_bytes());
        self
    }

    /// Most bytes (keys plus JSON values) one session's data may take (default 64 KiB).
    pub fn max_data_bytes(mut self, max: usize) -> Self {
        self.limits = DataLimits::new(self.limits.max_keys(), max);
        self
    }

    /// Session continuity tokens: one session for a logged-in user's browsers
    /// and devices (SPEC §3.7; default: none).
    pub fn continuity(mut self, tokens: ContinuityTokens) -> Self {
        self.continuity = Some(tokens);
        self
    }

    /// Limits new sessions per client network (default: no limit).
    pub fn new_session_limit(mut self, limit: Option<NewSessionLimit>) -> Self {
        self.new_session_limit = limit;
        self
    }

    /// The cookie name before percent-encoding (`crisp-client/session/<site_id>`).
    pub fn cookie_name(&self) -> String {
        match &self.site_id {
            Some(site) => format!("{}session/{site}", self.cookie_prefix),
            None => format!("{}session", self.cookie_prefix),
        }
    }

    /// Checks every setting.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the builder method of the first bad setting
    /// and saying what it accepts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_cookie()?;
        self.check_lifetimes()?;
        self.check_limits()?;
        self.check_continuity()
    }
}

/// The checks of [`SessionConfig::validate`], one group of settings each.
impl SessionConfig {
    /// The cookie's name, lifetime, domain and attributes (SPEC §2, §5).
    fn check_cookie(&self) -> Result<(), ConfigError> {
        let name_ok = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        };
        if !name_ok(&self.cookie_prefix) {
            return Err(ConfigError::new(
                "cookie_prefix",
                "use only ASCII letters, digits, `-`, `_`, `.` and `/`",
            ));
        }
        if let Some(site) = &self.site_id {
            if site.is_empty() || site.len() > 64 || !name_ok(site) || site.contains('/') {
                return Err(ConfigError::new(
                    "site_id",
                    "use 1 to 64 ASCII letters, digits, `-`, `_` or `.`",
                ));
            }
        }
        let secs = self.cookie_max_age.as_secs();
        if secs == 0
            || self.cookie_max_age.subsec_nanos() != 0
            || self.cookie_max_age > MAX_COOKIE_MAX_AGE
        {
            return Err(ConfigError::new(
                "cookie_max_age",
                "the cookie max-age is a whole number of seconds from 1 to 34560000 (400 days, \
                 the longest browsers keep a cookie)",
            ));
        }
        if let CookieDomain::Fixed(d) = &self.domain {
            let d = d.trim_start_matches('.');
            if !is_dns_name(d) {
                return Err(ConfigError::new(
                    "domain",
                    format!("{d:?} is not `auto`, `host` or a domain name"),
                ));
            }
            if is_public_suffix(d) {
                return Err(ConfigError::new(
                    "domain",
                    format!(
                        "{d:?} is a public suffix (like `com`, `co.uk` or `github.io`): a \
                         cookie for it would go to every site registered under it, and \
                         browsers refuse it; use your site's own domain, such as \
                         `example.co.uk`, `auto` or `host`"
                    ),
                ));
            }
        }
        if self.partitioned && !self.cross_origin {
            return Err(ConfigError::new(
                "partitioned",
                "`Partitioned` needs cross-origin mode (`SameSite=None; Secure`)",
            ));
        }
        if self.cross_origin && !self.secure {
            return Err(ConfigError::new(
                "secure",
                "cross-origin mode sends `SameSite=None`, which browsers accept only with `Secure`",
            ));
        }
        Ok(())
    }

    /// TTLs, retentions and timeouts: in range, and IP retentions above the floor.
    fn check_lifetimes(&self) -> Result<(), ConfigError> {
        for (setting, value) in [
            ("idle_ttl", Some(self.idle_ttl)),
            ("permanent_retention", self.permanent_retention),
            ("ip_log_retention", self.ip_log_retention),
            ("network_retention", Some(self.network_retention)),
            (
                "new_session_limit",
                self.new_session_limit.map(|l| l.window),
            ),
            ("store_timeout", Some(self.store_timeout)),
        ] {
            if value.is_some_and(|v| v > MAX_DURATION) {
                return Err(ConfigError::new(setting, "durations are at most 100 years"));
            }
        }
        if self.idle_ttl < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "idle_ttl",
                "the idle TTL is at least 1 second",
            ));
        }
        if let Some(r) = self.permanent_retention {
            if r < self.idle_ttl {
                return Err(ConfigError::new(
                    "permanent_retention",
                    "a permanent session's retention cannot be shorter than the idle TTL",
                ));
            }
        }
        let floor = format!(
            "at least the retention floor, {} s (one year by default, for legal requests; \
             lower `retention_floor` only where the law allows)",
            self.retention_floor.as_secs()
        );
        if self
            .ip_log_retention
            .is_some_and(|r| r < self.retention_floor)
        {
            return Err(ConfigError::new(
                "ip_log_retention",
                format!("IP logs are kept {floor}"),
            ));
        }
        if self.network_retention < self.retention_floor {
            return Err(ConfigError::new(
                "network_retention",
                format!("per-network statistics are kept {floor}"),
            ));
        }
        if self.network_retention.is_zero() {
            return Err(ConfigError::new(
                "network_retention",
                "per-network statistics are kept for a time above 0",
            ));
        }
        if self.store_timeout.is_zero() {
            return Err(ConfigError::new(
                "store_timeout",
                "the store timeout is above 0",
            ));
        }
        Ok(())
    }

    /// What a client can make the server keep: data, IP log, new sessions (SPEC §5).
    fn check_limits(&self) -> Result<(), ConfigError> {
        if self.limits.max_keys() == 0 {
            return Err(ConfigError::new(
                "max_keys",
                "a session may hold at least one key",
            ));
        }
        if self.limits.max_bytes() == 0 {
            return Err(ConfigError::new(
                "max_data_bytes",
                "a session's data may take at least one byte",
            ));
        }
        if !(1..=MAX_IP_LOG_ENTRIES).contains(&self.ip_log_max_entries) {
            return Err(ConfigError::new(
                "ip_log_max_entries",
                format!("an IP log holds from 1 to {MAX_IP_LOG_ENTRIES} addresses"),
            ));
        }
        if let Some(limit) = &self.new_session_limit {
            if limit.max == 0 || limit.window.is_zero() {
                return Err(ConfigError::new(
                    "new_session_limit",
                    "the new-session limit needs a count and a window above 0",
                ));
            }
        }
        Ok(())
    }

    /// The continuity tokens' secret (SPEC §3.7, §5).
    fn check_continuity(&self) -> Result<(), ConfigError> {
        if let Some(tokens) = &self.continuity {
            if tokens.secret_len() < MIN_SECRET_LEN {
                return Err(ConfigError::new(
                    "continuity",
                    format!(
                        "the continuity secret is at least {MIN_SECRET_LEN} bytes; use \
                         {MIN_SECRET_LEN} random bytes, e.g. from `openssl rand -base64 32`"
                    ),
                ));
            }
            if tokens.secret_repeats_one_byte() {
                return Err(ConfigError::new(
                    "continuity",
                    "the continuity secret is one byte repeated, a placeholder rather than \
                     a secret; use random bytes, e.g. from `openssl rand -base64 32`",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_spec_section_2() {
        let c = SessionConfig::new();
        assert_eq!(c.cookie_name(), "crisp-client/session");
        assert_eq!(c.cookie_max_age, Duration::from_secs(15_768_000));
        assert_eq!(c.idle_ttl, Duration::from_secs(1800));
        assert!(c.secure && c.http_only && !c.cross_origin);
        assert_eq!(c.domain, CookieDomain::Auto);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn site_id_is_appended_to_cookie_name() {
        let c = SessionConfig::new().site_id("abc-123");
        assert_eq!(c.cookie_name(), "crisp-client/session/abc-123");
    }

    #[test]
    fn partitioned_requires_cross_origin_and_cross_origin_requires_secure() {
        assert!(SessionConfig::new().partitioned(true).validate().is_err());
        assert!(
            SessionConfig::new()
                .cross_origin(true)
                .secure(false)
                .validate()
                .is_err()
        );
        assert!(
            SessionConfig::new()
                .cross_origin(true)
                .partitioned(true)
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn retentions_below_the_floor_need_the_floor_lowered() {
        let minute = Duration::from_secs(60);
        let err = SessionConfig::new()
            .network_retention(minute)
            .validate()
            .unwrap_err();
        assert_eq!(err.setting(), "network_retention");
        let lowered = SessionConfig::new()
            .retention_floor(minute)
            .network_retention(minute)
            .ip_log_retention(Some(minute));
        assert!(lowered.validate().is_ok());
        assert_eq!(lowered.store_policy().network_retention, minute);
    }

    #[test]
    fn ip_log_retention_is_at_least_a_year() {
        let day = Duration::from_secs(86_400);
        assert!(
            SessionConfig::new()
                .ip_log_retention(Some(day * 30))
                .validate()
                .is_err()
        );
        assert!(
            SessionConfig::new()
                .ip_log_retention(Some(day * 400))
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn site_id_cannot_break_the_cookie_name() {
        for bad in ["", "a b", "a;b", "a/b", "é"] {
            assert!(
                SessionConfig::new().site_id(bad).validate().is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn builder_errors_name_the_builder_setting() {
        let second = Duration::from_secs(1);
        for (config, setting) in [
            (
                SessionConfig::new().cookie_max_age(Duration::ZERO),
                "cookie_max_age",
            ),
            (
                SessionConfig::new().cookie_max_age(second * 34_560_001),
                "cookie_max_age",
            ),
            (
                SessionConfig::new().idle_ttl(Duration::from_millis(500)),
                "idle_ttl",
            ),
            (
                SessionConfig::new().domain(CookieDomain::Fixed("a b.com".into())),
                "domain",
            ),
            (
                SessionConfig::new().domain(CookieDomain::Fixed(".".into())),
                "domain",
            ),
            (SessionConfig::new().max_keys(0), "max_keys"),
            (SessionConfig::new().max_data_bytes(0), "max_data_bytes"),
            (
                SessionConfig::new().store_timeout(Duration::ZERO),
                "store_timeout",
            ),
            (
                SessionConfig::new().new_session_limit(Some(NewSessionLimit::new(0, second))),
                "new_session_limit",
            ),
            (
                SessionConfig::new()
                    .new_session_limit(Some(NewSessionLimit::new(1, second * 4_000_000_000))),
                "new_session_limit",
            ),
        ] {
            let err = config.validate().expect_err(setting);
            assert_eq!(err.setting(), setting, "{err}");
            assert!(err.to_string().contains(setting), "{err}");
        }
    }

    #[test]
    fn a_fixed_domain_that_is_a_public_suffix_is_refused() {
        // SPEC §5: a cookie for `co.uk` would reach every site under it.
        for suffix in ["co.uk", "com", "github.io", ".CO.UK", "localhost"] {
            let err = SessionConfig::new()
                .domain(CookieDomain::Fixed(suffix.into()))
                .validate()
                .expect_err(suffix);
            assert_eq!(err.setting(), "domain", "{suffix}");
            assert!(err.to_string().contains("public suffix"), "{err}");
        }
        for own in ["example.co.uk", "chat.github.io", "example.com"] {
            let config = SessionConfig::new().domain(CookieDomain::Fixed(own.into()));
            assert!(config.validate().is_ok(), "{own}");
        }
    }

    fn with_secret(secret: &[u8]) -> SessionConfig {
        SessionConfig::new().continuity(ContinuityTokens::new(secret, |_| None))
    }

    #[test]
    fn a_continuity_secret_shorter_than_32_bytes_is_refused() {
        // SPEC §5: a token secret shorter than 32 bytes.
        let err = with_secret(b"0123456789abcdef0123456789abcde")
            .validate()
            .unwrap_err();
        assert_eq!(err.setting(), "continuity");
        assert!(err.to_string().contains("32 bytes"), "{err}");
        assert!(
            with_secret(b"0123456789abcdef0123456789abcdef")
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn a_continuity_secret_of_one_repeated_byte_is_refused() {
        // SPEC §5: 32 x `a` has the length of a secret and none of its randomness.
        for byte in [b'a', 0, 0xff] {
            let err = with_secret(&[byte; 64]).validate().unwrap_err();
            assert_eq!(err.setting(), "continuity");
            assert!(err.to_string().contains("random bytes"), "{err}");
        }
    }

    #[test]
    fn a_fixed_domain_may_start_with_a_dot() {
        let config = SessionConfig::new().domain(CookieDomain::Fixed(".chat.test".into()));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn network_statistics_can_be_turned_off() {
        assert!(SessionConfig::new().store_policy().count_networks);
        let off = SessionConfig::new().network_statistics(false);
        assert!(!off.store_policy().count_networks);
    }

    #[test]
    fn data_limits_are_set_one_at_a_time() {
        let config = SessionConfig::new().max_keys(5).max_data_bytes(100);
        assert_eq!(config.store_policy().limits, DataLimits::new(5, 100));
    }
}
