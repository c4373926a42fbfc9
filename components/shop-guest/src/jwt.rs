//! JSON Web Tokens in compact form, signed with EdDSA (Ed25519) only: exactly what the shop
//! used `jsonwebtoken` for (its header, its base64url, its checks of the registered claims with
//! `Validation::new(EdDSA)`, leeway 0, `exp` and `sub` required), without the RSA, ECDSA and
//! HMAC code it compiles into every component.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The header every token carries, as jsonwebtoken's `Header::new(Algorithm::EdDSA)` writes it.
const HEADER: &str = r#"{"typ":"JWT","alg":"EdDSA"}"#;

/// Why a token was refused; callers answer every reason the same way (a 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not three base64url parts of JSON objects, or claims of the wrong shape.
    Malformed,
    /// A header whose `alg` is not `EdDSA`.
    Algorithm,
    /// A signature the key does not verify.
    Signature,
    /// `exp` or `sub` missing, `exp` past, or an `aud` the shop never sets.
    Claims,
}

/// Signs `claims` (serialized as JSON) into a compact token.
pub fn encode(claims: &impl Serialize, key: &SigningKey) -> Result<String, serde_json::Error> {
    let payload = serde_json::to_vec(claims)?;
    let mut token = String::with_capacity(48 + payload.len() * 4 / 3 + 88);
    base64url_encode(HEADER.as_bytes(), &mut token);
    token.push('.');
    base64url_encode(&payload, &mut token);
    let signature = key.sign(token.as_bytes());
    token.push('.');
    base64url_encode(&signature.to_bytes(), &mut token);
    Ok(token)
}

/// Verifies a compact token signed by `key` and reads its claims as `T`, checking the
/// registered claims at `now` (seconds since the Unix epoch).
pub fn decode<T: DeserializeOwned>(
    token: &str,
    key: &VerifyingKey,
    now: u64,
) -> Result<T, Refusal> {
    // Split from the right, as jsonwebtoken does: a header with a dot then fails to decode.
    let (message, signature) = token.rsplit_once('.').ok_or(Refusal::Malformed)?;
    let (header, payload) = message.rsplit_once('.').ok_or(Refusal::Malformed)?;

    let header = base64url_decode(header).ok_or(Refusal::Malformed)?;
    let header: Header = json_object(&header).ok_or(Refusal::Malformed)?;
    if header.alg != "EdDSA" {
        return Err(Refusal::Algorithm);
    }

    let signature = base64url_decode(signature).ok_or(Refusal::Malformed)?;
    let signature = Signature::from_slice(&signature).map_err(|_| Refusal::Signature)?;
    key.verify(message.as_bytes(), &signature)
        .map_err(|_| Refusal::Signature)?;

    let payload = base64url_decode(payload).ok_or(Refusal::Malformed)?;
    let claims: T = json_object(&payload).ok_or(Refusal::Malformed)?;
    let registered: Registered<'_> = json_object(&payload).ok_or(Refusal::Malformed)?;
    registered.check(now)?;
    Ok(claims)
}

/// `bytes` as JSON, which must be an object: jsonwebtoken's header (a struct with flattened
/// extras) reads only objects, and claims that are an array never pass its `exp` check.
fn json_object<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Option<T> {
    let first = bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\n' | b'\r' | b'\t'));
    if first != Some(&b'{') {
        return None;
    }
    serde_json::from_slice(bytes).ok()
}

/// The header fields jsonwebtoken reads with a type (a wrong type refuses the token).
#[derive(Deserialize)]
#[allow(dead_code)]
struct Header {
    alg: String,
    typ: Option<String>,
    cty: Option<String>,
    jku: Option<String>,
    jwk: Option<IgnoredAny>,
    kid: Option<String>,
    x5u: Option<String>,
    x5c: Option<Vec<String>>,
    x5t: Option<String>,
    #[serde(rename = "x5t#S256")]
    x5t_s256: Option<String>,
    crit: Option<Vec<String>>,
    enc: Option<String>,
    zip: Option<String>,
    url: Option<String>,
    nonce: Option<String>,
}

/// The registered claims jsonwebtoken checks, each kept as its JSON text (a duplicate of any of
/// them refuses the token, as it did there).
#[derive(Deserialize)]
struct Registered<'a> {
    #[serde(borrow, default)]
    exp: Option<&'a RawValue>,
    #[serde(borrow, default)]
    nbf: Option<&'a RawValue>,
    #[serde(borrow, default)]
    sub: Option<&'a RawValue>,
    #[serde(borrow, default)]
    #[allow(dead_code)] // read only so that a second `iss` is refused
    iss: Option<&'a RawValue>,
    #[serde(borrow, default)]
    aud: Option<&'a RawValue>,
}

