//! `shop build`: runs each component's `[component.<id>.build] command`, as `spin build` does.

use anyhow::{bail, Context, Result};

use crate::manifest::Manifest;

/// Builds every component that has a build command, in manifest order, streaming their output.
pub async fn build_all(manifest: &Manifest) -> Result<()> {
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
