//! The environment reader: SPEC §6's variables on top of a [`SessionConfig`].
//!
//! The only place that knows environment-variable names. Errors from a
//! variable it read name that variable; errors from a setting it did not
//! touch keep the builder setting's name.

use std::time::Duration;

use super::{CookieDomain, LimitAction, NewSessionLimit, PrivacyMode, SessionConfig};
use crate::client_ip::{ClientIpHeader, TrustedProxies};
use crate::error::ConfigError;

/// Each variable the reader knows and the builder setting it fills.
const VARIABLES: [(&str, &str); 8] = [
    ("SESSION_COOKIE_EXPIRE", "cookie_max_age"),
    ("SESSION_COOKIE_DOMAIN", "domain"),
    ("SESSION_IDLE_TTL", "idle_ttl"),
    ("SESSION_PRIVACY", "privacy"),
    ("SESSION_SECURE", "secure"),
    ("TRUSTED_PROXIES", "trusted_proxies"),
    ("TRUSTED_PROXY_HEADER", "TrustedProxies::header"),
    ("SESSION_NEW_PER_IP", "new_session_limit"),
];

impl SessionConfig {
    /// Reads the settings of SPEC §6 from the process environment on top of
    /// the defaults: `SESSION_COOKIE_EXPIRE` (seconds), `SESSION_COOKIE_DOMAIN`
    /// (`auto`, `host` or a domain), `SESSION_IDLE_TTL` (seconds),
    /// `SESSION_PRIVACY` (`standard` or `total`), `SESSION_SECURE`,
    /// `TRUSTED_PROXIES` (comma-separated CIDRs), `TRUSTED_PROXY_HEADER`
    /// (the one header those proxies write: `x-forwarded-for`, the default,
    /// `forwarded`, or a single-address header such as `x-real-ip`; see
    /// [`ClientIpHeader`]), `SESSION_NEW_PER_IP` (`<count>/<seconds>`) and
    /// `SESSION_LIMIT_ACTION` (`skip` or `429`). Unset variables keep the
    /// default.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the environment variable whose value does not
    /// parse or fails [`validate`](Self::validate), or `SESSION_LIMIT_ACTION`
    /// when it is set with no new-session limit to act on.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::new().with_vars(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), with variables looked up by `var`
    /// and applied on top of `self`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the variable whose value does not parse or
    /// fails [`validate`](Self::validate); a bad setting that no variable
    /// touched keeps its builder name.
    pub fn with_vars(self, var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let set = |setting: &str| {
            VARIABLES
                .iter()
                .find(|(name, s)| *s == setting && var(name).is_some())
                .map(|(name, _)| *name)
        };
        self.apply_vars(&var)
            .and_then(|config| config.validate().map(|()| config))
            .map_err(|error| match set(error.setting()) {
                Some(variable) => error.for_setting(variable),
                None => error,
            })
    }

