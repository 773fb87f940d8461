//! Configuration of the FIX venue, with credentials that never print.

use std::fmt;
use std::path::PathBuf;

/// Environment variable that supplies (and overrides) the Logon Username (553).
pub const ENV_USERNAME: &str = "HEDGE_FIX_USERNAME";
/// Environment variable that supplies (and overrides) the Logon Password (554).
pub const ENV_PASSWORD: &str = "HEDGE_FIX_PASSWORD";

/// A credential: its `Debug` and `Display` print `<redacted>`, never the value.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The value, for the one place that writes it on the wire (the Logon message).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How to reach and log on to the FIX counterparty (the `[fix]` table of the gateway config).
///
/// Times are in milliseconds or seconds as their names say.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixConfig {
    /// Counterparty host (an IP address or a name resolved at each connect).
    pub host: String,
    /// Counterparty port.
    pub port: u16,
    /// Our SenderCompID (49).
    pub sender_comp_id: String,
    /// The counterparty's TargetCompID (56).
    pub target_comp_id: String,
    /// HeartBtInt (108) we propose in the Logon, seconds.
    #[serde(default = "defaults::heartbeat_s")]
    pub heartbeat_interval_s: u32,
    /// Username (553); [`ENV_USERNAME`] overrides it.
    #[serde(default)]
    pub username: Option<Secret>,
    /// Password (554); [`ENV_PASSWORD`] overrides it. Prefer the environment over a file.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Directory of the sequence-number file `fix-<sender>-<target>.seqnums`.
    pub state_dir: PathBuf,
    /// Longest a connect attempt may block the gateway loop (only while disconnected).
    #[serde(default = "defaults::connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// First reconnect delay; doubles per failed attempt up to `reconnect_max_ms`.
    #[serde(default = "defaults::reconnect_min_ms")]
    pub reconnect_min_ms: u64,
    /// Largest reconnect delay.
    #[serde(default = "defaults::reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// How long to wait for the Logon answer before dropping the connection.
    #[serde(default = "defaults::logon_timeout_ms")]
    pub logon_timeout_ms: u64,
    /// How long to wait for the Logout answer on shutdown.
    #[serde(default = "defaults::logout_timeout_ms")]
    pub logout_timeout_ms: u64,
    /// `fdatasync` the sequence-number file on every change (survives power loss, costs a
    /// disk flush per message; without it a process crash is still safe).
    #[serde(default)]
    pub fsync_seqnums: bool,
    /// Send ResetSeqNumFlag (141=Y) on every Logon and start both sequences at 1 (for venues
    /// that reset each connection; off for a normal persistent session).
    #[serde(default)]
    pub reset_on_logon: bool,
    /// Most orders in flight (sent, no terminal report yet); beyond it new orders are rejected
    /// with `RateLimit`.
    #[serde(default = "defaults::max_in_flight")]
    pub max_in_flight: usize,
}

mod defaults {
    pub fn heartbeat_s() -> u32 {
        30
    }
    pub fn connect_timeout_ms() -> u64 {
        200
    }
    pub fn reconnect_min_ms() -> u64 {
        100
    }
    pub fn reconnect_max_ms() -> u64 {
        5_000
    }
    pub fn logon_timeout_ms() -> u64 {
        5_000
    }
    pub fn logout_timeout_ms() -> u64 {
        2_000
    }
    pub fn max_in_flight() -> usize {
        1024
    }
}

impl FixConfig {
    /// A config with defaults for everything but the endpoint, the CompIDs and the state dir.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        sender_comp_id: impl Into<String>,
        target_comp_id: impl Into<String>,
        state_dir: impl Into<PathBuf>,
    ) -> Self {
        FixConfig {
            host: host.into(),
            port,
            sender_comp_id: sender_comp_id.into(),
            target_comp_id: target_comp_id.into(),
            heartbeat_interval_s: defaults::heartbeat_s(),
            username: None,
            password: None,
            state_dir: state_dir.into(),
            connect_timeout_ms: defaults::connect_timeout_ms(),
            reconnect_min_ms: defaults::reconnect_min_ms(),
            reconnect_max_ms: defaults::reconnect_max_ms(),
            logon_timeout_ms: defaults::logon_timeout_ms(),
            logout_timeout_ms: defaults::logout_timeout_ms(),
            fsync_seqnums: false,
            reset_on_logon: false,
            max_in_flight: defaults::max_in_flight(),
        }
    }

    /// Fills `username`/`password` from [`ENV_USERNAME`]/[`ENV_PASSWORD`] when those are set
    /// (the environment wins over the file).
    pub fn with_env_credentials(mut self) -> Self {
        if let Ok(u) = std::env::var(ENV_USERNAME) {
            self.username = Some(Secret(u));
        }
        if let Ok(p) = std::env::var(ENV_PASSWORD) {
            self.password = Some(Secret(p));
        }
        self
    }

    /// Checks the values that would otherwise fail later and less clearly.
    ///
    /// # Errors
    /// A message naming the field and what is wrong with it.
    pub fn validate(&self) -> Result<(), String> {
        let comp_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        if !comp_ok(&self.sender_comp_id) || !comp_ok(&self.target_comp_id) {
            return Err(format!(
                "fix.sender_comp_id {:?} / fix.target_comp_id {:?}: use 1-64 characters of A-Z a-z 0-9 - _ .",
                self.sender_comp_id, self.target_comp_id
            ));
        }
        if self.host.is_empty() || self.port == 0 {
            return Err(format!(
                "fix.host {:?} / fix.port {}: give the counterparty's address",
                self.host, self.port
            ));
        }
        if self.heartbeat_interval_s == 0 || self.heartbeat_interval_s > 3600 {
            return Err(format!(
                "fix.heartbeat_interval_s = {}: use 1..=3600",
                self.heartbeat_interval_s
            ));
        }
        for (name, s) in [("username", &self.username), ("password", &self.password)] {
            if let Some(s) = s {
                if s.0.is_empty() || s.0.bytes().any(|b| b < 0x20) {
                    return Err(format!(
                        "fix.{name}: must be non-empty printable text (value not shown)"
                    ));
                }
            }
        }
        if self.max_in_flight == 0 {
            return Err("fix.max_in_flight must be at least 1".into());
        }
        if self.reconnect_min_ms == 0 || self.reconnect_max_ms < self.reconnect_min_ms {
            return Err("fix.reconnect_min_ms must be > 0 and <= fix.reconnect_max_ms".into());
        }
        Ok(())
    }
}

