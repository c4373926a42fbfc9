//! Secrets for local runs, and the checks of key pairs on every run.
//!
//! A required secret variable that nobody set (say `jwt_private_key` on a laptop) is generated
//! once per data folder and kept there, so that `shop up` works on a fresh clone and tokens stay
//! valid across restarts. Deployments (`--database-url`) must set theirs.
//!
//! A `<prefix>_private_key` and a `<prefix>_public_key` that are both declared are an Ed25519
//! key pair (PKCS#8 and SPKI PEM): a local run generates both halves, and every run refuses a
//! pair that does not parse or whose halves do not belong together, before anything is served.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes,
};
use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::config::manifest::VariableDecl;
use crate::config::variables::{env_var_name, AppVariables};

/// The folder under the working directory that holds a local run's data and generated secrets.
pub const DATA_DIR: &str = ".shop";

/// The suffixes that make two variables an Ed25519 key pair.
const PRIVATE_SUFFIX: &str = "_private_key";
const PUBLIC_SUFFIX: &str = "_public_key";

/// How to make each half of a key pair, for the error messages.
const PRIVATE_HINT: &str = "`openssl genpkey -algorithm ed25519 -out jwt.key`";
const PUBLIC_HINT: &str = "`openssl pkey -in jwt.key -pubout`";

/// The names of the two variables of one Ed25519 key pair.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyPairNames {
    private: String,
    public: String,
}

/// The key pairs among the declared variables: `<prefix>_private_key` with a declared
/// `<prefix>_public_key`.
fn key_pairs(decls: &BTreeMap<String, VariableDecl>) -> Vec<KeyPairNames> {
    decls
        .keys()
        .filter_map(|name| {
            let prefix = name.strip_suffix(PRIVATE_SUFFIX)?;
            let public = format!("{prefix}{PUBLIC_SUFFIX}");
            (!prefix.is_empty() && decls.contains_key(&public)).then(|| KeyPairNames {
                private: name.clone(),
                public,
            })
        })
        .collect()
}