    fn apply_vars(mut self, var: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        if let Some(v) = var("SESSION_COOKIE_EXPIRE") {
            self.cookie_max_age = secs("SESSION_COOKIE_EXPIRE", &v)?;
        }
        if let Some(v) = var("SESSION_COOKIE_DOMAIN") {
            self.domain = match v.trim() {
                "auto" => CookieDomain::Auto,
                "host" => CookieDomain::HostOnly,
                d => CookieDomain::Fixed(d.to_owned()),
            };
        }
        if let Some(v) = var("SESSION_IDLE_TTL") {
            self.idle_ttl = secs("SESSION_IDLE_TTL", &v)?;
        }
        if let Some(v) = var("SESSION_PRIVACY") {
            self.privacy = match v.trim() {
                "standard" => PrivacyMode::Standard,
                "total" => PrivacyMode::Total,
                other => return Err(neither("SESSION_PRIVACY", other, "standard", "total")),
            };
        }
        if let Some(v) = var("SESSION_SECURE") {
            self.secure = match v.trim() {
                "true" | "1" => true,
                "false" | "0" => false,
                other => return Err(neither("SESSION_SECURE", other, "true", "false")),
            };
        }
        if let Some(v) = var("TRUSTED_PROXIES") {
            // The list replaces the networks only: a header chosen in code stays.
            let header = self.trusted_proxies.client_ip_header().clone();
            self.trusted_proxies = TrustedProxies::parse(&v)?.header(header);
        }
        if let Some(v) = var("TRUSTED_PROXY_HEADER") {
            let header = v.parse::<ClientIpHeader>()?;
            self.trusted_proxies = std::mem::take(&mut self.trusted_proxies).header(header);
        }
        let action = match var("SESSION_LIMIT_ACTION") {
            None => None,
            Some(v) => Some(match v.trim() {
                "skip" => LimitAction::Skip,
                "429" => LimitAction::TooManyRequests,
                other => return Err(neither("SESSION_LIMIT_ACTION", other, "skip", "429")),
            }),
        };
        if let Some(v) = var("SESSION_NEW_PER_IP") {
            let bad = || {
                ConfigError::new(
                    "SESSION_NEW_PER_IP",
                    format!("{v:?} is not `<count>/<seconds>` with both numbers above 0"),
                )
            };
            let (count, window) = v.trim().split_once('/').ok_or_else(bad)?;
            let max: u32 = count.trim().parse().map_err(|_| bad())?;
            let window = secs("SESSION_NEW_PER_IP", window).map_err(|_| bad())?;
            if max == 0 {
                return Err(bad());
            }
            self.new_session_limit = Some(NewSessionLimit::new(max, window));
        }
        match (self.new_session_limit.as_mut(), action) {
            (Some(limit), Some(action)) => limit.action = action,
            // SPEC §5: an operator who asked for `429` and got no limit at
            // all would believe the site protected.
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "SESSION_LIMIT_ACTION",
                    "there is no new-session limit to act on; set `SESSION_NEW_PER_IP` \
                     (`<count>/<seconds>`) as well, or unset `SESSION_LIMIT_ACTION`",
                ));
            }
            (_, None) => {}
        }
        Ok(self)
    }
}

/// A whole number of seconds above 0.
fn secs(var: &'static str, value: &str) -> Result<Duration, ConfigError> {
    match value.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(Duration::from_secs(n)),
        _ => Err(ConfigError::new(
            var,
            format!("{value:?} is not a whole number of seconds above 0"),
        )),
    }
}

