//! `shop build`: runs each component's `[component.<id>.build] command`, as `spin build` does.

use anyhow::{bail, Context, Result};

use crate::config::manifest::Manifest;

/// The target the components are built for.
const WASM_TARGET: &str = "wasm32-wasip2";

/// Builds every component that has a build command, in manifest order, streaming their output.
pub async fn build_all(manifest: &Manifest) -> Result<()> {
    add_missing_wasm_target(manifest).await?;
    let mut built = 0;
    for (id, component) in &manifest.components {
        let Some(build) = &component.build else {
            continue;
        };
        let dir = match &build.workdir {
            Some(workdir) => manifest.dir.join(workdir),
            None => manifest.dir.clone(),
        };
        println!("Building component {id} with `{}`", build.command);
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&build.command)
            .current_dir(&dir)
            .status()
            .await
            .with_context(|| format!("cannot run the build command of component `{id}`"))?;
        if !status.success() {
            bail!(
                "building component `{id}` failed ({status}): `{}` in {}",
                build.command,
                dir.display()
            );
        }
        built += 1;
    }
    if built == 0 {
        println!("None of the components has a build command.");
    } else {
        println!("Finished building all components");
    }
    Ok(())
}

/// Adds the wasm32-wasip2 target with rustup when a build command builds for it and the
/// toolchain lacks it. rust-toolchain.toml lists the target, but rustup adds a toolchain file's
/// targets only when it installs the toolchain, not to a stable toolchain already there, so on a
/// fresh machine the first build would stop at "can't find crate for core". rustup runs in the
/// manifest's folder with this process's environment: under `cargo run` the toolchain rustup's
/// proxy chose (RUSTUP_TOOLCHAIN), else the one the toolchain file names.
async fn add_missing_wasm_target(manifest: &Manifest) -> Result<()> {
    let commands: Vec<&str> = manifest
        .components
        .values()
        .filter_map(|component| component.build.as_ref())
        .map(|build| build.command.as_str())
        .collect();
    if !builds_for_wasm_target(&commands) {
        return Ok(());
    }
    // `None` without rustup (or with a toolchain it does not manage): cargo then says what is
    // missing itself.
    let installed = async || {
        let out = tokio::process::Command::new("rustup")
            .args(["target", "list", "--installed"])
            .current_dir(&manifest.dir)
            .stderr(std::process::Stdio::null())
            .output()
            .await
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let Some(listed) = installed().await else {
        return Ok(());
    };
    if !lacks_wasm_target(&listed) {
        return Ok(());
    }
    println!(
        "Adding the {WASM_TARGET} target to the Rust toolchain: rustup target add {WASM_TARGET}"
    );
    // Another build adding it at the same moment makes rustup fail (a conflict, a download
    // renamed under it): give that one time to finish, check, and try again.
    let mut failure = String::new();
    for attempt in 0..3 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            if installed()
                .await
                .is_some_and(|listed| !lacks_wasm_target(&listed))
            {
                return Ok(());
            }
        }
        failure = match tokio::process::Command::new("rustup")
            .args(["target", "add", WASM_TARGET])
            .current_dir(&manifest.dir)
            .status()
            .await
        {
            Ok(status) if status.success() => return Ok(()),
            Ok(status) => format!("rustup {status}"),
            Err(err) => format!("cannot run rustup: {err}"),
        };
    }
    bail!(
        "cannot add the {WASM_TARGET} target ({failure}): run `rustup target add {WASM_TARGET}` yourself, then build again"
    )
}

/// Whether one of the build commands builds for the wasm32-wasip2 target.
fn builds_for_wasm_target(commands: &[&str]) -> bool {
    commands.iter().any(|command| command.contains(WASM_TARGET))
}

/// Whether `installed`, the output of `rustup target list --installed`, lacks wasm32-wasip2.
fn lacks_wasm_target(installed: &str) -> bool {
    !installed.lines().any(|line| line.trim() == WASM_TARGET)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_commands_that_name_the_target_need_it() {
        let cargo = "cargo build --target wasm32-wasip2 --release -p cart";
        assert!(builds_for_wasm_target(&["make docs", cargo]));
        assert!(!builds_for_wasm_target(&[
            "cargo build --release",
            "npm run build"
        ]));
        assert!(!builds_for_wasm_target(&[]));
    }

    #[test]
    fn the_target_is_missing_unless_rustup_lists_it_on_a_line_of_its_own() {
        assert!(!lacks_wasm_target(
            "x86_64-unknown-linux-gnu\nwasm32-wasip2\n"
        ));
        assert!(lacks_wasm_target("x86_64-unknown-linux-gnu\n"));
        assert!(lacks_wasm_target(
            "x86_64-unknown-linux-gnu\nwasm32-wasip1\nwasm32-wasip2-threads\n"
        ));
        assert!(lacks_wasm_target(""));
    }
}
