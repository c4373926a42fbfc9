//! Password hashes: Argon2id, as OWASP's Password Storage Cheat Sheet recommends it.
//!
//! Parameters: m = 19 MiB (19,456 KiB), t = 2 passes, p = 1 lane, a 16-byte random salt per
//! password from the OS RNG (WASI `random`), a 32-byte tag, stored as a PHC string
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`). A stored hash carries its own parameters,
//! so raising them later only affects new hashes; old ones still verify.
//! Cost: about 30 ms per hash in a component on the release host.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use shop_guest::error::ApiError;

/// Memory per hash, in KiB (19 MiB).
const MEMORY_KIB: u32 = 19 * 1024;
/// Passes over the memory.
const PASSES: u32 = 2;
/// Lanes (the guest is single-threaded).
const LANES: u32 = 1;

/// Verified against when the user does not exist, so that an unknown username costs the same
/// time as a wrong password. Made with the parameters above (checked by a test); no password
/// is known to match it, and it is never compared for a real account.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$LH7Al1ET6F1k36zZiRZfjw$Bl6XyNxEsMk3zi1yZ7/pwxuNxgyIKKDxXTsDzsfc5HA";

fn argon2() -> Result<Argon2<'static>, ApiError> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None)
        .map_err(|e| ApiError::Internal(format!("Argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The PHC string of `password` with a fresh random salt.
pub fn hash(password: &str) -> Result<String, ApiError> {
    let hash: PasswordHash = argon2()?
        .hash_password(password.as_bytes())
        .map_err(|e| ApiError::Internal(format!("hashing a password: {e}")))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the stored hash; `None` (no such user) checks against a dummy
/// hash at the same cost and answers `false`. The tags are compared in constant time.
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    let Ok(argon2) = argon2() else {
        return false;
    };
    let matches = |hash: &str| match PasswordHash::new(hash) {
        Ok(parsed) => argon2.verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(e) => {
            eprintln!("a stored password hash is not a PHC string: {e}");
            false
        }
    };
    match stored {
        Some(hash) => matches(hash),
        None => {
            let _ = matches(DUMMY_HASH);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_salts_differ() {
        let first = hash("correct horse").unwrap();
        let second = hash("correct horse").unwrap();
        assert!(
            first.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{first}"
        );
        assert_ne!(first, second, "each hash has its own salt");
        assert!(verify("correct horse", Some(&first)));
        assert!(verify("correct horse", Some(&second)));
        assert!(!verify("correct horse ", Some(&first)));
        assert!(!verify("", Some(&first)));
        assert!(!verify("correct horse", Some("not a hash")));
        assert!(!verify("correct horse", None));
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_does() {
        let real = hash("whatever").unwrap();
        let params = |hash: &str| hash.split('$').nth(3).map(str::to_owned);
        assert_eq!(params(DUMMY_HASH), params(&real));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
