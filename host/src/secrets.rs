//! Secrets for local runs: a required secret variable that nobody set (say `jwt_secret` on a
//! laptop) is generated once per data folder and kept there, so that `shop up` works on a fresh
//! clone and tokens stay valid across restarts. Deployments (`--database-url`) must set theirs.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::manifest::VariableDecl;
use crate::variables::env_var_name;

/// The folder under the working directory that holds a local run's data and generated secrets.
pub const DATA_DIR: &str = ".shop";

/// Values for the required secret variables that the environment leaves unset, read from or
/// written to `<data_dir>/secrets/<name>`, keyed by their `SPIN_VARIABLE_*` name.
pub fn local_secrets(
    decls: &BTreeMap<String, VariableDecl>,
    data_dir: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>> {
    let mut values = BTreeMap::new();
    for (name, decl) in decls {
        let env_name = env_var_name(name);
        if !(decl.required && decl.secret) || env(&env_name).is_some() {
            continue;
        }
        let path = data_dir.join("secrets").join(name);
        let value = match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => text.trim().to_string(),
            _ => {
                let value = generate()?;
                write_private(&path, &value)?;
                tracing::warn!(
                    variable = %name,
                    file = %path.display(),
                    "generated a secret for this local data folder; set {env_name} in deployments"
                );
                value
            }
        };
        values.insert(env_name, value);
    }
    Ok(values)
}

/// 32 random bytes from the OS, hex-encoded.
fn generate() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `value` to `path`, readable by its owner only.
fn write_private(path: &Path, value: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().expect("a secret file has a folder");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write the generated secret {}", path.display()))?;
    file.write_all(value.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decls(secret: bool) -> BTreeMap<String, VariableDecl> {
        let toml = format!("jwt_secret = {{ required = true, secret = {secret} }}");
        toml::from_str(&toml).unwrap()
    }

    #[test]
    fn generated_once_per_data_folder_and_kept() {
        let dir = std::env::temp_dir().join(format!("shop-secrets-{}", std::process::id()));
        let first = local_secrets(&decls(true), &dir, |_| None).unwrap();
        let value = &first["SPIN_VARIABLE_JWT_SECRET"];
        assert_eq!(value.len(), 64);
        let again = local_secrets(&decls(true), &dir, |_| None).unwrap();
        assert_eq!(&again["SPIN_VARIABLE_JWT_SECRET"], value);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.join("secrets/jwt_secret"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn set_or_non_secret_variables_are_left_alone() {
        let dir = std::env::temp_dir().join(format!("shop-secrets-none-{}", std::process::id()));
        assert!(local_secrets(&decls(true), &dir, |_| Some("x".into()))
            .unwrap()
            .is_empty());
        assert!(local_secrets(&decls(false), &dir, |_| None)
            .unwrap()
            .is_empty());
        assert!(!dir.exists());
    }
}