/// Values for the required secret variables that the environment leaves unset, read from or
/// written to `<data_dir>/secrets/<name>`, keyed by their `SPIN_VARIABLE_*` name. The public
/// half of a generated key pair comes with it, unless the environment sets that too.
pub fn local_secrets(
    decls: &BTreeMap<String, VariableDecl>,
    data_dir: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>> {
    let dir = data_dir.join("secrets");
    // Tightened on every start, not only when made: a copied or restored folder keeps its modes.
    tighten_permissions(&dir)?;
    let pairs = key_pairs(decls);
    let mut values = BTreeMap::new();
    for (name, decl) in decls {
        let env_name = env_var_name(name);
        let is_public_half = pairs.iter().any(|pair| pair.public == *name);
        if !(decl.required && decl.secret) || is_public_half || env(&env_name).is_some() {
            continue;
        }
        if let Some(pair) = pairs.iter().find(|pair| pair.private == *name) {
            let (private, public) = local_key_pair(&dir, pair)?;
            values.insert(env_name, private);
            let public_env = env_var_name(&pair.public);
            if env(&public_env).is_none() {
                values.insert(public_env, public);
            }
            continue;
        }
        let path = dir.join(name);
        let value = match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => text.trim().to_string(),
            _ => {
                let value = hex(&random_bytes()?);
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

/// The PEMs of a local run's key pair: the private key kept in `<dir>/<private>`, made on the
/// first run; the public key derived from it (and kept in `<dir>/<public>` for other tools).
fn local_key_pair(dir: &Path, pair: &KeyPairNames) -> Result<(String, String)> {
    let private_path = dir.join(&pair.private);
    let public_path = dir.join(&pair.public);
    let signing_key = match std::fs::read_to_string(&private_path) {
        Ok(text) if !text.trim().is_empty() => {
            SigningKey::from_pkcs8_pem(text.trim()).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not an Ed25519 private key in PKCS#8 PEM ({e}); delete it and its \
                     public key {} to generate a new pair",
                    private_path.display(),
                    public_path.display()
                )
            })?
        }
        _ => {
            let seed = random_bytes()?;
            let signing_key = SigningKey::from_bytes(&seed);
            write_private(&private_path, &private_pem(&signing_key)?)?;
            tracing::warn!(
                variable = %pair.private,
                file = %private_path.display(),
                "generated an Ed25519 key pair for this local data folder; set {} and {} in \
                 deployments",
                env_var_name(&pair.private),
                env_var_name(&pair.public)
            );
            signing_key
        }
    };
    let private = private_pem(&signing_key)?;
    let public = public_pem(&signing_key.verifying_key())?;
    if std::fs::read_to_string(&public_path).ok().as_deref() != Some(public.as_str()) {
        write_private(&public_path, &public)?;
    }
    Ok((private, public))
}

/// Checks every key pair of `decls` whose values are known: the private key must be an Ed25519
/// key in PKCS#8 PEM, the public key one in SPKI PEM, and the public key the private key's.
/// The errors name the environment variable to fix.
pub fn check_key_pairs(
    decls: &BTreeMap<String, VariableDecl>,
    variables: &AppVariables,
) -> Result<()> {
    // An application variable's value is the expansion of a template naming only it.
    let value = |name: &str| variables.expand(&format!("{{{{ {name} }}}}")).ok();
    for pair in key_pairs(decls) {
        check_key_pair(&pair, value(&pair.private), value(&pair.public))?;
    }
    Ok(())
}

/// Checks one pair's known halves (see [`check_key_pairs`]).
fn check_key_pair(
    pair: &KeyPairNames,
    private: Option<String>,
    public: Option<String>,
) -> Result<()> {
    let private_env = env_var_name(&pair.private);
    let public_env = env_var_name(&pair.public);
    let signing_key = private
        .map(|pem| {
            SigningKey::from_pkcs8_pem(pem.trim()).map_err(|e| {
                anyhow::anyhow!(
                    "{private_env} is not an Ed25519 private key in PKCS#8 PEM \
                     ({PRIVATE_HINT}): {e}"
                )
            })
        })
        .transpose()?;
    let verifying_key = public
        .map(|pem| {
            VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| {
                anyhow::anyhow!(
                    "{public_env} is not an Ed25519 public key in SPKI PEM ({PUBLIC_HINT}): {e}"
                )
            })
        })
        .transpose()?;
    if let (Some(signing_key), Some(verifying_key)) = (signing_key, verifying_key) {
        if signing_key.verifying_key() != verifying_key {
            bail!(
                "{public_env} is not the public key of {private_env}: tokens signed with the \
                 one would not verify with the other; derive it with {PUBLIC_HINT}"
            );
        }
    }
    Ok(())
}

/// The private key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), as openssl writes it: v1,
/// the seed alone (OpenSSL 3.0 cannot read the v2 form, with the public key, that
/// `SigningKey::to_pkcs8_pem` writes).
fn private_pem(key: &SigningKey) -> Result<String> {
    let seed_only = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    let pem = seed_only
        .to_pkcs8_pem(LineEnding::LF)
        .context("cannot encode the generated private key")?;
    Ok(pem.as_str().to_owned())
}

/// The public key as SPKI PEM (`-----BEGIN PUBLIC KEY-----`), as openssl writes it.
fn public_pem(key: &VerifyingKey) -> Result<String> {
    key.to_public_key_pem(LineEnding::LF)
        .context("cannot encode the generated public key")
}

/// 32 random bytes from the OS: a plain secret, or an Ed25519 seed.
fn random_bytes() -> Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    Ok(bytes)
}

/// Lower-case hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Makes the secrets folder `dir` (mode 0700) if needed and writes `value` to `path` in it,
/// readable by its owner only.
pub fn write_private(path: &Path, value: impl AsRef<[u8]>) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    create_private_dir(path.parent().expect("a secret file has a folder"))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write the generated secret {}", path.display()))?;
    file.write_all(value.as_ref())?;
    // `mode` applies only to a file it creates.
    set_mode_if_present(path, 0o600)
}

/// Makes `dir` and whatever of its parents is missing, each new folder 0700.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Makes an existing secrets folder 0700 and the files in it 0600.
fn tighten_permissions(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    set_mode_if_present(dir, 0o700)?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        // Not through a link: its target is not ours to change.
        if entry.file_type()?.is_file() {
            set_mode_if_present(&entry.path(), 0o600)?;
        }
    }
    Ok(())
}