fn neither(var: &'static str, value: &str, one: &str, other: &str) -> ConfigError {
    ConfigError::new(var, format!("{value:?} is neither `{one}` nor `{other}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn environment_overrides_defaults() {
        let c = SessionConfig::new()
            .with_vars(vars(&[
                ("SESSION_COOKIE_EXPIRE", "3600"),
                ("SESSION_COOKIE_DOMAIN", "host"),
                ("SESSION_IDLE_TTL", "60"),
                ("SESSION_PRIVACY", "total"),
                ("SESSION_SECURE", "false"),
                ("TRUSTED_PROXIES", "10.0.0.0/8"),
                ("TRUSTED_PROXY_HEADER", "X-Real-IP"),
                ("SESSION_NEW_PER_IP", "5/60"),
                ("SESSION_LIMIT_ACTION", "429"),
            ]))
            .unwrap();
        assert_eq!(c.cookie_max_age, Duration::from_secs(3600));
        assert_eq!(c.domain, CookieDomain::HostOnly);
        assert_eq!(c.idle_ttl, Duration::from_secs(60));
        assert_eq!(c.privacy, PrivacyMode::Total);
        assert!(!c.secure);
        assert!(c.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
        assert_eq!(
            c.trusted_proxies.client_ip_header(),
            &ClientIpHeader::SingleAddress(http::HeaderName::from_static("x-real-ip"))
        );
        assert_eq!(
            c.new_session_limit,
            Some(
                NewSessionLimit::new(5, Duration::from_secs(60))
                    .action(LimitAction::TooManyRequests)
            )
        );
    }

    #[test]
    fn limit_action_alone_changes_a_configured_limit() {
        let c = SessionConfig::new()
            .new_session_limit(Some(NewSessionLimit::new(3, Duration::from_secs(10))))
            .with_vars(vars(&[("SESSION_LIMIT_ACTION", "429")]))
            .unwrap();
        assert_eq!(
            c.new_session_limit.map(|l| l.action),
            Some(LimitAction::TooManyRequests)
        );
    }

    #[test]
    fn trusted_proxy_header_defaults_to_x_forwarded_for() {
        // SPEC §3.3 and §6: `X-Forwarded-For` unless the operator names another.
        let c = SessionConfig::new()
            .with_vars(vars(&[("TRUSTED_PROXIES", "10.0.0.0/8")]))
            .unwrap();
        assert_eq!(
            c.trusted_proxies.client_ip_header(),
            &ClientIpHeader::XForwardedFor
        );
    }

    #[test]
    fn trusted_proxies_and_their_header_are_set_independently() {
        // A header chosen in code survives `TRUSTED_PROXIES`, and networks
        // chosen in code survive `TRUSTED_PROXY_HEADER`.
        let in_code = TrustedProxies::parse("192.168.0.0/16").unwrap();
        let c = SessionConfig::new()
            .trusted_proxies(in_code.clone().header(ClientIpHeader::Forwarded))
            .with_vars(vars(&[("TRUSTED_PROXIES", "10.0.0.0/8")]))
            .unwrap();
        assert_eq!(
            c.trusted_proxies,
            TrustedProxies::parse("10.0.0.0/8")
                .unwrap()
                .header(ClientIpHeader::Forwarded)
        );
        let c = SessionConfig::new()
            .trusted_proxies(in_code.clone())
            .with_vars(vars(&[("TRUSTED_PROXY_HEADER", "forwarded")]))
            .unwrap();
        assert_eq!(c.trusted_proxies, in_code.header(ClientIpHeader::Forwarded));
    }

    #[test]
    fn limit_action_without_a_limit_is_refused() {
        // SPEC §5: configuration that cannot be safe is refused, naming the setting.
        for action in ["skip", "429"] {
            let err = SessionConfig::new()
                .with_vars(vars(&[("SESSION_LIMIT_ACTION", action)]))
                .unwrap_err();
            assert_eq!(err.setting(), "SESSION_LIMIT_ACTION", "{action}");
            assert!(err.to_string().contains("SESSION_NEW_PER_IP"), "{err}");
        }
    }

    #[test]
    fn bad_environment_value_names_the_variable() {
        for (var, value) in [
            ("SESSION_COOKIE_EXPIRE", "0"),
            ("SESSION_COOKIE_EXPIRE", "soon"),
            ("SESSION_COOKIE_DOMAIN", "exa mple.com"),
            ("SESSION_IDLE_TTL", "-5"),
            ("SESSION_IDLE_TTL", "18446744073709551615"),
            ("SESSION_COOKIE_EXPIRE", "34560001"),
            ("SESSION_NEW_PER_IP", "1/18446744073709551615"),
            ("SESSION_PRIVACY", "paranoid"),
            ("SESSION_SECURE", "yes please"),
            ("TRUSTED_PROXIES", "10.0.0.0/99"),
            ("TRUSTED_PROXY_HEADER", "x real ip"),
            ("TRUSTED_PROXY_HEADER", ""),
            ("SESSION_COOKIE_DOMAIN", "co.uk"),
            ("SESSION_NEW_PER_IP", "5"),
            ("SESSION_NEW_PER_IP", "0/60"),
            ("SESSION_LIMIT_ACTION", "block"),
        ] {
            let err = SessionConfig::new()
                .with_vars(vars(&[(var, value)]))
                .expect_err(value);
            assert_eq!(err.setting(), var, "{value}");
            assert!(err.to_string().contains(var));
        }
    }

    #[test]
    fn a_bad_builder_setting_keeps_its_builder_name_under_the_environment() {
        let err = SessionConfig::new()
            .store_timeout(Duration::ZERO)
            .with_vars(vars(&[("SESSION_IDLE_TTL", "60")]))
            .unwrap_err();
        assert_eq!(err.setting(), "store_timeout");
        // The same setting from the builder and untouched by the environment.
        let err = SessionConfig::new()
            .idle_ttl(Duration::from_millis(10))
            .with_vars(vars(&[("SESSION_PRIVACY", "total")]))
            .unwrap_err();
        assert_eq!(err.setting(), "idle_ttl");
    }
}