impl Registered<'_> {
    /// `Validation::new(EdDSA)` with leeway 0 and `exp`, `sub` required: `exp` a number not
    /// before `now`, `sub` a string, no `aud` (the shop names no audience); `nbf` and `iss`
    /// are not checked.
    fn check(&self, now: u64) -> Result<(), Refusal> {
        let exp = self.exp.and_then(numeric_date).ok_or(Refusal::Claims)?;
        if self
            .sub
            .is_none_or(|sub| serde_json::from_str::<String>(sub.get()).is_err())
        {
            return Err(Refusal::Claims);
        }
        if exp < now {
            return Err(Refusal::Claims);
        }
        if let Some(aud) = self.aud {
            let aud = aud.get();
            if serde_json::from_str::<String>(aud).is_ok()
                || serde_json::from_str::<Vec<String>>(aud).is_ok()
            {
                return Err(Refusal::Claims);
            }
        }
        // jsonwebtoken reads `nbf` as a number with a visitor that leaves a non-empty object or
        // array half read, which then fails the whole payload.
        if self
            .nbf
            .is_some_and(|nbf| half_read_by_jsonwebtoken(nbf.get()))
        {
            return Err(Refusal::Malformed);
        }
        Ok(())
    }
}

/// A NumericDate as jsonwebtoken reads `exp`: an unsigned integer, or a finite non-negative
/// number below 2^64, rounded.
fn numeric_date(raw: &RawValue) -> Option<u64> {
    if let Ok(value) = serde_json::from_str::<u64>(raw.get()) {
        return Some(value);
    }
    // serde_json reads a fraction, an exponent, `-0` or an integer past u64 as a float.
    let value = serde_json::from_str::<f64>(raw.get()).ok()?;
    (value.is_finite() && value >= 0.0 && value < u64::MAX as f64).then(|| value.round() as u64)
}

/// Whether `raw` is an object or array with something in it.
fn half_read_by_jsonwebtoken(raw: &str) -> bool {
    let inner = raw
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .or_else(|| raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')));
    inner.is_some_and(|inner| !inner.trim_matches([' ', '\n', '\r', '\t']).is_empty())
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Appends `bytes` in base64url without padding.
fn base64url_encode(bytes: &[u8], out: &mut String) {
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
}

/// Decodes base64url without padding, as strictly as the `base64` crate's `URL_SAFE_NO_PAD`:
/// no `=`, no other alphabet, no length of 4n+1, no set bits after the last byte.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            let value = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'-' => 62,
                b'_' => 63,
                _ => return None,
            };
            n |= u32::from(value) << (18 - 6 * i);
        }
        let bytes = chunk.len() * 6 / 8;
        // The bits after the last whole byte must be zero (one canonical text per value).
        if n & (0x00ff_ffff >> (8 * bytes)) != 0 {
            return None;
        }
        out.extend_from_slice(&n.to_be_bytes()[1..=bytes]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    #[test]
    fn base64url_matches_the_base64_crate() {
        let mut inputs: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..200 {
            let bytes = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            inputs.push(bytes);
        }
        for bytes in &inputs {
            let mut ours = String::new();
            base64url_encode(bytes, &mut ours);
            assert_eq!(ours, URL_SAFE_NO_PAD.encode(bytes));
            assert_eq!(base64url_decode(&ours).as_deref(), Some(&bytes[..]));
        }
        // Every text of up to three symbols from a small alphabet, padding and junk included.
        let symbols = [
            "A", "B", "Q", "g", "w", "_", "-", "/", "+", "=", ".", " ", "é",
        ];
        let mut texts = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = texts
                .iter()
                .flat_map(|t| symbols.iter().map(move |s| format!("{t}{s}")))
                .collect();
            texts.extend(longer);
        }
        texts.extend(
            [
                "QUJD", "QUJDRA", "QUJDRB", "QUJDRE=", "QUJDRA==", "QUJDR", "QUJDREV",
            ]
            .map(String::from),
        );
        for text in &texts {
            assert_eq!(
                base64url_decode(text),
                URL_SAFE_NO_PAD.decode(text).ok(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_token_expires_after_its_exp_second() {
        const PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIDVe/xYboFIkzg5xrNOkJm0+CS6JsGnmLI7pVQOrrB+h
-----END PRIVATE KEY-----";
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let key = SigningKey::from_pkcs8_pem(PRIVATE_PEM).unwrap();
        let token = encode(&serde_json::json!({"sub": "1", "exp": 1000}), &key).unwrap();
        let read = |now| decode::<serde_json::Value>(&token, &key.verifying_key(), now);
        assert!(read(999).is_ok());
        assert!(read(1000).is_ok(), "leeway 0: valid through its exp second");
        assert_eq!(read(1001), Err(Refusal::Claims));
        let fractional = encode(&serde_json::json!({"sub": "1", "exp": 999.6}), &key).unwrap();
        assert!(decode::<serde_json::Value>(&fractional, &key.verifying_key(), 1000).is_ok());
    }

    #[test]
    fn nbf_is_refused_where_jsonwebtoken_breaks_on_it() {
        for (nbf, refused) in [
            ("1", false),
            ("\"x\"", false),
            ("null", false),
            ("{}", false),
            ("[ ]", false),
            ("[1]", true),
            ("{\"a\":1}", true),
        ] {
            assert_eq!(half_read_by_jsonwebtoken(nbf), refused, "{nbf}");
        }
    }
}