/// Whether a configuration key names a credential (`password`, `username`, `api_key`,
/// `secret`, `token`, ... in any case): its value is never printed.
///
/// Broader than the keys [`FixConfig`] knows, on purpose: a misspelt or misplaced credential
/// (`passwd = ...`, `Password = ...`) is just as secret.
pub fn is_credential_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "pass",
        "secret",
        "token",
        "user",
        "credential",
        "api_key",
        "apikey",
        "private_key",
        "auth",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// A copy of a raw TOML table (e.g. the `[fix]` table) with the values of every credential key
/// ([`is_credential_key`]), at any depth, replaced by `<redacted>`, for printing a
/// configuration (`--print-config`) or logging it.
pub fn redacted_table(table: &toml::Table) -> toml::Table {
    let mut t = table.clone();
    for (k, v) in t.iter_mut() {
        if is_credential_key(k) {
            *v = toml::Value::String("<redacted>".into());
        } else {
            redact_value(v);
        }
    }
    t
}

fn redact_value(v: &mut toml::Value) {
    match v {
        toml::Value::Table(t) => *t = redacted_table(t),
        toml::Value::Array(a) => a.iter_mut().for_each(redact_value),
        _ => {}
    }
}

/// The values of every credential key in `table` (at any depth), as text in the forms an
/// error message could show them (`hunter2`, and `12345` for a mistyped number), for
/// [`scrub`]bing messages that might quote them.
pub fn credential_values(table: &toml::Table) -> Vec<String> {
    fn collect(v: &toml::Value, secret: bool, out: &mut Vec<String>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    collect(v, secret || is_credential_key(k), out);
                }
            }
            toml::Value::Array(a) => a.iter().for_each(|v| collect(v, secret, out)),
            toml::Value::String(s) if secret => out.push(s.clone()),
            other if secret => out.push(other.to_string()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (k, v) in table {
        collect(v, is_credential_key(k), &mut out);
    }
    out
}

/// `text` with every occurrence of each non-empty `secrets` value replaced by `<redacted>`
/// (longest first, so a secret containing another is removed whole). For error messages built
/// from a configuration that holds credentials.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut secrets: Vec<&str> = secrets
        .iter()
        .map(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for s in secrets {
        if out.contains(s) {
            out = out.replace(s, "<redacted>");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_config_never_shows_credentials() {
        let mut c = FixConfig::new("127.0.0.1", 9876, "HEDGER", "EXCH", "/tmp/x");
        c.username = Some(Secret::new("alice"));
        c.password = Some(Secret::new("hunter2"));
        let d = format!("{c:?} {}", c.password.as_ref().unwrap());
        assert!(!d.contains("hunter2") && !d.contains("alice"), "{d}");
        assert!(d.contains("<redacted>"));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn raw_tables_are_redacted_for_printing() {
        let t: toml::Table =
            toml::from_str("host = \"h\"\npassword = \"pw-123\"\nusername = \"u\"").unwrap();
        let r = format!("{:?}", redacted_table(&t));
        assert!(!r.contains("pw-123") && r.contains("<redacted>") && r.contains("\"h\""));
        // Misspelt, misplaced, nested or mistyped credentials are secret too.
        let t: toml::Table = toml::from_str(
            "Passwd = 987654\nport = 1\n[nested]\napi_key = \"k-1\"\nlist = [{ token = \"t-1\" }]",
        )
        .unwrap();
        let r = format!(
            "{:?} {}",
            redacted_table(&t),
            toml::Value::Table(redacted_table(&t))
        );
        for s in ["987654", "k-1", "t-1"] {
            assert!(!r.contains(s), "{s} in {r}");
        }
        assert!(r.contains("port"));
        let mut v = credential_values(&t);
        v.sort();
        assert_eq!(v, ["987654", "k-1", "t-1"]);
        assert_eq!(
            scrub("invalid type: integer `987654`, t-1 k-1", &v),
            "invalid type: integer `<redacted>`, <redacted> <redacted>"
        );
        assert_eq!(scrub("abc", &[String::new()]), "abc");
    }

    #[test]
    fn config_parses_from_toml_with_defaults() {
        let c: FixConfig = toml::from_str(
            "host = \"127.0.0.1\"\nport = 9876\nsender_comp_id = \"HEDGER\"\ntarget_comp_id = \"EXCH\"\nstate_dir = \"/var/lib/hedge/fix\"\npassword = \"pw\"\n",
        )
        .unwrap();
        assert_eq!(c.heartbeat_interval_s, 30);
        assert_eq!(c.password.unwrap().expose(), "pw");
        assert!(toml::from_str::<FixConfig>("host = 1").is_err());
    }
}
