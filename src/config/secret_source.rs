//! Where a secret comes from: an environment variable, or a file (a
//! mounted Kubernetes Secret volume: `wechat.secret_file`,
//! `admin.token_file`, `binding.token_file`, `session.store_key_file`).
//! A file keeps the secret out of `/proc/<pid>/environ`, which any
//! container sharing the pod's process namespace can read. The file is
//! read at every load, so a SIGHUP re-reads it. Setting both sources is an
//! error: which one wins would be a guess.
//!
//! Also the traps a first deployment falls into: the shipped examples'
//! placeholder values are refused, never used as real secrets.

use super::ConfigError;

/// The shipped examples' secrets start so (`replace-with-your-appsecret`).
const PLACEHOLDER: &str = "replace-with";

/// The secret under `env_name`, or read from `file` (its key `file_key`).
pub(super) fn secret(
    file_key: &'static str,
    file: Option<&str>,
    env_name: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, ConfigError> {
    let from_env = env_name.and_then(env).filter(|v| !v.is_empty());
    let env_name = env_name.unwrap_or("");
    let Some(path) = file else {
        return Ok(from_env);
    };
    if from_env.is_some() {
        return Err(ConfigError::invalid(
            file_key,
            format!("set either {file_key} or the {env_name} environment variable, not both"),
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::invalid(file_key, format!("cannot read `{path}`: {e}")))?;
    // A mounted Secret often ends with a newline; the secret never does.
    let value = text.trim_end_matches(['\r', '\n']).to_owned();
    if value.is_empty() {
        return Err(ConfigError::invalid(file_key, format!("`{path}` is empty")));
    }
    Ok(Some(value))
}

/// Refuses an example's placeholder given as the real secret.
pub(super) fn not_placeholder(key: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.to_ascii_lowercase().starts_with(PLACEHOLDER) {
        return Err(ConfigError::invalid(
            key,
            format!(
                "is still the example's placeholder (`{PLACEHOLDER}…`): set the real value \
                 (in the Secret, e.g. secrets.env)"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        let env = |k: &str| (k == "SET").then(|| "from-env".to_owned());
        assert_eq!(
            secret("x_file", None, Some("SET"), &env)
                .unwrap()
                .as_deref(),
            Some("from-env")
        );
        assert_eq!(secret("x_file", None, Some("UNSET"), &env).unwrap(), None);
        let dir = std::env::temp_dir().join(format!("wxgate-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, "from-file\n").unwrap();
        let path = file.to_str().unwrap();
        assert_eq!(
            secret("x_file", Some(path), None, &env).unwrap().as_deref(),
            Some("from-file")
        );
        assert!(
            secret("x_file", Some(path), Some("SET"), &env).is_err(),
            "both"
        );
        std::fs::write(&file, "\n").unwrap();
        assert!(secret("x_file", Some(path), None, &env).is_err(), "empty");
        assert!(secret("x_file", Some("/nonexistent/x"), None, &env).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(not_placeholder("k", "replace-with-your-appsecret").is_err());
        assert!(not_placeholder("k", "0123456789abcdef").is_ok());
    }
}