/// Sets the permission bits of `path` to `mode` when it exists and has others.
pub fn set_mode_if_present(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(meta) if meta.permissions().mode() & 0o777 != mode => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("cannot restrict the permissions of {}", path.display()))
        }
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Reads the admin token from `file`, or else from `SHOP_ADMIN_TOKEN`; `None`: the API is off.
pub fn admin_token(file: Option<&Path>) -> Result<Option<String>> {
    let token = match file {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the admin token file {}", file.display()))?,
        None => match std::env::var("SHOP_ADMIN_TOKEN") {
            Ok(token) => token,
            Err(_) => return Ok(None),
        },
    };
    let token = token.trim().to_string();
    if token.len() < 16 {
        bail!("the admin token must have at least 16 characters");
    }
    Ok(Some(token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, Verifier};

    /// A fixed pair made with `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout`.
    const PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIDVe/xYboFIkzg5xrNOkJm0+CS6JsGnmLI7pVQOrrB+h
-----END PRIVATE KEY-----
";
    const PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEATQb/TOwSBWiDS1TlHuawgdmnUqwbGhRmVGtSSoby5hs=
-----END PUBLIC KEY-----
";
    /// The public key of another pair.
    const OTHER_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEA3mle0LTbj6Ai6ESpOb/wQ/Gn+aq4FCx9r8H3b7bJ+64=
-----END PUBLIC KEY-----
";

    /// spin.toml's variables: a key pair, and a plain secret.
    fn decls(secret: bool) -> BTreeMap<String, VariableDecl> {
        let toml = format!(
            "jwt_private_key = {{ required = true, secret = {secret} }}\n\
             jwt_public_key = {{ required = true }}\n\
             api_token = {{ required = true, secret = {secret} }}\n\
             jwt_public_key_note = {{ default = \"not a pair\" }}"
        );
        toml::from_str(&toml).unwrap()
    }

    fn temp_dir(label: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("shop-secrets-{label}-{}", std::process::id()))
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// The check of a pair given through the environment.
    fn check(private: &str, public: &str) -> Result<()> {
        let variables = AppVariables::resolve(&decls(true), |name| match name {
            "SPIN_VARIABLE_JWT_PRIVATE_KEY" => Some(private.to_string()),
            "SPIN_VARIABLE_JWT_PUBLIC_KEY" => Some(public.to_string()),
            _ => Some("x".to_string()),
        })
        .unwrap();
        check_key_pairs(&decls(true), &variables)
    }

    #[test]
    fn finds_the_key_pairs() {
        assert_eq!(
            key_pairs(&decls(true)),
            vec![KeyPairNames {
                private: "jwt_private_key".into(),
                public: "jwt_public_key".into()
            }]
        );
        let lone: BTreeMap<String, VariableDecl> =
            toml::from_str("jwt_private_key = {}\n_private_key = {}\n_public_key = {}").unwrap();
        assert!(key_pairs(&lone).is_empty());
    }

    #[test]
    fn a_generated_pair_round_trips_and_is_kept_private() {
        let dir = temp_dir("pair");
        let first = local_secrets(&decls(true), &dir, |_| None).unwrap();
        let private = &first["SPIN_VARIABLE_JWT_PRIVATE_KEY"];
        let public = &first["SPIN_VARIABLE_JWT_PUBLIC_KEY"];
        assert!(
            private.starts_with("-----BEGIN PRIVATE KEY-----"),
            "{private}"
        );
        // PKCS#8 v1, as `openssl genpkey` writes it (and as OpenSSL 3.0 can read it).
        assert_eq!(private.len(), PRIVATE_PEM.len(), "{private}");
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "{public}");
        assert_eq!(first["SPIN_VARIABLE_API_TOKEN"].len(), 64);
        check_key_pair(
            &key_pairs(&decls(true))[0],
            Some(private.clone()),
            Some(public.clone()),
        )
        .unwrap();
        let signing_key = SigningKey::from_pkcs8_pem(private).unwrap();
        let verifying_key = VerifyingKey::from_public_key_pem(public).unwrap();
        let signature = signing_key.sign(b"a token");
        verifying_key.verify(b"a token", &signature).unwrap();

        let secrets = dir.join("secrets");
        assert_eq!(mode(&secrets), 0o700);
        for name in ["jwt_private_key", "jwt_public_key", "api_token"] {
            assert_eq!(mode(&secrets.join(name)), 0o600, "{name}");
        }
        assert_eq!(
            std::fs::read_to_string(secrets.join("jwt_public_key")).unwrap(),
            *public
        );

        // Loosened by hand (or by a copy): tightened again on the next start, same pair.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o755)).unwrap();
        for name in ["jwt_private_key", "api_token"] {
            std::fs::set_permissions(secrets.join(name), std::fs::Permissions::from_mode(0o644))
                .unwrap();
        }
        std::fs::remove_file(secrets.join("jwt_public_key")).unwrap();
        let again = local_secrets(&decls(true), &dir, |_| None).unwrap();
        assert_eq!(again, first);
        assert_eq!(mode(&secrets), 0o700);
        for name in ["jwt_private_key", "jwt_public_key", "api_token"] {
            assert_eq!(mode(&secrets.join(name)), 0o600, "{name}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_public_key_set_in_the_environment_is_not_replaced() {
        let dir = temp_dir("public-set");
        let values = local_secrets(&decls(true), &dir, |name| {
            (name == "SPIN_VARIABLE_JWT_PUBLIC_KEY").then(|| OTHER_PUBLIC_PEM.to_string())
        })
        .unwrap();
        assert!(values.contains_key("SPIN_VARIABLE_JWT_PRIVATE_KEY"));
        assert!(!values.contains_key("SPIN_VARIABLE_JWT_PUBLIC_KEY"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_stored_private_key_names_its_file() {
        let dir = temp_dir("corrupt");
        write_private(&dir.join("secrets/jwt_private_key"), "garbage").unwrap();
        let err = local_secrets(&decls(true), &dir, |_| None).unwrap_err();
        assert!(
            format!("{err}").contains("secrets/jwt_private_key"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn set_or_non_secret_variables_are_left_alone() {
        let dir = temp_dir("none");
        assert!(local_secrets(&decls(true), &dir, |_| Some("x".into()))
            .unwrap()
            .is_empty());
        assert!(local_secrets(&decls(false), &dir, |_| None)
            .unwrap()
            .is_empty());
        assert!(!dir.exists());
    }

    #[test]
    fn a_matching_pair_passes_with_or_without_trailing_newlines() {
        check(PRIVATE_PEM, PUBLIC_PEM).unwrap();
        check(PRIVATE_PEM.trim(), PUBLIC_PEM.trim()).unwrap();
        check(&PRIVATE_PEM.replace('\n', "\r\n"), PUBLIC_PEM).unwrap();
    }

    #[test]
    fn a_mismatched_pair_is_refused_naming_the_variables() {
        let err = format!("{}", check(PRIVATE_PEM, OTHER_PUBLIC_PEM).unwrap_err());
        assert!(err.contains("SPIN_VARIABLE_JWT_PUBLIC_KEY is not the public key of SPIN_VARIABLE_JWT_PRIVATE_KEY"), "{err}");
    }

    #[test]
    fn a_bad_private_key_is_refused_naming_its_variable() {
        let truncated = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            &PRIVATE_PEM.lines().nth(1).unwrap()[..40]
        );
        for bad in ["garbage", "", &PRIVATE_PEM[..50], &truncated, PUBLIC_PEM] {
            let err = format!("{}", check(bad, PUBLIC_PEM).unwrap_err());
            assert!(
                err.starts_with(
                    "SPIN_VARIABLE_JWT_PRIVATE_KEY is not an Ed25519 private key in PKCS#8 PEM"
                ),
                "{bad:?}: {err}"
            );
            assert!(err.contains("openssl genpkey -algorithm ed25519"), "{err}");
        }
    }

    #[test]
    fn a_bad_public_key_is_refused_naming_its_variable() {
        let truncated = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            &PUBLIC_PEM.lines().nth(1).unwrap()[..40]
        );
        for bad in ["garbage", &truncated, PRIVATE_PEM] {
            let err = format!("{}", check(PRIVATE_PEM, bad).unwrap_err());
            assert!(
                err.starts_with(
                    "SPIN_VARIABLE_JWT_PUBLIC_KEY is not an Ed25519 public key in SPKI PEM"
                ),
                "{bad:?}: {err}"
            );
        }
    }
}
