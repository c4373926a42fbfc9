//! Start-up errors: each names the thing that is wrong and the fix, and the host exits 1.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

/// Runs `shop` with `args` in `workdir` and expects it to exit with an error; returns stderr.
fn expect_refusal(workdir: &Path, args: &[&str], with_keys: bool) -> String {
    let keys: &[(&str, &str)] = if with_keys {
        &[
            ("SPIN_VARIABLE_JWT_PRIVATE_KEY", TEST_PRIVATE_KEY),
            ("SPIN_VARIABLE_JWT_PUBLIC_KEY", TEST_PUBLIC_KEY),
        ]
    } else {
        &[]
    };
    expect_refusal_with(workdir, args, keys)
}

/// [`expect_refusal`] with the JWT key variables set to `keys` (unset if not among them).
fn expect_refusal_with(workdir: &Path, args: &[&str], keys: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(shop_bin());
    cmd.current_dir(workdir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("RUST_BACKTRACE", "1")
        .env_remove("SPIN_VARIABLE_JWT_PRIVATE_KEY")
        .env_remove("SPIN_VARIABLE_JWT_PUBLIC_KEY");
    for (name, value) in keys {
        cmd.env(name, value);
    }
    let mut child = cmd.spawn().expect("spawn shop");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("`shop {}` did not refuse to start", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "`shop {}` should exit 1; stderr:\n{stderr}",
        args.join(" ")
    );
    assert!(
        !stderr.contains("panicked"),
        "a refusal is not a panic:\n{stderr}"
    );
    assert!(
        !stderr.contains("stack backtrace"),
        "no backtrace in a refusal:\n{stderr}"
    );
    stderr
}

fn temp_dir(label: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "shop-startup-{label}-{}-{}",
        std::process::id(),
        unique_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn repo_manifest() -> String {
    repo_root().join("spin.toml").display().to_string()
}

#[test]
fn missing_manifest_is_named() {
    let dir = temp_dir("nomanifest");
    let stderr = expect_refusal(&dir, &["up"], true);
    assert!(stderr.contains("spin.toml"), "{stderr}");
}

#[test]
fn invalid_manifest_is_named() {
    let dir = temp_dir("badmanifest");
    std::fs::write(
        dir.join("spin.toml"),
        "spin_manifest_version = 2\n[application\nname = ",
    )
    .unwrap();
    let stderr = expect_refusal(&dir, &["up"], true);
    assert!(stderr.contains("spin.toml"), "{stderr}");
}

#[test]
fn missing_component_names_its_build_command() {
    let dir = temp_dir("nowasm");
    std::fs::write(
        dir.join("spin.toml"),
        r#"spin_manifest_version = 2
[application]
name = "t"
[[trigger.http]]
route = "/..."
component = "ghost"
[component.ghost]
source = "target/ghost.wasm"
[component.ghost.build]
command = "make ghost"
"#,
    )
    .unwrap();
    let stderr = expect_refusal(&dir, &["up"], true);
    assert!(stderr.contains("ghost"), "{stderr}");
    assert!(
        stderr.contains("make ghost") || stderr.contains("shop build"),
        "{stderr}"
    );
}

#[test]
fn unknown_import_is_named() {
    let dir = temp_dir("badimport");
    let component = wat::parse_str(
        r#"(component
             (import "acme:nothing/here@1.0.0" (instance (export "f" (func))))
           )"#,
    )
    .unwrap();
    std::fs::write(dir.join("odd.wasm"), component).unwrap();
    std::fs::write(
        dir.join("spin.toml"),
        r#"spin_manifest_version = 2
[application]
name = "t"
[[trigger.http]]
route = "/..."
component = "odd"
[component.odd]
source = "odd.wasm"
"#,
    )
    .unwrap();
    let stderr = expect_refusal(&dir, &["up"], true);
    assert!(stderr.contains("acme:nothing/here@1.0.0"), "{stderr}");
}

#[test]
fn required_variable_is_named() {
    build_components();
    let dir = temp_dir("novar");
    let wasm = repo_root().join("target/wasm32-wasip2/release/products.wasm");
    std::fs::write(
        dir.join("spin.toml"),
        format!(
            r#"spin_manifest_version = 2
[application]
name = "t"
[variables]
api_key = {{ required = true }}
[[trigger.http]]
route = "/..."
component = "keyed"
[component.keyed]
source = "{}"
[component.keyed.variables]
key = "{{{{ api_key }}}}"
"#,
            wasm.display()
        ),
    )
    .unwrap();
    let stderr = expect_refusal(&dir, &["up", "--listen", "127.0.0.1:0"], true);
    assert!(stderr.contains("api_key"), "{stderr}");
    assert!(stderr.contains("SPIN_VARIABLE_API_KEY"), "{stderr}");
}

#[test]
fn a_bad_private_key_is_named() {
    let dir = temp_dir("badkey");
    let line = TEST_PRIVATE_KEY.lines().nth(1).unwrap();
    let truncated = TEST_PRIVATE_KEY.replace(line, &line[..40]);
    let cut_off = &TEST_PRIVATE_KEY[..TEST_PRIVATE_KEY.len() / 2];
    for bad in ["garbage", truncated.as_str(), cut_off, TEST_PUBLIC_KEY] {
        let stderr = expect_refusal_with(
            &dir,
            &[
                "up",
                "--manifest",
                &repo_manifest(),
                "--listen",
                "127.0.0.1:0",
            ],
            &[
                ("SPIN_VARIABLE_JWT_PRIVATE_KEY", bad),
                ("SPIN_VARIABLE_JWT_PUBLIC_KEY", TEST_PUBLIC_KEY),
            ],
        );
        assert!(
            stderr.contains(
                "SPIN_VARIABLE_JWT_PRIVATE_KEY is not an Ed25519 private key in PKCS#8 PEM"
            ),
            "{bad:?}: {stderr}"
        );
        assert!(
            stderr.contains("openssl genpkey -algorithm ed25519"),
            "{stderr}"
        );
    }
    // Nothing was generated in its place.
    assert!(!dir.join(".shop/secrets").exists());
}

#[test]
fn a_mismatched_key_pair_is_named() {
    let dir = temp_dir("keypair");
    let manifest = repo_manifest();
    let local = vec!["up", "--manifest", &manifest, "--listen", "127.0.0.1:0"];
    let mut deployed = local.clone();
    // Refused before the (unreachable) database is tried.
    deployed.extend(["--database-url", "postgres://postgres@127.0.0.1:9/test"]);
    for args in [local, deployed] {
        let stderr = expect_refusal_with(
            &dir,
            &args,
            &[
                ("SPIN_VARIABLE_JWT_PRIVATE_KEY", TEST_PRIVATE_KEY),
                ("SPIN_VARIABLE_JWT_PUBLIC_KEY", OTHER_PUBLIC_KEY),
            ],
        );
        assert!(
            stderr.contains(
                "SPIN_VARIABLE_JWT_PUBLIC_KEY is not the public key of SPIN_VARIABLE_JWT_PRIVATE_KEY"
            ),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn port_in_use_is_named() {
    build_components();
    let dir = temp_dir("port");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let stderr = expect_refusal(
        &dir,
        &["up", "--manifest", &repo_manifest(), "--listen", &addr],
        true,
    );
    assert!(
        stderr.contains(&addr) && stderr.contains("in use"),
        "{stderr}"
    );
}

#[test]
fn unreachable_postgres_is_named() {
    build_components();
    let dir = temp_dir("nopg");
    let url = "postgres://postgres@127.0.0.1:9/test";
    let stderr = expect_refusal(
        &dir,
        &[
            "up",
            "--manifest",
            &repo_manifest(),
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            url,
        ],
        true,
    );
    assert!(stderr.contains("127.0.0.1:9"), "{stderr}");
}

#[test]
fn not_a_postgres_url_is_refused() {
    build_components();
    let dir = temp_dir("badurl");
    let stderr = expect_refusal(
        &dir,
        &[
            "up",
            "--manifest",
            &repo_manifest(),
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "mysql://x@y/z",
        ],
        true,
    );
    assert!(stderr.contains("postgres://"), "{stderr}");
}

/// `shop compile` fills the cache `shop up` loads, in the host's own 0700 folder; a changed
/// component invalidates it, and a cached file that fails its check is compiled again.
#[test]
fn compiled_cache_follows_the_component() {
    let dir = temp_dir("compile");
    std::fs::write(
        dir.join("spin.toml"),
        "spin_manifest_version = 2\n[application]\nname = \"t\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"c\"\n[component.c]\nsource = \"c.wasm\"\n",
    )
    .unwrap();
    let compile = || {
        let out = Command::new(shop_bin())
            .current_dir(&dir)
            .arg("compile")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let cache_dir = dir.join(".shop/compiled");
    let cached = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&cache_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".cwasm"))
            .collect();
        names.sort();
        names
    };
    std::fs::write(dir.join("c.wasm"), wat::parse_str("(component)").unwrap()).unwrap();
    assert!(compile().contains("c: compiled in"));
    let first = cached();
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(compile().contains("c: cached compile is current"));
    assert_eq!(cached(), first);
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&cache_dir), 0o700);
        assert_eq!(mode(&cache_dir.join(&first[0])), 0o600);
        assert_eq!(mode(&cache_dir.join("key")), 0o600);
    }
    // Nothing is read from beside the component.
    assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".cwasm")));
    // A cached file changed by anyone but the host fails its tag: compiled again, replaced.
    let file = cache_dir.join(&first[0]);
    let mut code = std::fs::read(&file).unwrap();
    let last = code.len() - 1;
    code[last] ^= 0x55;
    std::fs::write(&file, &code).unwrap();
    assert!(compile().contains("c: compiled in"));
    assert_ne!(std::fs::read(&file).unwrap(), code);
    assert!(compile().contains("c: cached compile is current"));
    // A rebuilt component: the old compiled copy is stale, replaced, and removed.
    let changed = wat::parse_str("(component (core module (func (export \"f\"))))").unwrap();
    std::fs::write(dir.join("c.wasm"), changed).unwrap();
    assert!(compile().contains("c: compiled in"));
    let second = cached();
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second, first);
}
