//! What both services' configuration needs: a `Secret` that never prints,
//! and environment overrides of TOML keys.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

/// A secret value: never printed, whatever prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl<'de> Deserialize<'de> for Secret {
    /// Either the value itself or `{ file = "/run/secrets/x" }`, so secrets can
    /// live outside the config file.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Value(String),
            File { file: PathBuf },
        }
        match Raw::deserialize(d)? {
            Raw::Value(v) => Ok(Secret(v)),
            Raw::File { file } => std::fs::read_to_string(&file)
                .map(|s| Secret(s.trim_end().to_string()))
                .map_err(|e| serde::de::Error::custom(format!("{}: {e}", file.display()))),
        }
    }
}

/// `{PREFIX}A__B=value` sets `a.b`. The value is read as a TOML value when it
/// is one (numbers, booleans, arrays) and as a string otherwise.
/// `{PREFIX}CONFIG` names the file itself and is skipped.
pub fn apply_env_overrides(
    table: &mut toml::Table,
    prefix: &str,
    vars: impl Iterator<Item = (String, String)>,
) {
    for (name, raw) in vars {
        let Some(path) = name.strip_prefix(prefix) else {
            continue;
        };
        if path == "CONFIG" || path.is_empty() {
            continue;
        }
        let keys: Vec<String> = path.split("__").map(|k| k.to_ascii_lowercase()).collect();
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(raw));
        let mut cursor = &mut *table;
        for key in &keys[..keys.len() - 1] {
            let entry = cursor
                .entry(key.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            cursor = entry.as_table_mut().expect("just made a table");
        }
        cursor.insert(keys[keys.len() - 1].clone(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_set_nested_keys_with_typed_values() {
        let mut t: toml::Table = toml::from_str("[a]\nb = 1").unwrap();
        apply_env_overrides(
            &mut t,
            "X_",
            [
                ("X_A__B".to_string(), "7".to_string()),
                ("X_C".to_string(), "text".to_string()),
                ("X_CONFIG".to_string(), "/etc/x".to_string()),
                ("OTHER".to_string(), "1".to_string()),
            ]
            .into_iter(),
        );
        assert_eq!(t["a"]["b"].as_integer(), Some(7));
        assert_eq!(t["c"].as_str(), Some("text"));
        assert!(!t.contains_key("config"));
    }

    #[test]
    fn secrets_never_print() {
        let s: Secret = toml::from_str::<toml::Table>("s = \"hunter2\"").unwrap()["s"]
            .clone()
            .try_into()
            .unwrap();
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(s.expose(), "hunter2");
    }
}
